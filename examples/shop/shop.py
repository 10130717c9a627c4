#!/usr/bin/env python3
"""The shop, end to end, with pika: the e-commerce flow Warren's users run, unchanged
against Warren and RabbitMQ.

- The order service looks up each order's price over direct reply-to RPC, then publishes the
  order (persistent, mandatory, confirmed) to the topic exchange `shop.orders` and schedules
  its payment timeout on the delayed exchange `shop.delayed`.
- The stock and payment services consume with manual acks and a prefetch.
- A failed payment is retried with backoff through TTL + dead-letter queues (50, 100, 200 ms)
  and parked after three retries, counted from the message's `x-death` history.
- An order still unpaid when its timeout arrives is cancelled.
- At the end: throughput, order-to-stock latency, reliability, and a check that no order was
  lost or handled twice. Exit status 1 if any was.

Without an `x-delayed-message` exchange type (RabbitMQ without the community plugin) the
timeouts go through a TTL queue instead, and the report says so.

Usage: shop.py [--url amqp://guest:guest@127.0.0.1:5672/%2F] [--orders 2000]
"""
import argparse
import json
import sys
import threading
import time

import pika

ORDERS = "shop.orders"
STOCK = "shop.stock"
PAYMENTS = "shop.payments"
PARKED = "shop.payments.parked"
RETRY_MS = [50, 100, 200]
RETRY = "shop.payments.retry."
DELAYED = "shop.delayed"
TIMEOUTS = "shop.order-timeouts"
TIMEOUTS_WAIT = "shop.order-timeouts.wait"
PRICES = "shop.prices"
PAYMENT_TIMEOUT_MS = 1000
PERSISTENT = pika.DeliveryMode.Persistent


def payment_fails(order_id, retries):
    """The bank's answer: every 20th order is always declined, every 7th once."""
    if order_id % 20 == 0:
        return True
    return order_id % 7 == 0 and retries == 0


def retries_of(properties):
    """Retries so far, from x-death: each expiry in a retry queue is one."""
    deaths = (properties.headers or {}).get("x-death") or []
    return sum(d.get("count", 0) for d in deaths
               if d.get("reason") == "expired" and str(d.get("queue", "")).startswith(RETRY))


class Shop:
    def __init__(self, url, orders):
        self.params = pika.URLParameters(url)
        self.orders = orders
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.stock = {}        # order id -> times handled
        self.paid = {}         # order id -> times paid
        self.parked = {}       # order id -> retries when parked
        self.cancelled = set()
        self.timeouts = 0
        self.retried = 0
        self.latencies = []
        self.delay_mode = "x-delayed-message"

    def connect(self):
        return pika.BlockingConnection(self.params)

    # -- topology --------------------------------------------------------------------
    def declare(self):
        conn = self.connect()
        ch = conn.channel()
        for q in [STOCK, PAYMENTS, PARKED, TIMEOUTS, TIMEOUTS_WAIT, PRICES] + \
                [RETRY + str(i) for i in range(len(RETRY_MS))]:
            ch.queue_delete(q)
        ch.exchange_delete(DELAYED)
        ch.exchange_declare(ORDERS, "topic", durable=True)
        for q in [STOCK, PAYMENTS]:
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, ORDERS, "order.created")
        ch.queue_declare(PARKED, durable=True)
        for i, ms in enumerate(RETRY_MS):
            ch.queue_declare(RETRY + str(i), durable=True, arguments={
                "x-message-ttl": ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": PAYMENTS,
            })
        ch.queue_declare(TIMEOUTS, durable=True)
        ch.queue_declare(PRICES, durable=True)
        try:
            ch.exchange_declare(DELAYED, "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": "direct"})
            ch.queue_bind(TIMEOUTS, DELAYED, "order.timeout")
        except pika.exceptions.AMQPError:
            # no such exchange type here: 503 closed the connection
            self.delay_mode = "TTL queue (the broker has no x-delayed-message)"
            conn = self.connect()
            ch = conn.channel()
            ch.queue_declare(TIMEOUTS_WAIT, durable=True, arguments={
                "x-message-ttl": PAYMENT_TIMEOUT_MS,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": TIMEOUTS,
            })
        conn.close()

    # -- services --------------------------------------------------------------------
    def serve(self, queue, handler, prefetch=50, confirm=False):
        """Run `handler(ch, method, properties, body)` for each message until stopped."""
        conn = self.connect()
        ch = conn.channel()
        if confirm:
            ch.confirm_delivery()
        ch.basic_qos(prefetch_count=prefetch)
        ch.basic_consume(queue, lambda c, m, p, b: handler(c, m, p, b))
        while not self.stop.is_set():
            conn.process_data_events(time_limit=0.05)
        conn.close()

    def on_stock(self, ch, method, properties, body):
        order = json.loads(body)
        with self.lock:
            self.stock[order["id"]] = self.stock.get(order["id"], 0) + 1
            self.latencies.append(time.time() - order["sent_at"])
        ch.basic_ack(method.delivery_tag)

    def on_payment(self, ch, method, properties, body):
        order = json.loads(body)
        retries = retries_of(properties)
        if payment_fails(order["id"], retries):
            # the copy keeps its x-death history, which counts the retries
            props = pika.BasicProperties(delivery_mode=PERSISTENT, headers=properties.headers)
            if retries >= len(RETRY_MS):
                ch.basic_publish("", PARKED, body, props)
                with self.lock:
                    self.parked[order["id"]] = retries
            else:
                ch.basic_publish("", RETRY + str(retries), body, props)
                with self.lock:
                    self.retried += 1
        else:
            with self.lock:
                self.paid[order["id"]] = self.paid.get(order["id"], 0) + 1
        ch.basic_ack(method.delivery_tag)

    def on_timeout(self, ch, method, properties, body):
        order_id = int(body)
        with self.lock:
            self.timeouts += 1
            if order_id not in self.paid:
                self.cancelled.add(order_id)
        ch.basic_ack(method.delivery_tag)

    def on_price(self, ch, method, properties, body):
        price = 10 + len(body) % 7
        ch.basic_publish("", properties.reply_to, str(price).encode(),
                         pika.BasicProperties(correlation_id=properties.correlation_id))
        ch.basic_ack(method.delivery_tag)

    # -- the order service -----------------------------------------------------------
    def place_orders(self):
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        replies = {}
        ch.basic_consume("amq.rabbitmq.reply-to",
                         lambda c, m, p, b: replies.__setitem__(p.correlation_id, b),
                         auto_ack=True)
        for n in range(1, self.orders + 1):
            cid = "price-%d" % n
            ch.basic_publish("", PRICES, ("sku-%d" % (n % 50)).encode(),
                             pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                  correlation_id=cid))
            while cid not in replies:
                conn.process_data_events(time_limit=0.01)
            order = {"id": n, "price": int(replies.pop(cid)), "sent_at": time.time()}
            ch.basic_publish(ORDERS, "order.created", json.dumps(order).encode(),
                             pika.BasicProperties(delivery_mode=PERSISTENT,
                                                  content_type="application/json"),
                             mandatory=True)
            if self.delay_mode == "x-delayed-message":
                ch.basic_publish(DELAYED, "order.timeout", str(n).encode(),
                                 pika.BasicProperties(delivery_mode=PERSISTENT,
                                                      headers={"x-delay": PAYMENT_TIMEOUT_MS}))
            else:
                ch.basic_publish("", TIMEOUTS_WAIT, str(n).encode(),
                                 pika.BasicProperties(delivery_mode=PERSISTENT))
        conn.close()

    def settled(self):
        with self.lock:
            return (len(self.stock) >= self.orders
                    and len(self.paid) + len(self.parked) >= self.orders
                    and self.timeouts >= self.orders)

    def run(self):
        self.declare()
        services = [
            (STOCK, self.on_stock, False),
            (PAYMENTS, self.on_payment, True),
            (TIMEOUTS, self.on_timeout, False),
            (PRICES, self.on_price, False),
        ]
        threads = [threading.Thread(target=self.serve, args=(q, h), kwargs={"confirm": c},
                                    daemon=True) for q, h, c in services]
        for t in threads:
            t.start()
        start = time.time()
        self.place_orders()
        published = time.time() - start
        deadline = time.time() + 60
        while not self.settled() and time.time() < deadline:
            time.sleep(0.02)
        elapsed = time.time() - start
        self.stop.set()
        for t in threads:
            t.join(timeout=5)
        return self.report(published, elapsed)

    def report(self, published, elapsed):
        n = self.orders
        lat = sorted(self.latencies) or [0.0]
        pct = lambda p: lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))] * 1000
        handled_twice = sum(1 for c in self.stock.values() if c > 1) + \
            sum(1 for c in self.paid.values() if c > 1)
        processed = sum(1 for i in range(1, n + 1)
                        if i in self.stock and (i in self.paid or i in self.parked))
        expected_parked = {i for i in range(1, n + 1) if i % 20 == 0}
        lost = n - processed
        print("shop (pika): %d orders, timeouts by %s" % (n, self.delay_mode))
        print("orders published      %d in %.2f s (%.0f orders/s, each priced over RPC)"
              % (n, published, n / published))
        print("all settled in        %.2f s (%.0f orders/s end to end)" % (elapsed, n / elapsed))
        print("stock handled         %d" % len(self.stock))
        print("payments              paid %d, retried %d times, parked %d (after %s retries)"
              % (len(self.paid), self.retried, len(self.parked),
                 sorted(set(self.parked.values())) or "-"))
        print("unpaid cancelled      %d by their payment timeout (%d timeouts)"
              % (len(self.cancelled), self.timeouts))
        print("latency order->stock  p50 %.1f ms  p99 %.1f ms" % (pct(0.5), pct(0.99)))
        print("reliability           %d/%d = %.2f%%  lost %d  handled twice %d"
              % (processed, n, 100.0 * processed / n, lost, handled_twice))
        ok = (lost == 0 and handled_twice == 0
              and set(self.parked) == expected_parked
              and all(r == len(RETRY_MS) for r in self.parked.values())
              and self.cancelled == expected_parked)
        print("check                 %s" % ("ok" if ok else "FAILED"))
        return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    sys.exit(0 if Shop(args.url, args.orders).run() else 1)


if __name__ == "__main__":
    main()
