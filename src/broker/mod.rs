//! The domain model, independent of the wire: `BrokerState` holds the configuration, the
//! vhosts, the users and the store handle, and hands out connection ids, channel epochs and
//! store ids. At start it rebuilds the vhosts from what the store recovered. Connections look
//! things up here; nothing here writes to a socket.

pub mod admin;
pub mod alarm;
pub mod auth;
pub mod clock;
pub mod connections;
pub mod consumer;
pub mod deadletter;
pub mod delayed;
pub mod direct_reply;
pub mod exchange;
pub mod inbox;
pub mod metrics;
pub mod permissions;
pub mod policy;
pub mod queue;
pub mod vhost;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::{Definition, Recovered, Store};
use auth::{User, Users};
use permissions::{Permission, Permissions, TopicPermission};
use vhost::{VHost, VHostMeta};

#[derive(Debug)]
pub struct BrokerState {
    pub config: Arc<Config>,
    pub users: Users,
    pub permissions: Permissions,
    pub login_throttle: auth::LoginThrottle,
    vhosts: DashMap<String, Arc<VHost>>,
    next_id: AtomicU64,
    pub connections: AtomicUsize,
    /// Flips to true once on shutdown; every connection watches it.
    pub shutdown: watch::Sender<bool>,
    /// Bumped when a user is deleted; connections check whether theirs still exists.
    pub users_deleted: watch::Sender<u64>,
    pub store: Option<Store>,
    /// What TTLs, queue expiry and the consumer timeout are measured on.
    pub clock: clock::Clock,
    /// Channels consuming from `amq.rabbitmq.reply-to`, by their generated names.
    pub direct_reply: direct_reply::DirectReply,
    /// The first start's default user and vhost, to be stored before serving.
    initial_definitions: std::sync::Mutex<Vec<Definition>>,
    /// Memory and disk alarms: publishers are blocked while either is raised.
    pub alarm: Arc<alarm::ResourceAlarm>,
    /// Open client connections, for the management API.
    pub connection_registry: connections::ConnectionRegistry,
    /// Broker-wide message and connection counters (Prometheus' `rabbitmq_global_*`).
    pub metrics: Arc<metrics::GlobalMetrics>,
    /// When this broker started, for its uptime.
    pub started: std::time::Instant,
    /// Every bound listener with its protocol as RabbitMQ names it (`amqp`, `amqp/ssl`,
    /// `http`, `http/prometheus`), set once the server has bound them.
    listeners: std::sync::OnceLock<Vec<(&'static str, std::net::SocketAddr)>>,
    /// Global runtime parameters by name, values as JSON text (`cluster_name` among them);
    /// changed by the management API only, never on the message path.
    global_parameters: std::sync::RwLock<std::collections::BTreeMap<String, String>>,
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
        | Definition::Binding { vhost, .. }
        | Definition::Policy { vhost, .. } => Some(vhost),
        Definition::VHost { name, .. } => Some(name),
        Definition::User { .. }
        | Definition::Permission { .. }
        | Definition::TopicPermission { .. }
        | Definition::GlobalParameter { .. } => None,
    }
}

impl BrokerState {
    pub fn new(
        config: Config,
        store: Option<Store>,
        recovered: Recovered,
    ) -> (Arc<Self>, RecoveryReport) {
        crate::model::message::store_ids_above(recovered.max_store_id);
        // As RabbitMQ: the configured default user and vhost are created on the first start
        // only (and stored); afterwards the store decides who and what exists.
        let first_start = !recovered
            .definitions
            .iter()
            .any(|d| matches!(d, Definition::User { .. } | Definition::VHost { .. }));
        let users = Users::default();
        let permissions = Permissions::default();
        let mut initial = Vec::new();
        if first_start {
            // As RabbitMQ's default user: an administrator with full access to its vhost.
            let admin = users.add(
                &config.default_user,
                &config.default_pass,
                config.default_user_tags.clone(),
            );
            initial.push(Definition::User {
                name: admin.name,
                password_hash: admin.password_hash,
                tags: admin.tags,
                limits: Vec::new(),
            });
            initial.push(Definition::VHost {
                name: config.default_vhost.clone(),
                description: "Default virtual host".into(),
                tags: Vec::new(),
                limits: Vec::new(),
            });
            initial.push(Definition::Permission {
                user: config.default_user.clone(),
                vhost: config.default_vhost.clone(),
                configure: config.default_permissions_configure.clone(),
                write: config.default_permissions_write.clone(),
                read: config.default_permissions_read.clone(),
            });
        }
        for d in recovered.definitions.iter().chain(initial.iter()) {
            restore_access(d, &users, &permissions);
        }
        let global_parameters = recovered
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::GlobalParameter { name, value } => Some((name.clone(), value.clone())),
                _ => None,
            })
            .collect();
        let mut names: BTreeSet<String> = recovered
            .definitions
            .iter()
            .filter_map(|d| definition_vhost(d).map(str::to_owned))
            .collect();
        if first_start {
            names.insert(config.default_vhost.clone());
        }
        let mut positions = recovered.queues;
        let mut delivery_counts = recovered.delivery_counts;
        let mut report = RecoveryReport::default();
        let vhosts = DashMap::new();
        let metrics = Arc::new(metrics::GlobalMetrics::default());
        let clock = clock::Clock::new(config.manual_clock);
        for name in names {
            let v = VHost::new(
                &name,
                store.clone(),
                config.queue_ram_limit as usize,
                config.vhost_max_queues as usize,
                metrics.clone(),
                clock.clone(),
            );
            report.messages +=
                v.restore(&recovered.definitions, &mut positions, &mut delivery_counts);
            for d in recovered.definitions.iter().chain(initial.iter()) {
                if let Definition::VHost {
                    name,
                    description,
                    tags,
                    limits,
                } = d
                {
                    if name == &v.name {
                        v.set_meta(VHostMeta {
                            description: description.clone(),
                            tags: tags.clone(),
                            limits: limits.iter().cloned().collect(),
                        });
                    }
                }
            }
            vhosts.insert(name, v);
        }
        report.queues = recovered
            .definitions
            .iter()
            .filter(|d| matches!(d, Definition::Queue { .. }))
            .count();
        let (shutdown, _) = watch::channel(false);
        let total = alarm::total_memory();
        let memory_limit = match config.vm_memory_high_watermark_absolute {
            0 => total.map_or(u64::MAX, |t| {
                (t as f64 * config.vm_memory_high_watermark) as u64
            }),
            absolute => absolute,
        };
        let disk_free_limit = match (config.disk_free_limit_relative, total) {
            (r, Some(t)) if r > 0.0 => (t as f64 * r) as u64,
            _ => config.disk_free_limit,
        };
        let alarm =
            alarm::ResourceAlarm::new(memory_limit, disk_free_limit, config.data_dir.clone());
        let state = Arc::new(Self {
            config: Arc::new(config),
            users,
            permissions,
            login_throttle: Default::default(),
            vhosts,
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown,
            users_deleted: watch::channel(0).0,
            initial_definitions: std::sync::Mutex::new(initial),
            alarm,
            listeners: std::sync::OnceLock::new(),
            metrics,
            connection_registry: Default::default(),
            started: std::time::Instant::now(),
            store,
            clock,
            direct_reply: Default::default(),
            global_parameters: std::sync::RwLock::new(global_parameters),
        });
        (state, report)
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// Every vhost, sorted by name.
    pub fn vhost_list(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<Arc<VHost>> = self.vhosts.iter().map(|v| v.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// A process-unique id for connections and channel epochs.
    /// Record the bound listeners (once, by the server at start-up).
    pub fn set_listeners(&self, addrs: Vec<(&'static str, std::net::SocketAddr)>) {
        let _ = self.listeners.set(addrs);
    }

    /// What this broker listens on, for the overview and the port-listener health check.
    pub fn listeners(&self) -> &[(&'static str, std::net::SocketAddr)] {
        self.listeners.get().map_or(&[], Vec::as_slice)
    }

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
}

/// Users and permissions from a stored (or first-start) definition. A stored pattern that
/// no longer compiles grants nothing, loudly, rather than stopping the broker.
fn restore_access(d: &Definition, users: &Users, permissions: &Permissions) {
    match d {
        Definition::User {
            name,
            password_hash,
            tags,
            limits,
        } => {
            users.put(User {
                name: name.clone(),
                password_hash: password_hash.clone(),
                tags: tags.clone(),
                limits: limits.clone(),
            });
        }
        Definition::Permission {
            user,
            vhost,
            configure,
            write,
            read,
        } => match Permission::new(user, vhost, configure, write, read) {
            Ok(p) => permissions.set(p),
            Err(e) => tracing::error!(%user, %vhost, "stored permission ignored: {e}"),
        },
        Definition::TopicPermission {
            user,
            vhost,
            exchange,
            write,
            read,
        } => {
            let t = TopicPermission {
                user: user.clone(),
                vhost: vhost.clone(),
                exchange: exchange.clone(),
                write: write.clone(),
                read: read.clone(),
            };
            if let Err(e) = permissions.set_topic(t) {
                tracing::error!(%user, %vhost, "stored topic permission ignored: {e}");
            }
        }
        _ => {}
    }
}
