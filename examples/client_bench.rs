//! A load test the way an application writes one with a Rust client library, not with
//! warren-perf's batching: one publisher connection calling `basic_publish` per message
//! (optionally waiting for each publisher confirm, lapin only), one consumer connection with
//! a prefetch that acks every `--ack-every` messages (1 = each on its own). `--client` picks
//! lapin (the default) or amqprs: two Rust clients built differently (lapin's one I/O loop
//! per connection against amqprs' reader and writer tasks), so a figure does not rest on
//! one library's habits. Runs against any broker; with `--broker-pid` it reads the broker's
//! CPU and RSS from /proc over the measured window. `bench/compare.sh lapin-* amqprs-*`
//! runs it beside RabbitMQ.
//!
//! `cargo run --release --example client_bench -- --url URL [--client lapin|amqprs]
//!  [--duration 10] [--size 100] [--rate 0] [--ack-every 1] [--prefetch 200] [--confirm]
//!  [--broker-pid PID]` prints one JSON object.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const QUEUE: &str = "client-bench";

/// Either client's errors (and a URI's), as one type for the harness.
type BenchError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Lapin,
    Amqprs,
}

struct Opts {
    client: Client,
    url: String,
    duration: f64,
    size: usize,
    rate: u64,
    ack_every: u64,
    prefetch: u16,
    confirm: bool,
    broker_pid: Option<u32>,
}

/// CPU time, RSS and context switches from /proc, read as warren-perf reads them.
#[path = "../src/bin/warren-perf/sample.rs"]
#[allow(dead_code)] // warren-perf's `Probe` wrapper is not needed here
mod sample;
use sample::sample;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    consumed: AtomicU64,
    stop: AtomicBool,
    measuring: AtomicBool,
    latencies_us: Mutex<Vec<u32>>,
}

/// Waits until the next publish is due at `--rate` (at once when unthrottled); false once
/// the run is stopping.
async fn wait_turn(o: &Opts, c: &Counters, start: Instant, sent: u64) -> bool {
    while o.rate > 0 && !c.stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * o.rate as f64) as u64;
        if due > sent {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    !c.stop.load(Ordering::Relaxed)
}

/// Counts a delivery and its latency (the body starts with its send time); true when this
/// one should be acked, with `multiple` when acks cover several.
fn take(o: &Opts, c: &Counters, body: &[u8], unacked: &mut u64) -> bool {
    if c.measuring.load(Ordering::Relaxed) && body.len() >= 8 {
        let sent = u64::from_be_bytes(body[..8].try_into().unwrap_or([0; 8]));
        let us = now_ns().saturating_sub(sent) / 1000;
        c.latencies_us.lock().unwrap().push(us as u32);
    }
    c.consumed.fetch_add(1, Ordering::Relaxed);
    *unacked += 1;
    if *unacked >= o.ack_every {
        *unacked = 0;
        return true;
    }
    false
}

/// lapin 4: a future per publish (awaited for its confirm with `--confirm`), deliveries as a
/// stream, an acker per delivery.
mod with_lapin {
    use super::*;

    pub async fn publisher(o: Arc<Opts>, c: Arc<Counters>) -> lapin::Result<()> {
        let conn = Connection::connect(&o.url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        if o.confirm {
            ch.confirm_select(Default::default()).await?;
        }
        let mut body = vec![0u8; o.size.max(8)];
        let start = Instant::now();
        let mut sent = 0u64;
        while wait_turn(&o, &c, start, sent).await {
            body[..8].copy_from_slice(&now_ns().to_be_bytes());
            let confirm = ch
                .basic_publish(
                    "".into(),
                    QUEUE.into(),
                    Default::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await?;
            if o.confirm {
                confirm.await?;
            }
            sent += 1;
            c.published.fetch_add(1, Ordering::Relaxed);
        }
        let _ = conn.close(200, "OK".into()).await;
        Ok(())
    }

    pub async fn consumer(o: Arc<Opts>, c: Arc<Counters>) -> lapin::Result<()> {
        let conn = Connection::connect(&o.url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        ch.basic_qos(o.prefetch, BasicQosOptions::default()).await?;
        let mut deliveries = ch
            .basic_consume(
                QUEUE.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut unacked = 0u64;
        while !c.stop.load(Ordering::Relaxed) {
            let Ok(next) =
                tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await
            else {
                continue;
            };
            let Some(d) = next else { break };
            let d = d?;
            if take(&o, &c, &d.data, &mut unacked) {
                d.acker
                    .ack(BasicAckOptions {
                        multiple: o.ack_every > 1,
                    })
                    .await?;
            }
        }
        let _ = conn.close(200, "OK".into()).await;
        Ok(())
    }

    pub async fn fresh_queue(url: &str) -> lapin::Result<()> {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        ch.queue_delete(QUEUE.into(), Default::default()).await?;
        ch.queue_declare(QUEUE.into(), Default::default(), FieldTable::default())
            .await?;
        let _ = conn.close(200, "OK".into()).await;
        Ok(())
    }
}

/// amqprs 2: `basic_publish` taking an owned body per call, deliveries on an unbounded
/// channel, `basic_ack` on the channel.
mod with_amqprs {
    use super::*;
    use amqprs::channel::{BasicAckArguments, BasicConsumeArguments, BasicPublishArguments};
    use amqprs::channel::{BasicQosArguments, Channel};
    use amqprs::connection::{Connection, OpenConnectionArguments};

    /// amqprs takes the vhost from the URI's path without percent-decoding it (`/%2F`
    /// would name a vhost "%2F"), so the URI is read with lapin's parser.
    async fn open(url: &str) -> Result<(Connection, Channel), BenchError> {
        let uri: lapin::uri::AMQPUri = url.parse()?;
        let mut args = OpenConnectionArguments::new(
            &uri.authority.host,
            uri.authority.port,
            &uri.authority.userinfo.username,
            &uri.authority.userinfo.password,
        );
        args.virtual_host(&uri.vhost);
        let conn = Connection::open(&args).await?;
        let ch = conn.open_channel(None).await?;
        Ok((conn, ch))
    }

    pub async fn publisher(o: Arc<Opts>, c: Arc<Counters>) -> Result<(), BenchError> {
        let (conn, ch) = open(&o.url).await?;
        let mut body = vec![0u8; o.size.max(8)];
        let start = Instant::now();
        let mut sent = 0u64;
        while wait_turn(&o, &c, start, sent).await {
            body[..8].copy_from_slice(&now_ns().to_be_bytes());
            ch.basic_publish(
                amqprs::BasicProperties::default(),
                body.clone(),
                BasicPublishArguments::new("", QUEUE),
            )
            .await?;
            sent += 1;
            c.published.fetch_add(1, Ordering::Relaxed);
        }
        let _ = conn.close().await;
        Ok(())
    }

    pub async fn consumer(o: Arc<Opts>, c: Arc<Counters>) -> Result<(), BenchError> {
        let (conn, ch) = open(&o.url).await?;
        ch.basic_qos(BasicQosArguments::new(0, o.prefetch, false))
            .await?;
        let (_tag, mut deliveries) = ch
            .basic_consume_rx(BasicConsumeArguments::new(QUEUE, ""))
            .await?;
        let mut unacked = 0u64;
        while !c.stop.load(Ordering::Relaxed) {
            let Ok(next) =
                tokio::time::timeout(Duration::from_millis(200), deliveries.recv()).await
            else {
                continue;
            };
            let Some(m) = next else { break };
            let (Some(deliver), Some(body)) = (m.deliver, m.content) else {
                continue;
            };
            if take(&o, &c, &body, &mut unacked) {
                let args = BasicAckArguments::new(deliver.delivery_tag(), o.ack_every > 1);
                ch.basic_ack(args).await?;
            }
        }
        let _ = conn.close().await;
        Ok(())
    }
}

async fn publisher(o: Arc<Opts>, c: Arc<Counters>) -> Result<(), BenchError> {
    match o.client {
        Client::Lapin => Ok(with_lapin::publisher(o, c).await?),
        Client::Amqprs => with_amqprs::publisher(o, c).await,
    }
}

async fn consumer(o: Arc<Opts>, c: Arc<Counters>) -> Result<(), BenchError> {
    match o.client {
        Client::Lapin => Ok(with_lapin::consumer(o, c).await?),
        Client::Amqprs => with_amqprs::consumer(o, c).await,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |v| f64::from(*v))
}

async fn run(o: Opts) -> Result<String, BenchError> {
    with_lapin::fresh_queue(&o.url).await?;
    let o = Arc::new(o);
    let c = Arc::new(Counters::default());
    let tasks = [
        tokio::spawn(consumer(o.clone(), c.clone())),
        tokio::spawn(publisher(o.clone(), c.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.measuring.store(true, Ordering::Relaxed);
    let (p0, k0) = (
        c.published.load(Ordering::Relaxed),
        c.consumed.load(Ordering::Relaxed),
    );
    let b0 = o.broker_pid.and_then(|p| sample(&p.to_string()));
    let own0 = sample("self");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let secs = t0.elapsed().as_secs_f64();
    let b1 = o.broker_pid.and_then(|p| sample(&p.to_string()));
    let own1 = sample("self");
    let published = c.published.load(Ordering::Relaxed) - p0;
    let consumed = c.consumed.load(Ordering::Relaxed) - k0;
    c.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            eprintln!("client_bench: {e}");
        }
    }
    let mut lat = c.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let mut fields = vec![
        ("published_per_s", published as f64 / secs),
        ("consumed_per_s", consumed as f64 / secs),
        ("latency_p50_us", percentile(&lat, 0.5)),
        ("latency_p99_us", percentile(&lat, 0.99)),
    ];
    // The load generator's own CPU says whether it, not the broker, set the pace: the
    // client's publisher and consumer share this process's two tokio workers.
    if let (Some(a), Some(b)) = (own0, own1) {
        fields.push(("tool_cpu_percent", (b.cpu - a.cpu) * 100.0 / secs));
    }
    if let (Some(b0), Some(b1)) = (b0, b1) {
        let per = consumed.max(published).max(1) as f64;
        fields.extend(sample::broker_figures(&b0, &b1, per, secs));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.3}"))
        .collect();
    let name = match o.client {
        Client::Lapin => "lapin",
        Client::Amqprs => "amqprs",
    };
    Ok(format!("{{\"scenario\": \"{name}\", {}}}", body.join(", ")))
}

fn main() -> std::process::ExitCode {
    let mut o = Opts {
        client: Client::Lapin,
        url: "amqp://guest:guest@127.0.0.1:5672/%2F".into(),
        duration: 10.0,
        size: 100,
        rate: 0,
        ack_every: 1,
        prefetch: 200,
        confirm: false,
        broker_pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--client" => {
                o.client = match value().as_str() {
                    "lapin" => Client::Lapin,
                    "amqprs" => Client::Amqprs,
                    other => {
                        eprintln!("client_bench: --client is lapin or amqprs, not {other:?}");
                        return std::process::ExitCode::from(2);
                    }
                }
            }
            "--url" => o.url = value(),
            "--duration" => o.duration = value().parse().unwrap_or(o.duration),
            "--size" => o.size = value().parse().unwrap_or(o.size),
            "--rate" => o.rate = value().parse().unwrap_or(0),
            "--ack-every" => o.ack_every = value().parse::<u64>().unwrap_or(1).max(1),
            "--prefetch" => o.prefetch = value().parse().unwrap_or(o.prefetch),
            "--confirm" => o.confirm = true,
            "--broker-pid" => o.broker_pid = value().parse().ok(),
            other => {
                eprintln!("client_bench: unknown argument {other}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if o.confirm && o.client == Client::Amqprs {
        // amqprs reports confirms through a channel callback, not per publish
        eprintln!("client_bench: --confirm is measured with lapin only");
        return std::process::ExitCode::from(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(o)) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("client_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
