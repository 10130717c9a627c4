//! Listeners and the broker's lifetime: `Broker` binds the configured addresses (AMQP,
//! amqps, management HTTP), accepts sockets, completes TLS for amqps, and spawns one
//! connection task each; on shutdown it stops accepting, asks every connection to close
//! (320 CONNECTION_FORCED) and waits for them. It never parses AMQP.

pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::broker::{BrokerState, RecoveryReport};
use crate::config::Config;
use crate::connection;
use crate::store::{Store, StoreError};
use tls::{Tls, TlsError};

/// Errors that stop the broker from starting, each naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("no AMQP listener configured (amqp_listen and amqps_listen are both empty)")]
    NoListener,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load definitions from {path}: {why}")]
    Definitions { path: PathBuf, why: String },
}

/// A running broker. Embed it in tests with `Broker::builder().listen("127.0.0.1:0")`.
pub struct Broker {
    state: Arc<BrokerState>,
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    management_addrs: Vec<SocketAddr>,
    prometheus_addrs: Vec<SocketAddr>,
    tls: Option<Arc<Tls>>,
    accept_tasks: Vec<JoinHandle<()>>,
    recovery: RecoveryReport,
    recovery_time: Duration,
}

#[derive(Debug, Default)]
pub struct BrokerBuilder {
    config: Config,
    listen: Vec<SocketAddr>,
    listen_tls: Vec<SocketAddr>,
    management: Vec<SocketAddr>,
    prometheus: Vec<SocketAddr>,
}

impl BrokerBuilder {
    /// Start from a full configuration. When any of `listen`, `listen_tls` or
    /// `management_listen` is called, those calls decide every listener and the config's
    /// listener lists are ignored (an embedded broker then serves no HTTP unless asked).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Add an AMQP listener; port 0 picks a free port (see `Broker::local_addr`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(addr);
        self
    }

    /// Add an amqps listener (the config's tls_cert/tls_key are used).
    pub fn listen_tls(mut self, addr: SocketAddr) -> Self {
        self.listen_tls.push(addr);
        self
    }

    /// Add a Prometheus metrics listener.
    pub fn prometheus_listen(mut self, addr: SocketAddr) -> Self {
        self.prometheus.push(addr);
        self
    }

    /// Add a management HTTP listener.
    pub fn management_listen(mut self, addr: SocketAddr) -> Self {
        self.management.push(addr);
        self
    }

    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.data_dir = path.into();
        self
    }

    pub async fn start(mut self) -> Result<Broker, StartError> {
        let explicit = !(self.listen.is_empty()
            && self.listen_tls.is_empty()
            && self.management.is_empty()
            && self.prometheus.is_empty());
        if explicit {
            self.config.amqp_listen = std::mem::take(&mut self.listen);
            self.config.amqps_listen = std::mem::take(&mut self.listen_tls);
            self.config.management_listen = std::mem::take(&mut self.management);
            self.config.prometheus_listen = std::mem::take(&mut self.prometheus);
        }
        if self.config.amqp_listen.is_empty() && self.config.amqps_listen.is_empty() {
            return Err(StartError::NoListener);
        }
        let tls = Tls::from_config(&self.config)?;
        let data_dir = self.config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir,
            source,
        })?;
        let bind_all = |addrs: &[SocketAddr]| -> Result<Vec<TcpListener>, StartError> {
            addrs
                .iter()
                .map(|addr| {
                    bind(*addr).map_err(|source| StartError::Listen {
                        addr: *addr,
                        source,
                    })
                })
                .collect()
        };
        let plain = bind_all(&self.config.amqp_listen)?;
        let secure = bind_all(&self.config.amqps_listen)?;
        let http = bind_all(&self.config.management_listen)?;
        let metrics = bind_all(&self.config.prometheus_listen)?;
        // Recover before accepting anyone: clients must find their durable queues full.
        let started = std::time::Instant::now();
        let (store, recovered) =
            Store::open(&self.config.data_dir, self.config.store_cache_size as usize)?;
        let (state, recovery) = BrokerState::new(self.config, Some(store), recovered);
        let recovery_time = started.elapsed();
        state.persist_initial().await;
        if let Some(path) = state.config.load_definitions.clone() {
            let text = std::fs::read(&path).map_err(|e| StartError::Definitions {
                path: path.clone(),
                why: e.to_string(),
            })?;
            crate::management::import_definitions(&state, &text)
                .await
                .map_err(|why| StartError::Definitions {
                    path: path.clone(),
                    why,
                })?;
            tracing::info!("imported definitions from {}", path.display());
        }
        state.alarm.spawn_monitor();
        let local = |l: &TcpListener| {
            l.local_addr().map_err(|source| StartError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
        };
        let mut broker = Broker {
            state: state.clone(),
            addrs: Vec::new(),
            tls_addrs: Vec::new(),
            management_addrs: Vec::new(),
            prometheus_addrs: Vec::new(),
            tls: tls.clone(),
            accept_tasks: Vec::new(),
            recovery,
            recovery_time,
        };
        for l in plain {
            broker.addrs.push(local(&l)?);
            broker
                .accept_tasks
                .push(tokio::spawn(accept_loop(l, state.clone(), None)));
        }
        for l in secure {
            broker.tls_addrs.push(local(&l)?);
            broker
                .accept_tasks
                .push(tokio::spawn(accept_loop(l, state.clone(), tls.clone())));
        }
        for l in http {
            broker.management_addrs.push(local(&l)?);
            broker
                .accept_tasks
                .push(tokio::spawn(crate::management::serve(l, state.clone())));
        }
        for l in metrics {
            broker.prometheus_addrs.push(local(&l)?);
            broker
                .accept_tasks
                .push(tokio::spawn(crate::management::serve_prometheus(
                    l,
                    state.clone(),
                )));
        }
        let all = [
            ("amqp", &broker.addrs),
            ("amqp/ssl", &broker.tls_addrs),
            ("http", &broker.management_addrs),
            ("http/prometheus", &broker.prometheus_addrs),
        ];
        let listeners = all
            .into_iter()
            .flat_map(|(protocol, addrs)| addrs.iter().map(move |a| (protocol, *a)))
            .collect();
        state.set_listeners(listeners);
        Ok(broker)
    }
}

/// Bind with SO_REUSEADDR; an IPv6 wildcard is made IPv6-only so it can share the port
/// with 0.0.0.0, as RabbitMQ's default listeners do.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, state: Arc<BrokerState>, tls: Option<Arc<Tls>>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let max = state.config.connection_max;
                if max > 0 && state.connections.load(Ordering::Relaxed) as u64 >= max {
                    // as RabbitMQ: the socket is closed before any AMQP is spoken
                    tracing::warn!(%peer, "connection refused: connection_max ({max}) reached");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let Ok(local) = stream.local_addr() else {
                    continue;
                };
                match &tls {
                    None => {
                        tokio::spawn(connection::serve(stream, peer, local, state.clone(), None));
                    }
                    Some(tls) => {
                        tokio::spawn(serve_tls(stream, peer, local, state.clone(), tls.clone()));
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Complete the TLS handshake (under the AMQP handshake timeout, so a silent client
/// cannot hold the socket) and serve the decrypted stream.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<BrokerState>,
    tls: Arc<Tls>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let timeout = Duration::from_millis(state.config.handshake_timeout);
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let session = stream.get_ref().1;
    let leaf = session.peer_certificates().and_then(|chain| chain.first());
    let cert_user = leaf.and_then(|leaf| tls::cert_user(leaf, tls.cert_login));
    let peer_info = crate::connection::handshake::TlsPeer {
        cert_user,
        details: tls::details(session, leaf),
    };
    connection::serve(stream, peer, local, state, Some(Box::new(peer_info))).await;
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// The first bound AMQP listener address (with the real port when 0 was asked for);
    /// the first amqps one for a TLS-only broker.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs
            .first()
            .or(self.tls_addrs.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound amqps listener addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The bound management HTTP listener addresses.
    pub fn management_addrs(&self) -> &[SocketAddr] {
        &self.management_addrs
    }

    /// The bound Prometheus metrics listener addresses.
    pub fn prometheus_addrs(&self) -> &[SocketAddr] {
        &self.prometheus_addrs
    }

    /// Re-read the TLS certificate, key and CA: new connections get them, open ones keep
    /// theirs; on error nothing changes. Ok(false) when there is no amqps listener.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match &self.tls {
            None => Ok(false),
            Some(tls) => tls.reload().map(|()| true),
        }
    }

    /// What start-up restored from the store and how long it took.
    pub fn recovery(&self) -> (RecoveryReport, Duration) {
        (self.recovery, self.recovery_time)
    }

    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// With `manual_clock`: let `by` pass for TTLs, queue expiry and the consumer timeout
    /// (they act at once, as if the time had passed). False on the real clock.
    pub fn advance_clock(&self, by: Duration) -> bool {
        self.state.clock.advance(by)
    }

    /// Open client connections right now.
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Stop accepting, close every connection with 320 CONNECTION_FORCED and wait (up to
    /// 10 s) for them to finish.
    pub async fn shutdown(self) {
        for t in &self.accept_tasks {
            t.abort();
        }
        // stored even with no connection watching: one that subscribes later reads it
        self.state.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.state.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Everything acknowledged so far is committed and the data dir is unlocked, so a
        // new broker (or this process again) can open it at once.
        if let Some(store) = &self.state.store {
            store.close().await;
        }
    }
}
