//! The domain model, independent of the wire: `BrokerState` holds the configuration, the
//! vhosts, the users and the store handle, and hands out connection ids, channel epochs and
//! store ids. At start it rebuilds the vhosts from what the store recovered. Connections look
//! things up here; nothing here writes to a socket.

pub mod auth;
pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
pub mod vhost;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use crate::config::Config;
use crate::protocol::content::peek_properties;
use crate::store::{Definition, Recovered, Store};
use auth::Users;
use message::Message;
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
        let messages: HashMap<u64, Arc<Message>> = recovered
            .messages
            .into_iter()
            .map(|(id, r)| {
                let peek = peek_properties(&r.properties).unwrap_or_default();
                let expiration = peek
                    .expiration
                    .and_then(|range| std::str::from_utf8(&r.properties[range]).ok()?.parse().ok());
                let m = Message {
                    exchange: r.exchange.into(),
                    routing_key: r.routing_key.into(),
                    properties: r.properties,
                    body: r.body,
                    persistent: true,
                    priority: peek.priority.unwrap_or(0),
                    expiration,
                    store_id: id,
                };
                (id, Arc::new(m))
            })
            .collect();
        let mut positions = recovered.queues;
        let mut report = RecoveryReport::default();
        let vhosts = DashMap::new();
        for name in names {
            let v = VHost::new(&name, store.clone());
            report.messages += v.restore(&recovered.definitions, &mut positions, &messages);
            vhosts.insert(name, v);
        }
        report.queues = recovered
            .definitions
            .iter()
            .filter(|d| matches!(d, Definition::Queue { .. }))
            .count();
        let (shutdown, _) = watch::channel(false);
        let state = Arc::new(Self {
            config: Arc::new(config),
            users,
            vhosts,
            next_id: AtomicU64::new(1),
            next_store_id: AtomicU64::new(recovered.max_store_id + 1),
            connections: AtomicUsize::new(0),
            shutdown,
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
