//! The shop, end to end, with lapin: the same flow as `shop.py` (pika), unchanged against
//! Warren and RabbitMQ.
//!
//! - The order service looks up each order's price over direct reply-to RPC, then publishes
//!   the order (persistent, mandatory, confirmed) to the topic exchange `shop.orders` and
//!   schedules its payment timeout on the delayed exchange `shop.delayed`.
//! - The stock and payment services consume with manual acks and a prefetch.
//! - A failed payment is retried with backoff through TTL + dead-letter queues (50, 100,
//!   200 ms) and parked after three retries, counted from the message's `x-death` history.
//! - An order still unpaid when its timeout arrives is cancelled.
//! - At the end: throughput, order-to-stock latency, reliability, and a check that no order
//!   was lost or handled twice (exit status 1 if any was).
//!
//! Without an `x-delayed-message` exchange type (RabbitMQ without the community plugin) the
//! timeouts go through a TTL queue instead, and the report says so.
//!
//! `cargo run --release --example shop -- [--url URL] [--orders N]`

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

const ORDERS: &str = "shop.orders";
const STOCK: &str = "shop.stock";
const PAYMENTS: &str = "shop.payments";
const PARKED: &str = "shop.payments.parked";
const RETRY_MS: [i32; 3] = [50, 100, 200];
const RETRY: &str = "shop.payments.retry.";
const DELAYED: &str = "shop.delayed";
const TIMEOUTS: &str = "shop.order-timeouts";
const TIMEOUTS_WAIT: &str = "shop.order-timeouts.wait";
const PRICES: &str = "shop.prices";
const PAYMENT_TIMEOUT_MS: i32 = 1000;
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The bank's answer: every 20th order is always declined, every 7th once.
fn payment_fails(order: u64, retries: i64) -> bool {
    order.is_multiple_of(20) || (order.is_multiple_of(7) && retries == 0)
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => String::new(),
    }
}

/// Retries so far, from x-death: each expiry in a retry queue is one.
fn retries_of(properties: &BasicProperties) -> i64 {
    let Some(AMQPValue::FieldArray(deaths)) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned())
    else {
        return 0;
    };
    deaths
        .as_slice()
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .filter(|t| {
            text(t.inner().get("reason")) == "expired"
                && text(t.inner().get("queue")).starts_with(RETRY)
        })
        .map(|t| match t.inner().get("count") {
            Some(AMQPValue::LongLongInt(n)) => *n,
            Some(AMQPValue::LongInt(n)) => i64::from(*n),
            _ => 0,
        })
        .sum()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[derive(Default)]
struct Ledger {
    stock: HashMap<u64, u32>,
    paid: HashMap<u64, u32>,
    parked: HashMap<u64, i64>,
    cancelled: HashSet<u64>,
    timeouts: u64,
    retried: u64,
    latencies: Vec<f64>,
}

/// What a run measured.
pub struct Report {
    pub orders: u64,
    pub delay_mode: String,
    pub published_secs: f64,
    pub settled_secs: f64,
    pub stock: usize,
    pub paid: usize,
    pub retried: u64,
    pub parked: usize,
    pub parked_after: Vec<i64>,
    pub cancelled: usize,
    pub timeouts: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub processed: u64,
    pub lost: u64,
    pub handled_twice: usize,
    /// Parked and cancelled exactly the orders the bank always declines, after 3 retries.
    pub outcomes_as_expected: bool,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.handled_twice == 0 && self.outcomes_as_expected
    }

    pub fn print(&self) {
        let n = self.orders as f64;
        println!(
            "shop (lapin): {} orders, timeouts by {}",
            self.orders, self.delay_mode
        );
        println!(
            "orders published      {} in {:.2} s ({:.0} orders/s, each priced over RPC)",
            self.orders,
            self.published_secs,
            n / self.published_secs
        );
        println!(
            "all settled in        {:.2} s ({:.0} orders/s end to end)",
            self.settled_secs,
            n / self.settled_secs
        );
        println!("stock handled         {}", self.stock);
        println!(
            "payments              paid {}, retried {} times, parked {} (after {:?} retries)",
            self.paid, self.retried, self.parked, self.parked_after
        );
        println!(
            "unpaid cancelled      {} by their payment timeout ({} timeouts)",
            self.cancelled, self.timeouts
        );
        println!(
            "latency order->stock  p50 {:.1} ms  p99 {:.1} ms",
            self.latency_p50_ms, self.latency_p99_ms
        );
        println!(
            "reliability           {}/{} = {:.2}%  lost {}  handled twice {}",
            self.processed,
            self.orders,
            100.0 * self.processed as f64 / n,
            self.lost,
            self.handled_twice
        );
        println!(
            "check                 {}",
            if self.ok() { "ok" } else { "FAILED" }
        );
    }
}

async fn connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// Start from empty queues; returns how payment timeouts are scheduled.
async fn declare(url: &str) -> lapin::Result<&'static str> {
    let conn = connect(url).await?;
    let ch = conn.create_channel().await?;
    let retries: Vec<String> = (0..RETRY_MS.len()).map(|i| format!("{RETRY}{i}")).collect();
    for q in [STOCK, PAYMENTS, PARKED, TIMEOUTS, TIMEOUTS_WAIT, PRICES]
        .into_iter()
        .chain(retries.iter().map(String::as_str))
    {
        ch.queue_delete(q.into(), Default::default()).await?;
    }
    ch.exchange_delete(DELAYED.into(), Default::default())
        .await?;
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_q = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        ORDERS.into(),
        ExchangeKind::Topic,
        durable_x,
        FieldTable::default(),
    )
    .await?;
    for q in [STOCK, PAYMENTS] {
        ch.queue_declare(q.into(), durable_q, FieldTable::default())
            .await?;
        ch.queue_bind(
            q.into(),
            ORDERS.into(),
            "order.created".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await?;
    }
    for q in [PARKED, TIMEOUTS, PRICES] {
        ch.queue_declare(q.into(), durable_q, FieldTable::default())
            .await?;
    }
    for (i, ms) in RETRY_MS.iter().enumerate() {
        let args = table(&[
            ("x-message-ttl", AMQPValue::LongInt(*ms)),
            ("x-dead-letter-exchange", long("")),
            ("x-dead-letter-routing-key", long(PAYMENTS)),
        ]);
        ch.queue_declare(format!("{RETRY}{i}").as_str().into(), durable_q, args)
            .await?;
    }
    let delayed = ch
        .exchange_declare(
            DELAYED.into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            durable_x,
            table(&[("x-delayed-type", long("direct"))]),
        )
        .await;
    if delayed.is_ok() {
        ch.queue_bind(
            TIMEOUTS.into(),
            DELAYED.into(),
            "order.timeout".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await?;
        let _ = conn.close(200, "OK".into()).await;
        return Ok("x-delayed-message");
    }
    // no such exchange type here: 503 closed the connection
    let conn = connect(url).await?;
    let ch = conn.create_channel().await?;
    let args = table(&[
        ("x-message-ttl", AMQPValue::LongInt(PAYMENT_TIMEOUT_MS)),
        ("x-dead-letter-exchange", long("")),
        ("x-dead-letter-routing-key", long(TIMEOUTS)),
    ]);
    ch.queue_declare(TIMEOUTS_WAIT.into(), durable_q, args)
        .await?;
    let _ = conn.close(200, "OK".into()).await;
    Ok("TTL queue (the broker has no x-delayed-message)")
}

#[derive(Clone, Copy)]
enum Service {
    Stock,
    Payments,
    Timeouts,
    Prices,
}

/// One service: its own connection, manual acks, prefetch 50, until `stop` turns true.
async fn serve(
    url: String,
    service: Service,
    ledger: Arc<Mutex<Ledger>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> lapin::Result<()> {
    let conn = connect(&url).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(50, BasicQosOptions::default()).await?;
    let queue = match service {
        Service::Stock => STOCK,
        Service::Payments => {
            ch.confirm_select(Default::default()).await?;
            PAYMENTS
        }
        Service::Timeouts => TIMEOUTS,
        Service::Prices => PRICES,
    };
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = stop.changed() => break,
        };
        let Some(delivery) = delivery else { break };
        let d = delivery?;
        match service {
            Service::Stock => {
                let order: serde_json::Value = serde_json::from_slice(&d.data).unwrap_or_default();
                let id = order["id"].as_u64().unwrap_or(0);
                let sent = order["sent_at"].as_f64().unwrap_or(0.0);
                let mut l = ledger.lock().unwrap();
                *l.stock.entry(id).or_default() += 1;
                l.latencies.push(now_secs() - sent);
            }
            Service::Payments => {
                let order: serde_json::Value = serde_json::from_slice(&d.data).unwrap_or_default();
                let id = order["id"].as_u64().unwrap_or(0);
                let retries = retries_of(&d.properties);
                if payment_fails(id, retries) {
                    // the copy keeps its x-death history, which counts the retries
                    let props = match d.properties.headers() {
                        Some(h) => persistent().with_headers(h.clone()),
                        None => persistent(),
                    };
                    let to = if retries >= RETRY_MS.len() as i64 {
                        PARKED.to_owned()
                    } else {
                        format!("{RETRY}{retries}")
                    };
                    ch.basic_publish(
                        "".into(),
                        to.as_str().into(),
                        Default::default(),
                        &d.data,
                        props,
                    )
                    .await?
                    .await?;
                    let mut l = ledger.lock().unwrap();
                    if to == PARKED {
                        l.parked.insert(id, retries);
                    } else {
                        l.retried += 1;
                    }
                } else {
                    *ledger.lock().unwrap().paid.entry(id).or_default() += 1;
                }
            }
            Service::Timeouts => {
                let id: u64 = String::from_utf8_lossy(&d.data).parse().unwrap_or(0);
                let mut l = ledger.lock().unwrap();
                l.timeouts += 1;
                if !l.paid.contains_key(&id) {
                    l.cancelled.insert(id);
                }
            }
            Service::Prices => {
                let price = 10 + d.data.len() % 7;
                if let Some(reply_to) = d.properties.reply_to() {
                    let props = match d.properties.correlation_id() {
                        Some(c) => BasicProperties::default().with_correlation_id(c.clone()),
                        None => BasicProperties::default(),
                    };
                    ch.basic_publish(
                        "".into(),
                        reply_to.clone(),
                        Default::default(),
                        price.to_string().as_bytes(),
                        props,
                    )
                    .await?;
                }
            }
        }
        d.ack(BasicAckOptions::default()).await?;
    }
    let _ = conn.close(200, "OK".into()).await;
    Ok(())
}

/// The order service: price over RPC, the order confirmed, its timeout scheduled.
async fn place_orders(url: &str, orders: u64, delayed: bool) -> lapin::Result<()> {
    let conn = connect(url).await?;
    let ch: Channel = conn.create_channel().await?;
    ch.confirm_select(Default::default()).await?;
    let mut replies = ch
        .basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for n in 1..=orders {
        let cid = ShortString::from(format!("price-{n}"));
        let request = BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(cid.clone());
        ch.basic_publish(
            "".into(),
            PRICES.into(),
            Default::default(),
            format!("sku-{}", n % 50).as_bytes(),
            request,
        )
        .await?
        .await?;
        let price: u64 = loop {
            let Some(reply) = replies.next().await else {
                return Err(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "the reply consumer ended",
                )
                .into());
            };
            let reply = reply?;
            if reply.properties.correlation_id().as_ref() == Some(&cid) {
                break String::from_utf8_lossy(&reply.data).parse().unwrap_or(0);
            }
        };
        let order = serde_json::json!({"id": n, "price": price, "sent_at": now_secs()});
        ch.basic_publish(
            ORDERS.into(),
            "order.created".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            order.to_string().as_bytes(),
            persistent().with_content_type("application/json".into()),
        )
        .await?
        .await?;
        let (exchange, key, props) = if delayed {
            let headers = table(&[("x-delay", AMQPValue::LongInt(PAYMENT_TIMEOUT_MS))]);
            (DELAYED, "order.timeout", persistent().with_headers(headers))
        } else {
            ("", TIMEOUTS_WAIT, persistent())
        };
        ch.basic_publish(
            exchange.into(),
            key.into(),
            Default::default(),
            n.to_string().as_bytes(),
            props,
        )
        .await?
        .await?;
    }
    drop(replies);
    let _ = conn.close(200, "OK".into()).await;
    Ok(())
}

/// Run the shop with `orders` orders against `url` and report.
pub async fn run(url: &str, orders: u64) -> lapin::Result<Report> {
    let delay_mode = declare(url).await?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let services: Vec<_> = [
        Service::Stock,
        Service::Payments,
        Service::Timeouts,
        Service::Prices,
    ]
    .into_iter()
    .map(|s| tokio::spawn(serve(url.to_owned(), s, ledger.clone(), stop_rx.clone())))
    .collect();
    let start = Instant::now();
    place_orders(url, orders, delay_mode == "x-delayed-message").await?;
    let published_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        {
            let l = ledger.lock().unwrap();
            if l.stock.len() as u64 >= orders
                && (l.paid.len() + l.parked.len()) as u64 >= orders
                && l.timeouts >= orders
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled_secs = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for s in services {
        if let Ok(Err(e)) = s.await {
            eprintln!("a service failed: {e}");
        }
    }
    let l = ledger.lock().unwrap();
    let mut lat = l.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    let processed = (1..=orders)
        .filter(|i| l.stock.contains_key(i) && (l.paid.contains_key(i) || l.parked.contains_key(i)))
        .count() as u64;
    let handled_twice =
        l.stock.values().filter(|c| **c > 1).count() + l.paid.values().filter(|c| **c > 1).count();
    let expected: HashSet<u64> = (1..=orders).filter(|i| i % 20 == 0).collect();
    let parked: HashSet<u64> = l.parked.keys().copied().collect();
    let mut parked_after: Vec<i64> = l.parked.values().copied().collect();
    parked_after.sort();
    parked_after.dedup();
    Ok(Report {
        orders,
        delay_mode: delay_mode.to_owned(),
        published_secs,
        settled_secs,
        stock: l.stock.len(),
        paid: l.paid.len(),
        retried: l.retried,
        parked: l.parked.len(),
        outcomes_as_expected: parked == expected
            && l.cancelled == expected
            && parked_after.iter().all(|r| *r == RETRY_MS.len() as i64),
        parked_after,
        cancelled: l.cancelled.len(),
        timeouts: l.timeouts,
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
        processed,
        lost: orders - processed,
        handled_twice,
    })
}

#[allow(dead_code)] // a test includes this file as a module and calls `run`
fn main() -> std::process::ExitCode {
    let mut url = "amqp://guest:guest@127.0.0.1:5672/%2F".to_owned();
    let mut orders = 2000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--url", Some(v)) => url = v,
            ("--orders", Some(v)) => orders = v.parse().unwrap_or(orders),
            _ => {
                eprintln!("usage: shop [--url URL] [--orders N]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(&url, orders)) {
        Ok(report) => {
            report.print();
            if report.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("shop: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
