//! A worker acking each order on its own, as pika and lapin applications do: under load
//! many basic.acks reach the broker in one write. Every one of them counts, whatever
//! follows it in the same write: another ack, a channel error, a closed socket.

mod common;

use bytes::BytesMut;
use common::amqp::{publish, wait_until};
use common::http::Api;
use common::raw::{Raw, Tune};
use common::{start_with_management, TestBroker};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER};
use warren::protocol::method::{self, protocol::*};
use warren::Config;

/// A queue holding `count` orders, "order-1" first.
async fn orders(b: &TestBroker, queue: &str, count: usize) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    common::amqp::declare(&ch, queue, FieldTable::default())
        .await
        .unwrap();
    for i in 1..=count {
        let body = format!("order-{i}");
        publish(&ch, "", queue, body.as_bytes(), BasicProperties::default()).await;
    }
    conn.close(200, "done".into()).await.unwrap();
}

/// A raw worker on channel 1 consuming `queue` with `prefetch`.
async fn worker(b: &TestBroker, queue: &str, prefetch: u16) -> Raw {
    let (mut raw, _) = Raw::open(b.addr, Tune::default()).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: prefetch,
            global: false,
        })),
    )
    .await;
    raw.recv_method().await;
    raw.send(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.into(),
            consumer_tag: "worker".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    raw.recv_method().await;
    raw
}

/// The delivery tags of the next `n` deliveries (each a method, a header and one body
/// frame: the orders are small).
async fn deliveries(raw: &mut Raw, n: usize) -> Vec<u64> {
    let mut tags = Vec::new();
    while tags.len() < n {
        match raw.recv_method().await {
            (1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => tags.push(d.delivery_tag),
            other => panic!("expected basic.deliver, got {other:?}"),
        }
        for kind in [FRAME_HEADER, FRAME_BODY] {
            assert_eq!(raw.recv_frame().await.expect("socket open").kind, kind);
        }
    }
    tags
}

/// One basic.ack frame per tag, all in one buffer: the broker reads them together.
fn acks(tags: &[u64]) -> BytesMut {
    let mut out = BytesMut::new();
    for &delivery_tag in tags {
        method::encode(
            &mut out,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag,
                multiple: false,
            })),
        );
    }
    out
}

async fn queue_counts(api: &Api, queue: &str) -> (u64, u64) {
    let (_, q) = api.get(&format!("/api/queues/%2f/{queue}")).await;
    (
        q["messages_ready"].as_u64().unwrap_or(u64::MAX),
        q["messages_unacknowledged"].as_u64().unwrap_or(u64::MAX),
    )
}

fn api(b: &TestBroker) -> Api {
    Api::new(b.management.as_deref().unwrap(), "guest", "guest")
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_written_together_settle_every_message_and_reopen_the_prefetch_window() {
    let b = start_with_management(Config::default()).await;
    orders(&b, "orders", 300).await;
    let mut raw = worker(&b, "orders", 50).await;
    // six windows of 50: each burst of single acks must free the window for the next
    for _ in 0..6 {
        let tags = deliveries(&mut raw, 50).await;
        raw.send_bytes(&acks(&tags)).await;
    }
    let api = api(&b);
    wait_until(|| async { queue_counts(&api, "orders").await == (0, 0) }).await;
    drop(raw);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_before_a_bad_tag_in_the_same_write_stay_acked() {
    let b = start_with_management(Config::default()).await;
    orders(&b, "payments", 10).await;
    let mut raw = worker(&b, "payments", 10).await;
    let tags = deliveries(&mut raw, 10).await;
    let mut burst = acks(&tags[..5]);
    burst.extend_from_slice(&acks(&[99]));
    raw.send_bytes(&burst).await;
    assert_eq!(
        raw.expect_channel_close(1).await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 99".to_owned()
        )
    );
    // the five acked are gone; the five that were not come back ready
    let api = api(&b);
    wait_until(|| async { queue_counts(&api, "payments").await == (5, 0) }).await;
    drop(raw);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_in_the_last_write_before_the_socket_drops_are_applied() {
    let b = start_with_management(Config::default()).await;
    orders(&b, "stock", 20).await;
    let mut raw = worker(&b, "stock", 20).await;
    let tags = deliveries(&mut raw, 20).await;
    raw.send_bytes(&acks(&tags[..15])).await;
    drop(raw);
    // the connection's teardown requeues the five unacked; the fifteen acks are not lost
    let api = api(&b);
    wait_until(|| async { queue_counts(&api, "stock").await == (5, 0) }).await;
    b.stop().await;
}
