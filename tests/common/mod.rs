//! Shared test harness: a Warren broker in-process on 127.0.0.1:0 with its own temp data
//! dir, lapin connections to it, and a raw-frame client (`raw`) for protocol edges.
#![allow(dead_code)]

pub mod amqp;
pub mod http;
pub mod process;
pub mod raw;
pub mod tls;

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use warren::{Broker, Config};

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub url: String,
    pub addr: std::net::SocketAddr,
    /// `http://127.0.0.1:PORT` when started with the management API.
    pub management: Option<String>,
    /// The Prometheus metrics base URL, started together with the management API.
    pub prometheus: Option<String>,
    /// The amqps listener, when started with TLS.
    pub tls_addr: Option<std::net::SocketAddr>,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestBroker {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> TestBroker {
    start_in(config, tempfile::tempdir().expect("temp dir")).await
}

/// Start on an existing data dir (a restart keeps the same `TempDir`).
pub async fn start_in(config: Config, dir: tempfile::TempDir) -> TestBroker {
    start_custom(config, dir, false, false).await
}

/// A broker with the management API on a free port of 127.0.0.1.
pub async fn start_with_management(config: Config) -> TestBroker {
    start_custom(config, tempfile::tempdir().expect("temp dir"), true, false).await
}

/// Any mix of listeners: AMQP always, management and amqps (config's tls_* files) on ask.
pub async fn start_custom(
    config: Config,
    dir: tempfile::TempDir,
    management: bool,
    tls: bool,
) -> TestBroker {
    // WARREN_TEST_BROKER=HOST:PORT points the raw-socket tests at another broker (RabbitMQ)
    // to compare reply codes; tests that look inside Warren cannot run that way.
    if let Ok(external) = std::env::var("WARREN_TEST_BROKER") {
        let addr: std::net::SocketAddr = external.parse().expect("WARREN_TEST_BROKER=HOST:PORT");
        return TestBroker {
            url: format!("amqp://guest:guest@{addr}/%2f"),
            addr,
            management: None,
            prometheus: None,
            tls_addr: None,
            broker: None,
            _dir: dir,
        };
    }
    let local = || "127.0.0.1:0".parse().unwrap();
    let mut builder = Broker::builder()
        .config(config)
        .listen(local())
        .data_dir(dir.path());
    if management {
        builder = builder
            .management_listen(local())
            .prometheus_listen(local());
    }
    if tls {
        builder = builder.listen_tls(local());
    }
    let broker = builder.start().await.expect("broker starts");
    let addr = broker.local_addr();
    TestBroker {
        url: format!("amqp://guest:guest@{addr}/%2f"),
        addr,
        management: broker
            .management_addrs()
            .first()
            .map(|a| format!("http://{a}")),
        prometheus: broker
            .prometheus_addrs()
            .first()
            .map(|a| format!("http://{a}")),
        tls_addr: broker.tls_addrs().first().copied(),
        broker: Some(broker),
        _dir: dir,
    }
}

impl TestBroker {
    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("lapin connects")
    }

    /// A lapin connection as `user` to `vhost` (or the error the broker answered with).
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
    ) -> Result<Connection, lapin::Error> {
        let vhost: String = vhost
            .bytes()
            .map(|b| match b {
                b'/' => "%2f".to_owned(),
                b => (b as char).to_string(),
            })
            .collect();
        let url = format!("amqp://{user}:{password}@{}/{vhost}", self.addr);
        Connection::connect(&url, ConnectionProperties::default()).await
    }

    pub fn state(&self) -> &std::sync::Arc<warren::broker::BrokerState> {
        self.broker.as_ref().expect("running").state()
    }

    pub async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
    }

    /// Stop and start again on the same data dir (with the management API if it had it).
    pub async fn restart(mut self) -> TestBroker {
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        let TestBroker {
            _dir, management, ..
        } = self;
        start_custom(Config::default(), _dir, management.is_some(), false).await
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// The AMQP reply code carried by a lapin error, if the broker sent one.
pub fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

pub fn reply_text(err: &lapin::Error) -> String {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_message().to_string(),
        other => format!("{other:?}"),
    }
}

/// Bound any wait in a test: a hang is a failure, not a stuck CI.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out after 10 s")
}
