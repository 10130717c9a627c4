//! Scenarios for RabbitMQ's routing and consumer extensions, run against any broker:
//! - `rpc`: `--producers` clients each make request/reply round trips one after another
//!   over direct reply-to (`amq.rabbitmq.reply-to`) to one server that consumes a request
//!   queue with manual acks and answers each request: round trips per second and their
//!   latency percentiles.
//! - `topic`: a topic exchange with `--bindings` wildcard bindings (`order.N.*`, spread over
//!   `--queues` queues); producers publish with keys that each match one binding, consumers
//!   drain the queues: how routing cost holds up with many bindings.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::client::{body_size, deliver_tag, Conn};
use crate::percentile::percentile;
use crate::scenarios::{
    consumer, cpu_results, measure, report_errors, spawn_logged, stop_all, Counters, Opts, Results,
};
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use warren::protocol::method::{protocol::*, FieldTable};

const REQUESTS: &str = "warren-perf-rpc-requests";
const REPLY_TO: &str = "amq.rabbitmq.reply-to";
const TOPIC: &str = "warren-perf-topic";

/// Properties with only `reply_to` (flag bit 9), as the broker sees them.
fn reply_to_props(reply_to: &str) -> Vec<u8> {
    let mut p = vec![0x02, 0x00, reply_to.len() as u8];
    p.extend_from_slice(reply_to.as_bytes());
    p
}

/// The server: each request is answered on its `reply_to` and acked.
async fn rpc_server(opts: Opts, c: Rc<Counters>) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    conn.consume(REQUESTS, opts.prefetch, false).await?;
    let (mut reader, mut writer, frame_max) = conn.split();
    let (mut tag, mut reply_to, mut remaining) = (0u64, String::new(), 0u64);
    let mut body = Vec::new();
    while !c.stop.get() {
        let f = match tokio::time::timeout(Duration::from_millis(200), reader.frame()).await {
            Ok(f) => f?,
            Err(_) => continue,
        };
        let complete = match f.kind {
            FRAME_METHOD => {
                if let Some(t) = deliver_tag(&f.payload) {
                    tag = t;
                }
                false
            }
            FRAME_HEADER => {
                remaining = body_size(&f.payload);
                let props = f.payload.get(12..).unwrap_or(&[]);
                reply_to = warren::protocol::content::peek_properties(props)
                    .ok()
                    .and_then(|p| p.reply_to)
                    .and_then(|r| props.get(r))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                body.clear();
                remaining == 0
            }
            FRAME_BODY => {
                body.extend_from_slice(&f.payload);
                remaining = remaining.saturating_sub(f.payload.len() as u64);
                remaining == 0
            }
            _ => false,
        };
        if complete {
            writer.publish(1, "", &reply_to, &[0, 0], &body, frame_max);
            writer.ack(1, tag, false);
            writer.flush().await?;
        }
    }
    writer.close().await;
    Ok(())
}

/// One client: a request, then wait for its reply, and again.
async fn rpc_client(opts: Opts, c: Rc<Counters>) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    conn.consume(REPLY_TO, 0, true).await?;
    let (mut reader, mut writer, frame_max) = conn.split();
    let props = reply_to_props(REPLY_TO);
    let body = vec![0u8; opts.size];
    'run: while !c.stop.get() {
        let sent = Instant::now();
        writer.publish(1, "", REQUESTS, &props, &body, frame_max);
        writer.flush().await?;
        c.published.set(c.published.get() + 1);
        let mut remaining = u64::MAX;
        while remaining != 0 {
            // The server stops with the run, so a request in flight at the end gets no
            // reply: that ends the run, it is not a lost reply.
            let f = match tokio::time::timeout(Duration::from_millis(200), reader.frame()).await {
                Ok(f) => f?,
                Err(_) if c.stop.get() => break 'run,
                Err(_) if sent.elapsed() > Duration::from_secs(5) => {
                    return Err(std::io::Error::other("no reply within 5 s"));
                }
                Err(_) => continue,
            };
            match f.kind {
                FRAME_HEADER => remaining = body_size(&f.payload),
                FRAME_BODY => {
                    remaining = remaining.saturating_sub(f.payload.len() as u64);
                }
                _ => {}
            }
        }
        c.latencies_us
            .borrow_mut()
            .push(sent.elapsed().as_micros() as u32);
        c.consumed.set(c.consumed.get() + 1);
    }
    writer.close().await;
    Ok(())
}

pub async fn rpc(opts: Opts) -> std::io::Result<Results> {
    {
        let mut conn = Conn::open(&opts.url).await?;
        let _ = conn.delete_queue(REQUESTS).await;
        conn.declare_queue(REQUESTS, false).await?;
        conn.writer.close().await;
    }
    let c = Rc::new(Counters::default());
    let mut tasks = vec![spawn_logged(&c, rpc_server(opts.clone(), c.clone()))];
    for _ in 0..opts.producers.max(1) {
        tasks.push(spawn_logged(&c, rpc_client(opts.clone(), c.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.latencies_us.borrow_mut().clear();
    let (elapsed, b0, b1, m0, m1, _, replies) = measure(&opts, &c, "rpc").await;
    stop_all(&c, tasks, Duration::from_secs(6)).await;
    let mut lat = c.latencies_us.borrow().clone();
    lat.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let mut out: Results = vec![
        ("round_trips_per_s", replies as f64 / secs),
        ("rtt_p50_us", percentile(&lat, 0.5)),
        ("rtt_p99_us", percentile(&lat, 0.99)),
    ];
    cpu_results(&mut out, b0, b1, m0, m1, replies, secs);
    report_errors(&c);
    Ok(out)
}

/// Publish to the topic exchange with keys `order.N.created`, N cycling over the
/// bindings, in batches of 64 writes.
async fn topic_producer(opts: Opts, c: Rc<Counters>, bindings: usize) -> std::io::Result<()> {
    let conn = Conn::open(&opts.url).await?;
    let (_reader, mut writer, frame_max) = conn.split();
    let keys: Vec<String> = (0..bindings)
        .map(|i| format!("order.{i}.created"))
        .collect();
    let body = vec![0u8; opts.size];
    let mut n = 0usize;
    while !c.stop.get() {
        for _ in 0..64 {
            writer.publish(1, TOPIC, &keys[n % keys.len()], &[0, 0], &body, frame_max);
            n += 1;
        }
        writer.flush().await?;
        c.published.set(c.published.get() + 64);
        // stay near what the consumers take: a topic scenario measures routing, not a
        // backlog's growth
        while c.published.get() > c.consumed.get() + 20_000 && !c.stop.get() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writer.close().await;
    Ok(())
}

pub async fn topic(opts: Opts, bindings: usize) -> std::io::Result<Results> {
    let queues = opts.queues.max(1);
    let bindings = bindings.max(1);
    {
        let mut conn = Conn::open(&opts.url).await?;
        conn.rpc(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                exchange: TOPIC.into(),
                if_unused: false,
                nowait: false,
            })),
        )
        .await?;
        conn.declare_exchange(TOPIC, "topic").await?;
        for q in 0..queues {
            let name = format!("{TOPIC}-{q}");
            let _ = conn.delete_queue(&name).await;
            conn.declare_queue(&name, false).await?;
        }
        let t0 = Instant::now();
        for i in 0..bindings {
            // pipelined: send them all, then read the bind-oks
            conn.writer.method(
                1,
                &AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue: format!("{TOPIC}-{}", i % queues).into(),
                    exchange: TOPIC.into(),
                    routing_key: format!("order.{i}.*").into(),
                    nowait: false,
                    arguments: FieldTable::default(),
                })),
            );
            if i % 500 == 499 || i + 1 == bindings {
                conn.writer.flush().await?;
                for _ in 0..(i % 500 + 1) {
                    conn.reader.method().await?;
                }
            }
        }
        eprintln!(
            "topic: {bindings} bindings over {queues} queues in {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        conn.writer.close().await;
    }
    let c = Rc::new(Counters::default());
    let mut tasks = vec![];
    for q in 0..queues {
        tasks.push(spawn_logged(
            &c,
            consumer(
                opts.clone(),
                c.clone(),
                format!("{TOPIC}-{q}"),
                None,
                u64::MAX,
            ),
        ));
    }
    for _ in 0..opts.producers.max(1) {
        tasks.push(spawn_logged(
            &c,
            topic_producer(opts.clone(), c.clone(), bindings),
        ));
    }
    let (elapsed, b0, b1, m0, m1, published, consumed) = measure(&opts, &c, "topic").await;
    stop_all(&c, tasks, Duration::from_secs(10)).await;
    let secs = elapsed.as_secs_f64();
    let mut out: Results = vec![
        ("published_per_s", published as f64 / secs),
        ("consumed_per_s", consumed as f64 / secs),
    ];
    cpu_results(&mut out, b0, b1, m0, m1, consumed.max(1), secs);
    report_errors(&c);
    Ok(out)
}
