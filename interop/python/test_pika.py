"""pika against Warren: RabbitMQ's own tutorial program unchanged, then the operations an
order service uses. The broker URL comes from AMQP_URL (interop/run.sh starts the broker)."""
import os
import subprocess
import sys
import textwrap
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


def fresh(ch, **kw):
    return ch.queue_declare(queue="", exclusive=True, **kw).method.queue


def test_the_rabbitmq_tutorial_send_program_runs_unchanged_and_another_program_receives():
    # send.py from RabbitMQ's "Hello World" tutorial, verbatim apart from the port.
    send = textwrap.dedent("""
        import pika
        connection = pika.BlockingConnection(pika.ConnectionParameters('localhost', port=PORT))
        channel = connection.channel()
        channel.queue_declare(queue='hello')
        channel.basic_publish(exchange='', routing_key='hello', body='Hello World!')
        connection.close()
    """).replace("PORT", str(pika.URLParameters(URL).port))
    subprocess.run([sys.executable, "-c", send], check=True, timeout=30)
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.queue_declare(queue="hello")
    got = []

    def callback(ch, method, properties, body):
        got.append(body)
        ch.stop_consuming()

    ch.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
    conn.call_later(10, ch.stop_consuming)
    ch.start_consuming()
    conn.close()
    assert got == [b"Hello World!"]


def test_publish_consume_and_ack(channel):
    q = fresh(channel)
    for i in range(3):
        channel.basic_publish("", q, f"order-{i}".encode())
    got = []
    for method, props, body in channel.consume(q, inactivity_timeout=2):
        if method is None:
            break
        got.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(got) == 3:
            break
    channel.cancel()
    assert got == [b"order-0", b"order-1", b"order-2"]


def test_nack_requeues_with_redelivered_and_get_reports_empty(channel):
    q = fresh(channel)
    channel.basic_publish("", q, b"retry-me")
    method, _, body = channel.basic_get(q)
    assert body == b"retry-me" and not method.redelivered
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = channel.basic_get(q)
    assert body == b"retry-me" and method.redelivered
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert channel.basic_get(q) == (None, None, None)


def test_publisher_confirms_and_mandatory_returns(channel):
    channel.confirm_delivery()
    q = fresh(channel)
    channel.basic_publish("", q, b"confirmed")  # raises if nacked
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("amq.direct", "nobody-" + uuid.uuid4().hex, b"x", mandatory=True)


def test_transactions_commit_and_rollback(channel):
    q = fresh(channel)
    channel.tx_select()
    channel.basic_publish("", q, b"rolled-back")
    channel.tx_rollback()
    channel.basic_publish("", q, b"committed")
    channel.tx_commit()
    _, _, body = channel.basic_get(q, auto_ack=True)
    assert body == b"committed"
    assert channel.basic_get(q) == (None, None, None)


def test_topic_routing(channel):
    ex = "interop-topic-" + uuid.uuid4().hex
    channel.exchange_declare(ex, exchange_type="topic", auto_delete=True)
    eu, everything = fresh(channel), fresh(channel)
    channel.queue_bind(eu, ex, "order.eu.*")
    channel.queue_bind(everything, ex, "#")
    channel.basic_publish(ex, "order.eu.paid", b"eu")
    channel.basic_publish(ex, "order.us.paid", b"us")
    assert channel.basic_get(eu, auto_ack=True)[2] == b"eu"
    assert channel.basic_get(eu) == (None, None, None)
    assert [channel.basic_get(everything, auto_ack=True)[2] for _ in range(2)] == [b"eu", b"us"]


def test_headers_routing_and_properties_round_trip(channel):
    q = fresh(channel)
    channel.queue_bind(q, "amq.headers", arguments={"x-match": "all", "region": "eu"})
    props = pika.BasicProperties(
        content_type="application/json", delivery_mode=2, priority=3, correlation_id="c-1",
        reply_to="r", message_id="m-1", type="order", app_id="shop",
        headers={"region": "eu", "n": 7, "nested": {"a": [1, "b"]}},
    )
    channel.basic_publish("amq.headers", "", b"{}", properties=props)
    channel.basic_publish("amq.headers", "", b"skip", properties=pika.BasicProperties(headers={"region": "us"}))
    _, got, body = channel.basic_get(q, auto_ack=True)
    assert body == b"{}"
    assert got.headers == {"region": "eu", "n": 7, "nested": {"a": [1, "b"]}}
    assert (got.content_type, got.delivery_mode, got.priority, got.correlation_id) == ("application/json", 2, 3, "c-1")
    assert (got.message_id, got.type, got.app_id) == ("m-1", "order", "shop")
    assert channel.basic_get(q) == (None, None, None)


def test_channel_errors_carry_rabbitmq_codes(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        channel.queue_declare("missing-" + uuid.uuid4().hex, passive=True)
    assert e.value.reply_code == 404
    assert e.value.reply_text.startswith("NOT_FOUND - no queue")


def test_rpc_over_direct_reply_to(channel):
    # The RPC pattern of RabbitMQ's direct reply-to guide: the client consumes the
    # pseudo-queue without acks, the server answers to whatever reply_to it was given.
    server_conn = pika.BlockingConnection(pika.URLParameters(URL))
    server = server_conn.channel()
    requests = fresh(server)

    def on_request(ch, method, props, body):
        ch.basic_publish("", props.reply_to, b"price of " + body,
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    server.basic_consume(requests, on_request)
    replies = []
    channel.basic_consume("amq.rabbitmq.reply-to",
                          lambda ch, m, p, body: replies.append((p.correlation_id, body)),
                          auto_ack=True)
    for n in range(3):
        channel.basic_publish("", requests, f"sku-{n}".encode(),
                              pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                   correlation_id=str(n)))
    deadline = 100
    while len(replies) < 3 and deadline:
        server_conn.process_data_events(0.05)
        channel.connection.process_data_events(0.05)
        deadline -= 1
    server_conn.close()
    assert sorted(replies) == [("0", b"price of sku-0"), ("1", b"price of sku-1"),
                               ("2", b"price of sku-2")]
