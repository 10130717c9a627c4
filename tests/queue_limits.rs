//! Length limits and queue expiry as a RabbitMQ user meets them: a bounded queue keeps
//! its newest messages (and dead-letters the rest), a `reject-publish` queue turns the
//! publisher away with basic.nack, and a temporary queue nobody uses goes away. The tests
//! also pass against RabbitMQ (`scripts/against-rabbitmq.sh queue_limits`).

mod common;

use common::amqp::*;
use common::{reply_code, reply_text, start, within};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

async fn publish_confirmed(ch: &lapin::Channel, exchange: &str, key: &str, body: &[u8]) -> bool {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        Default::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .is_ack()
}

#[tokio::test]
async fn max_length_keeps_the_newest_and_dead_letters_the_oldest() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "stock.dropped", FieldTable::default())
        .await
        .unwrap();
    declare(
        &ch,
        "stock",
        args(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("stock.dropped")),
        ]),
    )
    .await
    .unwrap();
    for i in 1..=5u8 {
        publish(&ch, "", "stock", &[i], BasicProperties::default()).await;
    }
    assert_eq!(depth(&ch, "stock").await, 2);
    let kept: Vec<u8> = vec![
        wait_for_message(&ch, "stock").await.delivery.data[0],
        wait_for_message(&ch, "stock").await.delivery.data[0],
    ];
    assert_eq!(kept, vec![4, 5]);
    for expected in 1..=3u8 {
        let m = wait_for_message(&ch, "stock.dropped").await;
        assert_eq!(m.delivery.data[0], expected);
        assert_eq!(
            as_text(deaths(&m)[0].inner().get("reason")).as_deref(),
            Some("maxlen")
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes_of_ready_messages() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "thumbnails",
        args(&[("x-max-length-bytes", AMQPValue::LongInt(250))]),
    )
    .await
    .unwrap();
    for i in 0..5u8 {
        publish(&ch, "", "thumbnails", &[i; 100], BasicProperties::default()).await;
    }
    assert_eq!(depth(&ch, "thumbnails").await, 2);
    assert_eq!(
        wait_for_message(&ch, "thumbnails").await.delivery.data[0],
        3
    );
    b.stop().await;
}

#[tokio::test]
async fn reject_publish_nacks_the_publisher_once_the_queue_is_full() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare(
        &ch,
        "tickets",
        args(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await
    .unwrap();
    let acks: Vec<bool> = {
        let mut v = vec![];
        for i in 0..4u8 {
            v.push(publish_confirmed(&ch, "", "tickets", &[i]).await);
        }
        v
    };
    assert_eq!(acks, vec![true, true, false, false]);
    assert_eq!(depth(&ch, "tickets").await, 2);
    // room again: accepted again
    let m = wait_for_message(&ch, "tickets").await;
    ch.basic_ack(m.delivery.delivery_tag, Default::default())
        .await
        .unwrap();
    assert!(publish_confirmed(&ch, "", "tickets", b"late").await);
    b.stop().await;
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare(&ch, "overflowed", FieldTable::default())
        .await
        .unwrap();
    declare(
        &ch,
        "bounded",
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", text("reject-publish-dlx")),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("overflowed")),
        ]),
    )
    .await
    .unwrap();
    assert!(publish_confirmed(&ch, "", "bounded", b"first").await);
    assert!(!publish_confirmed(&ch, "", "bounded", b"second").await);
    let m = wait_for_message(&ch, "overflowed").await;
    assert_eq!(&m.delivery.data[..], b"second");
    assert_eq!(
        as_text(deaths(&m)[0].inner().get("reason")).as_deref(),
        Some("maxlen")
    );
    b.stop().await;
}

#[tokio::test]
async fn a_message_for_several_queues_is_nacked_when_any_of_them_refuses_it() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.exchange_declare(
        "events".into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, "audit", FieldTable::default()).await.unwrap();
    declare(
        &ch,
        "mailer",
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await
    .unwrap();
    for q in ["audit", "mailer"] {
        ch.queue_bind(
            q.into(),
            "events".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    assert!(publish_confirmed(&ch, "events", "", b"one").await);
    assert!(!publish_confirmed(&ch, "events", "", b"two").await);
    // the queue with room still got its copy
    assert_eq!(depth(&ch, "audit").await, 2);
    assert_eq!(depth(&ch, "mailer").await, 1);
    b.stop().await;
}

#[tokio::test]
async fn an_unknown_overflow_is_refused_with_rabbitmqs_text() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = declare(&ch, "q", args(&[("x-overflow", text("drop-tail"))]))
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert!(
        reply_text(&err).contains("invalid arg 'x-overflow' for queue 'q' in vhost '/'"),
        "{}",
        reply_text(&err)
    );
    b.stop().await;
}

#[tokio::test]
async fn an_unused_queue_with_x_expires_is_deleted() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "reply.temp",
        args(&[("x-expires", AMQPValue::LongInt(100))]),
    )
    .await
    .unwrap();
    publish(&ch, "", "reply.temp", b"unread", BasicProperties::default()).await;
    // publishing does not count as use; a passive declare would (it renews the lease)
    ch.confirm_select(Default::default()).await.unwrap();
    wait_until(|| is_gone(&ch, "reply.temp")).await;
    b.stop().await;
}

#[tokio::test]
async fn a_consumer_keeps_an_expiring_queue_and_its_leaving_starts_the_clock() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(
        &ch,
        "session.events",
        args(&[("x-expires", AMQPValue::LongInt(100))]),
    )
    .await
    .unwrap();
    let mut watcher = ch
        .basic_consume(
            "session.events".into(),
            "watcher".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    // With the consumer on, messages keep arriving well past the period (publishing is
    // not a use, so only the consumer keeps the queue).
    for i in 0..5u8 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        publish(&ch, "", "session.events", &[i], BasicProperties::default()).await;
        let d = within(watcher.next()).await.unwrap().unwrap();
        assert_eq!(d.data, vec![i]);
    }
    ch.basic_cancel("watcher".into(), Default::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    wait_until(|| is_gone(&ch, "session.events")).await;
    b.stop().await;
}
