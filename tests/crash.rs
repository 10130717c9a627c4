//! kill -9 at a random moment while publishers wait for confirms: after a restart every
//! confirmed order is there, none twice. Runs the real binary; 10 rounds here, more with
//! `WARREN_CRASH_ROUNDS` (see the README's stress recipe).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::amqp::confirmed_publisher;
use common::process;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;

const QUEUE: &str = "crash-orders";

async fn connect(addr: std::net::SocketAddr) -> Connection {
    Connection::connect(
        &format!("amqp://guest:guest@{addr}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_confirmed_message_and_duplicates_none() {
    let rounds: usize = std::env::var("WARREN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut all_confirmed: HashSet<String> = HashSet::new();
    for round in 0..rounds {
        let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
        let conn = connect(addr).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let publishers: Vec<_> = (0..3)
            .map(|p| {
                tokio::spawn(confirmed_publisher(
                    addr,
                    QUEUE,
                    format!("r{round}-p{p}"),
                    128,
                ))
            })
            .collect();
        let delay = rand::thread_rng().gen_range(50..400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().expect("kill -9");
        child.wait().unwrap();
        for p in publishers {
            let ids = tokio::time::timeout(Duration::from_secs(30), p)
                .await
                .expect("publisher stuck")
                .unwrap();
            all_confirmed.extend(ids);
        }
    }
    let (mut child, addr) = process::spawn(dir.path(), &[], &[]);
    let conn = connect(addr).await;
    let ch = conn.create_channel().await.unwrap();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(m) = ch
        .basic_get(QUEUE.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let id = String::from_utf8(m.delivery.data).unwrap();
        assert!(seen.insert(id.clone()), "{id} came back twice");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lost: Vec<&String> = all_confirmed
        .iter()
        .filter(|id| !seen.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} confirmed message(s) lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        all_confirmed.len() > 100,
        "too few confirms to prove anything: {}",
        all_confirmed.len()
    );
    eprintln!(
        "{rounds} kill -9 rounds: {} confirmed, {} recovered, none lost or duplicated",
        all_confirmed.len(),
        seen.len()
    );
}
