//! The recorded RabbitMQ answers in tests/differential/cases, replayed against Warren: every
//! method, reply code and text, delivery and close that RabbitMQ 3.x sent in those
//! scenarios, Warren must send too (deliberate differences are listed, with reasons, in
//! tests/differential/known-differences.json). `scripts/against-rabbitmq.sh` re-records the
//! cases from a live RabbitMQ; `warren-diff generate` finds new ones.

mod common;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_answers_as_rabbitmq_recorded() {
    let b = common::start().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let addr = b.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_warren-diff"))
            .args(["replay", "--broker", &addr, "--known"])
            .arg(format!("{root}/tests/differential/known-differences.json"))
            .arg(format!("{root}/tests/differential/cases"))
            .output()
            .expect("warren-diff runs")
    })
    .await
    .expect("replay task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Warren answered differently from the recording:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 different") && !stdout.contains(" 0 scenarios"),
        "no scenarios were replayed:\n{stdout}\n{stderr}"
    );
}
