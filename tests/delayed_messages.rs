//! A shop cancels unpaid orders after 30 minutes and retries failed payments later with
//! an `x-delayed-message` exchange, as with RabbitMQ's delayed-message plugin: declared
//! with `x-delayed-type`, messages held for their `x-delay` header and then routed as the
//! delayed type routes, in due order. Unlike the plugin, a confirmed delayed message is in
//! the store: it survives a restart and kill -9, and many of them do not sit in memory.

mod common;

use std::time::{Duration, Instant};

use common::amqp::{args, as_int, bind, declare, declare_durable, drain_bodies, header, text};
use common::amqp::{depth, wait_for_message};
use common::http::Api;
use common::{process, reply_code, reply_text, start, start_with, start_with_management};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use warren::Config;

async fn delayed_exchange(ch: &Channel, name: &str, delayed_type: &str) -> lapin::Result<()> {
    ch.exchange_declare(
        name.into(),
        lapin::ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args(&[("x-delayed-type", text(delayed_type))]),
    )
    .await
}

fn delayed_by(ms: i64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2)
}

async fn on_a_manual_clock() -> common::TestBroker {
    start_with(Config {
        manual_clock: true,
        ..Config::default()
    })
    .await
}

/// Publish with confirms (and `mandatory`); the confirm's outcome, with a basic.return
/// reply code if the message came back.
async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &str,
    properties: BasicProperties,
    mandatory: bool,
) -> Option<u16> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish");
    match common::within(confirm).await.expect("confirm") {
        Confirmation::Ack(returned) => returned.map(|r| r.reply_code),
        other => panic!("not acked: {other:?}"),
    }
}

/// The shop's topology: a delayed direct exchange `orders.delayed` routing
/// `order.timeout` to the durable queue `orders.timeouts`.
async fn shop(ch: &Channel) {
    ch.confirm_select(Default::default()).await.unwrap();
    delayed_exchange(ch, "orders.delayed", "direct")
        .await
        .unwrap();
    declare_durable(ch, "orders.timeouts", FieldTable::default())
        .await
        .unwrap();
    bind(ch, "orders.timeouts", "orders.delayed", "order.timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_declaration_is_checked_as_the_plugin_checks_it() {
    let b = start_with_management(Config::default()).await;
    let conn = b.connect().await;
    // the unknown type last: 503 closes the connection
    let cases: [(&str, FieldTable, u16, &str); 3] = [
        (
            "no-type",
            FieldTable::default(),
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ),
        (
            "itself",
            args(&[("x-delayed-type", text("x-delayed-message"))]),
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ),
        (
            "unknown",
            args(&[("x-delayed-type", text("x-consistent-hash"))]),
            503,
            "COMMAND_INVALID - unknown exchange type 'x-consistent-hash'",
        ),
    ];
    for (name, arguments, code, message) in cases {
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .exchange_declare(
                name.into(),
                lapin::ExchangeKind::Custom("x-delayed-message".into()),
                Default::default(),
                arguments,
            )
            .await
            .expect_err(name);
        assert_eq!(reply_code(&err), Some(code), "{name}");
        assert_eq!(reply_text(&err), message, "{name}");
    }
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    delayed_exchange(&ch, "payments.retry", "topic")
        .await
        .unwrap();
    // redeclared as it is: fine; as its delayed type: inequivalent, as RabbitMQ says it
    delayed_exchange(&ch, "payments.retry", "topic")
        .await
        .unwrap();
    let err = ch
        .exchange_declare(
            "payments.retry".into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'payments.retry' in vhost '/': received 'topic' but current is 'x-delayed-message'"
    );
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let (status, x) = api.get("/api/exchanges/%2f/payments.retry").await;
    assert_eq!(status, 200);
    assert_eq!(x["type"], "x-delayed-message");
    assert_eq!(x["arguments"]["x-delayed-type"], "topic");
    // definitions carry it as RabbitMQ exports it, and it imports back
    let (_, defs) = api.get("/api/definitions").await;
    let exported = defs["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "payments.retry")
        .cloned()
        .unwrap();
    assert_eq!(exported["type"], "x-delayed-message");
    let mut renamed = exported.clone();
    renamed["name"] = "payments.retry.copy".into();
    let (status, _) = api
        .post(
            "/api/definitions",
            serde_json::json!({"exchanges": [renamed]}),
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    let (status, copy) = api.get("/api/exchanges/%2f/payments.retry.copy").await;
    assert_eq!(status, 200);
    assert_eq!(copy["type"], "x-delayed-message");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpaid_order_is_cancelled_after_30_minutes_on_a_manual_clock() {
    let b = on_a_manual_clock().await;
    let broker = b.broker.as_ref().unwrap();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;

    // the confirm means the broker holds the order's timeout
    let returned = publish_confirmed(
        &ch,
        "orders.delayed",
        "order.timeout",
        "order-1",
        delayed_by(30 * 60 * 1000),
        true,
    )
    .await;
    assert_eq!(returned, None, "a routable delayed message is not returned");
    assert!(broker.advance_clock(Duration::from_secs(29 * 60)));
    assert_eq!(depth(&ch, "orders.timeouts").await, 0);
    assert!(broker.advance_clock(Duration::from_secs(60)));
    let m = wait_for_message(&ch, "orders.timeouts").await;
    assert_eq!(m.delivery.data, b"order-1");
    // as the plugin: x-delay turned negative, so nothing downstream delays it again
    assert_eq!(as_int(header(&m, "x-delay")), Some(-1_800_000));
    assert_eq!(m.delivery.exchange.as_str(), "orders.delayed");
    assert_eq!(m.delivery.routing_key.as_str(), "order.timeout");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_messages_arrive_in_due_order_and_not_before_their_time() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;
    let mut consumer = ch
        .basic_consume(
            "orders.timeouts".into(),
            "timeouts".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    for ms in [600, 200, 400] {
        publish_confirmed(
            &ch,
            "orders.delayed",
            "order.timeout",
            &ms.to_string(),
            delayed_by(ms),
            false,
        )
        .await;
    }
    for expected in [200u64, 400, 600] {
        let d = common::within(consumer.next()).await.unwrap().unwrap();
        let elapsed = start.elapsed();
        assert_eq!(d.data, expected.to_string().as_bytes());
        assert!(
            elapsed >= Duration::from_millis(expected),
            "{expected} ms delay delivered after {elapsed:?}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn without_a_usable_delay_a_message_is_routed_at_once_and_mandatory_works() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;
    let plain = BasicProperties::default();
    for (body, props) in [
        ("no-header", plain.clone()),
        ("zero", delayed_by(0)),
        ("negative", delayed_by(-5000)),
        ("beyond-the-plugin's-bound", delayed_by(1 << 33)),
    ] {
        publish_confirmed(&ch, "orders.delayed", "order.timeout", body, props, false).await;
    }
    assert_eq!(
        drain_bodies(&ch, "orders.timeouts").await,
        vec!["no-header", "zero", "negative", "beyond-the-plugin's-bound"]
    );
    // nowhere to go now: a mandatory delayed message comes back at once, and is not kept
    let returned = publish_confirmed(
        &ch,
        "orders.delayed",
        "no.such.key",
        "lost-order",
        delayed_by(50),
        true,
    )
    .await;
    assert_eq!(returned, Some(312));
    let returned = publish_confirmed(&ch, "orders.delayed", "no.such.key", "x", plain, true).await;
    assert_eq!(returned, Some(312));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_messages_survive_a_restart_transient_ones_too() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;
    let transient = {
        let mut headers = FieldTable::default();
        headers.insert("x-delay".into(), AMQPValue::LongInt(800));
        BasicProperties::default().with_headers(headers)
    };
    publish_confirmed(
        &ch,
        "orders.delayed",
        "order.timeout",
        "persistent",
        delayed_by(700),
        false,
    )
    .await;
    publish_confirmed(
        &ch,
        "orders.delayed",
        "order.timeout",
        "transient",
        transient,
        false,
    )
    .await;
    drop(ch);
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        wait_for_message(&ch, "orders.timeouts").await.delivery.data,
        b"persistent"
    );
    assert_eq!(
        wait_for_message(&ch, "orders.timeouts").await.delivery.data,
        b"transient"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_delays_page_through_the_store_in_due_order() {
    let b = on_a_manual_clock().await;
    let broker = b.broker.as_ref().unwrap();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;
    // delays 1..=10000 ms in a scrambled order; more than the task keeps in memory
    let n: u64 = 10_000;
    let mut confirms = Vec::new();
    for i in 0..n {
        let ms = (i * 7919) % n + 1;
        confirms.push(
            ch.basic_publish(
                "orders.delayed".into(),
                "order.timeout".into(),
                Default::default(),
                ms.to_string().as_bytes(),
                delayed_by(ms as i64),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(matches!(c.await.unwrap(), Confirmation::Ack(None)));
    }
    assert!(broker.advance_clock(Duration::from_millis(n)));
    common::amqp::wait_until(|| async { depth(&ch, "orders.timeouts").await == n as u32 }).await;
    let bodies: Vec<u64> = drain_bodies(&ch, "orders.timeouts")
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(bodies, (1..=n).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_delayed_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    shop(&ch).await;
    let mut confirms = Vec::new();
    for i in 0..500 {
        confirms.push(
            ch.basic_publish(
                "orders.delayed".into(),
                "order.timeout".into(),
                Default::default(),
                format!("order-{i}").as_bytes(),
                delayed_by(1500),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(matches!(c.await.unwrap(), Confirmation::Ack(None)));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    drop(ch);
    drop(conn);

    let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    common::amqp::wait_until(|| async { depth(&ch, "orders.timeouts").await >= 500 }).await;
    let mut bodies = drain_bodies(&ch, "orders.timeouts").await;
    bodies.sort();
    let mut expected: Vec<String> = (0..500).map(|i| format!("order-{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_topic_exchange_routes_by_pattern_and_publishes_from_the_api_wait_too() {
    let b = start_with_management(Config::default()).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    delayed_exchange(&ch, "payments.retry", "topic")
        .await
        .unwrap();
    declare(&ch, "payments.eu", FieldTable::default())
        .await
        .unwrap();
    bind(&ch, "payments.eu", "payments.retry", "payment.eu.*").await;
    publish_confirmed(
        &ch,
        "payments.retry",
        "payment.eu.card",
        "retry-1",
        delayed_by(100),
        false,
    )
    .await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let (status, body) = api
        .post(
            "/api/exchanges/%2f/payments.retry/publish",
            serde_json::json!({
                "routing_key": "payment.eu.bank",
                "payload": "retry-2",
                "payload_encoding": "string",
                "properties": {"headers": {"x-delay": 150}},
            }),
        )
        .await;
    assert_eq!(status, 200);
    // as with the plugin: not routed yet
    assert_eq!(body["routed"], false);
    assert_eq!(
        wait_for_message(&ch, "payments.eu").await.delivery.data,
        b"retry-1"
    );
    assert_eq!(
        wait_for_message(&ch, "payments.eu").await.delivery.data,
        b"retry-2"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_due_message_nothing_matches_goes_to_the_alternate_exchange() {
    let b = on_a_manual_clock().await;
    let broker = b.broker.as_ref().unwrap();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.exchange_declare(
        "unrouted".into(),
        lapin::ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, "unrouted-orders", FieldTable::default())
        .await
        .unwrap();
    bind(&ch, "unrouted-orders", "unrouted", "").await;
    ch.exchange_declare(
        "orders.later".into(),
        lapin::ExchangeKind::Custom("x-delayed-message".into()),
        Default::default(),
        args(&[
            ("x-delayed-type", text("direct")),
            ("alternate-exchange", text("unrouted")),
        ]),
    )
    .await
    .unwrap();
    publish_confirmed(
        &ch,
        "orders.later",
        "no.binding",
        "order-9",
        delayed_by(60_000),
        false,
    )
    .await;
    // not routed while it waits: the alternate exchange sees it only when it is due
    assert_eq!(depth(&ch, "unrouted-orders").await, 0);
    assert!(broker.advance_clock(Duration::from_secs(60)));
    assert_eq!(
        wait_for_message(&ch, "unrouted-orders").await.delivery.data,
        b"order-9"
    );
    b.stop().await;
}
