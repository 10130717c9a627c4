//! The real `warren` binary as a child process, for tests that signal or kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `warren` with no WARREN_* variables leaking in from the test environment.
pub fn warren() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warren"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WARREN_") {
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
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
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
