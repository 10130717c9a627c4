//! The `warren` binary as an operator runs it: flags, configuration layering, start-up
//! errors that name the bad setting, and SIGTERM closing clients with 320.

mod common;

use std::process::Command;

use common::process::{self, warren};
use common::raw::{Raw, Tune};

#[test]
fn help_lists_the_flags() {
    let out = warren().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--amqp-listen",
        "--data-dir",
        "--config",
        "--log-level",
        "--version",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = warren().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_config_key_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warren.toml");
    std::fs::write(&file, "heartbeat = 30\nhearbeat_typo = 1\n").unwrap();
    let out = warren().arg("--config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hearbeat_typo"));
}

#[test]
fn bad_environment_value_stops_start_up_naming_it() {
    let out = warren().env("WARREN_FRAME_MAX", "12").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frame_max") && err.contains("WARREN_FRAME_MAX"),
        "{err}"
    );
}

#[test]
fn bad_flag_value_stops_start_up() {
    let out = warren()
        .args(["--amqp-listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("amqp_listen"));
}

/// Start the binary on a free port in a fresh data dir.
fn spawn(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = process::spawn(dir.path(), extra, env);
    (child, addr, dir)
}

#[tokio::test]
async fn sigterm_closes_connections_with_320_and_exits_zero() {
    let (mut child, addr, _dir) = spawn(&[], &[]);
    let (mut raw, _) = Raw::open(addr, Tune::default()).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (code, _, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 320);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warren.toml");
    std::fs::write(
        &file,
        "heartbeat = 10\nchannel_max = 10\nframe_max = 8192\n",
    )
    .unwrap();
    let (mut child, addr, _d) = spawn(
        &["--config", file.to_str().unwrap()],
        &[("WARREN_CHANNEL_MAX", "20"), ("WARREN_HEARTBEAT", "7")],
    );
    let (_raw, tune) = Raw::open(addr, Tune::default()).await;
    assert_eq!(
        (tune.heartbeat, tune.channel_max, tune.frame_max),
        (7, 20, 8192)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// testcontainers' RabbitMQ modules (Java, Go, .NET, Node) wait for this line in the
/// container log; a container log is not a terminal, so it carries no colour codes.
#[tokio::test]
async fn a_container_wait_strategy_sees_rabbitmqs_startup_lines_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (child, addrs, seen) = process::spawn_with(
        &[
            "--amqp-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--management-listen",
            "none",
            "--prometheus-listen",
            "none",
        ],
        &[],
        &["started TCP listener on ", "Server startup complete"],
    );
    let _broker = process::KillOnDrop(child);
    let log = seen.concat();
    let testcontainers = regex::Regex::new(r".*Server startup complete.*\n").unwrap();
    assert!(testcontainers.is_match(&log), "{log}");
    assert!(log.contains("Server startup complete; 0 plugins started."));
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
    // the listener is up before startup is declared complete, so a client can connect
    let (_raw, _) = Raw::open(addrs[0], Tune::default()).await;
}

/// A team moving from RabbitMQ keeps its `rabbitmq.conf` and the image's variables: the
/// keys Warren knows take effect, the ones it does not act on are named in the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_rabbitmq_conf_file_and_rabbitmq_variables_configure_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("rabbitmq.conf");
    std::fs::write(
        &conf,
        format!(
            "# the shop's file, unchanged from its RabbitMQ days\n\
             listeners.tcp.local = 127.0.0.1:0\n\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = 0\n\
             prometheus.tcp.ip = 127.0.0.1\n\
             prometheus.tcp.port = 0\n\
             default_user = shop\n\
             default_pass = s3cret\n\
             default_vhost = orders\n\
             default_user_tags.monitoring = true\n\
             loopback_users = none\n\
             log.dir = {}\n\
             log.file = broker.log\n\
             log.file.level = debug\n\
             queue_master_locator = min-masters\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (child, _, seen) = process::spawn_with(
        &["--data-dir", data.to_str().unwrap()],
        &[
            ("RABBITMQ_CONFIG_FILE", conf.to_str().unwrap()),
            ("RABBITMQ_NODENAME", "rabbit@shop-1"),
            ("RABBITMQ_ERLANG_COOKIE", "not-for-warren"),
        ],
        &["Server startup complete"],
    );
    let _broker = process::KillOnDrop(child);
    let log = seen.concat();
    assert!(log.contains("'queue_master_locator'"), "{log}");
    assert!(log.contains("RABBITMQ_ERLANG_COOKIE"), "{log}");
    let port = log
        .split("Management plugin: HTTP (non-TLS) listener started on port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("management listener line");
    let api = common::http::Api::new(&format!("http://127.0.0.1:{port}"), "shop", "s3cret");
    let (status, me) = api.get("/api/whoami").await;
    assert_eq!(status, 200, "{me} {log}");
    assert_eq!(me["tags"], serde_json::json!(["monitoring"]));
    let (_, overview) = api.get("/api/overview").await;
    assert_eq!(overview["node"], "rabbit@shop-1");
    let (status, _) = api.get("/api/vhosts/orders").await;
    assert_eq!(status, 200);
    // (the file is written just after the console, so wait for the line, with a bound)
    let file = dir.path().join("broker.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("Server startup complete") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(text.contains("Server startup complete"), "{text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn a_rabbitmq_conf_key_rabbitmq_itself_would_refuse_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("rabbitmq.conf");
    std::fs::write(&conf, "heartbeat = 30\nhearbeat = 3\n").unwrap();
    let out = warren()
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .env("RABBITMQ_CONFIG_FILE", &conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'hearbeat'") && err.contains("line 2"),
        "{err}"
    );
}

/// What the image (Dockerfile) sets up: RabbitMQ's variables pointing at a config file that
/// may not be there, the image's conf.d defaults, and the data under the volume.
#[tokio::test]
async fn the_container_layout_starts_with_the_images_defaults_and_no_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("mnesia");
    let confd = concat!(env!("CARGO_MANIFEST_DIR"), "/docker");
    let absent = dir.path().join("rabbitmq.conf");
    let (child, addrs, seen) = process::spawn_with(
        &[
            "--amqp-listen",
            "127.0.0.1:0",
            "--management-listen",
            "none",
            "--prometheus-listen",
            "none",
        ],
        &[
            ("RABBITMQ_CONFIG_FILE", absent.to_str().unwrap()),
            ("RABBITMQ_CONFIG_FILES", confd),
            ("RABBITMQ_MNESIA_BASE", base.to_str().unwrap()),
        ],
        &["started TCP listener on ", "Server startup complete"],
    );
    let _broker = process::KillOnDrop(child);
    let log = seen.concat();
    assert!(log.contains("rabbitmq.conf (not found)"), "{log}");
    // both image defaults are settings Warren acts on: nothing to warn about but the file
    assert_eq!(log.matches(" WARN ").count(), 1, "{log}");
    assert!(base.join("warren@warren").join("warren.redb").exists());
    let (_raw, _) = Raw::open(addrs[0], Tune::default()).await;
}
