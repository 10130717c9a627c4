//! How durable records are laid out as bytes: definitions (exchanges, queues, bindings) and
//! messages. A small length-prefixed format of our own; field tables use AMQP's encoding.
//! Pure: no I/O.

use amq_protocol::types::{generation::gen_field_table, parsing::parse_field_table, FieldTable};
use bytes::Bytes;

pub use crate::model::message::MessageRecord;
pub use crate::model::Destination;

/// A durable definition as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    Exchange {
        vhost: String,
        name: String,
        kind: String,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    },
    Queue {
        vhost: String,
        name: String,
        auto_delete: bool,
        arguments: FieldTable,
    },
    Binding {
        vhost: String,
        source: String,
        destination: Destination,
        routing_key: String,
        arguments: FieldTable,
    },
    VHost {
        name: String,
        description: String,
        tags: Vec<String>,
        /// RabbitMQ's vhost limits by name ("max-connections", "max-queues").
        limits: Vec<(String, i64)>,
    },
    /// A user with RabbitMQ's salted SHA-256 password hash and its tags.
    User {
        name: String,
        password_hash: Vec<u8>,
        tags: Vec<String>,
        /// RabbitMQ's user limits by name ("max-connections", "max-channels").
        limits: Vec<(String, i64)>,
    },
    /// configure / write / read patterns of one user on one vhost.
    Permission {
        user: String,
        vhost: String,
        configure: String,
        write: String,
        read: String,
    },
    /// Routing-key patterns of one user for one exchange of one vhost.
    TopicPermission {
        user: String,
        vhost: String,
        exchange: String,
        write: String,
        read: String,
    },
    /// A cluster-wide runtime parameter (RabbitMQ's global parameters, such as
    /// `cluster_name`), its value as JSON text.
    GlobalParameter { name: String, value: String },
    /// A policy (`operator` false) or operator policy of one vhost: its runtime
    /// parameter value (pattern, definition, priority, apply-to) as JSON text.
    Policy {
        vhost: String,
        name: String,
        operator: bool,
        value: String,
    },
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn flag(&mut self, b: bool) {
        self.0.push(b as u8);
    }
    fn strings(&mut self, list: &[String]) {
        self.0.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for s in list {
            self.str(s);
        }
    }
    fn table(&mut self, t: &FieldTable) {
        let encoded = cookie_factory::gen(gen_field_table(t), Vec::new())
            .map(|(v, _)| v)
            .unwrap_or_else(|_| vec![0, 0, 0, 0]);
        self.bytes(&encoded);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self) -> Option<&'a [u8]> {
        if self.0.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        let rest = &self.0[4..];
        if rest.len() < n {
            return None;
        }
        let (b, rest) = rest.split_at(n);
        self.0 = rest;
        Some(b)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn flag(&mut self) -> Option<bool> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b != 0)
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        if self.0.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        self.0 = &self.0[4..];
        // each string takes at least its 4-byte length: a lying count fails here
        if n > self.0.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.string()).collect()
    }
    /// Fields added after a record kind was first written: absent in older records.
    fn strings_or_empty(&mut self) -> Option<Vec<String>> {
        if self.0.is_empty() {
            Some(Vec::new())
        } else {
            self.strings()
        }
    }
    fn limits_or_empty(&mut self) -> Option<Vec<(String, i64)>> {
        if self.0.is_empty() {
            return Some(Vec::new());
        }
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        let n = u32::from_be_bytes(*n) as usize;
        self.0 = rest;
        // each limit takes at least 12 bytes: a lying count fails here
        if n > self.0.len() / 12 {
            return None;
        }
        (0..n)
            .map(|_| {
                let name = self.string()?;
                let (v, rest) = self.0.split_first_chunk::<8>()?;
                self.0 = rest;
                Some((name, i64::from_be_bytes(*v)))
            })
            .collect()
    }
    fn string_or_empty(&mut self) -> Option<String> {
        if self.0.is_empty() {
            Some(String::new())
        } else {
            self.string()
        }
    }
    fn table(&mut self) -> Option<FieldTable> {
        let b = self.bytes()?;
        parse_field_table(b).ok().map(|(_, t)| t)
    }
}

/// The key a definition is stored under: unique per object, prefixed by kind and vhost.
pub fn definition_key(d: &Definition) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    match d {
        Definition::Exchange { vhost, name, .. } => {
            w.0.push(b'x');
            w.str(vhost);
            w.str(name);
        }
        Definition::Queue { vhost, name, .. } => {
            w.0.push(b'q');
            w.str(vhost);
            w.str(name);
        }
        Definition::Binding {
            vhost,
            source,
            destination,
            routing_key,
            arguments,
        } => {
            w.0.push(b'b');
            w.str(vhost);
            w.str(source);
            match destination {
                Destination::Queue(q) => {
                    w.0.push(b'q');
                    w.str(q);
                }
                Destination::Exchange(x) => {
                    w.0.push(b'x');
                    w.str(x);
                }
            }
            w.str(routing_key);
            w.table(arguments);
        }
        Definition::VHost { name, .. } => {
            w.0.push(b'v');
            w.str(name);
        }
        Definition::User { name, .. } => {
            w.0.push(b'u');
            w.str(name);
        }
        Definition::Permission { user, vhost, .. } => {
            w.0.push(b'p');
            w.str(user);
            w.str(vhost);
        }
        Definition::TopicPermission {
            user,
            vhost,
            exchange,
            ..
        } => {
            w.0.push(b't');
            w.str(user);
            w.str(vhost);
            w.str(exchange);
        }
        Definition::GlobalParameter { name, .. } => {
            w.0.push(b'g');
            w.str(name);
        }
        Definition::Policy {
            vhost,
            name,
            operator,
            ..
        } => {
            w.0.push(if *operator { b'O' } else { b'P' });
            w.str(vhost);
            w.str(name);
        }
    }
    w.0
}

pub fn encode_definition(d: &Definition) -> Vec<u8> {
    let mut w = Writer(definition_key(d));
    match d {
        Definition::Exchange {
            kind,
            auto_delete,
            internal,
            arguments,
            ..
        } => {
            w.str(kind);
            w.flag(*auto_delete);
            w.flag(*internal);
            w.table(arguments);
        }
        Definition::Queue {
            auto_delete,
            arguments,
            ..
        } => {
            w.flag(*auto_delete);
            w.table(arguments);
        }
        Definition::Binding { .. } => {}
        Definition::VHost {
            description,
            tags,
            limits,
            ..
        } => {
            w.str(description);
            w.strings(tags);
            w.0.extend_from_slice(&(limits.len() as u32).to_be_bytes());
            for (name, value) in limits {
                w.str(name);
                w.0.extend_from_slice(&value.to_be_bytes());
            }
        }
        Definition::User {
            password_hash,
            tags,
            limits,
            ..
        } => {
            w.bytes(password_hash);
            w.strings(tags);
            w.0.extend_from_slice(&(limits.len() as u32).to_be_bytes());
            for (name, value) in limits {
                w.str(name);
                w.0.extend_from_slice(&value.to_be_bytes());
            }
        }
        Definition::Permission {
            configure,
            write,
            read,
            ..
        } => {
            w.str(configure);
            w.str(write);
            w.str(read);
        }
        Definition::TopicPermission { write, read, .. } => {
            w.str(write);
            w.str(read);
        }
        Definition::GlobalParameter { value, .. } | Definition::Policy { value, .. } => {
            w.str(value)
        }
    }
    w.0
}

pub fn decode_definition(value: &[u8]) -> Option<Definition> {
    let (kind, rest) = value.split_first()?;
    let mut r = Reader(rest);
    match kind {
        b'g' => Some(Definition::GlobalParameter {
            name: r.string()?,
            value: r.string()?,
        }),
        b'P' | b'O' => Some(Definition::Policy {
            vhost: r.string()?,
            name: r.string()?,
            operator: *kind == b'O',
            value: r.string()?,
        }),
        b'x' => Some(Definition::Exchange {
            vhost: r.string()?,
            name: r.string()?,
            kind: r.string()?,
            auto_delete: r.flag()?,
            internal: r.flag()?,
            arguments: r.table()?,
        }),
        b'q' => Some(Definition::Queue {
            vhost: r.string()?,
            name: r.string()?,
            auto_delete: r.flag()?,
            arguments: r.table()?,
        }),
        b'b' => {
            let vhost = r.string()?;
            let source = r.string()?;
            let (dk, rest) = r.0.split_first()?;
            r.0 = rest;
            let dest = r.string()?;
            let destination = match dk {
                b'q' => Destination::Queue(dest.into()),
                b'x' => Destination::Exchange(dest.into()),
                _ => return None,
            };
            Some(Definition::Binding {
                vhost,
                source,
                destination,
                routing_key: r.string()?,
                arguments: r.table()?,
            })
        }
        b'v' => Some(Definition::VHost {
            name: r.string()?,
            description: r.string_or_empty()?,
            tags: r.strings_or_empty()?,
            limits: r.limits_or_empty()?,
        }),
        b'u' => Some(Definition::User {
            name: r.string()?,
            password_hash: r.bytes()?.to_vec(),
            tags: r.strings_or_empty()?,
            limits: r.limits_or_empty()?,
        }),
        b'p' => Some(Definition::Permission {
            user: r.string()?,
            vhost: r.string()?,
            configure: r.string()?,
            write: r.string()?,
            read: r.string()?,
        }),
        b't' => Some(Definition::TopicPermission {
            user: r.string()?,
            vhost: r.string()?,
            exchange: r.string()?,
            write: r.string()?,
            read: r.string()?,
        }),
        _ => None,
    }
}

pub fn encode_message(
    exchange: &str,
    routing_key: &str,
    properties: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        16 + exchange.len() + routing_key.len() + properties.len() + body.len(),
    ));
    w.str(exchange);
    w.str(routing_key);
    w.bytes(properties);
    w.bytes(body);
    w.0
}

pub fn decode_message(value: &[u8]) -> Option<MessageRecord> {
    let mut r = Reader(value);
    Some(MessageRecord {
        exchange: r.string()?,
        routing_key: r.string()?,
        properties: Bytes::copy_from_slice(r.bytes()?),
        body: Bytes::copy_from_slice(r.bytes()?),
    })
}

/// The durable identity of a queue: vhost and name.
pub fn queue_key(vhost: &str, name: &str) -> String {
    format!("{vhost}\u{0}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    fn args() -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("x-max-priority".into(), AMQPValue::LongInt(5));
        t
    }

    #[test]
    fn definitions_round_trip() {
        let defs = [
            Definition::Exchange {
                vhost: "/".into(),
                name: "orders".into(),
                kind: "topic".into(),
                auto_delete: false,
                internal: true,
                arguments: args(),
            },
            Definition::Queue {
                vhost: "/".into(),
                name: "q".into(),
                auto_delete: true,
                arguments: args(),
            },
            Definition::Binding {
                vhost: "/".into(),
                source: "orders".into(),
                destination: Destination::Queue("q".into()),
                routing_key: "order.#".into(),
                arguments: args(),
            },
        ];
        let more = [
            Definition::VHost {
                name: "shop".into(),
                description: "the shop".into(),
                tags: vec!["prod".into()],
                limits: vec![("max-connections".into(), 10), ("max-queues".into(), -1)],
            },
            Definition::User {
                name: "orders".into(),
                password_hash: vec![1, 2, 3, 4, 9, 9],
                tags: vec!["administrator".into(), "monitoring".into()],
                limits: vec![("max-connections".into(), 2)],
            },
            Definition::Permission {
                user: "orders".into(),
                vhost: "shop".into(),
                configure: "^orders\\.".into(),
                write: ".*".into(),
                read: "".into(),
            },
            Definition::TopicPermission {
                user: "orders".into(),
                vhost: "shop".into(),
                exchange: "events".into(),
                write: "^{username}".into(),
                read: ".*".into(),
            },
            Definition::Policy {
                vhost: "shop".into(),
                name: "ttl".into(),
                operator: true,
                value: r#"{"pattern":"^orders"}"#.into(),
            },
        ];
        for d in defs.into_iter().chain(more) {
            assert_eq!(decode_definition(&encode_definition(&d)), Some(d));
        }
    }

    #[test]
    fn users_and_vhosts_written_before_tags_existed_still_read() {
        let mut old = vec![b'u'];
        let mut w = Writer(Vec::new());
        w.str("guest");
        w.bytes(&[1, 2, 3, 4]);
        old.extend_from_slice(&w.0);
        assert_eq!(
            decode_definition(&old),
            Some(Definition::User {
                name: "guest".into(),
                password_hash: vec![1, 2, 3, 4],
                tags: vec![],
                limits: vec![]
            })
        );
        let mut lying = encode_definition(&Definition::User {
            name: "u".into(),
            password_hash: vec![],
            tags: vec![],
            limits: vec![],
        });
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_definition(&lying), None);
    }

    #[test]
    fn keys_distinguish_bindings_by_every_part() {
        let b = |rk: &str| Definition::Binding {
            vhost: "/".into(),
            source: "x".into(),
            destination: Destination::Queue("q".into()),
            routing_key: rk.into(),
            arguments: FieldTable::default(),
        };
        assert_ne!(definition_key(&b("a")), definition_key(&b("b")));
    }

    #[test]
    fn messages_round_trip_and_truncation_is_detected() {
        let m = encode_message("ex", "rk", &[0x80, 0], b"body");
        let r = decode_message(&m).unwrap();
        assert_eq!(
            (r.exchange.as_str(), r.routing_key.as_str(), &r.body[..]),
            ("ex", "rk", &b"body"[..])
        );
        assert!(decode_message(&m[..m.len() - 1]).is_none());
    }
}
