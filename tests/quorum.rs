//! Quorum queue declarations as clients make them (Celery 5.5, MassTransit, Spring all
//! declare `x-queue-type: quorum` for their work queues): the properties and arguments
//! RabbitMQ refuses, global qos refused at consume, and the delivery limit that ends a
//! poison message's redeliveries. One node, the same behaviour a client sees. Except the
//! stream test (Warren refuses streams for now), these pass against RabbitMQ
//! (`scripts/against-rabbitmq.sh quorum`).

mod common;

use common::amqp::*;
use common::{reply_code, reply_text, start};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut pairs = vec![("x-queue-type", text("quorum"))];
    pairs.extend(extra.iter().cloned());
    args(&pairs)
}

async fn refused(
    conn: &lapin::Connection,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> (Option<u16>, String) {
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(name.into(), options, arguments)
        .await
        .unwrap_err();
    (reply_code(&err), reply_text(&err))
}

#[tokio::test]
async fn a_quorum_queue_must_be_durable_shared_and_kept() {
    let b = start().await;
    let conn = b.connect().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let (code, text) = refused(&conn, "celery", QueueDeclareOptions::default(), quorum(&[])).await;
    assert_eq!(code, Some(406));
    assert!(
        text.contains("invalid property 'non-durable' for queue 'celery' in vhost '/'"),
        "{text}"
    );
    let (code, text) = refused(
        &conn,
        "celery",
        QueueDeclareOptions {
            auto_delete: true,
            ..durable
        },
        quorum(&[]),
    )
    .await;
    assert_eq!(code, Some(406));
    assert!(text.contains("invalid property 'auto-delete'"), "{text}");
    let (code, text) = refused(
        &conn,
        "celery",
        QueueDeclareOptions {
            exclusive: true,
            ..durable
        },
        quorum(&[]),
    )
    .await;
    assert_eq!(code, Some(406));
    assert!(
        text.contains("invalid property 'exclusive-owner'"),
        "{text}"
    );
    let (code, text) = refused(
        &conn,
        "celery",
        durable,
        quorum(&[("x-max-priority", AMQPValue::LongInt(5))]),
    )
    .await;
    assert_eq!(code, Some(406));
    assert!(
        text.contains("invalid arg 'x-max-priority' for queue 'celery' in vhost '/'"),
        "{text}"
    );
    // and the right declaration works, twice
    let ch = conn.create_channel().await.unwrap();
    declare_durable(&ch, "celery", quorum(&[])).await.unwrap();
    declare_durable(&ch, "celery", quorum(&[])).await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn global_qos_is_refused_when_consuming_from_a_quorum_queue() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_durable(&ch, "tasks", quorum(&[])).await.unwrap();
    ch.basic_qos(10, BasicQosOptions { global: true })
        .await
        .unwrap();
    let err = ch
        .basic_consume(
            "tasks".into(),
            "worker".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(540));
    assert!(
        reply_text(&err).contains("queue 'tasks' in vhost '/' does not support global qos"),
        "{}",
        reply_text(&err)
    );
    // 540 is a hard error: the connection is closed, as RabbitMQ does. Per-consumer qos
    // on a new connection is fine.
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions { global: false })
        .await
        .unwrap();
    ch.basic_consume(
        "tasks".into(),
        "worker".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    b.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_past_its_delivery_limit() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "poison", FieldTable::default()).await.unwrap();
    declare_durable(
        &ch,
        "invoices",
        quorum(&[
            ("x-delivery-limit", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("poison")),
        ]),
    )
    .await
    .unwrap();
    publish(
        &ch,
        "",
        "invoices",
        b"bad invoice",
        BasicProperties::default(),
    )
    .await;
    // delivered three times: the first, then once per allowed return, each telling
    // how often it came back
    for returns in 0..=2 {
        let m = wait_for_message(&ch, "invoices").await;
        assert_eq!(as_int(header(&m, "x-delivery-count")), Some(returns));
        assert_eq!(m.delivery.redelivered, returns > 0);
        ch.basic_nack(
            m.delivery.delivery_tag,
            BasicNackOptions {
                requeue: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let dead = wait_for_message(&ch, "poison").await;
    assert_eq!(&dead.delivery.data[..], b"bad invoice");
    assert_eq!(
        as_text(deaths(&dead)[0].inner().get("reason")).as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(depth(&ch, "invoices").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn a_stream_declaration_is_refused_not_silently_classic() {
    let b = start().await;
    let conn = b.connect().await;
    let (code, text) = refused(
        &conn,
        "events",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args(&[("x-queue-type", text("stream"))]),
    )
    .await;
    assert_eq!(code, Some(406));
    assert!(text.contains("x-queue-type"), "{text}");
    b.stop().await;
}
