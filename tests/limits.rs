//! Overload and limits: the memory alarm blocks publishers while consumers drain, and every
//! configured limit is refused with RabbitMQ's code instead of a crash.

mod common;

use std::time::Duration;

use common::raw::{Raw, Tune};
use common::{reply_code, reply_text, start_with, within};
use lapin::options::*;
use lapin::types::FieldTable;
use warren::protocol::method::{self, protocol::*};
use warren::Config;

fn publish_frames(queue: &str, body: &[u8], n: usize) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    for _ in 0..n {
        method::encode(
            &mut out,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: queue.into(),
                mandatory: false,
                immediate: false,
            })),
        );
        warren::protocol::content::encode_content(&mut out, 1, &[0, 0], body, 131072);
    }
    out
}

async fn message_count(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

#[tokio::test]
async fn memory_alarm_blocks_publishers_while_consumers_drain() {
    // a watermark far below what any process uses, then none
    alarm_blocks_publishers_while_consumers_drain(
        |a| a.set_memory_limit(1),
        |a| a.set_memory_limit(u64::MAX),
        "low on memory",
    )
    .await;
}

#[tokio::test]
async fn disk_alarm_blocks_publishers_while_consumers_drain() {
    // more free space than any disk has, then the default 50 MB
    alarm_blocks_publishers_while_consumers_drain(
        |a| a.set_disk_free_limit(u64::MAX),
        |a| a.set_disk_free_limit(50_000_000),
        "low on disk",
    )
    .await;
}

async fn alarm_blocks_publishers_while_consumers_drain(
    raise: fn(&warren::broker::alarm::ResourceAlarm),
    clear: fn(&warren::broker::alarm::ResourceAlarm),
    reason: &str,
) {
    let b = start_with(Config::default()).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("orders".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();

    let (mut publisher, _) = Raw::open(b.addr, Tune::default()).await;
    publisher.open_channel(1).await;
    publisher
        .send_bytes(&publish_frames("orders", b"before", 1))
        .await;
    within(async {
        while message_count(&ch, "orders").await < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let alarm = b.broker.as_ref().unwrap().state().alarm.clone();
    raise(&alarm);
    let (_, m) = publisher.recv_method().await;
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Blocked(b)) => {
            assert_eq!(b.reason.as_str(), reason)
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    publisher
        .send_bytes(&publish_frames("orders", b"during", 5))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // the blocked publisher's messages wait in its socket; the consumer still drains
    let got = ch
        .basic_get("orders".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"before");
    assert_eq!(message_count(&ch, "orders").await, 0);

    clear(&alarm);
    let (_, m) = publisher.recv_method().await;
    assert!(
        matches!(
            m,
            AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))
        ),
        "{m:?}"
    );
    within(async {
        while message_count(&ch, "orders").await < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn connection_max_closes_extra_sockets_at_once() {
    let b = start_with(Config {
        connection_max: 1,
        ..Config::default()
    })
    .await;
    let first = b.connect().await;
    let mut second = Raw::connect(b.addr).await;
    second
        .send_bytes(warren::protocol::frame::PROTOCOL_HEADER)
        .await;
    assert!(second.closed_by_broker().await);
    assert!(first.status().connected());
    b.stop().await;
}

#[tokio::test]
async fn vhost_connection_limit_is_530() {
    let b = start_with(Config {
        vhost_max_connections: 1,
        ..Config::default()
    })
    .await;
    let _first = b.connect().await;
    let err = lapin::Connection::connect(&b.url, lapin::ConnectionProperties::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(530), "{err}");
    assert_eq!(
        reply_text(&err),
        "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (1) is reached"
    );
    b.stop().await;
}

#[tokio::test]
async fn vhost_queue_limit_is_406() {
    let b = start_with(Config {
        vhost_max_queues: 2,
        ..Config::default()
    })
    .await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["q1", "q2"] {
        ch.queue_declare(q.into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
    }
    // redeclaring an existing queue is not a new queue
    ch.queue_declare("q1".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let err = ch
        .queue_declare("q3".into(), Default::default(), FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached"
    );
    b.stop().await;
}

#[tokio::test]
async fn consumers_per_channel_limit_is_530() {
    let b = start_with(Config {
        consumer_max_per_channel: 1,
        ..Config::default()
    })
    .await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("c".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let _one = ch
        .basic_consume(
            "c".into(),
            "one".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = ch
        .basic_consume(
            "c".into(),
            "two".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(
        reply_text(&err),
        "NOT_ALLOWED - reached maximum (1) of consumers per channel"
    );
    b.stop().await;
}

/// A no-ack consumer that stops reading its socket: the broker sends it at most its window
/// (1000 deliveries not yet written) plus what the kernel buffers, and keeps the rest queued
/// rather than in its own memory; other clients are served meanwhile.
#[tokio::test]
async fn a_consumer_that_stops_reading_does_not_drain_the_queue_into_the_broker() {
    let b = start_with(Config::default()).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("firehose".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let body = vec![7u8; 10 * 1024];
    for _ in 0..5000 {
        ch.basic_publish(
            "".into(),
            "firehose".into(),
            Default::default(),
            &body,
            Default::default(),
        )
        .await
        .unwrap();
    }
    ch.wait_for_confirms().await.unwrap();

    // consume no-ack, then never read again
    let (mut stuck, _) = Raw::open(b.addr, Tune::default()).await;
    stuck.open_channel(1).await;
    stuck
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "firehose".into(),
                consumer_tag: "stuck".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: true,
                arguments: Default::default(),
            })),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = message_count(&ch, "firehose").await;
    // window 1000 + at most a few MB of socket buffers (a few hundred 10 KiB messages)
    assert!(
        left >= 3000,
        "only {left} of 5000 left: the broker took them off the queue"
    );
    // and everyone else is still served
    let other = b.connect().await;
    let och = other.create_channel().await.unwrap();
    och.queue_declare("other".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    drop(stuck);
    b.stop().await;
}
