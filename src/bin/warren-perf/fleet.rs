//! The `fleet` scenario: many connections, each with one channel and one consumer on its own
//! exclusive queue, the shape of a fleet of small services.
//! 1. Idle: the broker's RSS per connection once all are open and consuming.
//! 2. Busy: each connection publishes to its own queue at `--rate` / connections msg/s
//!    (10 msg/s each by default) and acks each delivery on its own: the broker's CPU for
//!    the whole fleet and per message.

use std::rc::Rc;
use std::time::Duration;

use crate::client::{Conn, Deliveries};
use crate::scenarios::{cpu_results, measure, report_errors, spawn_logged, stop_all, Counters};
use crate::scenarios::{Opts, Results};
use warren::protocol::method::{protocol::*, FieldTable};

/// Read and write buffers each connection starts with (they grow if needed).
const BUFFER: usize = 4096;

async fn consuming(opts: &Opts, i: usize) -> std::io::Result<(Conn, String)> {
    let mut conn = Conn::open_buffered(&opts.url, BUFFER).await?;
    let name = format!("warren-perf-fleet-{i}");
    conn.rpc(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.as_str().into(),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await?;
    conn.consume(&name, opts.prefetch, false).await?;
    Ok((conn, name))
}

/// One member of the busy fleet: publish to its own queue at `every`, ack what arrives.
async fn member(
    opts: Opts,
    c: Rc<Counters>,
    conn: Conn,
    queue: String,
    every: Duration,
) -> std::io::Result<()> {
    let (mut reader, mut writer, frame_max) = conn.split();
    let body = vec![0u8; opts.size];
    let mut tick = tokio::time::interval(every);
    // spread the fleet's publishes over the period instead of all at once
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::time::sleep(every.mul_f64(rand_fraction(&queue))).await;
    let mut deliveries = Deliveries::default();
    while !c.stop.get() {
        tokio::select! {
            _ = tick.tick() => {
                writer.publish(1, "", &queue, &[0, 0], &body, frame_max);
                writer.flush().await?;
                c.published.set(c.published.get() + 1);
            }
            f = reader.frame() => {
                if let Some(tag) = deliveries.complete(&f?) {
                    writer.ack(1, tag, false);
                    writer.flush().await?;
                    c.consumed.set(c.consumed.get() + 1);
                }
            }
        }
    }
    writer.close().await;
    Ok(())
}

/// A fraction in [0, 1) from a name, to stagger the members' first publish.
fn rand_fraction(name: &str) -> f64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % 10_000) as f64 / 10_000.0
}

pub async fn fleet(opts: Opts) -> std::io::Result<Results> {
    let n = opts.connections.max(1);
    let before = opts.broker.sample();
    let mut members = Vec::with_capacity(n);
    for i in 0..n {
        members.push(consuming(&opts, i).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // let the broker settle
    let idle = opts.broker.sample();
    let mut out: Results = vec![("connections", n as f64)];
    if let (Some(b), Some(a)) = (before, idle) {
        out.push(("idle_broker_rss_mb", a.rss_kb as f64 / 1024.0));
        out.push((
            "idle_rss_kb_per_connection",
            (a.rss_kb as f64 - b.rss_kb as f64) / n as f64,
        ));
    }
    let per_connection = if opts.rate > 0 {
        opts.rate as f64 / n as f64
    } else {
        10.0
    };
    let every = Duration::from_secs_f64(1.0 / per_connection);
    eprintln!("fleet: {n} connections consuming; each now publishes {per_connection} msg/s");
    let c = Rc::new(Counters::default());
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(conn, queue)| spawn_logged(&c, member(opts.clone(), c.clone(), conn, queue, every)))
        .collect();
    let (elapsed, b0, b1, m0, m1, published, consumed) = measure(&opts, &c, "fleet").await;
    stop_all(&c, tasks, Duration::from_secs(10)).await;
    let secs = elapsed.as_secs_f64();
    out.push(("busy_published_per_s", published as f64 / secs));
    out.push(("busy_consumed_per_s", consumed as f64 / secs));
    cpu_results(&mut out, b0, b1, m0, m1, consumed.max(published), secs);
    report_errors(&c);
    Ok(out)
}
