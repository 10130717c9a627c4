"""aio-pika (asyncio, the client under FastStream) against Warren: what an async order
service does with it, in aio-pika's own idioms: robust connections, publisher confirms on by
default, queue iterators with message.process(), its RPC pattern and its typed channel
errors. The broker comes from AMQP_URL (and MGMT_URL, AMQPS_URL, TLS_DIR: interop/run.sh)."""
import asyncio
import base64
import json
import os
import ssl
import time
import urllib.parse
import urllib.request
import uuid

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.patterns import RPC

URL = os.environ["AMQP_URL"]


def run(story, timeout=20):
    """Runs one async story with a bound, so a broker that never answers fails the test."""
    asyncio.run(asyncio.wait_for(story(), timeout))


def name(prefix):
    return f"aio-{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_confirmed_persistent_order_is_read_back_by_a_queue_iterator_with_its_properties():
    async def story():
        async with await aio_pika.connect_robust(URL) as conn:
            ch = await conn.channel()  # publisher confirms are aio-pika's default
            q = await ch.declare_queue(name("orders"), durable=True)
            sent_at = int(time.time())
            confirm = await ch.default_exchange.publish(
                Message(
                    b'{"order": 42}',
                    content_type="application/json",
                    delivery_mode=DeliveryMode.PERSISTENT,
                    headers={"order-id": 42, "lines": ["sku-1", "sku-2"], "shipping": {"express": True}},
                    message_id="order-42",
                    timestamp=sent_at,
                    correlation_id="checkout-7",
                ),
                routing_key=q.name,
            )
            assert isinstance(confirm, aiormq.spec.Basic.Ack)
            async with q.iterator() as messages:
                async for m in messages:
                    async with m.process():
                        assert m.body == b'{"order": 42}'
                        assert m.content_type == "application/json"
                        assert m.delivery_mode == DeliveryMode.PERSISTENT
                        assert m.message_id == "order-42"
                        assert m.correlation_id == "checkout-7"
                        assert int(m.timestamp.timestamp()) == sent_at
                        assert m.headers["order-id"] == 42
                        assert m.headers["lines"] == ["sku-1", "sku-2"]
                        assert m.headers["shipping"] == {"express": True}
                    break
            assert (await q.declare()).message_count == 0  # process() acked it
            await q.delete()

    run(story)


def test_a_handler_that_raises_inside_process_gets_the_message_back_redelivered():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue(exclusive=True)
            await ch.default_exchange.publish(Message(b"payment-1"), routing_key=q.name)
            m = await q.get(timeout=5)
            with pytest.raises(RuntimeError):
                async with m.process(requeue=True):
                    raise RuntimeError("payment provider down")
            again = await q.get(timeout=5)
            assert again.body == b"payment-1"
            assert again.redelivered
            await again.ack()
            assert await q.get(fail=False) is None

    run(story)


def test_a_prefetch_10_consumer_acks_100_orders_in_order():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=10)
            q = await ch.declare_queue(exclusive=True)
            for i in range(100):
                await ch.default_exchange.publish(Message(f"order-{i}".encode()), routing_key=q.name)
            got = []
            done = asyncio.Event()

            async def on_message(m):
                async with m.process():
                    got.append(m.body.decode())
                    if len(got) == 100:
                        done.set()

            await q.consume(on_message)
            await done.wait()
            assert got == [f"order-{i}" for i in range(100)]

    run(story)


def test_an_unroutable_message_comes_back_to_the_publisher_and_raises_when_asked_to():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            returned = []
            ch.return_callbacks.add(lambda _ch, m: returned.append(m))
            # aio-pika publishes mandatory by default: the confirm resolves to the returned message
            result = await ch.default_exchange.publish(Message(b"lost?"), routing_key=name("nowhere"))
            assert len(returned) == 1 and returned[0].body == b"lost?"
            strict = await conn.channel(on_return_raises=True)
            with pytest.raises(aio_pika.exceptions.PublishError) as err:
                await strict.default_exchange.publish(Message(b"lost?"), routing_key=name("nowhere"))
            returned_frame = err.value.message.delivery
            assert (returned_frame.reply_code, returned_frame.reply_text) == (312, "NO_ROUTE")

    run(story)


def test_channel_errors_come_as_aio_pikas_typed_exceptions_with_rabbitmqs_texts():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            missing = name("missing")
            ch = await conn.channel()
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as err:
                await ch.declare_queue(missing, passive=True)
            assert err.value.args[0] == f"NOT_FOUND - no queue '{missing}' in vhost '/'"

            q = name("durable")
            ch = await conn.channel()
            await ch.declare_queue(q, durable=True, auto_delete=True)
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as err:
                await ch.declare_queue(q, durable=False, auto_delete=True)
            assert err.value.args[0] == (
                f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
                "received 'false' but current is 'true'"
            )

            async with await aio_pika.connect(URL) as other:
                mine = await (await conn.channel()).declare_queue(name("exclusive"), exclusive=True)
                with pytest.raises(aiormq.exceptions.ChannelLockedResource) as err:
                    await (await other.channel()).declare_queue(mine.name, exclusive=True)
                assert err.value.args[0].startswith(
                    f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{mine.name}'"
                )
            # the connection survived three channel errors
            ch = await conn.channel()
            await ch.declare_queue(exclusive=True)

    run(story)


def test_rpc_pattern_calls_a_registered_method_and_an_unanswered_call_times_out_through_its_dlx():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            server = await RPC.create(await conn.channel())
            method = name("price")

            async def price(*, sku):
                return {"sku": sku, "cents": 1999}

            await server.register(method, price, auto_delete=True)
            client = await RPC.create(await conn.channel())
            assert await client.call(method, kwargs={"sku": "sku-9"}) == {"sku": "sku-9", "cents": 1999}

            # Nobody consumes this method's queue: the call's expiration dead-letters it through
            # aio-pika's headers exchange (x-match any on "From") back to the caller.
            idle = name("later")
            ch = await conn.channel()
            await ch.declare_queue(idle, auto_delete=False, arguments={"x-dead-letter-exchange": RPC.DLX_NAME})
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await client.call(idle, kwargs={}, expiration=0.3)
            assert time.monotonic() - started >= 0.25
            await ch.queue_delete(idle)
            await client.close()
            await server.close()

    run(story)


def test_rpc_over_direct_reply_to_as_faststream_does_it():
    async def story():
        async with await aio_pika.connect(URL) as server_conn, await aio_pika.connect(URL) as client_conn:
            s = await server_conn.channel()
            requests = await s.declare_queue(name("stock"), auto_delete=True)

            async def serve(m):
                async with m.process():
                    await s.default_exchange.publish(
                        Message(b"in-stock:" + m.body, correlation_id=m.correlation_id),
                        routing_key=m.reply_to,
                    )

            await requests.consume(serve)
            c = await client_conn.channel()
            reply_to = await c.get_queue("amq.rabbitmq.reply-to", ensure=False)
            replies = asyncio.Queue()

            async def on_reply(m):
                replies.put_nowait(m)

            await reply_to.consume(on_reply, no_ack=True)
            for i in range(20):
                await c.default_exchange.publish(
                    Message(f"sku-{i}".encode(), reply_to="amq.rabbitmq.reply-to", correlation_id=f"c{i}"),
                    routing_key=requests.name,
                )
                r = await replies.get()
                assert (r.correlation_id, r.body) == (f"c{i}", f"in-stock:sku-{i}".encode())

    run(story)


def test_a_rejected_payment_is_dead_lettered_with_x_death():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            dlx = await ch.declare_exchange(name("dlx"), ExchangeType.FANOUT, auto_delete=True)
            parked = await ch.declare_queue(exclusive=True)
            await parked.bind(dlx)
            work = await ch.declare_queue(exclusive=True, arguments={"x-dead-letter-exchange": dlx.name})
            await ch.default_exchange.publish(Message(b"payment-7"), routing_key=work.name)
            m = await work.get(timeout=5)
            await m.reject(requeue=False)
            dead = None
            for _ in range(100):
                dead = await parked.get(no_ack=True, fail=False)
                if dead:
                    break
                await asyncio.sleep(0.02)
            assert dead is not None and dead.body == b"payment-7"
            (death,) = dead.headers["x-death"]
            assert death["reason"] == "rejected"
            assert death["queue"] == work.name
            assert death["count"] == 1
            assert death["exchange"] == ""

    run(story)


def test_a_delayed_message_exchange_holds_an_unpaid_order_until_its_x_delay():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            delayed = await ch.declare_exchange(
                name("cancel-unpaid"), ExchangeType.X_DELAYED_MESSAGE, auto_delete=True,
                arguments={"x-delayed-type": "direct"},
            )
            q = await ch.declare_queue(exclusive=True)
            await q.bind(delayed, "order.cancel")
            started = time.monotonic()
            await delayed.publish(Message(b"order-42", headers={"x-delay": 300}), routing_key="order.cancel")
            async with q.iterator() as messages:
                async for m in messages:
                    await m.ack()
                    break
            assert m.body == b"order-42"
            assert time.monotonic() - started >= 0.25

    run(story)


def test_a_full_reject_publish_queue_fails_the_publish_with_a_nack():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue(
                name("stock"), exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
            )
            await ch.default_exchange.publish(Message(b"first"), routing_key=q.name)
            with pytest.raises(aiormq.exceptions.DeliveryError) as err:
                await ch.default_exchange.publish(Message(b"second"), routing_key=q.name)
            assert isinstance(err.value.frame, aiormq.spec.Basic.Nack)
            assert (await q.declare()).message_count == 1

    run(story)


def test_a_transaction_rolls_back_and_commits():
    async def story():
        async with await aio_pika.connect(URL) as conn:
            ch = await conn.channel(publisher_confirms=False)
            q = await ch.declare_queue(exclusive=True)
            tx = ch.transaction()
            await tx.select()
            await ch.default_exchange.publish(Message(b"rolled back"), routing_key=q.name)
            await tx.rollback()
            await ch.default_exchange.publish(Message(b"committed"), routing_key=q.name)
            await tx.commit()
            m = await q.get(timeout=5)
            assert m.body == b"committed"
            await m.ack()
            assert await q.get(fail=False) is None

    run(story)


def mgmt(method, path):
    req = urllib.request.Request(os.environ["MGMT_URL"] + path, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.mark.skipif("MGMT_URL" not in os.environ, reason="needs the management API")
def test_a_robust_connection_closed_by_the_operator_comes_back_with_its_queue_and_consumer():
    async def story():
        label = name("robust")
        # aio-pika takes the connection's name from the URL (?name=), as the management UI shows it
        conn = await aio_pika.connect_robust(URL + "?name=" + label, reconnect_interval=0.5)
        reconnected = asyncio.Event()

        def on_reconnect(*_):
            reconnected.set()

        conn.reconnect_callbacks.add(on_reconnect)
        ch = await conn.channel()
        q = await ch.declare_queue(name("stock-updates"), auto_delete=False)
        got = asyncio.Queue()

        async def on_message(m):
            async with m.process():
                pass
            got.put_nowait(m.body)

        await q.consume(on_message)
        await ch.default_exchange.publish(Message(b"before"), routing_key=q.name)
        assert await got.get() == b"before"
        # The channel's frames are handled in order: once this answers, the ack above is in.
        await ch.declare_queue(q.name, passive=True)

        # As `rabbitmqctl close_connection` or the management UI's "Force close" does; the
        # listing can lag behind the connection (RabbitMQ's statistics do), so look until found.
        mine = []
        while not mine:
            listed = await asyncio.to_thread(mgmt, "GET", "/api/connections")
            mine = [c for c in listed if c.get("user_provided_name") == label]
            if not mine:
                await asyncio.sleep(0.2)
        assert mine[0]["client_properties"]["connection_name"] == label
        await asyncio.to_thread(mgmt, "DELETE", "/api/connections/" + urllib.parse.quote(mine[0]["name"], safe=""))
        await reconnected.wait()
        await ch.default_exchange.publish(Message(b"after"), routing_key=q.name)
        assert await got.get() == b"after"
        await q.delete(if_unused=False)
        await conn.close()

    run(story, timeout=30)


@pytest.mark.skipif("AMQPS_URL" not in os.environ, reason="needs the amqps listener")
def test_amqps_with_the_test_ca():
    async def story():
        ctx = ssl.create_default_context(cafile=os.path.join(os.environ["TLS_DIR"], "ca.pem"))
        async with await aio_pika.connect(os.environ["AMQPS_URL"], ssl_context=ctx) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue(exclusive=True)
            await ch.default_exchange.publish(Message(b"over tls"), routing_key=q.name)
            m = await q.get(timeout=5)
            assert m.body == b"over tls"
            await m.ack()

    run(story)
