//! RabbitMQ's authorisation model: per user and vhost three regular expressions
//! (configure, write, read) matched against resource names, plus topic permissions on
//! routing keys per exchange. Connections ask `check` / `check_topic` before each operation
//! (and cache answers per `generation`, which every change bumps, so a revocation applies to
//! the next operation). The management API and the store recovery write here; nothing here
//! persists or talks to sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use regex::Regex;

use crate::protocol::{reply, AmqpError};

/// The three kinds of access RabbitMQ distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// What a permission applies to, for the refusal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Exchange,
    Queue,
}

impl ResourceKind {
    fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Exchange => "exchange",
            ResourceKind::Queue => "queue",
        }
    }
}

/// A permission pattern: the text as given and its compiled form. RabbitMQ treats the
/// empty string as `^$` (nothing but the empty name).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    regex: Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let effective = if source.is_empty() { "^$" } else { source };
        Ok(Self {
            source: source.to_owned(),
            regex: Regex::new(effective)?,
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub user: String,
    pub vhost: String,
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl Permission {
    pub fn new(
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<Self, regex::Error> {
        Ok(Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    fn pattern(&self, access: Access) -> &Pattern {
        match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        }
    }
}

/// A topic permission: for one exchange, which routing keys a user may publish with (write)
/// and bind with (read). `{username}` and `{vhost}` in a pattern are replaced before matching.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPermission {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

type Key = (String, String);

/// Fill in RabbitMQ's topic-permission variables, escaped so a name matches literally.
fn expand(pattern: &str, user: &str, vhost: &str) -> String {
    pattern
        .replace("{username}", &regex::escape(user))
        .replace("{vhost}", &regex::escape(vhost))
}

#[derive(Debug, Default)]
pub struct Permissions {
    by_user_vhost: DashMap<Key, Arc<Permission>>,
    topic: DashMap<Key, Vec<TopicPermission>>,
    generation: AtomicU64,
}

/// RabbitMQ's refusal: 403 ACCESS_REFUSED, closing the channel.
fn refused(access: Access, kind: ResourceKind, name: &str, vhost: &str, user: &str) -> AmqpError {
    AmqpError::access_refused(format!(
        "{} access to {} '{}' in vhost '{}' refused for user '{}'",
        access.as_str(),
        kind.as_str(),
        name,
        vhost,
        user
    ))
}

impl Permissions {
    /// Bumped by every change; connections drop cached answers when it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn set(&self, p: Permission) {
        self.by_user_vhost
            .insert((p.user.clone(), p.vhost.clone()), Arc::new(p));
        self.changed();
    }

    pub fn clear(&self, user: &str, vhost: &str) -> Option<Arc<Permission>> {
        let gone = self
            .by_user_vhost
            .remove(&(user.to_owned(), vhost.to_owned()))
            .map(|(_, p)| p);
        self.changed();
        gone
    }

    pub fn get(&self, user: &str, vhost: &str) -> Option<Arc<Permission>> {
        self.by_user_vhost
            .get(&(user.to_owned(), vhost.to_owned()))
            .map(|p| p.clone())
    }

    /// Every permission, sorted by vhost then user; `filter` keeps some.
    pub fn list(&self, filter: impl Fn(&Permission) -> bool) -> Vec<Arc<Permission>> {
        let mut all: Vec<Arc<Permission>> = self
            .by_user_vhost
            .iter()
            .filter(|p| filter(p))
            .map(|p| p.clone())
            .collect();
        all.sort_by(|a, b| (&a.vhost, &a.user).cmp(&(&b.vhost, &b.user)));
        all
    }

    /// Remove everything granted to a user, or on a vhost (when either is deleted).
    pub fn remove_where(&self, pred: impl Fn(&str, &str) -> bool) {
        self.by_user_vhost.retain(|(u, v), _| !pred(u, v));
        self.topic.retain(|(u, v), _| !pred(u, v));
        self.changed();
    }

    /// May `user` enter `vhost` at all? RabbitMQ: any permission entry on it.
    pub fn check_vhost(&self, user: &str, vhost: &str) -> Result<(), AmqpError> {
        if self
            .by_user_vhost
            .contains_key(&(user.to_owned(), vhost.to_owned()))
        {
            return Ok(());
        }
        Err(AmqpError::new(
            reply::NOT_ALLOWED,
            format!("access to vhost '{vhost}' refused for user '{user}'"),
        ))
    }

    /// Check one operation on one resource. The default exchange is checked under the name
    /// `amq.default`, as RabbitMQ does.
    pub fn check(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), AmqpError> {
        let checked = if kind == ResourceKind::Exchange && name.is_empty() {
            "amq.default"
        } else {
            name
        };
        let allowed = self
            .by_user_vhost
            .get(&(user.to_owned(), vhost.to_owned()))
            .is_some_and(|p| p.pattern(access).is_match(checked));
        if allowed {
            Ok(())
        } else {
            Err(refused(access, kind, checked, vhost, user))
        }
    }

    pub fn set_topic(&self, t: TopicPermission) -> Result<(), regex::Error> {
        // validated as they will be matched: with the variables filled in
        Pattern::new(&expand(&t.write, "user", "vhost"))?;
        Pattern::new(&expand(&t.read, "user", "vhost"))?;
        let mut entry = self
            .topic
            .entry((t.user.clone(), t.vhost.clone()))
            .or_default();
        entry.retain(|e| e.exchange != t.exchange);
        entry.push(t);
        entry.sort_by(|a, b| a.exchange.cmp(&b.exchange));
        drop(entry);
        self.changed();
        Ok(())
    }

    pub fn clear_topic(&self, user: &str, vhost: &str, exchange: Option<&str>) {
        let key = (user.to_owned(), vhost.to_owned());
        if let Some(mut list) = self.topic.get_mut(&key) {
            list.retain(|t| exchange.is_some_and(|x| t.exchange != x));
        }
        self.topic.remove_if(&key, |_, l| l.is_empty());
        self.changed();
    }

    pub fn list_topic(&self, filter: impl Fn(&TopicPermission) -> bool) -> Vec<TopicPermission> {
        let mut all: Vec<TopicPermission> = self
            .topic
            .iter()
            .flat_map(|l| l.value().clone())
            .filter(|t| filter(t))
            .collect();
        all.sort_by(|a, b| (&a.vhost, &a.user, &a.exchange).cmp(&(&b.vhost, &b.user, &b.exchange)));
        all
    }

    /// Does the user have topic permissions in this vhost at all (the fast path: no)?
    pub fn has_topic(&self, user: &str, vhost: &str) -> bool {
        self.topic
            .contains_key(&(user.to_owned(), vhost.to_owned()))
    }

    /// (Un)binding as RabbitMQ checks it: write on the destination, read on the source
    /// exchange and, when the source is a topic exchange, topic read on the binding key.
    #[allow(clippy::too_many_arguments)]
    pub fn check_binding(
        &self,
        user: &str,
        vhost: &str,
        kind: ResourceKind,
        destination: &str,
        source: &str,
        source_is_topic: bool,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        self.check(user, vhost, Access::Write, kind, destination)?;
        self.check(user, vhost, Access::Read, ResourceKind::Exchange, source)?;
        if source_is_topic {
            self.check_topic(user, vhost, source, Access::Read, routing_key)?;
        }
        Ok(())
    }

    /// Declaring a new exchange that names an alternate, as RabbitMQ checks it: read on the
    /// exchange (its unroutable messages leave through it) and write on the alternate.
    pub fn check_alternate_exchange(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        alternate: &str,
    ) -> Result<(), AmqpError> {
        self.check(user, vhost, Access::Read, ResourceKind::Exchange, exchange)?;
        self.check(
            user,
            vhost,
            Access::Write,
            ResourceKind::Exchange,
            alternate,
        )
    }

    /// Topic authorisation for a routing key on a topic exchange: allowed when no topic
    /// permission names the exchange, else the write (publish) or read (bind) pattern must
    /// match.
    pub fn check_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        access: Access,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        let Some(list) = self.topic.get(&(user.to_owned(), vhost.to_owned())) else {
            return Ok(());
        };
        let Some(t) = list.iter().find(|t| t.exchange == exchange) else {
            return Ok(());
        };
        let pattern = match access {
            Access::Write => &t.write,
            _ => &t.read,
        };
        let allowed =
            Pattern::new(&expand(pattern, user, vhost)).is_ok_and(|p| p.is_match(routing_key));
        if allowed {
            Ok(())
        } else {
            Err(AmqpError::access_refused(format!(
                "{} access to topic '{}' in exchange '{}' in vhost '{}' refused for user '{}'",
                access.as_str(),
                routing_key,
                exchange,
                vhost,
                user
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms() -> Permissions {
        let p = Permissions::default();
        p.set(
            Permission::new(
                "orders",
                "shop",
                "^orders\\.",
                "^(amq\\.default|orders)$",
                "^orders\\.",
            )
            .unwrap(),
        );
        p
    }

    #[test]
    fn patterns_decide_each_kind_of_access() {
        let p = perms();
        assert!(p
            .check(
                "orders",
                "shop",
                Access::Configure,
                ResourceKind::Queue,
                "orders.new"
            )
            .is_ok());
        let e = p
            .check(
                "orders",
                "shop",
                Access::Configure,
                ResourceKind::Queue,
                "payments",
            )
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - configure access to queue 'payments' in vhost 'shop' refused for user 'orders'"
        );
        // the default exchange is checked as amq.default
        assert!(p
            .check("orders", "shop", Access::Write, ResourceKind::Exchange, "")
            .is_ok());
        assert!(p
            .check(
                "orders",
                "/",
                Access::Read,
                ResourceKind::Queue,
                "orders.new"
            )
            .is_err());
    }

    #[test]
    fn an_empty_pattern_grants_nothing() {
        let p = Permissions::default();
        p.set(Permission::new("u", "/", "", "", "").unwrap());
        assert!(p
            .check("u", "/", Access::Read, ResourceKind::Queue, "q")
            .is_err());
        assert!(
            p.check_vhost("u", "/").is_ok(),
            "an entry still opens the vhost"
        );
        assert_eq!(p.check_vhost("u", "other").unwrap_err().code, 530);
    }

    #[test]
    fn revocation_moves_the_generation() {
        let p = perms();
        let g = p.generation();
        p.clear("orders", "shop");
        assert!(p.generation() > g);
        assert!(p
            .check(
                "orders",
                "shop",
                Access::Read,
                ResourceKind::Queue,
                "orders.x"
            )
            .is_err());
    }

    #[test]
    fn topic_permissions_expand_the_username() {
        let p = perms();
        assert!(p
            .check_topic("orders", "shop", "events", Access::Write, "any")
            .is_ok());
        p.set_topic(TopicPermission {
            user: "orders".into(),
            vhost: "shop".into(),
            exchange: "events".into(),
            write: "^{username}\\.".into(),
            read: ".*".into(),
        })
        .unwrap();
        assert!(p
            .check_topic("orders", "shop", "events", Access::Write, "orders.created")
            .is_ok());
        let e = p
            .check_topic("orders", "shop", "events", Access::Write, "payments.done")
            .unwrap_err();
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - write access to topic 'payments.done' in exchange 'events' in vhost 'shop' refused for user 'orders'"
        );
        assert!(p
            .check_topic("orders", "shop", "other", Access::Write, "x")
            .is_ok());
        p.clear_topic("orders", "shop", None);
        assert!(!p.has_topic("orders", "shop"));
    }
}
