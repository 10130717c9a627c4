//! `VHost`: one virtual host's exchanges, queues and bindings. Channels call it to declare,
//! delete, bind and route; `route` follows exchange-to-exchange bindings and never awaits or
//! holds a lock beyond one exchange's binding read. Changes to durable objects are committed
//! to the store before the call returns (so declare-ok means durable); queue actors call
//! `remove_queue` when they go. It never talks to connections.
//!
//! Queue declaration and deletion live in `queues.rs`, start-up recovery in `restore.rs`;
//! each vhost has one dead-letter task (`broker::deadletter`) and one delay task
//! (`broker::delayed`), started on first use.

mod policies;
mod queues;
mod restore;
mod routing;
pub mod stats;

use std::sync::{Arc, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use dashmap::DashMap;

use super::deadletter::DeadLetter;
use super::delayed::{requested_delay, DelayRequest};
use super::exchange::{
    check_type_name, declared_type, headers, Destination, Exchange, ExchangeKind,
};
use super::metrics::GlobalMetrics;
use super::queue::QueueHandle;
use crate::model::message::Message;
use crate::protocol::content::headers_of;
use crate::protocol::{erlang, AmqpError};
use crate::store::codec::Definition;
use crate::store::{Store, StoreOp};

/// Exchanges every vhost starts with, as in RabbitMQ.
const PREDECLARED: &[(&str, ExchangeKind)] = &[
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// The properties a client asks for in exchange.declare.
#[derive(Debug, Clone)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// The properties a client asks for in queue.declare (name already resolved).
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    exchanges: DashMap<String, Arc<Exchange>>,
    queues: DashMap<String, Arc<QueueHandle>>,
    store: Option<Store>,
    /// Per-queue budget of ready bodies in memory before stored messages are paged out.
    queue_ram_limit: usize,
    /// Most queues this vhost may hold (0 = no limit).
    max_queues: usize,
    /// The broker's counters, handed to every queue this vhost starts.
    pub(crate) metrics: Arc<GlobalMetrics>,
    /// The default exchange's publish counts (it has no `Exchange` of its own).
    pub default_exchange_stats: super::exchange::stats::ExchangeStats,
    /// Message counts for the management API's vhost pages.
    pub stats: stats::VHostStats,
    /// The broker's clock, likewise.
    pub(crate) clock: super::clock::Clock,
    /// Open connections to this vhost (counted by the handshake, released by the connection).
    pub connections: std::sync::atomic::AtomicUsize,
    /// Description and tags, as the management API shows them.
    meta: std::sync::RwLock<VHostMeta>,
    /// Flips to true when the vhost is deleted; its connections watch it and close.
    pub deleted: tokio::sync::watch::Sender<bool>,
    /// The dead-letter task's mailbox, started by the first dead letter.
    dead_letters: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<DeadLetter>>,
    /// Dead letters handed over and not yet re-published (the task counts them down).
    pub(crate) dead_letter_backlog: std::sync::atomic::AtomicUsize,
    /// The delay task's mailbox (`broker::delayed`), started by the first delayed publish
    /// or at start when the store holds delayed messages for this vhost.
    delays: std::sync::OnceLock<tokio::sync::mpsc::Sender<DelayRequest>>,
    /// Set once any `x-delayed-message` exchange exists here: until then a publish skips
    /// the delay check altogether.
    any_delayed: std::sync::atomic::AtomicBool,
    /// Policies and operator policies. Taken before a queue or exchange table entry when
    /// both are needed, never the other way round.
    policies: std::sync::RwLock<super::policy::Policies>,
    me: Weak<VHost>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VHostMeta {
    pub description: String,
    pub tags: Vec<String>,
    /// RabbitMQ's vhost limits ("max-connections", "max-queues"): a negative value means
    /// no limit, 0 allows none; absent, the broker-wide default applies.
    pub limits: std::collections::BTreeMap<String, i64>,
}

fn same(flag: bool) -> &'static str {
    if flag {
        "true"
    } else {
        "false"
    }
}

impl VHost {
    pub fn new(
        name: &str,
        store: Option<Store>,
        queue_ram_limit: usize,
        max_queues: usize,
        metrics: Arc<GlobalMetrics>,
        clock: super::clock::Clock,
    ) -> Arc<Self> {
        let vhost = Arc::new_cyclic(|me| VHost {
            name: name.to_owned(),
            queue_ram_limit,
            max_queues,
            metrics,
            default_exchange_stats: Default::default(),
            stats: Default::default(),
            clock,
            connections: std::sync::atomic::AtomicUsize::new(0),
            meta: Default::default(),
            deleted: tokio::sync::watch::channel(false).0,
            dead_letters: std::sync::OnceLock::new(),
            dead_letter_backlog: std::sync::atomic::AtomicUsize::new(0),
            exchanges: DashMap::new(),
            queues: DashMap::new(),
            store,
            policies: Default::default(),
            delays: std::sync::OnceLock::new(),
            any_delayed: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
        });
        for (name, kind) in PREDECLARED {
            vhost.exchanges.insert(
                (*name).to_owned(),
                Arc::new(Exchange::new(
                    name,
                    *kind,
                    true,
                    false,
                    false,
                    FieldTable::default(),
                )),
            );
        }
        vhost
    }

    /// Hand a message to this vhost's dead-letter task (never waits: called by queues).
    pub fn dead_letter(&self, dl: DeadLetter) {
        let tx = self
            .dead_letters
            .get_or_init(|| super::deadletter::spawn(self.me.clone()));
        self.dead_letter_backlog
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tx.send(dl);
    }

    /// How long a message published here is held back: its exchange is an
    /// `x-delayed-message` one and its `x-delay` header asks for a delay.
    pub fn delay_for(&self, message: &Message) -> Option<u64> {
        if !self.any_delayed.load(std::sync::atomic::Ordering::Relaxed)
            || message.exchange.is_empty()
        {
            return None;
        }
        if !self.exchanges.get(message.exchange.as_ref())?.delayed {
            return None;
        }
        requested_delay(&headers_of(message.properties()))
    }

    /// Hand a message to this vhost's delay task, to be routed `delay` ms from now; the
    /// confirm fires once it is stored. Waits only for room in the task's mailbox.
    pub async fn hold_back(
        &self,
        message: &Message,
        delay: u64,
        confirm: Option<Arc<crate::store::ConfirmToken>>,
    ) {
        let request = DelayRequest {
            message: Arc::new(super::delayed::as_released(message, delay)),
            due: self.clock.wall_ms_ceil().saturating_add(delay),
            confirm,
        };
        let _ = self.delays().send(request).await;
    }

    fn delays(&self) -> &tokio::sync::mpsc::Sender<DelayRequest> {
        self.delays.get_or_init(|| {
            super::delayed::spawn(
                self.me.clone(),
                self.name.as_str().into(),
                self.store.clone(),
                self.clock.clone(),
            )
        })
    }

    /// At start: pick up the delayed messages the store holds for this vhost.
    fn resume_delayed(&self) {
        if let Some(store) = &self.store {
            if !store.delayed(&self.name, None, 1).is_empty() {
                self.any_delayed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                self.delays();
            }
        }
    }

    /// A queue that keeps dead-lettering faster than the task re-publishes waits a little
    /// (a bounded time, never for another queue), so its mailbox fills and its publishers
    /// slow down instead of the backlog growing without bound in memory.
    pub async fn pace_dead_letters(&self) {
        const BACKLOG: usize = 20_000;
        for _ in 0..50 {
            if self
                .dead_letter_backlog
                .load(std::sync::atomic::Ordering::Relaxed)
                < BACKLOG
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// The limit named `name` in force: this vhost's own, else `default` (0 = none).
    pub fn limit(&self, name: &str, default: u64) -> Option<u64> {
        match self.meta().limits.get(name) {
            Some(v) if *v < 0 => None,
            Some(v) => Some(*v as u64),
            None => (default > 0).then_some(default),
        }
    }

    /// Every queue, by name (for the management API).
    pub fn queue_list(&self) -> Vec<Arc<QueueHandle>> {
        let mut all: Vec<Arc<QueueHandle>> =
            self.queues.iter().map(|q| q.value().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every exchange, the default one included, by name.
    pub fn exchange_list(&self) -> Vec<Arc<Exchange>> {
        let mut all: Vec<Arc<Exchange>> =
            self.exchanges.iter().map(|x| x.value().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    pub fn exchange_count(&self) -> usize {
        self.exchanges.len()
    }

    pub fn meta(&self) -> VHostMeta {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_meta(&self, meta: VHostMeta) {
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
    }

    pub fn definition(&self) -> Definition {
        let meta = self.meta();
        Definition::VHost {
            name: self.name.clone(),
            description: meta.description,
            tags: meta.tags,
            limits: meta.limits.into_iter().collect(),
        }
    }

    /// The vhost is being deleted: close its connections (they watch `deleted`), delete
    /// every queue (each actor removes its messages and definitions from the store) and
    /// every exchange with its bindings.
    pub async fn delete_everything(&self) {
        // stored even with no connection watching: one that subscribes later reads it
        self.deleted.send_replace(true);
        let queues: Vec<Arc<QueueHandle>> = self.queues.iter().map(|q| q.clone()).collect();
        for q in queues {
            let _ = self.delete_queue(&q, false, false).await;
        }
        let mut ops = Vec::new();
        let names: Vec<String> = self.exchanges.iter().map(|x| x.key().clone()).collect();
        for name in names {
            if !name.is_empty() && !name.starts_with("amq.") {
                let _ = self.delete_exchange_now(&name, false, &mut ops);
            }
        }
        ops.push(StoreOp::DeleteDelayed {
            vhost: self.name.as_str().into(),
        });
        self.persist(ops).await;
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    fn default_exchange_refused() -> AmqpError {
        AmqpError::access_refused("operation not permitted on the default exchange")
    }

    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, AmqpError> {
        self.exchanges
            .get(name)
            .map(|e| e.clone())
            .ok_or_else(|| self.no_exchange(name))
    }

    pub fn queue(&self, name: &str) -> Result<Arc<QueueHandle>, AmqpError> {
        self.queues
            .get(name)
            .map(|q| q.clone())
            .ok_or_else(|| self.no_queue(name))
    }

    /// A queue that connection `connection_id` may use (405 for another's exclusive queue).
    pub fn queue_for(&self, name: &str, connection_id: u64) -> Result<Arc<QueueHandle>, AmqpError> {
        let q = self.queue(name)?;
        self.check_exclusive(&q, connection_id)?;
        Ok(q)
    }

    fn check_exclusive(&self, q: &QueueHandle, connection_id: u64) -> Result<(), AmqpError> {
        match q.exclusive_owner {
            Some(owner) if owner != connection_id => Err(self.locked(q)),
            _ => Ok(()),
        }
    }

    fn locked(&self, q: &QueueHandle) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            q.name, self.name
        ))
    }

    /// Commit definition changes before answering the client.
    async fn persist(&self, ops: Vec<StoreOp>) {
        if let (Some(store), false) = (&self.store, ops.is_empty()) {
            store.commit(ops).await;
        }
    }

    fn exchange_definition(&self, x: &Exchange) -> Definition {
        Definition::Exchange {
            vhost: self.name.clone(),
            name: x.name.to_string(),
            kind: x.type_name().to_owned(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments.clone(),
        }
    }

    fn binding_definition(
        &self,
        source: &str,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Definition {
        Definition::Binding {
            vhost: self.name.clone(),
            source: source.to_owned(),
            destination: destination.clone(),
            routing_key: routing_key.to_owned(),
            arguments: arguments.clone(),
        }
    }

    /// A binding is durable when both its ends are.
    fn durable_destination(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Queue(q) => self
                .queues
                .get(q.as_ref())
                .is_some_and(|q| q.store_key.is_some()),
            Destination::Exchange(x) => self.exchanges.get(x.as_ref()).is_some_and(|x| x.durable),
        }
    }

    pub async fn declare_exchange(
        &self,
        spec: ExchangeSpec,
        passive: bool,
    ) -> Result<(), AmqpError> {
        let mut ops = Vec::new();
        self.declare_exchange_now(spec, passive, &mut ops)?;
        self.persist(ops).await;
        Ok(())
    }

    fn declare_exchange_now(
        &self,
        spec: ExchangeSpec,
        passive: bool,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), AmqpError> {
        // RabbitMQ refuses even a passive declaration of the default exchange
        if spec.name.is_empty() && passive {
            return Err(Self::default_exchange_refused());
        }
        if passive {
            return self.exchange(&spec.name).map(|_| ());
        }
        // RabbitMQ's order: the type, the default exchange, then (only for a new exchange)
        // the reserved prefix and the arguments; redeclaring amq.direct as it is succeeds
        check_type_name(&spec.kind)?;
        if spec.name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        if spec.name.starts_with("amq.") && !self.exchanges.contains_key(&spec.name) {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        let mut created = false;
        let policies = self.policy_table();
        let existing = match self.exchanges.entry(spec.name.clone()) {
            dashmap::Entry::Occupied(e) => e.get().clone(),
            // a new exchange's arguments are checked under its entry, so a declaration
            // racing this one cannot slip an unchecked exchange in
            dashmap::Entry::Vacant(v) => {
                alternate_exchange_argument(&spec.arguments, &spec.name, &self.name)?;
                let (kind, delayed) = declared_type(&spec.kind, &spec.arguments)?;
                let mut x = Exchange::new(
                    &spec.name,
                    kind,
                    spec.durable,
                    spec.auto_delete,
                    spec.internal,
                    spec.arguments.clone(),
                );
                if delayed {
                    x = x.delaying();
                    self.any_delayed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                x.set_policy(policies.applied(&spec.name, super::policy::Target::Exchange));
                created = true;
                v.insert(Arc::new(x)).clone()
            }
        };
        drop(policies);
        let inequivalent = |arg: &str, received: &str, current: &str| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{}': received '{received}' but current is '{current}'",
                spec.name, self.name
            ))
        };
        if created && existing.durable {
            ops.push(StoreOp::PutDefinition(self.exchange_definition(&existing)));
        }
        if existing.type_name() != spec.kind {
            return Err(inequivalent("type", &spec.kind, existing.type_name()));
        }
        if existing.durable != spec.durable {
            return Err(inequivalent(
                "durable",
                same(spec.durable),
                same(existing.durable),
            ));
        }
        if existing.auto_delete != spec.auto_delete {
            return Err(inequivalent(
                "auto_delete",
                same(spec.auto_delete),
                same(existing.auto_delete),
            ));
        }
        if existing.internal != spec.internal {
            return Err(inequivalent(
                "internal",
                same(spec.internal),
                same(existing.internal),
            ));
        }
        // RabbitMQ compares one exchange argument, the alternate exchange
        let ae = |t: &FieldTable| t.inner().get("alternate-exchange").cloned();
        let (current, received) = (ae(&existing.arguments), ae(&spec.arguments));
        let side = |v: &Option<AMQPValue>| match v {
            None => "none".to_owned(),
            Some(v) => format!(
                "the value '{}' of type '{}'",
                erlang::value(v),
                erlang::type_name(v)
            ),
        };
        let differs = match (&current, &received) {
            (None, None) => None,
            (Some(a), Some(b)) if erlang::value(a) == erlang::value(b) => None,
            (Some(a), Some(b)) => Some((
                format!("'{}'", erlang::value(b)),
                format!("'{}'", erlang::value(a)),
            )),
            _ => Some((side(&received), side(&current))),
        };
        if let Some((received, current)) = differs {
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg 'alternate-exchange' for exchange '{}' in vhost '{}': received {received} but current is {current}",
                spec.name, self.name
            )));
        }
        Ok(())
    }

    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        let mut ops = Vec::new();
        self.delete_exchange_now(name, if_unused, &mut ops)?;
        self.persist(ops).await;
        Ok(())
    }

    fn delete_exchange_now(
        &self,
        name: &str,
        if_unused: bool,
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(x) = self.exchanges.get(name).map(|x| x.clone()) else {
            return Ok(()); // idempotent, as RabbitMQ 3.x
        };
        if if_unused && x.has_bindings() {
            return Err(AmqpError::precondition_failed(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.exchanges.remove(name);
        if x.durable {
            ops.push(StoreOp::DeleteDefinition(self.exchange_definition(&x)));
            // its own bindings go with it
            for b in x.bindings() {
                ops.push(StoreOp::DeleteDefinition(self.binding_definition(
                    &x.name,
                    &b.destination,
                    &b.routing_key,
                    &b.arguments,
                )));
            }
        }
        self.remove_destination(&Destination::Exchange(x.name.clone()), ops);
        Ok(())
    }

    /// Bind `destination` to `source`. Both must exist; the default exchange takes none.
    pub async fn bind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: FieldTable,
        connection_id: u64,
    ) -> Result<(), AmqpError> {
        let src = self.binding_ends(source, &destination)?;
        // as RabbitMQ: both ends must exist before another's exclusive queue is locked
        if let Destination::Queue(q) = &destination {
            self.queue_for(q, connection_id)?;
        }
        if src.kind == ExchangeKind::Headers {
            headers::validate(&arguments).map_err(AmqpError::precondition_failed)?;
        }
        let durable = src.durable && self.durable_destination(&destination);
        let definition = self.binding_definition(source, &destination, routing_key, &arguments);
        if src.bind(destination, routing_key, arguments) && durable {
            self.persist(vec![StoreOp::PutDefinition(definition)]).await;
        }
        Ok(())
    }

    pub async fn unbind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
        connection_id: u64,
    ) -> Result<(), AmqpError> {
        let src = match self.binding_ends(source, &destination) {
            Ok(ends) => ends,
            // Unbinding what is not there is fine; only the default exchange is refused.
            Err(e) if e.code == crate::protocol::reply::NOT_FOUND => return Ok(()),
            Err(e) => return Err(e),
        };
        // as RabbitMQ: another connection's exclusive queue is locked only when there is
        // a binding to remove; unbinding nothing from it is fine
        if let Destination::Queue(q) = &destination {
            if src.has_binding(&destination, routing_key, arguments) {
                self.queue_for(q, connection_id)?;
            }
        }
        let mut ops = Vec::new();
        if src.unbind(&destination, routing_key, arguments) {
            if src.durable {
                ops.push(StoreOp::DeleteDefinition(self.binding_definition(
                    source,
                    &destination,
                    routing_key,
                    arguments,
                )));
            }
            self.maybe_auto_delete_exchange(&src, &mut ops);
        }
        self.persist(ops).await;
        Ok(())
    }

    fn binding_ends(
        &self,
        source: &str,
        destination: &Destination,
    ) -> Result<Arc<Exchange>, AmqpError> {
        let dest_name = match destination {
            Destination::Queue(q) | Destination::Exchange(q) => q,
        };
        if source.is_empty()
            || (matches!(destination, Destination::Exchange(_)) && dest_name.is_empty())
        {
            return Err(Self::default_exchange_refused());
        }
        // RabbitMQ names the missing source before the missing destination
        let src = self.exchange(source)?;
        match destination {
            Destination::Queue(q) => {
                self.queue(q)?;
            }
            Destination::Exchange(x) => {
                self.exchange(x)?;
            }
        }
        Ok(src)
    }

    fn maybe_auto_delete_exchange(&self, x: &Arc<Exchange>, ops: &mut Vec<StoreOp>) {
        if x.auto_delete && !x.has_bindings() {
            self.exchanges.remove(x.name.as_ref());
            if x.durable {
                ops.push(StoreOp::DeleteDefinition(self.exchange_definition(x)));
            }
            self.remove_destination(&Destination::Exchange(x.name.clone()), ops);
        }
    }

    /// Drop every binding to `destination`, auto-deleting exchanges left without any.
    fn remove_destination(&self, destination: &Destination, ops: &mut Vec<StoreOp>) {
        let sources: Vec<Arc<Exchange>> = self.exchanges.iter().map(|x| x.clone()).collect();
        for x in sources {
            let removed = x.unbind_destination(destination);
            if removed.is_empty() {
                continue;
            }
            if x.durable {
                for b in &removed {
                    ops.push(StoreOp::DeleteDefinition(self.binding_definition(
                        &x.name,
                        &b.destination,
                        &b.routing_key,
                        &b.arguments,
                    )));
                }
            }
            self.maybe_auto_delete_exchange(&x, ops);
        }
    }
}

/// A new exchange's `alternate-exchange` argument: the AE's name, if it has one. RabbitMQ
/// takes only a long string there.
pub fn alternate_exchange_argument(
    arguments: &FieldTable,
    exchange: &str,
    vhost: &str,
) -> Result<Option<String>, AmqpError> {
    match arguments.inner().get("alternate-exchange") {
        None => Ok(None),
        Some(AMQPValue::LongString(s)) => Ok(Some(String::from_utf8_lossy(s.as_bytes()).into_owned())),
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "invalid type '{}' for arg 'alternate-exchange' in exchange '{exchange}' in vhost '{vhost}'",
            erlang::type_name(other)
        ))),
    }
}
