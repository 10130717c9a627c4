//! The real `warren` binary as a child process, for tests that signal or kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `warren` with no WARREN_* or RABBITMQ_* variables leaking in from the test environment.
pub fn warren() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warren"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WARREN_") || k.starts_with("RABBITMQ_") {
            c.env_remove(k);
        }
    }
    c
}

/// Start the binary on a free port with `data_dir`; returns it and the address it logged.
/// Its output after the listening line is discarded.
pub fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let mut cmd = warren();
    cmd.args(["--amqp-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    // several tests run at once: none may take the management API's fixed port
    if !extra.contains(&"--management-listen") {
        cmd.args(["--management-listen", "none"]);
    }
    if !extra.contains(&"--prometheus-listen") {
        cmd.args(["--prometheus-listen", "none"]);
    }
    cmd.args(extra).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn warren");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if reader.read_line(&mut line).expect("read warren's log") == 0 {
            panic!("warren exited before listening");
        }
        if let Some(rest) = line.split("listening for AMQP on ").nth(1) {
            break rest
                .split([' ', ','])
                .next()
                .unwrap()
                .parse()
                .expect("address in log line");
        }
    };
    // keep draining so the broker never blocks on a full pipe
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    (child, addr)
}

/// Start the binary with exactly `args` and wait until it logged every marker (such as
/// "listening for AMQPS (TLS) on "); returns the address after each marker that has one,
/// and every log line seen until then.
pub fn spawn_with(
    args: &[&str],
    env: &[(&str, &str)],
    markers: &[&str],
) -> (Child, Vec<SocketAddr>, Vec<String>) {
    let mut cmd = warren();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn warren");
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut found: Vec<Option<Option<SocketAddr>>> = vec![None; markers.len()];
    let mut seen = Vec::new();
    while found.iter().any(Option::is_none) {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read warren's log") == 0 {
            panic!("warren exited before logging {markers:?}; it said: {seen:?}");
        }
        for (i, m) in markers.iter().enumerate() {
            if let Some(rest) = line.split(m).nth(1) {
                found[i] = Some(
                    rest.split([' ', ',', '\n'])
                        .next()
                        .and_then(|a| a.parse().ok()),
                );
            }
        }
        seen.push(line);
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    (child, found.into_iter().flatten().flatten().collect(), seen)
}

/// Kills the broker when a test ends, passed or panicked: no stray process outlives it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run warrenctl against the broker; (exit code, stdout, stderr).
pub fn warrenctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warrenctl"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("WARRENCTL_USERNAME")
        .env_remove("WARRENCTL_PASSWORD")
        .env_remove("RABBITMQ_DEFAULT_USER")
        .env_remove("RABBITMQ_DEFAULT_PASS")
        .output()
        .expect("run warrenctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
