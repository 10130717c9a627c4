"""testcontainers-python's RabbitMQ module, as a pytest suite uses it, on Warren's image.

Its readiness probe is a pika connection, and it passes the port, user, password and vhost
to the container as RABBITMQ_NODE_PORT and RABBITMQ_DEFAULT_*.
"""
import os

import pika
from testcontainers.community.rabbitmq import RabbitMqContainer

IMAGE = os.environ["WARREN_IMAGE"]


def test_a_payment_goes_through_a_broker_started_by_the_module():
    with RabbitMqContainer(IMAGE, username="shop", password="s3cret", vhost="payments") as broker:
        conn = pika.BlockingConnection(broker.get_connection_params())
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("payments", durable=True)
        ch.basic_publish("", "payments", b"pay-1", pika.BasicProperties(delivery_mode=2))
        _, _, body = ch.basic_get("payments", auto_ack=True)
        assert body == b"pay-1"
        conn.close()


def test_the_module_moves_the_amqp_port_with_rabbitmq_node_port():
    with RabbitMqContainer(IMAGE, port=5673) as broker:
        params = broker.get_connection_params()
        assert params.port != 5672
        conn = pika.BlockingConnection(params)
        assert conn.is_open
        conn.close()
