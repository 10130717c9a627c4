//! Steps a RabbitMQ user takes with lapin, shared by the stories in tests/: declaring with
//! arguments, publishing with properties, fetching with basic.get, reading headers, and
//! waiting (with a bound) for something the broker does on its own time.

use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

pub fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

pub async fn declare(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<u32> {
    ch.queue_declare(name.into(), Default::default(), arguments)
        .await
        .map(|q| q.message_count())
}

pub async fn declare_durable(ch: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<()> {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        arguments,
    )
    .await
    .map(|_| ())
}

/// Messages ready in `name` (passive declare).
pub async fn depth(ch: &Channel, name: &str) -> u32 {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue exists")
    .message_count()
}

pub async fn publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        Default::default(),
        body,
        properties,
    )
    .await
    .expect("publish");
}

pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
}

/// basic.get until a message arrives, polling; a hang is a failure after 10 s.
pub async fn wait_for_message(ch: &Channel, queue: &str) -> BasicGetMessage {
    super::within(async {
        loop {
            if let Some(m) = get(ch, queue).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Poll `check` until it holds; a hang is a failure after 10 s.
pub async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    super::within(async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

pub fn header<'a>(m: &'a BasicGetMessage, key: &str) -> Option<&'a AMQPValue> {
    m.delivery.properties.headers().as_ref()?.inner().get(key)
}

pub fn as_text(v: Option<&AMQPValue>) -> Option<String> {
    match v? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

pub fn as_int(v: Option<&AMQPValue>) -> Option<i64> {
    match v? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// The `x-death` entries of a dead-lettered message, newest first.
pub fn deaths(m: &BasicGetMessage) -> Vec<FieldTable> {
    match header(m, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::FieldTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `queue` is gone, seen the way that does not count as using it: a mandatory
/// publish to it comes back unroutable. `ch` must be in confirm mode.
pub async fn is_gone(ch: &Channel, queue: &str) -> bool {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"probe",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    matches!(confirm, lapin::Confirmation::Ack(Some(_)))
}

/// A publisher of persistent messages `PREFIX-N` to `queue` with up to `window`
/// unconfirmed, until the broker goes away; returns the ids confirmed before that.
/// The crash tests run several and kill the broker under them.
pub async fn confirmed_publisher(
    addr: std::net::SocketAddr,
    queue: &'static str,
    prefix: String,
    window: usize,
) -> Vec<String> {
    let mut confirmed = Vec::new();
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let Ok(conn) = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
    else {
        return confirmed;
    };
    let Ok(ch) = conn.create_channel().await else {
        return confirmed;
    };
    if ch.confirm_select(Default::default()).await.is_err() {
        return confirmed;
    }
    let mut pending = std::collections::VecDeque::new();
    for n in 0.. {
        let id = format!("{prefix}-{n}");
        match ch
            .basic_publish(
                "".into(),
                queue.into(),
                Default::default(),
                id.as_bytes(),
                persistent(),
            )
            .await
        {
            Ok(c) => pending.push_back((id, c)),
            Err(_) => break,
        }
        if pending.len() >= window {
            let Some((id, c)) = pending.pop_front() else {
                break;
            };
            match c.await {
                Ok(lapin::Confirmation::Ack(_)) => confirmed.push(id),
                _ => break,
            }
        }
    }
    confirmed
}

/// Take every message off `queue` (auto-ack), bodies as text, in order.
pub async fn drain_bodies(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

/// Bind `queue` to `exchange` with `key` and no arguments.
pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

/// A consumer on a channel of its own that takes one delivery from `queue` and never
/// acknowledges it (a hung service). Keep the consumer: lapin cancels one it drops.
pub async fn stuck_consumer(
    conn: &lapin::Connection,
    queue: &str,
) -> (lapin::Consumer, lapin::message::Delivery) {
    use futures_lite::StreamExt;
    let ch = conn.create_channel().await.expect("channel");
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "stuck".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let delivery = super::within(consumer.next())
        .await
        .expect("a delivery")
        .expect("no error");
    (consumer, delivery)
}
