//! A shop's test suite checks its 30-minute unpaid-order timeout, its reply-queue expiry
//! and its consumer timeout without waiting 30 minutes: the broker runs on a manual clock
//! that the test advances, embedded or through the management API.

mod common;

use std::time::Duration;

use common::amqp::{
    args, as_text, deaths, declare, depth, publish, stuck_consumer, text, wait_for_message,
    wait_until,
};
use common::http::Api;
use common::{start_with, start_with_management};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::json;
use warren::Config;

fn manual() -> Config {
    Config {
        manual_clock: true,
        ..Config::default()
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_30_minute_order_timeout_runs_in_milliseconds() {
    let b = start_with(manual()).await;
    let broker = b.broker.as_ref().unwrap();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "orders.cancelled", FieldTable::default())
        .await
        .unwrap();
    let unpaid = args(&[
        ("x-message-ttl", AMQPValue::LongInt(30 * 60 * 1000)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("orders.cancelled")),
    ]);
    declare(&ch, "orders.unpaid", unpaid).await.unwrap();
    publish(
        &ch,
        "",
        "orders.unpaid",
        b"order-1",
        BasicProperties::default(),
    )
    .await;
    // the clock moves at once: advance only after the broker has the order (any
    // answered call on the same channel, or a publisher confirm, says so)
    assert_eq!(depth(&ch, "orders.unpaid").await, 1);

    assert!(broker.advance_clock(29 * MINUTE));
    // the clock says 29 minutes: the order still waits for its payment
    assert_eq!(depth(&ch, "orders.unpaid").await, 1);
    assert!(broker.advance_clock(MINUTE));
    let cancelled = wait_for_message(&ch, "orders.cancelled").await;
    assert_eq!(cancelled.delivery.data, b"order-1");
    assert_eq!(
        as_text(deaths(&cancelled)[0].inner().get("reason")).as_deref(),
        Some("expired")
    );

    // a per-message expiration follows the same clock
    let props = BasicProperties::default().with_expiration("60000".into());
    publish(&ch, "", "orders.unpaid", b"order-2", props).await;
    assert_eq!(depth(&ch, "orders.unpaid").await, 1);
    assert!(broker.advance_clock(MINUTE));
    assert_eq!(
        wait_for_message(&ch, "orders.cancelled")
            .await
            .delivery
            .data,
        b"order-2"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_expiry_and_the_consumer_timeout_follow_the_clock() {
    let b = start_with(manual()).await;
    let broker = b.broker.as_ref().unwrap();
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare(
        &ch,
        "replies.tmp",
        args(&[("x-expires", AMQPValue::LongInt(10 * 60 * 1000))]),
    )
    .await
    .unwrap();
    assert!(broker.advance_clock(10 * MINUTE + Duration::from_millis(1)));
    wait_until(|| common::amqp::is_gone(&ch, "replies.tmp")).await;

    // a consumer that never acks loses its channel once 30 clock minutes have passed
    declare(&ch, "payments", FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "", "payments", b"order-3", BasicProperties::default()).await;
    assert_eq!(depth(&ch, "payments").await, 1);
    let (_consumer, _) = stuck_consumer(&conn, "payments").await;
    assert!(broker.advance_clock(31 * MINUTE));
    let again = wait_for_message(&ch, "payments").await;
    assert!(again.delivery.redelivered);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_management_api_advances_a_test_brokers_clock_and_only_that() {
    let b = start_with_management(manual()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "done", FieldTable::default()).await.unwrap();
    let delayed = args(&[
        ("x-message-ttl", AMQPValue::LongInt(5 * 60 * 1000)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("done")),
    ]);
    declare(&ch, "wait", delayed).await.unwrap();
    publish(&ch, "", "wait", b"x", BasicProperties::default()).await;
    assert_eq!(depth(&ch, "wait").await, 1);
    let (status, _) = api
        .post("/api/clock/advance", json!({"milliseconds": 300_000}))
        .await;
    assert_eq!(status, 204);
    wait_for_message(&ch, "done").await;
    let (status, e) = api.post("/api/clock/advance", json!({})).await;
    assert_eq!(
        (status, e["reason"].clone()),
        (400, json!("[{key_missing,milliseconds}]"))
    );
    b.stop().await;

    let real = start_with_management(Config::default()).await;
    let api = Api::new(real.management.as_deref().unwrap(), "guest", "guest");
    let (status, e) = api
        .post("/api/clock/advance", json!({"milliseconds": 1}))
        .await;
    assert_eq!(status, 400);
    assert!(
        e["reason"].as_str().unwrap().contains("manual_clock"),
        "{e}"
    );
    real.stop().await;
}
