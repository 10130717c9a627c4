//! The domain model, independent of the wire: `BrokerState` holds the configuration, the
//! vhosts, the users and the store handle, and hands out connection ids, channel epochs and
//! store ids. At start it rebuilds the vhosts from what the store recovered. Connections look
//! things up here; nothing here writes to a socket.

pub mod alarm;
pub mod auth;
pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
pub mod vhost;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::{Definition, Recovered, Store};
use auth::Users;
use vhost::VHost;

#[derive(Debug)]
pub struct BrokerState {
    pub config: Arc<Config>,
    pub users: Users,
    vhosts: DashMap<String, Arc<VHost>>,
    next_id: AtomicU64,
    next_store_id: AtomicU64,
    pub connections: AtomicUsize,
    /// Flips to true once on shutdown; every connection watches it.
    pub shutdown: watch::Sender<bool>,
    pub store: Option<Store>,
    pub memory_alarm: Arc<alarm::MemoryAlarm>,
}

/// What start-up recovery restored, for the log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub queues: usize,
    pub messages: usize,
}

fn definition_vhost(d: &Definition) -> &str {
    match d {
        Definition::Exchange { vhost, .. }
        | Definition::Queue { vhost, .. }
        | Definition::Binding { vhost, .. } => vhost,
    }
}

impl BrokerState {
    pub fn new(
        config: Config,
        store: Option<Store>,
        recovered: Recovered,
    ) -> (Arc<Self>, RecoveryReport) {
        let users = Users::default();
        users.add(&config.default_user, &config.default_pass);
        let mut names: BTreeSet<String> = recovered
            .definitions
            .iter()
            .map(|d| definition_vhost(d).to_owned())
            .collect();
        names.insert(config.default_vhost.clone());
        let mut positions = recovered.queues;
        let mut report = RecoveryReport::default();
        let vhosts = DashMap::new();
        for name in names {
            let v = VHost::new(
                &name,
                store.clone(),
                config.queue_ram_limit as usize,
                config.vhost_max_queues as usize,
            );
            report.messages += v.restore(&recovered.definitions, &mut positions);
            vhosts.insert(name, v);
        }
        report.queues = recovered
            .definitions
            .iter()
            .filter(|d| matches!(d, Definition::Queue { .. }))
            .count();
        let (shutdown, _) = watch::channel(false);
        let config_watermark = (
            config.vm_memory_high_watermark,
            config.vm_memory_high_watermark_absolute,
        );
        let state = Arc::new(Self {
            config: Arc::new(config),
            users,
            vhosts,
            next_id: AtomicU64::new(1),
            next_store_id: AtomicU64::new(recovered.max_store_id + 1),
            connections: AtomicUsize::new(0),
            shutdown,
            memory_alarm: alarm::MemoryAlarm::new(config_watermark.0, config_watermark.1),
            store,
        });
        (state, report)
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// A process-unique id for connections and channel epochs.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The store identity of a new persistent message.
    pub fn next_store_id(&self) -> u64 {
        self.next_store_id.fetch_add(1, Ordering::Relaxed)
    }
}
