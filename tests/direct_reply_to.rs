//! A shop's price lookup over RPC with direct reply-to, as NestJS and Spring do it by
//! default: the client consumes `amq.rabbitmq.reply-to` without acks, sends requests whose
//! `reply_to` is that pseudo-queue, and the price service answers to the generated name
//! it sees. No reply queue exists; a reply for a client that has gone is dropped.

mod common;

use common::amqp::{declare, wait_for_message};
use common::{reply_code, reply_text, start, within};
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Consumer};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

async fn reply_consumer(ch: &Channel) -> Consumer {
    ch.basic_consume(
        REPLY_TO.into(),
        "replies".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn request(ch: &Channel, body: &[u8], correlation_id: &str) {
    ch.basic_publish(
        "".into(),
        "prices".into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(correlation_id.into()),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_price_lookup_goes_over_direct_reply_to() {
    let b = start().await;
    let service_conn = b.connect().await;
    let service = service_conn.create_channel().await.unwrap();
    declare(&service, "prices", FieldTable::default())
        .await
        .unwrap();

    let client_conn = b.connect().await;
    let client = client_conn.create_channel().await.unwrap();
    let mut replies = reply_consumer(&client).await;
    request(&client, b"sku-42", "req-1").await;

    // the service sees a generated name, not the pseudo-queue, and answers to it
    let req = wait_for_message(&service, "prices").await;
    let reply_to = req
        .delivery
        .properties
        .reply_to()
        .clone()
        .unwrap()
        .to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
    assert_ne!(reply_to, REPLY_TO);
    let ok = service
        .queue_declare(
            reply_to.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!((ok.message_count(), ok.consumer_count()), (0, 1));
    service
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            b"19.99",
            BasicProperties::default().with_correlation_id("req-1".into()),
        )
        .await
        .unwrap();
    let reply = within(replies.next()).await.unwrap().unwrap();
    assert_eq!(reply.data, b"19.99");
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("req-1")
    );
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert_eq!(reply.exchange.as_str(), "");
    assert!(!reply.redelivered);

    // the client goes away: a mandatory reply comes back unroutable, the name is gone
    client_conn.close(200, "bye".into()).await.unwrap();
    service.confirm_select(Default::default()).await.unwrap();
    let confirm = service
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"too late",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    match within(confirm).await.unwrap() {
        Confirmation::Ack(Some(returned)) => assert_eq!(returned.reply_code, 312),
        other => panic!("{other:?}"),
    }
    // the name goes with the connection (a declare on a dead name closes the channel)
    common::amqp::wait_until(|| async {
        let ch = service_conn.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = ch
            .queue_declare(reply_to.as_str().into(), passive, FieldTable::default())
            .await;
        matches!(declared, Err(e) if reply_code(&e) == Some(404))
    })
    .await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn misuse_gets_rabbitmqs_errors() {
    let b = start().await;
    let conn = b.connect().await;

    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );

    let ch = conn.create_channel().await.unwrap();
    // kept: lapin cancels a consumer it drops
    let _replies = reply_consumer(&ch).await;
    let err = ch
        .basic_consume(
            REPLY_TO.into(),
            "again".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - reply consumer already set"
    );

    // asking for replies on a channel that does not consume them
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare(&ch, "prices", FieldTable::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "prices".into(),
            BasicPublishOptions::default(),
            b"sku-1",
            BasicProperties::default().with_reply_to(REPLY_TO.into()),
        )
        .await
        .unwrap();
    let err = within(confirm).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - fast reply consumer does not exist"
    );
    b.stop().await;
}
