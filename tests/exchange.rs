//! Exchanges as a RabbitMQ user meets them: declaring, redeclaring, deleting, binding to
//! other exchanges, and the reserved names.

mod common;

use common::{reply_code, reply_text, start, within};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        ch.exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    b.stop().await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_404() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "nope".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(404));
    assert_eq!(
        reply_text(&err),
        "NOT_FOUND - no exchange 'nope' in vhost '/'"
    );
    // only the channel closed
    assert!(conn.create_channel().await.is_ok());
    b.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_type_closes_channel_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .exchange_declare(
            "orders".into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'orders' in vhost '/': received 'fanout' but current is 'direct'"
    );
    b.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_durable_closes_channel_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "stock".into(),
        ExchangeKind::Topic,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .exchange_declare(
            "stock".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert!(
        reply_text(&err).contains("inequivalent arg 'durable'"),
        "{}",
        reply_text(&err)
    );
    b.stop().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved_403() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "amq.mine".into(),
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'"
    );
    b.stop().await;
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection_503() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "weird".into(),
            ExchangeKind::Custom("x-nonexistent".into()),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(503), "{err}");
    b.stop().await;
}

#[tokio::test]
async fn delete_is_idempotent_and_if_unused_protects_bound_exchanges() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete("never-declared".into(), Default::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "payments".into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.queue_bind(
        q.name().clone(),
        "payments".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .exchange_delete(
            "payments".into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err),
        "PRECONDITION_FAILED - exchange 'payments' in vhost '/' in use"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete("payments".into(), Default::default())
        .await
        .unwrap();
    ch.exchange_delete("payments".into(), Default::default())
        .await
        .unwrap();
    b.stop().await;
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes_and_unbind_stops_it() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "front".into(),
        ExchangeKind::Topic,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "back".into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_bind(
        "back".into(),
        "front".into(),
        "order.*".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare("audit".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "audit".into(),
        "back".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for key in ["order.created", "stock.changed"] {
        ch.basic_publish(
            "front".into(),
            key.into(),
            Default::default(),
            key.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let got = within(ch.basic_get("audit".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"order.created");
    assert_eq!(got.delivery.exchange.as_str(), "front");
    assert!(ch
        .basic_get("audit".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    ch.exchange_unbind(
        "back".into(),
        "front".into(),
        "order.*".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "front".into(),
        "order.paid".into(),
        Default::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert!(ch
        .basic_get("audit".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    b.stop().await;
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.exchange_declare(
        "inner".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let confirm = ch
        .basic_publish(
            "inner".into(),
            "".into(),
            Default::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within(confirm).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(403), "{err}");
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'"
    );
    b.stop().await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_404() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "ghost".into(),
            "".into(),
            Default::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within(confirm).await.unwrap_err();
    assert_eq!(reply_code(&err), Some(404));
    b.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "temp".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare("tq".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "tq".into(),
        "temp".into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind(
        "tq".into(),
        "temp".into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let err = ch
        .exchange_declare(
            "temp".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
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
async fn binding_to_the_default_exchange_is_403() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("dq".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let err = ch
        .queue_bind(
            "dq".into(),
            "".into(),
            "dq".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(403));
    assert_eq!(
        reply_text(&err),
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    b.stop().await;
}
