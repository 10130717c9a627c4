//! Alternate exchanges as a shop uses them: order events no binding matches are not lost
//! but land in an "unrouted" queue someone watches; chains of alternates are followed,
//! cycles stop, a missing alternate leaves the message unroutable, and the declaration's
//! checks and texts are RabbitMQ's.

mod common;

use common::amqp::{args, bind, declare_durable, drain_bodies, text};
use common::{reply_code, reply_text, start};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

async fn exchange(ch: &Channel, name: &str, kind: &str, ae: Option<&str>) {
    let arguments = match ae {
        Some(ae) => args(&[("alternate-exchange", text(ae))]),
        None => FieldTable::default(),
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom(kind.into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        arguments,
    )
    .await
    .unwrap();
}

async fn queue_on(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    declare_durable(ch, queue, FieldTable::default())
        .await
        .unwrap();
    bind(ch, queue, exchange, key).await;
}

/// Publish with mandatory and confirms; true when the message came back unroutable.
async fn returned(ch: &Channel, exchange: &str, key: &str, body: &str) -> bool {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    match common::within(confirm).await.unwrap() {
        Confirmation::Ack(Some(r)) => {
            assert_eq!(r.reply_code, 312);
            true
        }
        Confirmation::Ack(None) => false,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unroutable_orders_reach_the_alternate_exchange_and_count_as_routed() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    exchange(&ch, "unrouted", "fanout", None).await;
    queue_on(&ch, "unrouted-orders", "unrouted", "").await;
    exchange(&ch, "orders", "topic", Some("unrouted")).await;
    queue_on(&ch, "orders-eu", "orders", "order.eu.*").await;

    assert!(!returned(&ch, "orders", "order.eu.created", "eu-1").await);
    // no binding matches: to the alternate, which routes it, so no basic.return
    assert!(!returned(&ch, "orders", "order.us.created", "us-1").await);
    assert_eq!(drain_bodies(&ch, "orders-eu").await, vec!["eu-1"]);
    assert_eq!(drain_bodies(&ch, "unrouted-orders").await, vec!["us-1"]);

    // a chain: orders-v2 -> fallback (routes nothing) -> unrouted
    exchange(&ch, "fallback", "direct", Some("unrouted")).await;
    exchange(&ch, "orders-v2", "direct", Some("fallback")).await;
    assert!(!returned(&ch, "orders-v2", "anything", "chained").await);
    assert_eq!(drain_bodies(&ch, "unrouted-orders").await, vec!["chained"]);

    // an exchange-to-exchange dead end uses the dead end's own alternate
    exchange(&ch, "dead-end", "direct", Some("unrouted")).await;
    exchange(&ch, "front", "fanout", Some("nowhere")).await;
    ch.exchange_bind(
        "dead-end".into(),
        "front".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert!(!returned(&ch, "front", "k", "via-e2e").await);
    assert_eq!(drain_bodies(&ch, "unrouted-orders").await, vec!["via-e2e"]);

    // a cycle of alternates ends, and a missing alternate routes nothing: returned
    exchange(&ch, "cycle-a", "direct", Some("cycle-b")).await;
    exchange(&ch, "cycle-b", "direct", Some("cycle-a")).await;
    assert!(returned(&ch, "cycle-a", "k", "cycled").await);
    exchange(&ch, "lonely", "direct", Some("does-not-exist")).await;
    assert!(returned(&ch, "lonely", "k", "lost").await);

    // the alternate is part of the durable exchange: it still applies after a restart
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    assert!(!returned(&ch, "orders", "order.jp.created", "after-restart").await);
    assert_eq!(
        drain_bodies(&ch, "unrouted-orders").await,
        vec!["after-restart"]
    );
    b.stop().await;
}

#[tokio::test]
async fn alternate_exchange_declarations_are_checked_as_rabbitmq_does() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "bad-ae".into(),
            ExchangeKind::Direct,
            Default::default(),
            args(&[("alternate-exchange", lapin::types::AMQPValue::LongInt(5))]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange 'bad-ae' in vhost '/'"
    );
    let ch = conn.create_channel().await.unwrap();
    exchange(&ch, "with-ae", "direct", Some("first")).await;
    for (ae, received, current) in [
        (Some("second"), "'second'", "'first'"),
        (None, "none", "the value 'first' of type 'longstr'"),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let arguments = match ae {
            Some(ae) => args(&[("alternate-exchange", text(ae))]),
            None => FieldTable::default(),
        };
        let err = ch
            .exchange_declare(
                "with-ae".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .unwrap_err();
        assert_eq!(
            reply_text(&err),
            format!("PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'with-ae' in vhost '/': received {received} but current is {current}")
        );
    }

    // a user may only name an alternate it may publish to
    let state = b.state().clone();
    state
        .put_user(
            "ops",
            warren::broker::admin::PasswordSpec::Clear("ops".into()),
            vec![],
        )
        .await
        .unwrap();
    state
        .set_permissions("ops", "/", ".*", "^ops-", ".*")
        .await
        .unwrap();
    let ops = b.connect_as("ops", "ops", "/").await.unwrap();
    let ch = ops.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "ops-x".into(),
            ExchangeKind::Direct,
            Default::default(),
            args(&[("alternate-exchange", text("audit"))]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        // (RabbitMQ 3.10 leaves out the "write"; Warren words every refusal with its kind)
        "ACCESS_REFUSED - write access to exchange 'audit' in vhost '/' refused for user 'ops'"
    );
    b.stop().await;
}
