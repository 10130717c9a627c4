//! The `delayed` scenario: an `x-delayed-message` exchange (RabbitMQ's delayed-message
//! plugin, built into Warren).
//! 1. `--messages` persistent messages (default a million) are published with confirms and
//!    an `x-delay` of an hour or more, so they stay pending: publish rate and the broker's
//!    RSS before and after (with `--broker-pid`) show what pending delays cost.
//! 2. 10,000 more with delays of 1 to 2 s are consumed as they come due: how late each
//!    arrives after its due time (p50, p99, max) and whether any came early.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::client::{confirm_of, Conn};
use crate::percentile::percentile;
use crate::scenarios::{Opts, Results};
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use warren::protocol::method::{protocol::*, AMQPValue, FieldTable, LongString};

const EXCHANGE: &str = "warren-perf-delayed";
const PENDING: &str = "warren-perf-delayed-pending";
const DUE: &str = "warren-perf-delayed-due";
const DUE_MESSAGES: u64 = 10_000;

/// Properties: headers {x-delay: ms} and delivery mode 2, encoded as on the wire.
fn delayed_props(ms: i64) -> Vec<u8> {
    let mut table = Vec::new();
    table.push(7u8);
    table.extend_from_slice(b"x-delay");
    table.push(b'l');
    table.extend_from_slice(&ms.to_be_bytes());
    let mut p = vec![0x30, 0x00];
    p.extend_from_slice(&(table.len() as u32).to_be_bytes());
    p.extend_from_slice(&table);
    p.push(2);
    p
}

async fn declare(opts: &Opts) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString(LongString::from(&b"direct"[..])),
    );
    conn.rpc(
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: EXCHANGE.into(),
            if_unused: false,
            nowait: false,
        })),
    )
    .await?;
    let ok = conn
        .rpc(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: EXCHANGE.into(),
                kind: "x-delayed-message".into(),
                passive: false,
                durable: true,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: args,
            })),
        )
        .await?;
    if !matches!(ok, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))) {
        return Err(std::io::Error::other(format!(
            "the broker has no x-delayed-message exchange type: {ok:?}"
        )));
    }
    for q in [PENDING, DUE] {
        let _ = conn.delete_queue(q).await;
        conn.declare_queue(q, true).await?;
        conn.rpc(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: q.into(),
                exchange: EXCHANGE.into(),
                routing_key: q.into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
    }
    conn.writer.close().await;
    Ok(())
}

/// Publish `n` messages to `routing_key`, each with the delay `delay(i)` and a body of
/// the due time in microseconds since `t0`, keeping up to `window` unconfirmed.
async fn publish(
    opts: &Opts,
    routing_key: &str,
    n: u64,
    window: u64,
    t0: Instant,
    delay: impl Fn(u64) -> i64,
) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    conn.confirm_select().await?;
    let (mut reader, mut writer, frame_max) = conn.split();
    let mut body = vec![0u8; opts.size.max(8)];
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < n {
        while sent < n && sent - acked < window {
            let ms = delay(sent);
            let due = t0.elapsed().as_micros() as u64 + ms as u64 * 1000;
            body[..8].copy_from_slice(&due.to_be_bytes());
            writer.publish(
                1,
                EXCHANGE,
                routing_key,
                &delayed_props(ms),
                &body,
                frame_max,
            );
            sent += 1;
        }
        writer.flush().await?;
        let f = reader.frame().await?;
        if f.kind == FRAME_METHOD {
            if let Some((tag, _, ack)) = confirm_of(&f.payload) {
                if !ack {
                    return Err(std::io::Error::other("a delayed publish was nacked"));
                }
                acked = acked.max(tag);
            }
        }
    }
    writer.close().await;
    Ok(())
}

pub async fn delayed(opts: Opts) -> std::io::Result<Results> {
    declare(&opts).await?;
    let window = if opts.confirm > 0 { opts.confirm } else { 1000 } as u64;
    let mut out = Results::new();

    let rss0 = opts.broker.sample().map(|s| s.rss_kb);
    let t0 = Instant::now();
    let n = opts.messages;
    eprintln!("delayed: publishing {n} messages due in an hour or more");
    publish(&opts, PENDING, n, window, t0, |i| {
        3_600_000 + (i % 3_600_000) as i64
    })
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    out.push(("pending_messages", n as f64));
    out.push(("pending_publish_per_s", n as f64 / secs));
    if let (Some(before), Some(after)) = (rss0, opts.broker.sample().map(|s| s.rss_kb)) {
        out.push(("broker_rss_mb_before", before as f64 / 1024.0));
        out.push(("broker_rss_mb_with_pending", after as f64 / 1024.0));
    }

    eprintln!("delayed: {DUE_MESSAGES} messages due in 1 to 2 s, consumed as they come due");
    let mut conn = Conn::open(&opts.url).await?;
    conn.consume(DUE, 0, true).await?;
    let (mut reader, _writer, _) = conn.split();
    let t0 = Instant::now();
    let opts2 = opts.clone();
    let publisher = tokio::task::spawn_local(async move {
        publish(&opts2, DUE, DUE_MESSAGES, window, t0, |i| {
            1000 + (i * 7919 % 1000) as i64
        })
        .await
    });
    let lateness = Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut early = 0u64;
    let mut body = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (lateness.borrow().len() as u64) < DUE_MESSAGES && Instant::now() < deadline {
        let f = match tokio::time::timeout(Duration::from_secs(5), reader.frame()).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        match f.kind {
            FRAME_HEADER => body.clear(),
            FRAME_BODY => {
                body.extend_from_slice(&f.payload);
                if body.len() >= 8 {
                    let now = t0.elapsed().as_micros() as u64;
                    let due = u64::from_be_bytes(body[..8].try_into().unwrap_or([0; 8]));
                    if now < due {
                        early += 1;
                    }
                    lateness
                        .borrow_mut()
                        .push(now.saturating_sub(due) as f64 / 1000.0);
                    body.clear();
                }
            }
            _ => {}
        }
    }
    publisher
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mut l = lateness.borrow().clone();
    l.sort_by(f64::total_cmp);
    out.push(("due_messages_received", l.len() as f64));
    out.push(("due_early", early as f64));
    out.push(("due_lateness_p50_ms", percentile(&l, 0.5)));
    out.push(("due_lateness_p99_ms", percentile(&l, 0.99)));
    out.push(("due_lateness_max_ms", l.last().copied().unwrap_or(0.0)));
    Ok(out)
}
