//! The load scenarios: throughput, confirms, latency, fanout, connections, backlog. Each runs
//! against any broker URL, prints a progress line per second and returns named results.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::client::{body_size, confirm_of, deliver_tag, Conn, Url};
use crate::percentile::percentile;
use crate::sample::{Probe, Sample};
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};

#[derive(Debug, Clone)]
pub struct Opts {
    pub url: Url,
    pub size: usize,
    pub producers: usize,
    pub consumers: usize,
    pub duration: Duration,
    /// Total publish rate (msg/s); 0 = as fast as possible.
    pub rate: u64,
    pub prefetch: u16,
    /// Consumers ack every this many messages (`multiple` when above 1).
    pub ack_every: u16,
    /// Flush after each publish (a client library's pattern) instead of batching writes.
    pub write_per_publish: bool,
    /// Unconfirmed publishes allowed per producer channel; 0 = no confirms.
    pub confirm: usize,
    /// Channels per producer and consumer connection, each a producer or a consumer.
    pub channels: u16,
    pub persistent: bool,
    pub queues: usize,
    pub connections: usize,
    pub messages: u64,
    /// backlog: leave the queue full / only drain it
    pub keep: bool,
    pub drain_only: bool,
    pub broker: Probe,
}

#[derive(Default)]
pub struct Counters {
    pub published: Cell<u64>,
    pub confirmed: Cell<u64>,
    pub consumed: Cell<u64>,
    pub latencies_us: std::cell::RefCell<Vec<u32>>,
    pub stop: Cell<bool>,
    pub errors: std::cell::RefCell<Vec<String>>,
}

pub type Results = Vec<(&'static str, f64)>;

fn props(persistent: bool) -> &'static [u8] {
    if persistent {
        &[0x10, 0x00, 2]
    } else {
        &[0x00, 0x00]
    }
}

/// Publish until told to stop (or `limit` messages), honouring rate and confirm window.
/// With `opts.channels` above 1 the connection publishes on that many channels in turn,
/// each with its own confirm window (PerfTest's channels per connection).
pub async fn producer(
    opts: Opts,
    c: Rc<Counters>,
    exchange: String,
    routing_key: String,
    stamp: Option<Instant>,
    rate: u64,
    limit: u64,
) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    let channels = opts.channels.max(1);
    for ch in 2..=channels {
        conn.open_channel(ch).await?;
    }
    if opts.confirm > 0 {
        for ch in 1..=channels {
            conn.confirm_select_on(ch).await?;
        }
    }
    let (mut reader, mut writer, frame_max) = conn.split();
    // highest delivery tag confirmed on each channel (tags count per channel)
    let acked: Rc<Vec<Cell<u64>>> = Rc::new((0..channels).map(|_| Cell::new(0)).collect());
    let wake = Rc::new(Notify::new());
    if opts.confirm > 0 {
        let (acked, wake, c) = (acked.clone(), wake.clone(), c.clone());
        tokio::task::spawn_local(async move {
            while let Ok(f) = reader.frame().await {
                if f.kind == FRAME_METHOD {
                    let on = acked.get(usize::from(f.channel).wrapping_sub(1));
                    if let (Some((tag, _multiple, _ack)), Some(on)) = (confirm_of(&f.payload), on) {
                        let newly = tag.saturating_sub(on.get());
                        on.set(on.get().max(tag));
                        c.confirmed.set(c.confirmed.get() + newly);
                        wake.notify_one();
                    }
                }
            }
        });
    }
    let confirmed = || acked.iter().map(Cell::get).sum::<u64>();
    // publishes sent on each channel, and the channel whose turn is next
    let mut sent_on = vec![0u64; usize::from(channels)];
    let mut next = 0usize;
    let mut body = vec![0u8; opts.size.max(if stamp.is_some() { 8 } else { 0 })];
    let started = Instant::now();
    let mut sent = 0u64;
    while !c.stop.get() && sent < limit {
        let mut batch = 64u64.min(limit - sent);
        if rate > 0 {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if due <= sent {
                tokio::time::sleep(Duration::from_micros(200)).await;
                continue;
            }
            batch = batch.min(due - sent);
        }
        let mut published = 0;
        for _ in 0..batch {
            // the next channel in turn that has room in its own confirm window
            let n = usize::from(channels);
            let Some(k) = (0..n)
                .map(|k| (next + k) % n)
                .find(|&k| opts.confirm == 0 || sent_on[k] - acked[k].get() < opts.confirm as u64)
            else {
                break;
            };
            next = k + 1;
            sent_on[k] += 1;
            if let Some(t0) = stamp {
                body[..8].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_be_bytes());
            }
            writer.publish(
                k as u16 + 1,
                &exchange,
                &routing_key,
                props(opts.persistent),
                &body,
                frame_max,
            );
            published += 1;
            if opts.write_per_publish {
                writer.flush().await?;
            }
        }
        writer.flush().await?;
        sent += published;
        c.published.set(c.published.get() + published);
        if published == 0 {
            // every channel's confirm window is full
            wake.notified().await;
        }
    }
    if opts.confirm > 0 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while confirmed() < sent && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
        }
    }
    writer.close().await;
    Ok(())
}

/// channel.close or connection.close, which a consumer's frame loop must not skip.
fn is_close(payload: &[u8]) -> bool {
    payload.starts_with(&[0, 20, 0, 40]) || payload.starts_with(&[0, 10, 0, 50])
}

/// Where one channel's consumer stands: the delivery it is reading and what it holds.
#[derive(Default, Clone, Copy)]
struct ConsumerChannel {
    last_tag: u64,
    unacked: u64,
    remaining: u64,
    first_body: bool,
}

/// Consume with manual acks (every `ack_every`, multiple when above 1) until stopped, on
/// `opts.channels` channels of one connection, each its own consumer with its own prefetch.
pub async fn consumer(
    opts: Opts,
    c: Rc<Counters>,
    queue: String,
    stamp: Option<Instant>,
    limit: u64,
) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    let channels = opts.channels.max(1);
    if channels == 1 {
        conn.consume(&queue, opts.prefetch, false).await?;
    } else {
        for ch in 2..=channels {
            conn.open_channel(ch).await?;
        }
        // the frame loop below skips the -oks (see `consume_pipelined`)
        for ch in 1..=channels {
            conn.consume_pipelined(ch, &queue, opts.prefetch);
        }
        conn.writer.flush().await?;
    }
    let (mut reader, mut writer, _) = conn.split();
    let every = u64::from(opts.ack_every.max(1));
    let mut state = vec![ConsumerChannel::default(); usize::from(channels)];
    let mut got = 0u64;
    while !c.stop.get() && got < limit {
        let f = match tokio::time::timeout(Duration::from_millis(200), reader.frame()).await {
            Ok(f) => f?,
            Err(_) => {
                // idle: settle what we hold so the broker can send more
                for (i, s) in state.iter_mut().enumerate() {
                    if s.unacked > 0 {
                        writer.ack(i as u16 + 1, s.last_tag, true);
                        s.unacked = 0;
                    }
                }
                writer.flush().await?;
                continue;
            }
        };
        let Some(s) = state.get_mut(usize::from(f.channel).wrapping_sub(1)) else {
            continue;
        };
        let mut complete = false;
        match f.kind {
            FRAME_METHOD => {
                if let Some(tag) = deliver_tag(&f.payload) {
                    s.last_tag = tag;
                    s.first_body = true;
                } else if is_close(&f.payload) {
                    // a measurement that lost a channel is not a measurement
                    return Err(std::io::Error::other(format!(
                        "closed by the broker: {:?}",
                        warren::protocol::method::decode(&f.payload)
                    )));
                }
            }
            FRAME_HEADER => {
                s.remaining = body_size(&f.payload);
                complete = s.remaining == 0;
            }
            FRAME_BODY => {
                if s.first_body && f.payload.len() >= 8 {
                    if let Some(t0) = stamp {
                        let sent = u64::from_be_bytes(f.payload[..8].try_into().unwrap_or([0; 8]));
                        let now = t0.elapsed().as_nanos() as u64;
                        c.latencies_us
                            .borrow_mut()
                            .push((now.saturating_sub(sent) / 1000) as u32);
                    }
                }
                s.first_body = false;
                s.remaining = s.remaining.saturating_sub(f.payload.len() as u64);
                complete = s.remaining == 0;
            }
            _ => {}
        }
        if complete {
            got += 1;
            s.unacked += 1;
            c.consumed.set(c.consumed.get() + 1);
            if s.unacked >= every {
                writer.ack(f.channel, s.last_tag, every > 1);
                writer.flush().await?;
                s.unacked = 0;
            }
        }
    }
    for (i, s) in state.iter().enumerate() {
        if s.unacked > 0 {
            writer.ack(i as u16 + 1, s.last_tag, true);
        }
    }
    writer.close().await;
    Ok(())
}

/// Tell every task to stop and wait for each (bounded by `grace`).
pub(crate) async fn stop_all(
    c: &Counters,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
) {
    c.stop.set(true);
    for t in tasks {
        let _ = tokio::time::timeout(grace, t).await;
    }
}

pub(crate) fn spawn_logged<F: std::future::Future<Output = std::io::Result<()>> + 'static>(
    c: &Rc<Counters>,
    f: F,
) -> tokio::task::JoinHandle<()> {
    let c = c.clone();
    tokio::task::spawn_local(async move {
        if let Err(e) = f.await {
            c.errors.borrow_mut().push(e.to_string());
        }
    })
}

/// Run for `opts.duration`, printing one line a second; returns the measured window.
pub(crate) async fn measure(
    opts: &Opts,
    c: &Rc<Counters>,
    what: &str,
) -> (
    Duration,
    Option<Sample>,
    Option<Sample>,
    Sample,
    Sample,
    u64,
    u64,
) {
    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
    let (p0, k0) = (c.published.get(), c.consumed.get());
    let b0 = opts.broker.sample();
    let me = Probe::this_process();
    let m0 = me.sample().expect("own /proc");
    let t0 = Instant::now();
    let mut last = (t0, p0, k0);
    while t0.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        let (p, k) = (c.published.get(), c.consumed.get());
        let dt = now.duration_since(last.0).as_secs_f64();
        let broker = opts
            .broker
            .sample()
            .map(|s| format!(" broker rss {} MB", s.rss_kb / 1024))
            .unwrap_or_default();
        eprintln!(
            "{what} t={:>3.0}s published {:>8.0}/s consumed {:>8.0}/s{broker}",
            t0.elapsed().as_secs_f64(),
            (p - last.1) as f64 / dt,
            (k - last.2) as f64 / dt
        );
        last = (now, p, k);
    }
    let elapsed = t0.elapsed();
    let b1 = opts.broker.sample();
    let m1 = me.sample().expect("own /proc");
    (
        elapsed,
        b0,
        b1,
        m0,
        m1,
        c.published.get() - p0,
        c.consumed.get() - k0,
    )
}

pub(crate) fn cpu_results(
    out: &mut Results,
    b0: Option<Sample>,
    b1: Option<Sample>,
    m0: Sample,
    m1: Sample,
    per: u64,
    elapsed: f64,
) {
    let per = per.max(1) as f64;
    if let (Some(b0), Some(b1)) = (b0, b1) {
        out.extend(crate::sample::broker_figures(&b0, &b1, per, elapsed));
    }
    out.push(("tool_cpu_us_per_msg", (m1.cpu - m0.cpu) * 1e6 / per));
    // warren-perf runs on one thread: near 100 here, it set the pace, not the broker.
    out.push(("tool_cpu_percent", (m1.cpu - m0.cpu) * 100.0 / elapsed));
}

/// Start from an empty queue of this name.
async fn fresh_queue(opts: &Opts, name: &str, durable: bool) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    let _ = conn.delete_queue(name).await;
    conn.declare_queue(name, durable).await?;
    conn.writer.close().await;
    Ok(())
}

pub async fn throughput(opts: Opts, name: &'static str) -> std::io::Result<Results> {
    let queue = format!("warren-perf-{name}");
    fresh_queue(&opts, &queue, opts.persistent).await?;
    let c = Rc::new(Counters::default());
    let mut tasks = vec![];
    for _ in 0..opts.consumers {
        tasks.push(spawn_logged(
            &c,
            consumer(opts.clone(), c.clone(), queue.clone(), None, u64::MAX),
        ));
    }
    let rate = opts.rate / opts.producers.max(1) as u64;
    for _ in 0..opts.producers {
        tasks.push(spawn_logged(
            &c,
            producer(
                opts.clone(),
                c.clone(),
                String::new(),
                queue.clone(),
                None,
                rate,
                u64::MAX,
            ),
        ));
    }
    let (elapsed, b0, b1, m0, m1, published, consumed) = measure(&opts, &c, name).await;
    stop_all(&c, tasks, Duration::from_secs(35)).await;
    let secs = elapsed.as_secs_f64();
    let mut out: Results = vec![
        ("published_per_s", published as f64 / secs),
        ("consumed_per_s", consumed as f64 / secs),
    ];
    if opts.confirm > 0 {
        out.push(("confirmed_total", c.confirmed.get() as f64));
    }
    cpu_results(&mut out, b0, b1, m0, m1, consumed.max(published), secs);
    report_errors(&c);
    Ok(out)
}

pub async fn latency(opts: Opts) -> std::io::Result<Results> {
    let queue = "warren-perf-latency".to_string();
    fresh_queue(&opts, &queue, false).await?;
    let c = Rc::new(Counters::default());
    let t0 = Instant::now();
    let rate = if opts.rate == 0 { 10_000 } else { opts.rate };
    let tasks = vec![
        spawn_logged(
            &c,
            consumer(opts.clone(), c.clone(), queue.clone(), Some(t0), u64::MAX),
        ),
        spawn_logged(
            &c,
            producer(
                opts.clone(),
                c.clone(),
                String::new(),
                queue.clone(),
                Some(t0),
                rate,
                u64::MAX,
            ),
        ),
    ];
    // discard warm-up samples
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.latencies_us.borrow_mut().clear();
    let (elapsed, b0, b1, m0, m1, published, consumed) = measure(&opts, &c, "latency").await;
    stop_all(&c, tasks, Duration::from_secs(5)).await;
    let mut lat = c.latencies_us.borrow().clone();
    lat.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let mut out: Results = vec![
        ("published_per_s", published as f64 / secs),
        ("consumed_per_s", consumed as f64 / secs),
        ("latency_p50_us", percentile(&lat, 0.5)),
        ("latency_p99_us", percentile(&lat, 0.99)),
        ("latency_p999_us", percentile(&lat, 0.999)),
        ("latency_max_us", lat.last().copied().unwrap_or(0) as f64),
    ];
    cpu_results(&mut out, b0, b1, m0, m1, consumed, secs);
    report_errors(&c);
    Ok(out)
}

pub async fn fanout(opts: Opts) -> std::io::Result<Results> {
    let exchange = "warren-perf-fanout".to_string();
    let n = opts.queues.max(1);
    {
        let mut conn = Conn::open(&opts.url).await?;
        conn.declare_exchange(&exchange, "fanout").await?;
        for i in 0..n {
            let q = format!("warren-perf-fanout-{i}");
            let _ = conn.delete_queue(&q).await;
            conn.declare_queue(&q, false).await?;
            conn.bind(&q, &exchange).await?;
        }
        conn.writer.close().await;
    }
    let c = Rc::new(Counters::default());
    let mut tasks = vec![];
    for i in 0..n {
        tasks.push(spawn_logged(
            &c,
            consumer(
                opts.clone(),
                c.clone(),
                format!("warren-perf-fanout-{i}"),
                None,
                u64::MAX,
            ),
        ));
    }
    tasks.push(spawn_logged(
        &c,
        producer(
            opts.clone(),
            c.clone(),
            exchange.clone(),
            String::new(),
            None,
            opts.rate,
            u64::MAX,
        ),
    ));
    let (elapsed, b0, b1, m0, m1, published, consumed) = measure(&opts, &c, "fanout").await;
    stop_all(&c, tasks, Duration::from_secs(5)).await;
    let secs = elapsed.as_secs_f64();
    let mut out: Results = vec![
        ("published_per_s", published as f64 / secs),
        ("delivered_per_s", consumed as f64 / secs),
    ];
    cpu_results(&mut out, b0, b1, m0, m1, consumed, secs);
    report_errors(&c);
    Ok(out)
}

pub async fn connections(opts: Opts) -> std::io::Result<Results> {
    let before = opts.broker.sample();
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        conns.push(Conn::open(&opts.url).await?);
    }
    let open_time = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the broker settle
    let after = opts.broker.sample();
    let n = conns.len() as f64;
    for c in conns {
        c.writer.close().await;
    }
    let mut out: Results = vec![
        ("connections", n),
        ("open_ms_total", open_time.as_secs_f64() * 1e3),
        ("open_us_each", open_time.as_secs_f64() * 1e6 / n),
    ];
    if let (Some(b), Some(a)) = (before, after) {
        out.push(("broker_rss_before_mb", b.rss_kb as f64 / 1024.0));
        out.push(("broker_rss_after_mb", a.rss_kb as f64 / 1024.0));
        out.push((
            "broker_rss_kb_per_connection",
            (a.rss_kb as f64 - b.rss_kb as f64) / n,
        ));
    }
    Ok(out)
}

pub async fn backlog(mut opts: Opts) -> std::io::Result<Results> {
    let queue = "warren-perf-backlog".to_string();
    if opts.drain_only {
        return drain(opts, queue).await;
    }
    fresh_queue(&opts, &queue, opts.persistent).await?;
    let m = opts.messages;
    if opts.confirm == 0 {
        opts.confirm = 1000; // to know when the backlog is really in the broker
    }
    let before = opts.broker.sample();
    let c = Rc::new(Counters::default());
    let t0 = Instant::now();
    let per = m / opts.producers.max(1) as u64;
    let tasks: Vec<_> = (0..opts.producers.max(1))
        .map(|_| {
            spawn_logged(
                &c,
                producer(
                    opts.clone(),
                    c.clone(),
                    String::new(),
                    queue.clone(),
                    None,
                    0,
                    per,
                ),
            )
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let fill = t0.elapsed();
    let filled = c.published.get();
    tokio::time::sleep(Duration::from_secs(3)).await; // settle
    let full = opts.broker.sample();
    if opts.keep {
        let mut out: Results = vec![
            ("messages", filled as f64),
            ("fill_per_s", filled as f64 / fill.as_secs_f64()),
        ];
        if let (Some(b), Some(f)) = (before, full) {
            out.push(("broker_rss_before_mb", b.rss_kb as f64 / 1024.0));
            out.push(("broker_rss_full_mb", f.rss_kb as f64 / 1024.0));
            out.push((
                "broker_rss_bytes_per_msg",
                (f.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / filled.max(1) as f64,
            ));
        }
        return Ok(out);
    }
    let t1 = Instant::now();
    let tasks: Vec<_> = (0..opts.consumers.max(1))
        .map(|_| {
            spawn_logged(
                &c,
                consumer(
                    opts.clone(),
                    c.clone(),
                    queue.clone(),
                    None,
                    filled / opts.consumers.max(1) as u64,
                ),
            )
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let drain = t1.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await; // let the broker give memory back
    let after = opts.broker.sample();
    let mut out: Results = vec![
        ("messages", filled as f64),
        ("fill_per_s", filled as f64 / fill.as_secs_f64()),
        ("drain_per_s", c.consumed.get() as f64 / drain.as_secs_f64()),
    ];
    if let (Some(b), Some(f), Some(a)) = (before, full, after) {
        out.push(("broker_rss_before_mb", b.rss_kb as f64 / 1024.0));
        out.push(("broker_rss_full_mb", f.rss_kb as f64 / 1024.0));
        out.push(("broker_rss_after_mb", a.rss_kb as f64 / 1024.0));
        out.push((
            "broker_rss_bytes_per_msg",
            (f.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / filled.max(1) as f64,
        ));
    }
    report_errors(&c);
    Ok(out)
}

/// Drain whatever the queue holds (after a restart), with the broker's RSS before and after.
async fn drain(opts: Opts, queue: String) -> std::io::Result<Results> {
    let n = {
        let mut conn = Conn::open(&opts.url).await?;
        let n = conn.declare_queue(&queue, opts.persistent).await?;
        conn.writer.close().await;
        n as u64
    };
    let before = opts.broker.sample();
    let c = Rc::new(Counters::default());
    let t = Instant::now();
    spawn_logged(&c, consumer(opts.clone(), c.clone(), queue, None, n))
        .await
        .ok();
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = opts.broker.sample();
    let mut out: Results = vec![
        ("messages", c.consumed.get() as f64),
        ("drain_per_s", c.consumed.get() as f64 / took.as_secs_f64()),
    ];
    if let (Some(b), Some(a)) = (before, after) {
        out.push(("broker_rss_before_mb", b.rss_kb as f64 / 1024.0));
        out.push(("broker_rss_after_mb", a.rss_kb as f64 / 1024.0));
    }
    report_errors(&c);
    Ok(out)
}

pub(crate) fn report_errors(c: &Counters) {
    for e in c.errors.borrow().iter().take(3) {
        eprintln!("warning: {e}");
    }
}
