//! Queues as a RabbitMQ user meets them: server-named and exclusive queues, redeclaring,
//! counts, purge and delete, and queues that go away on their own.

mod common;

use std::time::Duration;

use common::{reply_code, reply_text, start, within};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn publish(ch: &lapin::Channel, queue: &str, body: &[u8]) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        Default::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn empty_name_gets_a_server_generated_amq_gen_name() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare("".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
    assert!(q.name().as_str().len() > 10);
    b.stop().await;
}

#[tokio::test]
async fn declare_ok_reports_messages_and_consumers() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("orders".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    for i in 0..3u8 {
        publish(&ch, "orders", &[i]).await;
    }
    ch.wait_for_confirms().await.unwrap();
    let other = conn.create_channel().await.unwrap();
    other.basic_qos(1, Default::default()).await.unwrap();
    let _consumer = other
        .basic_consume(
            "orders".into(),
            "c1".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // one message is now out with the consumer (prefetch 1), two are ready
    tokio::time::sleep(Duration::from_millis(100)).await;
    let q = ch
        .queue_declare(
            "orders".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
    b.stop().await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "nope".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(404));
    assert_eq!(reply_text(&err), "NOT_FOUND - no queue 'nope' in vhost '/'");
    b.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_durable_closes_channel_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("q".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let err = ch
        .queue_declare(
            "q".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'"
    );
    b.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_arguments_closes_channel_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "ttl".into(),
        Default::default(),
        args(&[("x-message-ttl", AMQPValue::LongInt(1000))]),
    )
    .await
    .unwrap();
    // same value, other integer width: equivalent
    ch.queue_declare(
        "ttl".into(),
        Default::default(),
        args(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]),
    )
    .await
    .unwrap();
    let err = ch
        .queue_declare(
            "ttl".into(),
            Default::default(),
            args(&[("x-message-ttl", AMQPValue::LongInt(5))]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert!(
        reply_text(&err).contains("inequivalent arg 'x-message-ttl'"),
        "{}",
        reply_text(&err)
    );
    b.stop().await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_405_and_goes_with_it() {
    let b = start().await;
    let owner = b.connect().await;
    let ch = owner.create_channel().await.unwrap();
    ch.queue_declare(
        "mine".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let intruder = b.connect().await;
    let ich = intruder.create_channel().await.unwrap();
    let err = ich
        .basic_consume(
            "mine".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(405));
    assert!(reply_text(&err)
        .starts_with("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine'"));
    owner.close(200, "bye".into()).await.unwrap();
    let ich = intruder.create_channel().await.unwrap();
    let err = within(async {
        loop {
            match ich
                .queue_declare(
                    "mine".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
            {
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return e,
            }
        }
    })
    .await;
    assert_eq!(reply_code(&err), Some(404));
    b.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "ad".into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // lapin cancels a consumer whose handle is dropped: keep both alive
    let _c1 = ch
        .basic_consume(
            "ad".into(),
            "c1".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _c2 = ch
        .basic_consume(
            "ad".into(),
            "c2".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_cancel("c1".into(), Default::default())
        .await
        .unwrap();
    let q = ch
        .queue_declare(
            "ad".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 1);
    ch.basic_cancel("c2".into(), Default::default())
        .await
        .unwrap();
    let err = ch
        .queue_declare(
            "ad".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(404));
    b.stop().await;
}

#[tokio::test]
async fn purge_empties_ready_messages_and_reports_the_count() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("p".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    for _ in 0..5 {
        publish(&ch, "p", b"x").await;
    }
    ch.wait_for_confirms().await.unwrap();
    assert_eq!(
        ch.queue_purge("p".into(), Default::default())
            .await
            .unwrap(),
        5
    );
    assert!(ch
        .basic_get("p".into(), Default::default())
        .await
        .unwrap()
        .is_none());
    b.stop().await;
}

#[tokio::test]
async fn delete_if_empty_and_if_unused_refuse_406_and_delete_is_idempotent() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("d".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "d", b"x").await;
    ch.wait_for_confirms().await.unwrap();
    let err = ch
        .queue_delete(
            "d".into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - queue 'd' in vhost '/' not empty"
    );
    let ch = conn.create_channel().await.unwrap();
    let _c = ch
        .basic_consume(
            "d".into(),
            "c".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = ch
        .queue_delete(
            "d".into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - queue 'd' in vhost '/' in use"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete("d".into(), Default::default())
        .await
        .unwrap();
    assert_eq!(
        ch.queue_delete("d".into(), Default::default())
            .await
            .unwrap(),
        0
    );
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("gone".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            "gone".into(),
            "watcher".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    other
        .queue_delete("gone".into(), Default::default())
        .await
        .unwrap();
    // lapin advertises consumer_cancel_notify: the broker sends basic.cancel, which
    // ends the consumer's stream
    assert!(within(consumer.next()).await.is_none());
    b.stop().await;
}

#[tokio::test]
async fn reserved_queue_names_are_refused_403() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare("amq.q".into(), Default::default(), FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
    );
    b.stop().await;
}

#[tokio::test]
async fn invalid_queue_argument_types_are_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            "bad".into(),
            Default::default(),
            args(&[("x-max-length", AMQPValue::LongString("ten".into()))]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    b.stop().await;
}

#[tokio::test]
async fn single_active_consumer_hands_over_in_registration_order() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "invoices".into(),
        Default::default(),
        args(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
    )
    .await
    .unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut first = ch
        .basic_consume(
            "invoices".into(),
            "first".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut second = ch
        .basic_consume(
            "invoices".into(),
            "second".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..4u8 {
        publish(&ch, "invoices", &[i]).await;
    }
    // only the first registration receives, in order
    for i in 0..4u8 {
        let d = within(first.next()).await.unwrap().unwrap();
        assert_eq!(d.data, vec![i]);
    }
    ch.basic_cancel("first".into(), Default::default())
        .await
        .unwrap();
    publish(&ch, "invoices", b"after").await;
    let d = within(second.next()).await.unwrap().unwrap();
    assert_eq!(&d.data[..], b"after");
    b.stop().await;
}

#[tokio::test]
async fn a_higher_priority_consumer_is_served_while_it_has_room() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "shipments".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = |name: &'static str, priority: i32| {
        let ch = ch.clone();
        async move {
            ch.basic_qos(1, Default::default()).await.unwrap();
            ch.basic_consume(
                "shipments".into(),
                name.into(),
                Default::default(),
                args(&[("x-priority", AMQPValue::LongInt(priority))]),
            )
            .await
            .unwrap()
        }
    };
    let mut low = consumer("low", 1).await;
    let mut high = consumer("high", 10).await;
    publish(&ch, "shipments", b"1").await;
    let first = within(high.next()).await.unwrap().unwrap();
    assert_eq!(&first.data[..], b"1");
    // high has no room left (prefetch 1): the next goes to low
    publish(&ch, "shipments", b"2").await;
    let second = within(low.next()).await.unwrap().unwrap();
    assert_eq!(&second.data[..], b"2");
    first.ack(BasicAckOptions::default()).await.unwrap();
    publish(&ch, "shipments", b"3").await;
    let third = within(high.next()).await.unwrap().unwrap();
    assert_eq!(&third.data[..], b"3");
    b.stop().await;
}
