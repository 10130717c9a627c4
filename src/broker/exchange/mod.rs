//! Exchanges are data, not tasks (design rule 6): an `Exchange` holds its bindings behind a
//! short-lived std `RwLock` and `route` appends the destinations a message goes to, with no
//! await and no lock held beyond the call. The vhost follows exchange-to-exchange bindings.

pub mod headers;
pub mod stats;
pub mod topic;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use amq_protocol::types::{AMQPValue, FieldTable};

use super::policy::Applied;
use crate::protocol::AmqpError;
use topic::Trie;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

pub use crate::model::Destination;

/// The community plugin's exchange type that holds messages back for their `x-delay`
/// (`broker::delayed`) and then routes them as its `x-delayed-type`.
pub const DELAYED_TYPE: &str = "x-delayed-message";

/// How an exchange declared as `type_name` with `arguments` routes, and whether it delays:
/// the four built-in types, or `x-delayed-message` over one of them (checked as the
/// plugin checks a new exchange, with its texts).
pub fn declared_type(
    type_name: &str,
    arguments: &FieldTable,
) -> Result<(ExchangeKind, bool), AmqpError> {
    if let Some(kind) = ExchangeKind::parse(type_name) {
        return Ok((kind, false));
    }
    check_type_name(type_name)?;
    let inner = match arguments.inner().get("x-delayed-type") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => {
            return Err(AmqpError::precondition_failed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            ))
        }
    };
    if inner == DELAYED_TYPE {
        return Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ));
    }
    ExchangeKind::parse(&inner)
        .map(|kind| (kind, true))
        .ok_or_else(|| unknown_type(&inner))
}

/// RabbitMQ's `check_type`: a type this broker has, else 503 with its text.
pub fn check_type_name(type_name: &str) -> Result<(), AmqpError> {
    if ExchangeKind::parse(type_name).is_some() || type_name == DELAYED_TYPE {
        Ok(())
    } else {
        Err(unknown_type(type_name))
    }
}

fn unknown_type(type_name: &str) -> AmqpError {
    AmqpError::command_invalid(format!("unknown exchange type '{type_name}'"))
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
}

/// An exchange's bindings, each under an id: kept in the order they were made, found again
/// by destination and key without a scan, and indexed the way the exchange routes (by key
/// for direct, a trie for topic). Adding or removing one touches only its own entries.
#[derive(Debug, Default)]
struct Bindings {
    all: BTreeMap<u64, Binding>,
    next_id: u64,
    /// (destination, routing key) -> ids (the same pair may differ in arguments).
    by_end: HashMap<(Destination, String), Vec<u64>>,
    /// Direct exchanges: routing key -> ids.
    by_key: HashMap<String, Vec<u64>>,
    /// Topic exchanges.
    trie: Trie,
}

impl Bindings {
    fn find(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Option<u64> {
        // a borrowed lookup would need the key split; bindings are looked up rarely
        let ids = self
            .by_end
            .get(&(destination.clone(), routing_key.to_owned()))?;
        ids.iter()
            .copied()
            .find(|id| self.all.get(id).is_some_and(|b| &b.arguments == arguments))
    }

    fn add(&mut self, kind: ExchangeKind, binding: Binding) {
        let id = self.next_id;
        self.next_id += 1;
        self.by_end
            .entry((binding.destination.clone(), binding.routing_key.clone()))
            .or_default()
            .push(id);
        match kind {
            ExchangeKind::Direct => self
                .by_key
                .entry(binding.routing_key.clone())
                .or_default()
                .push(id),
            ExchangeKind::Topic => self.trie.insert(&binding.routing_key, id),
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
        self.all.insert(id, binding);
    }

    fn remove(&mut self, kind: ExchangeKind, id: u64) -> Option<Binding> {
        let b = self.all.remove(&id)?;
        forget(
            &mut self.by_end,
            (b.destination.clone(), b.routing_key.clone()),
            id,
        );
        match kind {
            ExchangeKind::Direct => forget(&mut self.by_key, b.routing_key.clone(), id),
            ExchangeKind::Topic => self.trie.remove(&b.routing_key, id),
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
        Some(b)
    }
}

/// Take `id` out of the list under `key`, and the entry when it is left empty.
fn forget<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u64>>, key: K, id: u64) {
    if let std::collections::hash_map::Entry::Occupied(mut e) = map.entry(key) {
        e.get_mut().retain(|x| *x != id);
        if e.get().is_empty() {
            e.remove();
        }
    }
}

#[derive(Debug)]
pub struct Exchange {
    pub name: Arc<str>,
    /// How it routes (for a delayed exchange, its `x-delayed-type`).
    pub kind: ExchangeKind,
    /// An `x-delayed-message` exchange: a message with an `x-delay` waits before routing.
    pub delayed: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The `alternate-exchange` argument: where a message this exchange routes nowhere
    /// goes instead (followed by the vhost's router).
    pub alternate: Option<Arc<str>>,
    bindings: RwLock<Bindings>,
    /// The policy and operator policy in force, set by the vhost as policies change.
    policy: RwLock<Applied>,
    /// Messages published here and copies routed on, for the management API.
    pub stats: stats::ExchangeStats,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let alternate = match arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str().into()),
            _ => None,
        };
        Self {
            name: name.into(),
            kind,
            delayed: false,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            bindings: RwLock::default(),
            policy: RwLock::default(),
            stats: stats::ExchangeStats::default(),
        }
    }

    /// This exchange as an `x-delayed-message` one routing as its `kind`.
    pub fn delaying(self) -> Self {
        Self {
            delayed: true,
            ..self
        }
    }

    /// The type as declared and shown: `x-delayed-message` or the routing kind.
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            DELAYED_TYPE
        } else {
            self.kind.as_str()
        }
    }

    pub fn policy(&self) -> Applied {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_policy(&self, applied: Applied) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = applied;
    }

    /// Where a message this exchange routes nowhere goes: its own `alternate-exchange`
    /// argument, else its policy's (RabbitMQ's `get_arg`: the argument wins).
    pub fn alternate_exchange(&self) -> Option<Arc<str>> {
        self.alternate.clone().or_else(|| {
            self.policy
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .alternate_exchange()
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Bindings> {
        self.bindings.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Bindings> {
        self.bindings.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a binding; false when the identical binding already existed.
    pub fn bind(&self, destination: Destination, routing_key: &str, arguments: FieldTable) -> bool {
        let mut b = self.write();
        if b.find(&destination, routing_key, &arguments).is_some() {
            return false;
        }
        b.add(
            self.kind,
            Binding {
                destination,
                routing_key: routing_key.to_owned(),
                arguments,
            },
        );
        true
    }

    /// Remove a binding; false when it did not exist (unbind is idempotent anyway).
    pub fn unbind(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        let mut b = self.write();
        match b.find(destination, routing_key, arguments) {
            Some(id) => b.remove(self.kind, id).is_some(),
            None => false,
        }
    }

    /// Drop every binding to `destination`; returns the ones that went.
    pub fn unbind_destination(&self, destination: &Destination) -> Vec<Binding> {
        let mut b = self.write();
        let ids: Vec<u64> = b
            .all
            .iter()
            .filter(|(_, x)| &x.destination == destination)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| b.remove(self.kind, id))
            .collect()
    }

    pub fn has_binding(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> bool {
        self.read()
            .find(destination, routing_key, arguments)
            .is_some()
    }

    pub fn has_bindings(&self) -> bool {
        !self.read().all.is_empty()
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.read().all.values().cloned().collect()
    }

    /// Append where a message with this routing key (and headers, decoded only if a headers
    /// exchange asks) goes from this exchange.
    pub fn route(
        &self,
        routing_key: &str,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<Destination>,
    ) {
        let b = self.read();
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(ids) = b.by_key.get(routing_key) {
                    out.extend(
                        ids.iter()
                            .filter_map(|id| b.all.get(id))
                            .map(|x| x.destination.clone()),
                    );
                }
            }
            ExchangeKind::Fanout => out.extend(b.all.values().map(|x| x.destination.clone())),
            ExchangeKind::Topic => b.trie.route(routing_key, |id| {
                if let Some(x) = b.all.get(&id) {
                    out.push(x.destination.clone());
                }
            }),
            ExchangeKind::Headers => {
                if b.all.is_empty() {
                    return;
                }
                let table = headers();
                out.extend(
                    b.all
                        .values()
                        .filter(|x| headers::matches(&x.arguments, table.as_ref()))
                        .map(|x| x.destination.clone()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn route(x: &Exchange, key: &str) -> Vec<Destination> {
        let mut out = vec![];
        x.route(key, &mut || None, &mut out);
        out
    }

    #[test]
    fn direct_routes_to_every_queue_bound_with_the_key() {
        let x = Exchange::new(
            "d",
            ExchangeKind::Direct,
            false,
            false,
            false,
            FieldTable::default(),
        );
        x.bind(q("a"), "k", FieldTable::default());
        x.bind(q("b"), "k", FieldTable::default());
        x.bind(q("c"), "other", FieldTable::default());
        assert_eq!(route(&x, "k"), vec![q("a"), q("b")]);
        assert!(route(&x, "nope").is_empty());
    }

    #[test]
    fn duplicate_bind_is_a_no_op_and_unbind_is_idempotent() {
        let x = Exchange::new(
            "f",
            ExchangeKind::Fanout,
            false,
            false,
            false,
            FieldTable::default(),
        );
        assert!(x.bind(q("a"), "", FieldTable::default()));
        assert!(!x.bind(q("a"), "", FieldTable::default()));
        assert_eq!(route(&x, "anything").len(), 1);
        assert!(x.unbind(&q("a"), "", &FieldTable::default()));
        assert!(!x.unbind(&q("a"), "", &FieldTable::default()));
        assert!(!x.has_bindings());
    }

    #[test]
    fn topic_routes_by_pattern() {
        let x = Exchange::new(
            "t",
            ExchangeKind::Topic,
            false,
            false,
            false,
            FieldTable::default(),
        );
        x.bind(q("all"), "#", FieldTable::default());
        x.bind(q("orange"), "*.orange.*", FieldTable::default());
        let mut to = route(&x, "quick.orange.fox");
        to.sort();
        assert_eq!(to, vec![q("all"), q("orange")]);
        assert_eq!(route(&x, "lazy"), vec![q("all")]);
    }
}
