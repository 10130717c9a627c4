"""pika against Warren: the dead-letter topologies frameworks declare by default. A
Celery 5.5-style delay chain (quorum queues with TTL, x-overflow reject-publish and a
dead-letter exchange to the next level down, ending at the work queue) and a
Sneakers-style retry (reject, wait in a retry queue, come back; park after three
attempts, counting them in x-death). The broker URL comes from AMQP_URL."""
import os
import time
import uuid

import pika
import pytest

URL = os.environ["AMQP_URL"]


@pytest.fixture
def channel():
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    yield ch
    if conn.is_open:
        conn.close()


def wait_for(ch, queue, timeout=10):
    """basic.get until a message arrives; a hang is a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue)
        if method is not None:
            return method, props, body
        ch.connection.sleep(0.01)
    raise AssertionError(f"nothing arrived in {queue} within {timeout} s")


def test_a_celery_style_delay_chain_delivers_through_every_level(channel):
    ch = channel
    tag = uuid.uuid4().hex[:8]
    work = f"celery-{tag}"
    ch.exchange_declare(f"work-{tag}", "topic", durable=True)
    ch.queue_declare(work, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(work, f"work-{tag}", routing_key="#")
    # level N waits 2^N * 10 ms, then falls to level N-1; level 0 falls to the work exchange
    levels = 3
    for level in range(levels):
        below = f"delayed-{tag}-{level - 1}" if level > 0 else f"work-{tag}"
        ch.exchange_declare(f"delayed-{tag}-{level}", "topic", durable=True)
        ch.queue_declare(
            f"delayed-{tag}-{level}",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-overflow": "reject-publish",
                "x-message-ttl": (2 ** level) * 10,
                "x-dead-letter-exchange": below,
                "x-dead-letter-strategy": "at-least-once",
            },
        )
        ch.queue_bind(f"delayed-{tag}-{level}", f"delayed-{tag}-{level}", routing_key="#")
    ch.confirm_delivery()
    ch.basic_publish(
        f"delayed-{tag}-{levels - 1}",
        "task.send_invoice",
        b'{"order": 17}',
        pika.BasicProperties(delivery_mode=2, content_type="application/json"),
    )
    method, props, body = wait_for(ch, work)
    assert body == b'{"order": 17}'
    assert props.content_type == "application/json"
    deaths = props.headers["x-death"]
    # newest first, then the older history as RabbitMQ 3.x leaves it: it groups the
    # history by queue and reason before adding an entry, which reverses it each time
    assert [d["queue"] for d in deaths] == [f"delayed-{tag}-{l}" for l in (0, 2, 1)]
    assert all(d["reason"] == "expired" and d["count"] == 1 for d in deaths)
    assert props.headers["x-first-death-queue"] == f"delayed-{tag}-{levels - 1}"
    ch.basic_ack(method.delivery_tag)


def test_a_sneakers_style_retry_parks_after_three_attempts(channel):
    ch = channel
    tag = uuid.uuid4().hex[:8]
    work, retry, error = f"orders-{tag}", f"orders-{tag}-retry", f"orders-{tag}-error"
    ch.exchange_declare(work, "topic", durable=True)
    ch.exchange_declare(retry, "topic", durable=True)
    ch.queue_declare(error, durable=True)
    ch.queue_declare(work, durable=True, arguments={"x-dead-letter-exchange": retry})
    ch.queue_bind(work, work, routing_key="#")
    ch.queue_declare(
        retry,
        durable=True,
        arguments={"x-message-ttl": 20, "x-dead-letter-exchange": work},
    )
    ch.queue_bind(retry, retry, routing_key="#")
    ch.basic_publish(work, "order.paid", b"order 99", pika.BasicProperties(delivery_mode=2))

    attempts = 0
    while True:
        method, props, body = wait_for(ch, work)
        attempts += 1
        failures = next(
            (
                d["count"]
                for d in (props.headers or {}).get("x-death", [])
                if d["queue"] == work and d["reason"] == "rejected"
            ),
            0,
        )
        assert failures == attempts - 1
        if failures >= 3:
            # give up: park it with its history, as Sneakers' maxretry handler does
            ch.basic_publish("", error, body, props)
            ch.basic_ack(method.delivery_tag)
            break
        ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = wait_for(ch, error)
    assert body == b"order 99"
    rks = [d["routing-keys"] for d in props.headers["x-death"]]
    assert rks == [["order.paid"], ["order.paid"]]
    ch.basic_ack(method.delivery_tag)
