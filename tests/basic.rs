//! Consuming and acknowledging as an order-processing service does: prefetch, acks and
//! nacks, requeue order, redelivery after a crash of the consumer's channel, basic.get,
//! mandatory returns.

mod common;

use std::time::Duration;

use common::{reply_code, reply_text, start, start_with, within};
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Consumer};
use warren::Config;

async fn queue_with(ch: &Channel, name: &str, bodies: &[&str]) {
    ch.queue_declare(name.into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for body in bodies {
        ch.basic_publish(
            "".into(),
            name.into(),
            Default::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    ch.wait_for_confirms().await.unwrap();
}

async fn next(consumer: &mut Consumer) -> Delivery {
    within(consumer.next())
        .await
        .expect("stream open")
        .expect("delivery")
}

async fn get(ch: &Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    within(ch.basic_get(queue.into(), Default::default()))
        .await
        .unwrap()
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).unwrap()
}

/// Nothing more arrives within a short grace period.
async fn quiet(consumer: &mut Consumer) -> bool {
    tokio::time::timeout(Duration::from_millis(200), consumer.next())
        .await
        .is_err()
}

#[tokio::test]
async fn consumer_receives_in_order_and_acks() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "orders", &["o1", "o2", "o3"]).await;
    let mut c = ch
        .basic_consume(
            "orders".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(c.tag().as_str().starts_with("amq.ctag-"));
    for want in ["o1", "o2", "o3"] {
        let d = next(&mut c).await;
        assert_eq!(body(&d), want);
        assert!(!d.redelivered);
        assert_eq!(d.routing_key.as_str(), "orders");
        d.acker.ack(Default::default()).await.unwrap();
    }
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
    assert_eq!(q.message_count(), 0);
    b.stop().await;
}

#[tokio::test]
async fn nacked_message_goes_back_to_its_place_marked_redelivered() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "stock", &["s1", "s2", "s3"]).await;
    let first = get(&ch, "stock").await.unwrap();
    let second = get(&ch, "stock").await.unwrap();
    assert_eq!(body(&second.delivery), "s2");
    first
        .delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = get(&ch, "stock").await.unwrap();
    assert_eq!(body(&again.delivery), "s1");
    assert!(again.delivery.redelivered);
    assert_eq!(again.message_count, 1);
    let third = get(&ch, "stock").await.unwrap();
    assert_eq!(body(&third.delivery), "s3");
    assert!(!third.delivery.redelivered);
    b.stop().await;
}

#[tokio::test]
async fn rejected_without_requeue_is_gone() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "bad", &["poison"]).await;
    let m = get(&ch, "bad").await.unwrap();
    m.delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    assert!(get(&ch, "bad").await.is_none());
    b.stop().await;
}

#[tokio::test]
async fn unacked_messages_return_when_the_consumers_channel_closes() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "payments", &["p1", "p2"]).await;
    let worker = conn.create_channel().await.unwrap();
    let mut c = worker
        .basic_consume(
            "payments".into(),
            "w".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    next(&mut c).await;
    next(&mut c).await;
    worker.close(200, "crash".into()).await.unwrap();
    let a = get(&ch, "payments").await.unwrap();
    let b2 = get(&ch, "payments").await.unwrap();
    assert_eq!(
        (body(&a.delivery).as_str(), body(&b2.delivery).as_str()),
        ("p1", "p2")
    );
    assert!(a.delivery.redelivered && b2.delivery.redelivered);
    b.stop().await;
}

#[tokio::test]
async fn unacked_messages_return_when_the_connection_drops() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "jobs", &["j1"]).await;
    let worker_conn = b.connect().await;
    let worker = worker_conn.create_channel().await.unwrap();
    let mut c = worker
        .basic_consume(
            "jobs".into(),
            "w".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    next(&mut c).await;
    worker_conn.close(200, "bye".into()).await.unwrap();
    let again = within(async {
        loop {
            if let Some(m) = get(&ch, "jobs").await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(again.delivery.redelivered);
    b.stop().await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "pf", &["1", "2", "3", "4", "5"]).await;
    let worker = conn.create_channel().await.unwrap();
    worker.basic_qos(2, Default::default()).await.unwrap();
    let mut c = worker
        .basic_consume(
            "pf".into(),
            "w".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d1 = next(&mut c).await;
    let _d2 = next(&mut c).await;
    assert!(quiet(&mut c).await, "a third delivery exceeded prefetch 2");
    d1.acker.ack(Default::default()).await.unwrap();
    assert_eq!(body(&next(&mut c).await), "3");
    assert!(quiet(&mut c).await);
    b.stop().await;
}

#[tokio::test]
async fn global_prefetch_is_shared_by_the_channels_consumers() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "g1", &["a", "b", "c"]).await;
    queue_with(&ch, "g2", &["d", "e", "f"]).await;
    let worker = conn.create_channel().await.unwrap();
    worker
        .basic_qos(2, BasicQosOptions { global: true })
        .await
        .unwrap();
    let mut c1 = worker
        .basic_consume(
            "g1".into(),
            "c1".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut c2 = worker
        .basic_consume(
            "g2".into(),
            "c2".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), c1.next()).await {
        got += 1;
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), c2.next()).await {
        got += 1;
    }
    assert_eq!(got, 2, "channel-wide prefetch of 2");
    b.stop().await;
}

#[tokio::test]
async fn multiple_ack_settles_everything_up_to_the_tag() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "multi", &["1", "2", "3"]).await;
    let mut c = ch
        .basic_consume(
            "multi".into(),
            "c".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    next(&mut c).await;
    next(&mut c).await;
    let third = next(&mut c).await;
    third
        .acker
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.basic_cancel("c".into(), Default::default())
        .await
        .unwrap();
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    assert!(
        get(&ch, "multi").await.is_none(),
        "a multiple ack left something unacked"
    );
    b.stop().await;
}

#[tokio::test]
async fn recover_requeues_unacked_messages() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    queue_with(&ch, "rec", &["r"]).await;
    let first = get(&ch, "rec").await.unwrap();
    assert!(!first.delivery.redelivered);
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let again = get(&ch, "rec").await.unwrap();
    assert!(again.delivery.redelivered);
    b.stop().await;
}

#[tokio::test]
async fn get_on_an_empty_queue_is_get_empty() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("empty".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    assert!(get(&ch, "empty").await.is_none());
    b.stop().await;
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_312_then_confirmed() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "amq.direct".into(),
            "nobody".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost?",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    match within(confirm).await.unwrap() {
        Confirmation::Ack(Some(returned)) => {
            assert_eq!(returned.reply_code, 312);
            assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(returned.delivery.data, b"lost?");
        }
        other => panic!("expected an ack with the returned message, got {other:?}"),
    }
    b.stop().await;
}

#[tokio::test]
async fn consumers_share_a_queue_round_robin() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("rr".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let w = conn.create_channel().await.unwrap();
    let mut c1 = w
        .basic_consume(
            "rr".into(),
            "c1".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut c2 = w
        .basic_consume(
            "rr".into(),
            "c2".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..4 {
        ch.basic_publish(
            "".into(),
            "rr".into(),
            Default::default(),
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let (a1, a2) = (next(&mut c1).await, next(&mut c1).await);
    let (b1, b2) = (next(&mut c2).await, next(&mut c2).await);
    let mut all: Vec<String> = [a1, a2, b1, b2].iter().map(body).collect();
    all.sort();
    assert_eq!(all, vec!["0", "1", "2", "3"]);
    b.stop().await;
}

#[tokio::test]
async fn exclusive_consumer_keeps_others_out_403() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("solo".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let _c = ch
        .basic_consume(
            "solo".into(),
            "one".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let err = other
        .basic_consume(
            "solo".into(),
            "two".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - queue 'solo' in vhost '/' in exclusive use"
    );
    b.stop().await;
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_530() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("tags".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let _c = ch
        .basic_consume(
            "tags".into(),
            "same".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = ch
        .basic_consume(
            "tags".into(),
            "same".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(530));
    b.stop().await;
}

#[tokio::test]
async fn channel_flow_off_from_a_client_is_refused_as_in_rabbitmq() {
    // RabbitMQ 3.x answers flow(active=true) and refuses flow(active=false) with 540,
    // closing the connection: consumers pause with prefetch instead.
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert!(ch
        .channel_flow(ChannelFlowOptions { active: true })
        .await
        .unwrap());
    let err = ch
        .channel_flow(ChannelFlowOptions { active: false })
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(540), "{err:?}");
    assert_eq!(reply_text(&err), "NOT_IMPLEMENTED - active=false");
    b.stop().await;
}

#[tokio::test]
async fn bodies_larger_than_frame_max_travel_in_several_frames() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    ch.queue_declare("big".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "big".into(),
        Default::default(),
        &big,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "big".into(),
        Default::default(),
        b"",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let m = get(&ch, "big").await.unwrap();
    assert_eq!(m.delivery.data, big);
    let empty = get(&ch, "big").await.unwrap();
    assert!(empty.delivery.data.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn message_over_max_message_size_is_refused_406() {
    let config = Config {
        max_message_size: 1000,
        ..Config::default()
    };
    let b = start_with(config).await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("small".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "small".into(),
            Default::default(),
            &[0u8; 2000],
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within(confirm).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000"
    );
    // the connection survives and accepts a message within the limit
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "".into(),
        "small".into(),
        Default::default(),
        &[0u8; 1000],
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert!(get(&ch, "small").await.is_some());
    b.stop().await;
}

#[tokio::test]
async fn message_ttl_expires_unconsumed_messages() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("ttl".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "ttl".into(),
        Default::default(),
        b"short-lived",
        BasicProperties::default().with_expiration("50".into()),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "ttl".into(),
        Default::default(),
        b"keeper",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let m = get(&ch, "ttl").await.unwrap();
    assert_eq!(body(&m.delivery), "keeper");
    b.stop().await;
}

#[tokio::test]
async fn priority_queue_delivers_higher_priorities_first() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-max-priority".into(),
        lapin::types::AMQPValue::ShortShortUInt(10),
    );
    ch.queue_declare("prio".into(), Default::default(), args)
        .await
        .unwrap();
    for (body, p) in [("low", 1u8), ("high", 9), ("mid", 5), ("none", 0)] {
        ch.basic_publish(
            "".into(),
            "prio".into(),
            Default::default(),
            body.as_bytes(),
            BasicProperties::default().with_priority(p),
        )
        .await
        .unwrap();
    }
    let mut order = vec![];
    while let Some(m) = get(&ch, "prio").await {
        order.push(body(&m.delivery));
    }
    assert_eq!(order, vec!["high", "mid", "low", "none"]);
    b.stop().await;
}
