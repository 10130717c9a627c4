//! A flash sale: one publisher pushes five times the memory watermark as fast as it can
//! while the only consumer is slow. The real binary, so its resident memory is measured
//! alone: every message must arrive, in order, and the broker must stay near its watermark
//! instead of holding the backlog the publisher tried to create.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::process;
use common::raw::{Raw, Tune};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren::protocol::method::{self, protocol::*};

const WATERMARK: u64 = 64 * 1024 * 1024;
const MESSAGES: u32 = 20_000;
const SIZE: usize = 16 * 1024;

fn rss_of(pid: u32) -> Option<u64> {
    warren::broker::alarm::resident_memory_of(&pid.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_far_past_the_watermark_is_held_back_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let watermark = WATERMARK.to_string();
    let (child, addr) = process::spawn(
        dir.path(),
        &[],
        &[("WARREN_VM_MEMORY_HIGH_WATERMARK_ABSOLUTE", &watermark)],
    );
    let child = process::KillOnDrop(child);
    let pid = child.0.id();
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "sale".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_qos(50, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "sale".into(),
            "slow".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The publisher writes raw frames as fast as the socket takes them: when the broker
    // stops reading it, the kernel's buffers fill and the writes wait.
    let publisher = tokio::spawn(async move {
        let (mut raw, _) = Raw::open(addr, Tune::default()).await;
        raw.open_channel(1).await;
        let mut body = vec![b'x'; SIZE];
        for i in 0..MESSAGES {
            body[..4].copy_from_slice(&i.to_be_bytes());
            let mut out = bytes::BytesMut::new();
            method::encode(
                &mut out,
                1,
                &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: "".into(),
                    routing_key: "sale".into(),
                    mandatory: false,
                    immediate: false,
                })),
            );
            warren::protocol::content::encode_content(&mut out, 1, &[0, 0], &body, 131072);
            raw.send_bytes(&out).await;
        }
        raw
    });

    // The consumer is slow: a pause every 20 messages, well under the publisher's pace.
    let mut next = 0u32;
    let received = tokio::time::timeout(Duration::from_secs(120), async {
        while next < MESSAGES {
            let d = consumer.next().await.expect("consumer open").unwrap();
            let id = u32::from_be_bytes(d.data[..4].try_into().unwrap());
            assert_eq!(id, next, "messages arrive once each, in order");
            assert_eq!(d.data.len(), SIZE);
            d.ack(BasicAckOptions::default()).await.unwrap();
            next += 1;
            if next.is_multiple_of(20) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    assert!(
        received.is_ok(),
        "only {next} of {MESSAGES} arrived in 120 s"
    );
    let _raw = publisher.await.unwrap();
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "published {} MB through a {} MB watermark; broker peak RSS {} MB",
        (MESSAGES as usize * SIZE) >> 20,
        WATERMARK >> 20,
        peak >> 20
    );
    drop(child);
    // The stated bound: twice the watermark. Above the watermark the alarm samples every
    // 10 ms and publishers stop being read, but what arrives before they notice, freed
    // memory the allocator has not returned yet and socket buffers come on top; the
    // publisher tried to push five times the watermark.
    assert!(
        peak < 2 * WATERMARK,
        "peak RSS {} MB over twice the {} MB watermark",
        peak >> 20,
        WATERMARK >> 20
    );
}
