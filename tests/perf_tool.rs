//! warren-perf, the load generator behind `bench/compare.sh`, measured against a real broker:
//! when a benchmark says it used four channels per connection, the broker saw four, and
//! every message it counts as confirmed was confirmed on the channel it was sent on.

mod common;

use std::process::{Command, Stdio};

use common::amqp::wait_until;
use common::http::Api;
use common::start_with_management;
use serde_json::Value;
use warren::Config;

fn warren_perf(addr: std::net::SocketAddr, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_warren-perf"))
        .args(args)
        .args(["--url", &format!("amqp://guest:guest@{addr}/%2F"), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warren-perf starts")
}

/// The JSON summary warren-perf prints last, once it has finished.
fn summary(child: std::process::Child) -> Value {
    let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("warren-perf ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warren-perf failed: {stderr}");
    assert!(
        !stderr.contains("error"),
        "warren-perf reported errors: {stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON summary")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_four_channels_per_connection_opens_them_and_uses_them_all() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let run = warren_perf(
        b.addr,
        &[
            "throughput",
            "--channels",
            "4",
            "--write-per-publish",
            "--ack-every",
            "1",
            "--duration",
            "2",
        ],
    );
    // one publishing and one consuming connection, four channels each, all of them busy
    wait_until(|| async {
        let (_, channels) = api.get("/api/channels").await;
        let Some(channels) = channels.as_array() else {
            return false;
        };
        let publishing = channels
            .iter()
            .filter(|c| c["message_stats"]["publish"].as_u64().unwrap_or(0) > 0)
            .count();
        let consuming = channels
            .iter()
            .filter(|c| c["consumer_count"] == 1 && c["message_stats"]["ack"].as_u64() > Some(0))
            .count();
        channels.len() == 8 && publishing == 4 && consuming == 4
    })
    .await;
    let s = summary(run);
    assert!(s["published_per_s"].as_f64() > Some(0.0));
    assert!(s["consumed_per_s"].as_f64() > Some(0.0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn single_confirms_on_eight_channels_are_each_counted_once() {
    let b = start_with_management(Config::default()).await;
    let api = Api::new(b.management.as_deref().unwrap(), "guest", "guest");
    let s = summary(warren_perf(
        b.addr,
        &[
            "confirms",
            "--channels",
            "8",
            "--confirm",
            "1",
            "--size",
            "100",
            "--duration",
            "1",
        ],
    ));
    // Each channel numbers its own confirms; counting one channel's tags against another's
    // would stall the window or miscount. The producer waits for every confirm before it
    // ends, so the tool's total is the broker's publish and confirm counts.
    let confirmed = s["confirmed_total"].as_f64().unwrap_or(0.0) as u64;
    assert!(confirmed > 0, "{s}");
    let (_, overview) = api.get("/api/overview").await;
    let stats = &overview["message_stats"];
    assert_eq!(stats["publish"].as_u64(), Some(confirmed), "{stats}");
    assert_eq!(stats["confirm"].as_u64(), Some(confirmed), "{stats}");
    b.stop().await;
}
