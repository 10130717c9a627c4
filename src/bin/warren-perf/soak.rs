//! The soak scenario: connections churning for `--duration` (each publisher connection
//! opens, publishes a batch with confirms and closes; each consumer connection opens,
//! consumes and acks a random number of messages and closes, leaving the rest unacked to be
//! requeued), then one final drain. Every message carries a unique id, so the end result is
//! checked exactly: each confirmed message acked once, none twice.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::Rng;
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};

use crate::client::{body_size, confirm_of, deliver_tag, Conn, Url};
use crate::scenarios::{Opts, Results};

const QUEUE: &str = "warren-perf-soak";
const BATCH: u64 = 50;

#[derive(Default)]
struct Ledger {
    confirmed: HashSet<u64>,
    acked: HashMap<u64, u32>,
    connections: u64,
    errors: Vec<String>,
}

type Shared = Rc<RefCell<Ledger>>;

async fn publisher(url: Url, worker: u64, size: usize, deadline: Instant, ledger: Shared) {
    let mut seq = 0u64;
    while Instant::now() < deadline {
        if let Err(e) = publish_batch(&url, worker, &mut seq, size, &ledger).await {
            ledger
                .borrow_mut()
                .errors
                .push(format!("publisher {worker}: {e}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn publish_batch(
    url: &Url,
    worker: u64,
    seq: &mut u64,
    size: usize,
    ledger: &Shared,
) -> std::io::Result<()> {
    let mut conn = Conn::open(url).await?;
    ledger.borrow_mut().connections += 1;
    conn.confirm_select().await?;
    let (mut reader, mut writer, frame_max) = conn.split();
    let mut ids = Vec::new();
    let mut body = vec![0u8; size.max(8)];
    for _ in 0..BATCH {
        let id = (worker << 40) | *seq;
        *seq += 1;
        body[..8].copy_from_slice(&id.to_be_bytes());
        writer.publish(1, "", QUEUE, &[0, 0], &body, frame_max);
        ids.push(id);
    }
    writer.flush().await?;
    // confirms come in order of publishing: tag n is ids[n - 1]
    let mut settled = 0u64;
    while settled < BATCH {
        let f = reader.frame().await?;
        if let Some((tag, multiple, ack)) = confirm_of(&f.payload) {
            let from = if multiple { settled + 1 } else { tag };
            for t in from..=tag {
                if ack {
                    ledger.borrow_mut().confirmed.insert(ids[(t - 1) as usize]);
                }
            }
            settled = settled.max(tag);
        }
    }
    close(reader, writer).await;
    Ok(())
}

async fn consumer(url: Url, worker: u64, deadline: Instant, ledger: Shared) {
    while Instant::now() < deadline {
        let take = rand::thread_rng().gen_range(5..300);
        if let Err(e) = consume_some(&url, take, Duration::from_millis(200), &ledger).await {
            ledger
                .borrow_mut()
                .errors
                .push(format!("consumer {worker}: {e}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Consume up to `take` messages (stopping after `idle` without any), ack each, close
/// with whatever else was delivered still unacked. Returns how many were acked.
async fn consume_some(
    url: &Url,
    take: usize,
    idle: Duration,
    ledger: &Shared,
) -> std::io::Result<usize> {
    let mut conn = Conn::open(url).await?;
    ledger.borrow_mut().connections += 1;
    conn.consume(QUEUE, 20, false).await?;
    let (mut reader, mut writer, _) = conn.split();
    let (mut got, mut tag, mut remaining, mut first) = (0, 0u64, 0u64, false);
    let mut id = None;
    while got < take {
        let f = match tokio::time::timeout(idle, reader.frame()).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        match f.kind {
            FRAME_METHOD => {
                if let Some(t) = deliver_tag(&f.payload) {
                    tag = t;
                    first = true;
                }
                continue;
            }
            FRAME_HEADER => {
                remaining = body_size(&f.payload);
                continue;
            }
            FRAME_BODY => {
                if first && f.payload.len() >= 8 {
                    id = Some(u64::from_be_bytes(
                        f.payload[..8].try_into().unwrap_or([0; 8]),
                    ));
                }
                first = false;
                remaining = remaining.saturating_sub(f.payload.len() as u64);
                if remaining > 0 {
                    continue;
                }
            }
            _ => continue,
        }
        writer.ack(1, tag, false);
        writer.flush().await?;
        if let Some(id) = id.take() {
            *ledger.borrow_mut().acked.entry(id).or_default() += 1;
        }
        got += 1;
    }
    close(reader, writer).await;
    Ok(got)
}

/// Close as a well-behaved client does: connection.close, then wait for close-ok before
/// dropping the socket. Dropping it at once can make the kernel reset the connection and
/// discard acks the broker has not read yet; those messages are then rightly redelivered.
async fn close(mut reader: crate::client::Reader, writer: crate::client::Writer) {
    writer.close().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(f) = reader.frame().await {
            if f.kind == FRAME_METHOD && f.payload.get(..4) == Some(&[0, 10, 0, 51]) {
                break;
            }
        }
    })
    .await;
}

pub async fn soak(opts: Opts) -> std::io::Result<Results> {
    let mut setup = Conn::open(&opts.url).await?;
    setup.declare_queue(QUEUE, false).await?;
    let ledger: Shared = Rc::default();
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = Vec::new();
    for w in 0..opts.producers as u64 {
        tasks.push(tokio::task::spawn_local(publisher(
            opts.url.clone(),
            w,
            opts.size,
            deadline,
            ledger.clone(),
        )));
    }
    for w in 0..opts.consumers as u64 {
        tasks.push(tokio::task::spawn_local(consumer(
            opts.url.clone(),
            w,
            deadline,
            ledger.clone(),
        )));
    }
    let mut last = Instant::now();
    for t in tasks {
        while !t.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                let l = ledger.borrow();
                eprintln!(
                    "soak: {:>4.0}s {} connections, {} confirmed, {} acked",
                    started.elapsed().as_secs_f64(),
                    l.connections,
                    l.confirmed.len(),
                    l.acked.len()
                );
            }
        }
    }
    // drain what is left, as one last consumer
    while consume_some(&opts.url, usize::MAX, Duration::from_millis(500), &ledger).await? > 0 {}
    let left = setup.declare_queue(QUEUE, false).await?;
    let l = ledger.borrow();
    let duplicates = l.acked.values().filter(|n| **n > 1).count();
    let lost = l
        .confirmed
        .iter()
        .filter(|id| !l.acked.contains_key(id))
        .count();
    for e in l.errors.iter().take(5) {
        eprintln!("soak: {e}");
    }
    let results = vec![
        ("seconds", started.elapsed().as_secs_f64()),
        ("connections_opened", l.connections as f64),
        ("confirmed", l.confirmed.len() as f64),
        ("acked", l.acked.len() as f64),
        ("duplicates", duplicates as f64),
        ("lost", lost as f64),
        ("left_in_queue", left as f64),
        ("client_errors", l.errors.len() as f64),
    ];
    if duplicates > 0 || lost > 0 || left > 0 {
        return Err(std::io::Error::other(format!(
            "{lost} confirmed messages never acked, {duplicates} acked twice, {left} left: {results:?}"
        )));
    }
    Ok(results)
}
