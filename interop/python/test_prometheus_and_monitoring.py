"""What a shop's monitoring reads while pika publishes and consumes: Prometheus' own Python
client parses Warren's /metrics (OpenMetrics) into RabbitMQ's metric names, and a KEDA-style
scaler polls a queue's length from the management API. interop/run.sh starts the broker
with both HTTP listeners and exports their URLs."""
import base64
import json
import os
import time
import urllib.request

import pika
from prometheus_client.openmetrics.parser import text_string_to_metric_families

URL = os.environ["AMQP_URL"]
PROMETHEUS = os.environ["PROMETHEUS_URL"]
MANAGEMENT = os.environ["MGMT_URL"]


def scrape(path="/metrics"):
    with urllib.request.urlopen(PROMETHEUS + path, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def management(path):
    req = urllib.request.Request(MANAGEMENT + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def until(check, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_prometheus_parses_rabbitmqs_metric_names_and_counts_follow_the_traffic():
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.queue_declare(queue="metrics-orders")
    before = scrape()
    received = ("rabbitmq_global_messages_received_total", (("protocol", "amqp091"),))
    for i in range(5):
        ch.basic_publish(exchange="", routing_key="metrics-orders", body=f"order {i}")
    ch.basic_publish(exchange="amq.direct", routing_key="nowhere", body="lost")
    until(lambda: scrape().get(received, 0) >= before.get(received, 0) + 6)
    after = scrape()
    assert after[("rabbitmq_connections", ())] >= 1
    assert after[("rabbitmq_channels", ())] >= 1
    assert after[("rabbitmq_queue_messages_ready", ())] >= 5
    dropped = ("rabbitmq_global_messages_unroutable_dropped_total", (("protocol", "amqp091"),))
    assert after[dropped] >= before.get(dropped, 0) + 1
    assert after[("rabbitmq_process_resident_memory_bytes", ())] > 0
    identity = [k for k in after if k[0] == "rabbitmq_identity_info"]
    assert identity and dict(identity[0][1])["rabbitmq_node"].startswith("warren@")

    per_queue = scrape("/metrics/per-object")
    key = ("rabbitmq_queue_messages_ready", (("queue", "metrics-orders"), ("vhost", "/")))
    assert per_queue[key] == 5
    ch.queue_delete(queue="metrics-orders")
    conn.close()


def test_a_keda_style_scaler_reads_queue_length_from_the_management_api():
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.queue_declare(queue="keda-payments")
    for i in range(7):
        ch.basic_publish(exchange="", routing_key="keda-payments", body=f"payment {i}")
    # KEDA's RabbitMQ scaler in HTTP mode: GET /api/queues/VHOST/QUEUE, reads "messages"
    until(lambda: management("/api/queues/%2F/keda-payments")["messages"] == 7)
    q = management("/api/queues/%2F/keda-payments")
    assert q["message_stats"]["publish"] == 7
    assert "rate" in q["message_stats"]["publish_details"]
    ch.queue_delete(queue="keda-payments")
    conn.close()
