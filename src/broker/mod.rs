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
    /// The first start's default user and vhost, to be stored before serving.
    initial_definitions: std::sync::Mutex<Vec<Definition>>,
    pub memory_alarm: Arc<alarm::MemoryAlarm>,
}

/// What start-up recovery restored, for the log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub queues: usize,
    pub messages: usize,
}

fn definition_vhost(d: &Definition) -> Option<&str> {
    match d {
        Definition::Exchange { vhost, .. }
        | Definition::Queue { vhost, .. }
        | Definition::Binding { vhost, .. } => Some(vhost),
        Definition::VHost { name } => Some(name),
        Definition::User { .. } => None,
    }
}

impl BrokerState {
    pub fn new(
        config: Config,
        store: Option<Store>,
        recovered: Recovered,
    ) -> (Arc<Self>, RecoveryReport) {
        // As RabbitMQ: the configured default user and vhost are created on the first start
        // only (and stored); afterwards the store decides who and what exists.
        let first_start = !recovered
            .definitions
            .iter()
            .any(|d| matches!(d, Definition::User { .. } | Definition::VHost { .. }));
        let users = Users::default();
        let mut initial = Vec::new();
        if first_start {
            users.add(&config.default_user, &config.default_pass);
            if let Some(password_hash) = users.password_hash(&config.default_user) {
                initial.push(Definition::User {
                    name: config.default_user.clone(),
                    password_hash,
                });
            }
            initial.push(Definition::VHost {
                name: config.default_vhost.clone(),
            });
        }
        for d in &recovered.definitions {
            if let Definition::User {
                name,
                password_hash,
            } = d
            {
                users.add_hashed(name, password_hash.clone());
            }
        }
        let mut names: BTreeSet<String> = recovered
            .definitions
            .iter()
            .filter_map(|d| definition_vhost(d).map(str::to_owned))
            .collect();
        if first_start {
            names.insert(config.default_vhost.clone());
        }
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
            initial_definitions: std::sync::Mutex::new(initial),
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

    /// Store what the first start created (the default user and vhost).
    pub async fn persist_initial(&self) {
        let defs = std::mem::take(
            &mut *self
                .initial_definitions
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if let (Some(store), false) = (&self.store, defs.is_empty()) {
            store
                .commit(
                    defs.into_iter()
                        .map(crate::store::StoreOp::PutDefinition)
                        .collect(),
                )
                .await;
        }
    }

    /// The store identity of a new persistent message.
    pub fn next_store_id(&self) -> u64 {
        self.next_store_id.fetch_add(1, Ordering::Relaxed)
    }
}
