//! Dead-lettering and TTL across restarts and crashes: a persistent message moving
//! between durable queues is never lost (at-least-once: a crash in the middle may leave
//! it in both), and messages recovered after a restart still expire. These restart the
//! broker, so they run against Warren only.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::amqp::*;
use common::{process, start};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rand::Rng;

#[tokio::test]
async fn a_dead_lettered_persistent_message_is_still_parked_after_a_restart() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare_durable(&ch, "refunds.parked", FieldTable::default())
        .await
        .unwrap();
    declare_durable(
        &ch,
        "refunds",
        args(&[
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("refunds.parked")),
        ]),
    )
    .await
    .unwrap();
    publish(&ch, "", "refunds", b"refund 7", persistent()).await;
    ch.wait_for_confirms().await.unwrap();
    let m = wait_for_message(&ch, "refunds").await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    wait_until(|| async { depth(&ch, "refunds.parked").await == 1 }).await;
    drop(conn);

    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(depth(&ch, "refunds").await, 0);
    let parked = wait_for_message(&ch, "refunds.parked").await;
    assert_eq!(&parked.delivery.data[..], b"refund 7");
    assert_eq!(
        as_text(deaths(&parked)[0].inner().get("reason")).as_deref(),
        Some("rejected")
    );
    b.stop().await;
}

#[tokio::test]
async fn recovered_messages_still_expire() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare_durable(&ch, "expired", FieldTable::default())
        .await
        .unwrap();
    let to_expired = |extra: Vec<(&'static str, AMQPValue)>| {
        let mut pairs = vec![
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text("expired")),
        ];
        pairs.extend(extra);
        args(&pairs)
    };
    // one queue with its own TTL, one whose message carries an expiration
    declare_durable(
        &ch,
        "quotes",
        to_expired(vec![("x-message-ttl", AMQPValue::LongInt(300))]),
    )
    .await
    .unwrap();
    declare_durable(&ch, "offers", to_expired(vec![]))
        .await
        .unwrap();
    publish(&ch, "", "quotes", b"quote", persistent()).await;
    publish(
        &ch,
        "",
        "offers",
        b"offer",
        persistent().with_expiration("300".into()),
    )
    .await;
    ch.wait_for_confirms().await.unwrap();
    drop(conn);

    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut bodies = vec![
        wait_for_message(&ch, "expired").await.delivery.data,
        wait_for_message(&ch, "expired").await.delivery.data,
    ];
    bodies.sort();
    assert_eq!(bodies, vec![b"offer".to_vec(), b"quote".to_vec()]);
    b.stop().await;
}

#[tokio::test]
async fn a_quorum_queue_keeps_transient_messages_across_a_restart() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    declare_durable(&ch, "ledger", args(&[("x-queue-type", text("quorum"))]))
        .await
        .unwrap();
    publish(&ch, "", "ledger", b"entry", BasicProperties::default()).await;
    ch.wait_for_confirms().await.unwrap();
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        &wait_for_message(&ch, "ledger").await.delivery.data[..],
        b"entry"
    );
    b.stop().await;
}

const WORK: &str = "crash-delayed";
const TARGET: &str = "crash-ready";

async fn declare_pair(ch: &lapin::Channel) {
    declare_durable(ch, TARGET, FieldTable::default())
        .await
        .unwrap();
    declare_durable(
        ch,
        WORK,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(0)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(TARGET)),
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_messages_move_between_durable_queues_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut confirmed: HashSet<String> = HashSet::new();
    for round in 0..4 {
        let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
        let url = format!("amqp://guest:guest@{addr}/%2f");
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        declare_pair(&conn.create_channel().await.unwrap()).await;
        let publishers: Vec<_> = (0..2)
            .map(|p| {
                tokio::spawn(confirmed_publisher(
                    addr,
                    WORK,
                    format!("r{round}-p{p}"),
                    64,
                ))
            })
            .collect();
        let delay = rand::thread_rng().gen_range(100..400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().expect("kill -9");
        child.wait().unwrap();
        for p in publishers {
            let ids = tokio::time::timeout(Duration::from_secs(30), p)
                .await
                .expect("publisher stuck")
                .unwrap();
            confirmed.extend(ids);
        }
    }
    let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    // whatever was still in the delay queue moves on after the restart too
    wait_until(|| async { depth(&ch, WORK).await == 0 }).await;
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(m) = ch
        .basic_get(TARGET.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        seen.insert(String::from_utf8(m.delivery.data).unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lost: Vec<&String> = confirmed.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} confirmed message(s) lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        confirmed.len() > 100,
        "too few confirms: {}",
        confirmed.len()
    );
    eprintln!(
        "4 kill -9 rounds while dead-lettering: {} confirmed, {} arrived, none lost",
        confirmed.len(),
        seen.len()
    );
}

#[tokio::test]
async fn a_quorum_queues_delivery_count_survives_a_restart() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let quorum = || {
        args(&[
            ("x-queue-type", text("quorum")),
            ("x-delivery-limit", AMQPValue::LongInt(5)),
        ])
    };
    declare_durable(&ch, "payouts", quorum()).await.unwrap();
    publish(&ch, "", "payouts", b"payout", persistent()).await;
    ch.wait_for_confirms().await.unwrap();
    let m = wait_for_message(&ch, "payouts").await;
    ch.basic_nack(
        m.delivery.delivery_tag,
        BasicNackOptions {
            requeue: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // a confirmed publish behind the return: its commit carries the count too
    publish(&ch, "", "payouts", b"marker", persistent()).await;
    ch.wait_for_confirms().await.unwrap();
    drop(conn);

    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let m = wait_for_message(&ch, "payouts").await;
    assert_eq!(&m.delivery.data[..], b"payout");
    assert!(m.delivery.redelivered);
    assert_eq!(as_int(header(&m, "x-delivery-count")), Some(1));
    b.stop().await;
}

#[tokio::test]
async fn a_durable_queue_keeps_expiring_after_a_restart() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_durable(
        &ch,
        "cart.abandoned",
        args(&[("x-expires", AMQPValue::LongInt(1_000))]),
    )
    .await
    .unwrap();
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    // the period starts again at the restart, and then it goes
    wait_until(|| is_gone(&ch, "cart.abandoned")).await;
    drop(conn);
    // and it stays gone after another restart (its definition left the store)
    let b = b.restart().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    assert!(is_gone(&ch, "cart.abandoned").await);
    b.stop().await;
}
