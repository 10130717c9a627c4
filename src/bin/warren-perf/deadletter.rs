//! Dead-letter scenarios: how fast messages move through a dead-letter exchange.
//! - `deadletter-ttl`: producers publish to a queue with `x-message-ttl: 0` whose
//!   dead-letter exchange sends everything on to a consumed queue (the delay-queue path).
//! - `deadletter-reject`: a consumer rejects every message of the work queue one by one
//!   (requeue=false); dead-lettering moves them to a consumed queue (the retry path).
//!
//! `consumed_per_s` counts messages that arrived through the dead-letter exchange.

use std::rc::Rc;
use std::time::Duration;

use crate::client::{Conn, Deliveries};
use crate::scenarios::{
    consumer, cpu_results, measure, producer, report_errors, spawn_logged, stop_all, Counters,
    Opts, Results,
};
use warren::protocol::method::{AMQPValue, FieldTable, LongString};

const WORK: &str = "warren-perf-dl-work";
const TARGET: &str = "warren-perf-dl-target";

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

async fn declare(opts: &Opts, ttl_zero: bool) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    for q in [WORK, TARGET] {
        let _ = conn.delete_queue(q).await;
    }
    conn.declare_queue(TARGET, opts.persistent).await?;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), text(""));
    args.insert("x-dead-letter-routing-key".into(), text(TARGET));
    if ttl_zero {
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(0));
    }
    conn.declare_queue_with(WORK, opts.persistent, args).await?;
    conn.writer.close().await;
    Ok(())
}

/// Consume the work queue and reject each message as it arrives.
async fn rejecter(opts: Opts, c: Rc<Counters>) -> std::io::Result<()> {
    let mut conn = Conn::open(&opts.url).await?;
    conn.consume(WORK, opts.prefetch, false).await?;
    let (mut reader, mut writer, _) = conn.split();
    let mut deliveries = Deliveries::default();
    while !c.stop.get() {
        let f = match tokio::time::timeout(Duration::from_millis(200), reader.frame()).await {
            Ok(f) => f?,
            Err(_) => continue,
        };
        if let Some(tag) = deliveries.complete(&f) {
            writer.reject(1, tag);
            writer.flush().await?;
        }
    }
    writer.close().await;
    Ok(())
}

pub async fn deadletter(opts: Opts, via_reject: bool) -> std::io::Result<Results> {
    let name = if via_reject {
        "deadletter-reject"
    } else {
        "deadletter-ttl"
    };
    declare(&opts, !via_reject).await?;
    let c = Rc::new(Counters::default());
    let mut tasks = vec![];
    for _ in 0..opts.consumers {
        tasks.push(spawn_logged(
            &c,
            consumer(opts.clone(), c.clone(), TARGET.into(), None, u64::MAX),
        ));
        if via_reject {
            tasks.push(spawn_logged(&c, rejecter(opts.clone(), c.clone())));
        }
    }
    let rate = opts.rate / opts.producers.max(1) as u64;
    for _ in 0..opts.producers {
        tasks.push(spawn_logged(
            &c,
            producer(
                opts.clone(),
                c.clone(),
                String::new(),
                WORK.into(),
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
    cpu_results(&mut out, b0, b1, m0, m1, consumed.max(1), secs);
    report_errors(&c);
    Ok(out)
}
