"""pika over TLS against Warren: a payment service connecting with ssl_options, and a
service that logs in with its client certificate (SASL EXTERNAL). interop/run.sh makes
the certificates (interop/tls/make_certs.sh) and starts the broker with an amqps listener
that asks for, but does not require, client certificates."""
import base64
import json
import os
import ssl
import urllib.request

import pika
import pytest

TLS_DIR = os.environ["TLS_DIR"]
PORT = int(os.environ["AMQPS_PORT"])
MGMT = os.environ["MGMT_URL"]


def context(client_cert=False, max_version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(os.path.join(TLS_DIR, "client.pem"), os.path.join(TLS_DIR, "client.key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def params(ctx, credentials=None, vhost="/"):
    return pika.ConnectionParameters(
        host="localhost",
        port=PORT,
        virtual_host=vhost,
        ssl_options=pika.SSLOptions(ctx, "localhost"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
    )


def admin(method, path, body=None):
    req = urllib.request.Request(MGMT + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return r.status


def test_publish_and_get_over_tls():
    conn = pika.BlockingConnection(params(context()))
    ch = conn.channel()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"payment 7", pika.BasicProperties(delivery_mode=2))
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"payment 7"
    conn.close()


def test_tls_1_2_only_client_still_connects():
    conn = pika.BlockingConnection(params(context(max_version=ssl.TLSVersion.TLSv1_2)))
    assert conn.is_open
    conn.close()


def test_client_certificate_logs_in_with_external():
    assert admin("PUT", "/api/users/orders-service", {"password_hash": "", "tags": ""}) in (201, 204)
    assert admin("PUT", "/api/permissions/%2F/orders-service",
                 {"configure": "^orders", "write": ".*", "read": "^orders"}) in (201, 204)
    conn = pika.BlockingConnection(params(context(client_cert=True),
                                          credentials=pika.credentials.ExternalCredentials()))
    ch = conn.channel()
    ch.queue_declare(queue="orders.tls", auto_delete=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(queue="payments.tls")
    assert e.value.reply_code == 403
    conn.close()


def test_wrong_password_over_tls_is_403():
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params(context(), pika.PlainCredentials("guest", "nope")))
