//! Routing through the broker: direct with several queues per key, fanout, topic wildcards
//! and headers matching, as a shop wires order, stock and payment events.

mod common;

use common::{reply_code, start};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

async fn bound_queue(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_declare(queue.into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        args,
    )
    .await
    .unwrap();
}

async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = vec![];
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    out
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, props: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        Default::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test]
async fn direct_exchange_delivers_to_every_queue_bound_with_the_key() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    bound_queue(
        &ch,
        "billing",
        "amq.direct",
        "order.paid",
        FieldTable::default(),
    )
    .await;
    bound_queue(
        &ch,
        "shipping",
        "amq.direct",
        "order.paid",
        FieldTable::default(),
    )
    .await;
    bound_queue(
        &ch,
        "returns",
        "amq.direct",
        "order.returned",
        FieldTable::default(),
    )
    .await;
    publish(
        &ch,
        "amq.direct",
        "order.paid",
        "paid",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, "billing").await, vec!["paid"]);
    assert_eq!(drain(&ch, "shipping").await, vec!["paid"]);
    assert!(drain(&ch, "returns").await.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn fanout_ignores_the_routing_key() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    bound_queue(&ch, "f1", "amq.fanout", "", FieldTable::default()).await;
    bound_queue(&ch, "f2", "amq.fanout", "whatever", FieldTable::default()).await;
    publish(
        &ch,
        "amq.fanout",
        "any.key",
        "all",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, "f1").await, vec!["all"]);
    assert_eq!(drain(&ch, "f2").await, vec!["all"]);
    b.stop().await;
}

#[tokio::test]
async fn topic_wildcards_route_like_rabbitmq() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    bound_queue(
        &ch,
        "eu-orders",
        "amq.topic",
        "order.eu.*",
        FieldTable::default(),
    )
    .await;
    bound_queue(
        &ch,
        "all-orders",
        "amq.topic",
        "order.#",
        FieldTable::default(),
    )
    .await;
    bound_queue(&ch, "paid", "amq.topic", "*.*.paid", FieldTable::default()).await;
    for key in [
        "order.eu.created",
        "order.us.paid",
        "order",
        "stock.eu.changed",
    ] {
        publish(&ch, "amq.topic", key, key, BasicProperties::default()).await;
    }
    assert_eq!(drain(&ch, "eu-orders").await, vec!["order.eu.created"]);
    assert_eq!(
        drain(&ch, "all-orders").await,
        vec!["order.eu.created", "order.us.paid", "order"]
    );
    assert_eq!(drain(&ch, "paid").await, vec!["order.us.paid"]);
    b.stop().await;
}

fn table(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    t
}

#[tokio::test]
async fn headers_exchange_matches_all_and_any() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    bound_queue(
        &ch,
        "eu-pdf",
        "amq.headers",
        "",
        table(&[("x-match", "all"), ("region", "eu"), ("format", "pdf")]),
    )
    .await;
    bound_queue(
        &ch,
        "eu-or-pdf",
        "amq.match",
        "",
        table(&[("x-match", "any"), ("region", "eu"), ("format", "pdf")]),
    )
    .await;
    bound_queue(
        &ch,
        "eu-or-pdf-2",
        "amq.headers",
        "",
        table(&[("x-match", "any"), ("region", "eu"), ("format", "pdf")]),
    )
    .await;
    let props = |pairs: &[(&str, &str)]| BasicProperties::default().with_headers(table(pairs));
    publish(
        &ch,
        "amq.headers",
        "",
        "both",
        props(&[("region", "eu"), ("format", "pdf")]),
    )
    .await;
    publish(
        &ch,
        "amq.headers",
        "",
        "region-only",
        props(&[("region", "eu")]),
    )
    .await;
    publish(
        &ch,
        "amq.headers",
        "",
        "neither",
        props(&[("region", "us")]),
    )
    .await;
    publish(
        &ch,
        "amq.headers",
        "",
        "no-headers",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, "eu-pdf").await, vec!["both"]);
    assert_eq!(drain(&ch, "eu-or-pdf-2").await, vec!["both", "region-only"]);
    b.stop().await;
}

#[tokio::test]
async fn headers_binding_with_a_bad_x_match_is_406() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("hq".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let err = ch
        .queue_bind(
            "hq".into(),
            "amq.headers".into(),
            "".into(),
            Default::default(),
            table(&[("x-match", "most")]),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), Some(406));
    b.stop().await;
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare("by-name".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "", "by-name", "hi", BasicProperties::default()).await;
    assert_eq!(drain(&ch, "by-name").await, vec!["hi"]);
    b.stop().await;
}
