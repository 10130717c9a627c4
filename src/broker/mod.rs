//! The domain model, independent of the wire: `BrokerState` holds the configuration, the
//! vhosts and the users, and hands out connection ids and channel epochs. Connections look
//! things up here; nothing here writes to a socket.

pub mod auth;
pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
pub mod vhost;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use crate::config::Config;
use auth::Users;
use vhost::VHost;

#[derive(Debug)]
pub struct BrokerState {
    pub config: Arc<Config>,
    pub users: Users,
    vhosts: DashMap<String, Arc<VHost>>,
    next_id: AtomicU64,
    pub connections: AtomicUsize,
    /// Flips to true once on shutdown; every connection watches it.
    pub shutdown: watch::Sender<bool>,
}

impl BrokerState {
    pub fn new(config: Config) -> Arc<Self> {
        let users = Users::default();
        users.add(&config.default_user, &config.default_pass);
        let vhosts = DashMap::new();
        vhosts.insert(
            config.default_vhost.clone(),
            VHost::new(&config.default_vhost),
        );
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            config: Arc::new(config),
            users,
            vhosts,
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown,
        })
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// A process-unique id for connections and channel epochs.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
