//! Queue arguments (`x-message-ttl`, `x-expires`, `x-max-length`, ...) parsed and validated
//! in one place. Declaring checks types here (and the quorum queue's rules); redeclaring
//! compares the arguments RabbitMQ compares for equivalence. Every argument parsed here is
//! acted on by the queue; one RabbitMQ acts on that Warren cannot honour is refused here.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::AmqpError;

/// Arguments that take part in the equivalence check on redeclare, as in RabbitMQ.
const EQUIVALENCE_KEYS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-dead-letter-strategy",
];

/// What a full queue does with one more message (`x-overflow`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message: basic.nack to a confirming publisher.
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    /// One node's quorum queue: always durable, every message stored, delivery limits.
    Quorum,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub max_priority: Option<u8>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub queue_type: QueueType,
    /// Quorum queues: returns after which a message is dead-lettered (`delivery_limit`).
    pub delivery_limit: Option<u64>,
    pub single_active_consumer: bool,
}

fn int(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(*n as i64),
        AMQPValue::ShortShortUInt(n) => Some(*n as i64),
        AMQPValue::ShortInt(n) => Some(*n as i64),
        AMQPValue::ShortUInt(n) => Some(*n as i64),
        AMQPValue::LongInt(n) => Some(*n as i64),
        AMQPValue::LongUInt(n) => Some(*n as i64),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Render a value the way RabbitMQ's inequivalence texts do.
pub fn describe(v: Option<&AMQPValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => match (int(v), text(v)) {
            (Some(n), _) => n.to_string(),
            (_, Some(s)) => s,
            _ => format!("{v:?}"),
        },
    }
}

impl QueueArgs {
    pub fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<Self, AmqpError> {
        let invalid = |key: &str, why: &str| {
            AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        };
        let non_negative = |key: &str, v: &AMQPValue| -> Result<u64, AmqpError> {
            match int(v) {
                Some(n) if n >= 0 => Ok(n as u64),
                Some(n) => Err(invalid(key, &format!("{{value_negative,{n}}}"))),
                None => Err(invalid(key, &format!("{{unacceptable_type,{v:?}}}"))),
            }
        };
        let mut out = QueueArgs::default();
        for (k, v) in args.inner() {
            match k.as_str() {
                "x-message-ttl" => out.message_ttl = Some(non_negative(k.as_str(), v)?),
                "x-expires" => {
                    let n = non_negative(k.as_str(), v)?;
                    if n == 0 {
                        return Err(invalid(k.as_str(), "{value_zero,0}"));
                    }
                    out.expires = Some(n);
                }
                "x-max-length" => out.max_length = Some(non_negative(k.as_str(), v)?),
                "x-max-length-bytes" => out.max_length_bytes = Some(non_negative(k.as_str(), v)?),
                "x-max-priority" => {
                    let n = non_negative(k.as_str(), v)?;
                    out.max_priority = Some(n.min(255) as u8);
                }
                "x-dead-letter-exchange" => {
                    out.dead_letter_exchange = Some(text(v).ok_or_else(|| {
                        invalid(k.as_str(), &format!("{{unacceptable_type,{v:?}}}"))
                    })?)
                }
                "x-dead-letter-routing-key" => {
                    out.dead_letter_routing_key = Some(text(v).ok_or_else(|| {
                        invalid(k.as_str(), &format!("{{unacceptable_type,{v:?}}}"))
                    })?)
                }
                "x-overflow" => {
                    out.overflow = match text(v).as_deref() {
                        Some("drop-head") => Overflow::DropHead,
                        Some("reject-publish") => Overflow::RejectPublish,
                        Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                        Some(_) => return Err(invalid(k.as_str(), "invalid_overflow")),
                        None => {
                            return Err(invalid(
                                k.as_str(),
                                &format!("{{unacceptable_type,{v:?}}}"),
                            ))
                        }
                    }
                }
                "x-queue-type" => {
                    out.queue_type = match text(v).as_deref() {
                        Some("classic") => QueueType::Classic,
                        Some("quorum") => QueueType::Quorum,
                        // Accepting it as a classic queue would hand stream clients a
                        // queue that forgets what they read; refuse until streams exist.
                        Some("stream") => {
                            return Err(AmqpError::precondition_failed(format!(
                                "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': stream queues are not supported by Warren yet"
                            )))
                        }
                        Some(other) => {
                            return Err(invalid(
                                k.as_str(),
                                &format!("{{unsupported_queue_type,{other}}}"),
                            ))
                        }
                        None => {
                            return Err(invalid(
                                k.as_str(),
                                &format!("{{unacceptable_type,{v:?}}}"),
                            ))
                        }
                    }
                }
                "x-delivery-limit" => out.delivery_limit = Some(non_negative(k.as_str(), v)?),
                // Warren dead-letters a stored copy at-least-once whatever is asked (its
                // old copy goes only once the new ones are stored), which honours both.
                "x-dead-letter-strategy" => match text(v).as_deref() {
                    Some("at-most-once" | "at-least-once") => {}
                    _ => {
                        return Err(invalid(
                            k.as_str(),
                            &format!("{{invalid_value,{}}}", describe(Some(v))),
                        ))
                    }
                },
                "x-single-active-consumer" => match v {
                    AMQPValue::Boolean(b) => out.single_active_consumer = *b,
                    _ => return Err(invalid(k.as_str(), &format!("{{unacceptable_type,{v:?}}}"))),
                },
                _ => {}
            }
        }
        if out.queue_type == QueueType::Quorum {
            // RabbitMQ 3.10's quorum queue refuses the arguments of classic queues.
            for key in ["x-max-priority", "x-queue-mode"] {
                if args.inner().contains_key(key) {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}'"
                    )));
                }
            }
            if out.overflow == Overflow::RejectPublishDlx {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid arg 'x-overflow' with value 'reject-publish-dlx' for queue '{queue}' in vhost '{vhost}'"
                )));
            }
        }
        Ok(out)
    }

    pub fn is_quorum(&self) -> bool {
        self.queue_type == QueueType::Quorum
    }

    /// A publisher's confirm depends on this queue's answer, not only on the store.
    pub fn rejects_publishes(&self) -> bool {
        self.overflow != Overflow::DropHead
            && (self.max_length.is_some() || self.max_length_bytes.is_some())
    }
}

/// The properties a quorum queue cannot have, in RabbitMQ's order and words.
pub fn check_quorum_properties(
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    queue: &str,
    vhost: &str,
) -> Result<(), AmqpError> {
    let refuse = |what: &str| {
        Err(AmqpError::precondition_failed(format!(
            "invalid property '{what}' for queue '{queue}' in vhost '{vhost}'"
        )))
    };
    if auto_delete {
        return refuse("auto-delete");
    }
    if exclusive {
        return refuse("exclusive-owner");
    }
    if !durable {
        return refuse("non-durable");
    }
    Ok(())
}

/// RabbitMQ's equivalence check of the arguments of an existing queue against a redeclare.
pub fn check_equivalent(
    current: &FieldTable,
    received: &FieldTable,
    queue: &str,
    vhost: &str,
) -> Result<(), AmqpError> {
    for key in EQUIVALENCE_KEYS {
        let (c, r) = (current.inner().get(*key), received.inner().get(*key));
        let same = match (c, r) {
            (None, None) => true,
            (Some(a), Some(b)) => describe(Some(a)) == describe(Some(b)),
            _ => false,
        };
        if !same {
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for queue '{queue}' in vhost '{vhost}': received '{}' but current is '{}'",
                describe(r),
                describe(c)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(k: &str, v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(k.into(), v);
        t
    }

    #[test]
    fn typed_arguments_parse_and_wrong_types_are_406() {
        let a =
            QueueArgs::parse(&table("x-message-ttl", AMQPValue::LongInt(500)), "q", "/").unwrap();
        assert_eq!(a.message_ttl, Some(500));
        let e = QueueArgs::parse(&table("x-message-ttl", AMQPValue::LongInt(-1)), "q", "/")
            .unwrap_err();
        assert_eq!(e.code, 406);
        let e =
            QueueArgs::parse(&table("x-expires", AMQPValue::Boolean(true)), "q", "/").unwrap_err();
        assert_eq!(e.code, 406);
    }

    #[test]
    fn quorum_refuses_classic_arguments_and_stream_is_refused() {
        let mut t = table("x-queue-type", AMQPValue::LongString("quorum".into()));
        assert!(QueueArgs::parse(&t, "q", "/").unwrap().is_quorum());
        t.insert("x-max-priority".into(), AMQPValue::LongInt(5));
        let e = QueueArgs::parse(&t, "q", "/").unwrap_err();
        assert_eq!(e.code, 406);
        assert!(
            e.text.contains("invalid arg 'x-max-priority'"),
            "{}",
            e.text
        );
        let s = table("x-queue-type", AMQPValue::LongString("stream".into()));
        assert_eq!(QueueArgs::parse(&s, "q", "/").unwrap_err().code, 406);
        let o = table("x-overflow", AMQPValue::LongString("drop-tail".into()));
        assert_eq!(QueueArgs::parse(&o, "q", "/").unwrap_err().code, 406);
        assert!(check_quorum_properties(false, false, false, "q", "/")
            .unwrap_err()
            .text
            .contains("'non-durable'"));
    }

    #[test]
    fn equivalence_ignores_integer_width_but_not_values() {
        let a = table("x-max-length", AMQPValue::LongInt(10));
        let b = table("x-max-length", AMQPValue::LongLongInt(10));
        assert!(check_equivalent(&a, &b, "q", "/").is_ok());
        let c = table("x-max-length", AMQPValue::LongLongInt(11));
        assert_eq!(check_equivalent(&a, &c, "q", "/").unwrap_err().code, 406);
        assert!(check_equivalent(&a, &FieldTable::default(), "q", "/").is_err());
        // unknown arguments are not compared, as in RabbitMQ
        assert!(check_equivalent(
            &table("foo", AMQPValue::Boolean(true)),
            &FieldTable::default(),
            "q",
            "/"
        )
        .is_ok());
    }
}
