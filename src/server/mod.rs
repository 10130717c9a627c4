//! Listeners and the broker's lifetime: `Broker` binds the configured addresses, accepts
//! sockets and spawns one connection task each, and on shutdown stops accepting, asks every
//! connection to close (320 CONNECTION_FORCED) and waits for them. It never parses AMQP.

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

/// Errors that stop the broker from starting, each naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("no AMQP listener configured")]
    NoListener,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running broker. Embed it in tests with `Broker::builder().listen("127.0.0.1:0")`.
pub struct Broker {
    state: Arc<BrokerState>,
    addrs: Vec<SocketAddr>,
    accept_tasks: Vec<JoinHandle<()>>,
    recovery: RecoveryReport,
    recovery_time: Duration,
}

#[derive(Debug, Default)]
pub struct BrokerBuilder {
    config: Config,
    listen: Vec<SocketAddr>,
}

impl BrokerBuilder {
    /// Start from a full configuration (listeners in it are replaced by `listen` calls).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Add an AMQP listener; port 0 picks a free port (see `Broker::local_addr`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(addr);
        self
    }

    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.data_dir = path.into();
        self
    }

    pub async fn start(mut self) -> Result<Broker, StartError> {
        if !self.listen.is_empty() {
            self.config.amqp_listen = std::mem::take(&mut self.listen);
        }
        if self.config.amqp_listen.is_empty() {
            return Err(StartError::NoListener);
        }
        let data_dir = self.config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir,
            source,
        })?;
        let mut listeners = Vec::new();
        for addr in &self.config.amqp_listen {
            let l = bind(*addr).map_err(|source| StartError::Listen {
                addr: *addr,
                source,
            })?;
            listeners.push(l);
        }
        // Recover before accepting anyone: clients must find their durable queues full.
        let started = std::time::Instant::now();
        let (store, recovered) =
            Store::open(&self.config.data_dir, self.config.store_cache_size as usize)?;
        let (state, recovery) = BrokerState::new(self.config, Some(store), recovered);
        let recovery_time = started.elapsed();
        state.persist_initial().await;
        state.memory_alarm.spawn_monitor();
        let mut addrs = Vec::new();
        let mut accept_tasks = Vec::new();
        for l in listeners {
            let addr = l.local_addr().map_err(|source| StartError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
            addrs.push(addr);
            accept_tasks.push(tokio::spawn(accept_loop(l, state.clone())));
        }
        Ok(Broker {
            state,
            addrs,
            accept_tasks,
            recovery,
            recovery_time,
        })
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

async fn accept_loop(listener: TcpListener, state: Arc<BrokerState>) {
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
                tokio::spawn(connection::serve(stream, peer, state.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// The first bound listener address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// What start-up restored from the store and how long it took.
    pub fn recovery(&self) -> (RecoveryReport, Duration) {
        (self.recovery, self.recovery_time)
    }

    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
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
        let _ = self.state.shutdown.send(true);
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
