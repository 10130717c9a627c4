//! Policies and operator policies: what each is, which one a queue or exchange is under,
//! and the settings that follow from it together with the object's own arguments. Pure
//! data; the vhost keeps one `Policies` per vhost, re-matches its queues and exchanges
//! when it changes and sends each queue actor what applies to it. Nothing here talks to a
//! queue, a connection or the store.
//!
//! As RabbitMQ 3.10: of the policies whose pattern matches the name, whose `apply-to`
//! takes the kind of object and whose keys the queue type supports, the highest priority
//! wins (one policy, never a blend), and likewise one operator policy. Where both set a
//! key, the lower number wins. The object's own `x-` arguments then win or lose per key
//! (`queue_args`).

pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use serde_json::{json, Number, Value};

use super::queue::args::{Overflow, QueueArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Set by users with the policymaker tag (`/api/policies`, `set_policy`).
    Policy,
    /// Set by administrators to cap resources (`/api/operator-policies`).
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    All,
    Queues,
    Exchanges,
}

impl ApplyTo {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "queues" => Some(Self::Queues),
            "exchanges" => Some(Self::Exchanges),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Queues => "queues",
            Self::Exchanges => "exchanges",
        }
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    ClassicQueue,
    QuorumQueue,
    Exchange,
}

/// Keys each queue type does not take (RabbitMQ's `unsupported_policies`): a policy that
/// holds one is passed over for queues of that type, and the next one may apply.
const CLASSIC_UNSUPPORTED: &[&str] = &[
    "max-age",
    "stream-max-segment-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
    "delivery-limit",
    "dead-letter-strategy",
];
const QUORUM_UNSUPPORTED: &[&str] = &[
    "max-priority",
    "queue-mode",
    "single-active-consumer",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-master-locator",
    "max-age",
    "stream-max-segment-size-bytes",
    "initial-cluster-size",
];

#[derive(Debug, Clone)]
pub struct Policy {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    regex: regex::Regex,
    pub apply_to: ApplyTo,
    /// Any JSON number, as RabbitMQ takes (2.5 is a priority).
    pub priority: Number,
    /// Sorted by key, as RabbitMQ shows definitions.
    pub definition: BTreeMap<String, Value>,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        (&self.vhost, &self.name, &self.pattern, self.apply_to)
            == (&other.vhost, &other.name, &other.pattern, other.apply_to)
            && self.priority == other.priority
            && self.definition == other.definition
    }
}

impl Policy {
    fn rank(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }

    fn matches(&self, name: &str, target: Target) -> bool {
        let kind_ok = matches!(
            (self.apply_to, target),
            (ApplyTo::All, _)
                | (ApplyTo::Queues, Target::ClassicQueue | Target::QuorumQueue)
                | (ApplyTo::Exchanges, Target::Exchange)
        );
        let unsupported: &[&str] = match target {
            Target::ClassicQueue => CLASSIC_UNSUPPORTED,
            Target::QuorumQueue => QUORUM_UNSUPPORTED,
            Target::Exchange => &[],
        };
        kind_ok
            && !self
                .definition
                .keys()
                .any(|k| unsupported.contains(&k.as_str()))
            && self.regex.is_match(name)
    }

    /// As the management API lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }

    /// The runtime parameter's value, as stored and as `Policy::parse` reads it back.
    pub fn value_json(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("pattern".into(), self.pattern.clone().into());
        m.insert("definition".into(), json!(self.definition));
        m.insert("priority".into(), Value::Number(self.priority.clone()));
        m.insert("apply-to".into(), self.apply_to.as_str().into());
        m
    }
}

/// One vhost's policies and operator policies. `version` grows with every change, so a
/// queue can tell a newer setting from a late older one.
#[derive(Debug, Default)]
pub struct Policies {
    user: BTreeMap<String, Arc<Policy>>,
    operator: BTreeMap<String, Arc<Policy>>,
    version: u64,
}

impl Policies {
    fn of(&self, kind: PolicyKind) -> &BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &self.user,
            PolicyKind::Operator => &self.operator,
        }
    }

    fn of_mut(&mut self, kind: PolicyKind) -> &mut BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &mut self.user,
            PolicyKind::Operator => &mut self.operator,
        }
    }

    /// Add or replace; true when it is new.
    pub fn set(&mut self, kind: PolicyKind, policy: Policy) -> bool {
        self.version += 1;
        self.of_mut(kind)
            .insert(policy.name.clone(), Arc::new(policy))
            .is_none()
    }

    pub fn remove(&mut self, kind: PolicyKind, name: &str) -> Option<Arc<Policy>> {
        self.version += 1;
        self.of_mut(kind).remove(name)
    }

    pub fn get(&self, kind: PolicyKind, name: &str) -> Option<Arc<Policy>> {
        self.of(kind).get(name).cloned()
    }

    /// Lowest priority first, as RabbitMQ lists them.
    pub fn list(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        let mut all: Vec<Arc<Policy>> = self.of(kind).values().cloned().collect();
        all.sort_by(|a, b| a.rank().total_cmp(&b.rank()));
        all
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The policy and operator policy in force on the object `name`. Among equal
    /// priorities the first name in order wins, so the choice does not change by itself.
    pub fn applied(&self, name: &str, target: Target) -> Applied {
        let best = |set: &BTreeMap<String, Arc<Policy>>| {
            set.values()
                .filter(|p| p.matches(name, target))
                .fold(None::<&Arc<Policy>>, |best, p| match best {
                    Some(b) if b.rank() >= p.rank() => Some(b),
                    _ => Some(p),
                })
                .cloned()
        };
        Applied {
            policy: best(&self.user),
            operator: best(&self.operator),
        }
    }
}

/// The policy and operator policy in force on one queue or exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub policy: Option<Arc<Policy>>,
    pub operator: Option<Arc<Policy>>,
}

/// Where a policy and an operator policy both set a key, the stricter value (RabbitMQ's
/// merge strategy for the resource caps, the only keys an operator policy holds).
fn merge(policy: &Value, operator: &Value) -> Value {
    match (policy.as_f64(), operator.as_f64()) {
        (Some(p), Some(o)) if p <= o => policy.clone(),
        _ => operator.clone(),
    }
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.operator.is_none()
    }

    /// One key's value from the policy and the operator policy together.
    pub fn get(&self, key: &str) -> Option<Value> {
        let p = self.policy.as_ref().and_then(|p| p.definition.get(key));
        let o = self.operator.as_ref().and_then(|p| p.definition.get(key));
        match (p, o) {
            (Some(p), Some(o)) => Some(merge(p, o)),
            (p, o) => p.or(o).cloned(),
        }
    }

    /// RabbitMQ's `effective_policy_definition`: both definitions merged.
    pub fn effective_definition(&self) -> BTreeMap<String, Value> {
        let keys = self
            .policy
            .iter()
            .chain(self.operator.iter())
            .flat_map(|p| p.definition.keys().cloned());
        keys.filter_map(|k| self.get(&k).map(|v| (k, v))).collect()
    }

    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.name.as_str())
    }

    pub fn operator_name(&self) -> Option<&str> {
        self.operator.as_ref().map(|p| p.name.as_str())
    }

    /// An exchange's alternate from its policy (its own argument wins over this).
    pub fn alternate_exchange(&self) -> Option<Arc<str>> {
        self.get("alternate-exchange")
            .and_then(|v| v.as_str().map(Arc::from))
    }
}

fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A queue's settings from its arguments and its policies, with RabbitMQ 3.10's
/// precedence per key. Classic queues (`rabbit_amqqueue_process`): the lower of argument
/// and policy for TTLs, expiry and lengths; the argument for dead-lettering and
/// overflow. Quorum queues (`rabbit_quorum_queue`): the lower for lengths, TTL and
/// delivery limit; the policy for overflow and expiry; the argument for dead-lettering.
pub fn queue_args(arguments: &FieldTable, declared: &QueueArgs, applied: &Applied) -> QueueArgs {
    if applied.is_empty() {
        return declared.clone();
    }
    let quorum = declared.is_quorum();
    let has = |k: &str| arguments.inner().contains_key(k);
    let number = |k: &str| applied.get(k).and_then(|v| v.as_u64());
    let text = |k: &str| applied.get(k).and_then(|v| v.as_str().map(str::to_owned));
    let mut out = declared.clone();
    out.message_ttl = lower(declared.message_ttl, number("message-ttl"));
    out.max_length = lower(declared.max_length, number("max-length"));
    out.max_length_bytes = lower(declared.max_length_bytes, number("max-length-bytes"));
    out.expires = match quorum {
        true => number("expires").or(declared.expires),
        false => lower(declared.expires, number("expires")),
    };
    if quorum {
        out.delivery_limit = lower(declared.delivery_limit, number("delivery-limit"));
    }
    if !has("x-dead-letter-exchange") {
        out.dead_letter_exchange = text("dead-letter-exchange");
    }
    if !has("x-dead-letter-routing-key") {
        out.dead_letter_routing_key = text("dead-letter-routing-key");
    }
    if quorum || !has("x-overflow") {
        match text("overflow").as_deref() {
            Some("drop-head") => out.overflow = Overflow::DropHead,
            Some("reject-publish") => out.overflow = Overflow::RejectPublish,
            Some("reject-publish-dlx") => out.overflow = Overflow::RejectPublishDlx,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::AMQPValue;

    use super::*;

    fn policy(kind: PolicyKind, name: &str, pattern: &str, priority: i64, def: Value) -> Policy {
        let Value::Object(body) =
            json!({"pattern": pattern, "definition": def, "priority": priority})
        else {
            unreachable!()
        };
        Policy::parse(kind, "/", name, &body).unwrap()
    }

    #[test]
    fn the_highest_priority_matching_policy_applies_whole() {
        let mut set = Policies::default();
        set.set(
            PolicyKind::Policy,
            policy(
                PolicyKind::Policy,
                "low",
                "^orders",
                0,
                json!({"message-ttl": 100, "max-length": 5}),
            ),
        );
        set.set(
            PolicyKind::Policy,
            policy(
                PolicyKind::Policy,
                "high",
                "^orders\\.",
                5,
                json!({"expires": 1000}),
            ),
        );
        let a = set.applied("orders.eu", Target::ClassicQueue);
        assert_eq!(a.policy_name(), Some("high"));
        assert_eq!(a.get("message-ttl"), None, "policies are never blended");
        assert_eq!(
            set.applied("ordersX", Target::ClassicQueue).policy_name(),
            Some("low")
        );
        assert_eq!(
            set.applied("stock", Target::ClassicQueue),
            Applied::default()
        );
        assert_eq!(set.list(PolicyKind::Policy)[0].name, "low");
    }

    #[test]
    fn a_policy_with_keys_a_queue_type_lacks_passes_it_over() {
        let mut set = Policies::default();
        set.set(
            PolicyKind::Policy,
            policy(PolicyKind::Policy, "ha", ".*", 9, json!({"ha-mode": "all"})),
        );
        set.set(
            PolicyKind::Policy,
            policy(
                PolicyKind::Policy,
                "dl",
                ".*",
                1,
                json!({"delivery-limit": 3}),
            ),
        );
        assert_eq!(
            set.applied("q", Target::ClassicQueue).policy_name(),
            Some("ha")
        );
        assert_eq!(
            set.applied("q", Target::QuorumQueue).policy_name(),
            Some("dl")
        );
        assert_eq!(set.applied("x", Target::Exchange).policy_name(), Some("ha"));
    }

    #[test]
    fn operator_caps_win_when_lower_and_arguments_per_rabbitmqs_precedence() {
        let mut set = Policies::default();
        set.set(PolicyKind::Policy, policy(PolicyKind::Policy, "p", "^o", 0, json!({"message-ttl": 1000, "max-length": 5, "dead-letter-exchange": "dlx", "overflow": "reject-publish"})));
        set.set(
            PolicyKind::Operator,
            policy(
                PolicyKind::Operator,
                "op",
                "^o",
                0,
                json!({"message-ttl": 500, "max-length": 10}),
            ),
        );
        let a = set.applied("orders", Target::ClassicQueue);
        let def = a.effective_definition();
        assert_eq!(def["message-ttl"], json!(500));
        assert_eq!(def["max-length"], json!(5));

        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(3));
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("own".into()),
        );
        let classic = queue_args(&args, &QueueArgs::read(&args), &a);
        assert_eq!(classic.max_length, Some(3));
        assert_eq!(classic.message_ttl, Some(500));
        assert_eq!(classic.overflow, Overflow::DropHead);
        assert_eq!(classic.dead_letter_exchange.as_deref(), Some("own"));

        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        let quorum = queue_args(&args, &QueueArgs::read(&args), &a);
        assert_eq!(
            quorum.overflow,
            Overflow::RejectPublish,
            "a quorum queue takes the policy's overflow"
        );

        let bare = queue_args(&FieldTable::default(), &QueueArgs::default(), &a);
        assert_eq!(bare.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(bare.max_length, Some(5));
    }
}
