//! `VHost`: one virtual host's exchanges, queues and bindings. Channels call it to declare,
//! delete, bind and route; `route` follows exchange-to-exchange bindings and never awaits or
//! holds a lock beyond one exchange's binding read. Queue actors call `forget_queue` when
//! they auto-delete. It never talks to connections.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use amq_protocol::types::FieldTable;
use dashmap::DashMap;

use super::exchange::{headers, Destination, Exchange, ExchangeKind};
use super::queue::{self, args, QueueArgs, QueueCmd, QueueHandle, QueueStats};
use crate::protocol::AmqpError;

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
    me: Weak<VHost>,
}

fn same(flag: bool) -> &'static str {
    if flag {
        "true"
    } else {
        "false"
    }
}

impl VHost {
    pub fn new(name: &str) -> Arc<Self> {
        let vhost = Arc::new_cyclic(|me| VHost {
            name: name.to_owned(),
            exchanges: DashMap::new(),
            queues: DashMap::new(),
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
            Some(owner) if owner != connection_id => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                q.name, self.name
            ))),
            _ => Ok(()),
        }
    }

    pub fn declare_exchange(&self, spec: ExchangeSpec, passive: bool) -> Result<(), AmqpError> {
        if spec.name.is_empty() {
            return if passive {
                Ok(())
            } else {
                Err(Self::default_exchange_refused())
            };
        }
        if passive {
            return self.exchange(&spec.name).map(|_| ());
        }
        if spec.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        let Some(kind) = ExchangeKind::parse(&spec.kind) else {
            return Err(AmqpError::command_invalid(format!(
                "unknown exchange type '{}'",
                spec.kind
            )));
        };
        let existing = self
            .exchanges
            .entry(spec.name.clone())
            .or_insert_with(|| {
                Arc::new(Exchange::new(
                    &spec.name,
                    kind,
                    spec.durable,
                    spec.auto_delete,
                    spec.internal,
                    spec.arguments.clone(),
                ))
            })
            .clone();
        let inequivalent = |arg: &str, received: &str, current: &str| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{}': received '{received}' but current is '{current}'",
                spec.name, self.name
            ))
        };
        if existing.kind != kind {
            return Err(inequivalent("type", kind.as_str(), existing.kind.as_str()));
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
        Ok(())
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{name}' contains reserved prefix 'amq.*'"
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
        self.remove_destination(&Destination::Exchange(x.name.clone()));
        Ok(())
    }

    /// Bind `destination` to `source`. Both must exist; the default exchange takes none.
    pub fn bind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let (src, _) = self.binding_ends(source, &destination)?;
        if src.kind == ExchangeKind::Headers {
            headers::validate(&arguments).map_err(AmqpError::precondition_failed)?;
        }
        src.bind(destination, routing_key, arguments);
        Ok(())
    }

    pub fn unbind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        let (src, _) = match self.binding_ends(source, &destination) {
            Ok(ends) => ends,
            // Unbinding what is not there is fine; only the default exchange is refused.
            Err(e) if e.code == crate::protocol::reply::NOT_FOUND => return Ok(()),
            Err(e) => return Err(e),
        };
        if src.unbind(&destination, routing_key, arguments) {
            self.maybe_auto_delete_exchange(&src);
        }
        Ok(())
    }

    fn binding_ends(
        &self,
        source: &str,
        destination: &Destination,
    ) -> Result<(Arc<Exchange>, ()), AmqpError> {
        let dest_name = match destination {
            Destination::Queue(q) | Destination::Exchange(q) => q,
        };
        if source.is_empty()
            || (matches!(destination, Destination::Exchange(_)) && dest_name.is_empty())
        {
            return Err(Self::default_exchange_refused());
        }
        match destination {
            Destination::Queue(q) => {
                self.queue(q)?;
            }
            Destination::Exchange(x) => {
                self.exchange(x)?;
            }
        }
        Ok((self.exchange(source)?, ()))
    }

    fn maybe_auto_delete_exchange(&self, x: &Arc<Exchange>) {
        if x.auto_delete && !x.has_bindings() {
            self.exchanges.remove(x.name.as_ref());
            self.remove_destination(&Destination::Exchange(x.name.clone()));
        }
    }

    /// Drop every binding to `destination`, auto-deleting exchanges left without any.
    fn remove_destination(&self, destination: &Destination) {
        let sources: Vec<Arc<Exchange>> = self.exchanges.iter().map(|x| x.clone()).collect();
        for x in sources {
            if x.unbind_destination(destination) > 0 {
                self.maybe_auto_delete_exchange(&x);
            }
        }
    }

    /// Declare (or find) a queue. Returns the handle and whether it was created now.
    pub fn declare_queue(
        &self,
        spec: QueueSpec,
        connection_id: u64,
    ) -> Result<(Arc<QueueHandle>, bool), AmqpError> {
        if let Some(q) = self.queues.get(&spec.name).map(|q| q.clone()) {
            self.check_exclusive(&q, connection_id)?;
            self.check_queue_equivalent(&q, &spec)?;
            return Ok((q, false));
        }
        let parsed = QueueArgs::parse(&spec.arguments, &spec.name, &self.name)?;
        let mut created = false;
        let q = self
            .queues
            .entry(spec.name.clone())
            .or_insert_with(|| {
                created = true;
                queue::spawn(
                    spec.name.as_str().into(),
                    spec.durable,
                    spec.auto_delete,
                    spec.exclusive.then_some(connection_id),
                    spec.arguments.clone(),
                    parsed,
                    self.me.clone(),
                )
            })
            .clone();
        if !created {
            self.check_exclusive(&q, connection_id)?;
            self.check_queue_equivalent(&q, &spec)?;
        }
        Ok((q, created))
    }

    fn check_queue_equivalent(&self, q: &QueueHandle, spec: &QueueSpec) -> Result<(), AmqpError> {
        let inequivalent = |arg: &str, received: bool, current: bool| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{}' but current is '{}'",
                q.name,
                self.name,
                same(received),
                same(current)
            ))
        };
        if q.durable != spec.durable {
            return Err(inequivalent("durable", spec.durable, q.durable));
        }
        if q.exclusive_owner.is_some() != spec.exclusive {
            return Err(inequivalent(
                "exclusive",
                spec.exclusive,
                q.exclusive_owner.is_some(),
            ));
        }
        if q.auto_delete != spec.auto_delete {
            return Err(inequivalent("auto_delete", spec.auto_delete, q.auto_delete));
        }
        args::check_equivalent(&q.arguments, &spec.arguments, &q.name, &self.name)
    }

    pub async fn queue_stats(&self, q: &QueueHandle) -> QueueStats {
        q.ask(|reply| QueueCmd::Stats { reply })
            .await
            .unwrap_or_default()
    }

    /// queue.delete: the actor checks if-unused/if-empty, tells its consumers, and stops.
    pub async fn delete_queue(
        &self,
        q: &Arc<QueueHandle>,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, AmqpError> {
        let result = q
            .ask(|reply| QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            })
            .await
            .unwrap_or(Ok(0));
        if result.is_ok() {
            self.forget_queue(&q.name);
        }
        result
    }

    /// Remove a queue from the vhost's tables and its bindings (the actor is stopping).
    pub fn forget_queue(&self, name: &str) {
        if let Some((_, q)) = self.queues.remove(name) {
            self.remove_destination(&Destination::Queue(q.name.clone()));
        }
    }

    /// Where a message published to `exchange` with `routing_key` goes, following
    /// exchange-to-exchange bindings; each queue once.
    pub fn route(
        &self,
        exchange: &Exchange,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<Arc<QueueHandle>>,
    ) {
        let mut pending = Vec::new();
        exchange.route(routing_key, headers, &mut pending);
        if pending.is_empty() {
            return;
        }
        let mut seen_queues: HashSet<Arc<str>> = HashSet::new();
        let mut seen_exchanges: HashSet<Arc<str>> = HashSet::from([exchange.name.clone()]);
        while let Some(d) = pending.pop() {
            match d {
                Destination::Queue(name) => {
                    if seen_queues.insert(name.clone()) {
                        if let Some(q) = self.queues.get(name.as_ref()) {
                            out.push(q.clone());
                        }
                    }
                }
                Destination::Exchange(name) => {
                    if seen_exchanges.insert(name.clone()) {
                        if let Some(x) = self.exchanges.get(name.as_ref()).map(|x| x.clone()) {
                            x.route(routing_key, headers, &mut pending);
                        }
                    }
                }
            }
        }
    }

    /// The default exchange: the queue named by the routing key.
    pub fn route_default(&self, routing_key: &str) -> Option<Arc<QueueHandle>> {
        self.queues.get(routing_key).map(|q| q.clone())
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.queues.iter().map(|q| q.key().clone()).collect()
    }
}
