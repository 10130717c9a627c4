//! Queue arguments (`x-message-ttl`, `x-expires`, `x-max-length`, ...) parsed and validated
//! in one place. Declaring checks types here (and the quorum queue's rules); redeclaring
//! compares the arguments RabbitMQ compares for equivalence. Every argument parsed here is
//! acted on by the queue; one RabbitMQ acts on that Warren cannot honour is refused here.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::erlang::{type_name, value};
use crate::protocol::AmqpError;

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

/// The arguments each queue type takes, from RabbitMQ 3.10's queue type capabilities. A
/// known argument of another type is refused ("of queue type ..."); unknown `x-` keys are
/// kept and ignored, as RabbitMQ does. Some are checked and then change nothing on one
/// node, as on a single RabbitMQ node: replica placement (x-queue-master-locator,
/// x-queue-leader-locator, x-quorum-initial-group-size) and storage layout
/// (x-queue-version, x-queue-mode, x-max-in-memory-*: Warren's own RAM limit governs).
const CLASSIC_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
];
const QUORUM_ARGS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
];
const STREAM_ARGS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The queue type `x-queue-type` asks for, as RabbitMQ's module name, and the arguments
/// that type takes (an unknown or missing type is classic, as in RabbitMQ).
fn queue_type(args: &FieldTable) -> (&'static str, &'static [&'static str]) {
    match args.inner().get("x-queue-type").and_then(text).as_deref() {
        Some("quorum") => ("rabbit_quorum_queue", QUORUM_ARGS),
        Some("stream") => ("rabbit_stream_queue", STREAM_ARGS),
        _ => ("rabbit_classic_queue", CLASSIC_ARGS),
    }
}

/// RabbitMQ's `check_arguments_key`: the first argument, of the `known` ones, that this
/// queue type does not take is refused, naming the type.
fn refuse_other_types(
    args: &FieldTable,
    known: impl Fn(&str) -> bool,
    allowed: &[&str],
    (queue, vhost, module): (&str, &str, &str),
) -> Result<(), AmqpError> {
    match args
        .inner()
        .keys()
        .map(|k| k.as_str())
        .find(|k| known(k) && !allowed.contains(k))
    {
        Some(key) => Err(AmqpError::precondition_failed(format!(
            "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type {module}"
        ))),
        None => Ok(()),
    }
}

/// Why a value is refused, printed as RabbitMQ prints the Erlang term (`~p`).
enum Refusal {
    Term(String),
    Text(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Term(t) => f.write_str(t),
            Refusal::Text(t) => write!(f, "\"{t}\""),
        }
    }
}

fn unacceptable(v: &AMQPValue) -> Refusal {
    Refusal::Term(format!("{{unacceptable_type,{}}}", type_name(v)))
}

/// RabbitMQ's `check_int_arg`: the integer types only.
fn integer(v: &AMQPValue) -> Result<i64, Refusal> {
    int(v).ok_or_else(|| Refusal::Text(format!("expected integer, got {}", type_name(v))))
}

fn non_negative(v: &AMQPValue) -> Result<i64, Refusal> {
    match integer(v)? {
        n if n < 0 => Err(Refusal::Term(format!("{{value_negative,{n}}}"))),
        n => Ok(n),
    }
}

/// RabbitMQ's `check_expiry`: TTLs up to ten years.
fn expiry(n: i64) -> Result<(), Refusal> {
    match n {
        n if n < 0 => Err(Refusal::Term(format!("{{value_negative,{n}}}"))),
        n if n > 315_360_000_000 => Err(Refusal::Term(format!("{{value_too_large,{n}}}"))),
        _ => Ok(()),
    }
}

fn string_in(v: &AMQPValue, allowed: &[&str], otherwise: &str) -> Result<(), Refusal> {
    match v {
        AMQPValue::LongString(_) => match text(v) {
            Some(s) if allowed.contains(&s.as_str()) => Ok(()),
            _ => Err(Refusal::Term(otherwise.to_owned())),
        },
        _ => Err(unacceptable(v)),
    }
}

/// One argument's check, as RabbitMQ's validator for that key (`declare_args/0`).
fn check_value(key: &str, v: &AMQPValue, args: &FieldTable) -> Result<(), Refusal> {
    let long_string = |v: &AMQPValue| match v {
        AMQPValue::LongString(_) => Ok(()),
        _ => Err(unacceptable(v)),
    };
    match key {
        "x-expires" => match integer(v)? {
            0 => Err(Refusal::Term("{value_zero,0}".into())),
            n => expiry(n),
        },
        "x-message-ttl" => expiry(integer(v)?),
        "x-dead-letter-exchange" => long_string(v),
        "x-dead-letter-routing-key" => {
            long_string(v)?;
            if args.inner().contains_key("x-dead-letter-exchange") {
                Ok(())
            } else {
                Err(Refusal::Term("routing_key_but_no_dlx_defined".into()))
            }
        }
        "x-dead-letter-strategy" => string_in(
            v,
            &["at-most-once", "at-least-once"],
            "invalid_dlx_strategy",
        ),
        "x-max-length"
        | "x-max-length-bytes"
        | "x-max-in-memory-length"
        | "x-max-in-memory-bytes"
        | "x-stream-max-segment-size-bytes" => non_negative(v).map(drop),
        "x-max-priority" => match non_negative(v)? {
            n if n > 255 => Err(Refusal::Term(format!("{{max_value_exceeded,{n}}}"))),
            _ => Ok(()),
        },
        "x-overflow" => string_in(
            v,
            &["drop-head", "reject-publish", "reject-publish-dlx"],
            "invalid_overflow",
        ),
        "x-queue-mode" => match (v, text(v)) {
            (AMQPValue::LongString(_), Some(m)) if m == "default" || m == "lazy" => Ok(()),
            (AMQPValue::LongString(_), Some(m)) => {
                Err(Refusal::Text(format!("unsupported queue mode '{m}'")))
            }
            _ => Err(unacceptable(v)),
        },
        "x-queue-version" => match non_negative(v)? {
            1 | 2 => Ok(()),
            n => Err(Refusal::Text(format!("unsupported queue version '{n}'"))),
        },
        "x-single-active-consumer" => match v {
            AMQPValue::Boolean(_) => Ok(()),
            _ => Err(unacceptable(v)),
        },
        "x-queue-type" => match (v, text(v)) {
            (AMQPValue::LongString(_), Some(t))
                if matches!(t.as_str(), "classic" | "quorum" | "stream") =>
            {
                Ok(())
            }
            (AMQPValue::LongString(_), Some(t)) => {
                Err(Refusal::Text(format!("unsupported queue type '{t}'")))
            }
            _ => Err(unacceptable(v)),
        },
        "x-quorum-initial-group-size" | "x-initial-cluster-size" => match non_negative(v)? {
            0 => Err(Refusal::Term("{value_zero,0}".into())),
            _ => Ok(()),
        },
        "x-queue-leader-locator" => string_in(
            v,
            &["client-local", "balanced", "random", "least-leaders"],
            "invalid_queue_locator_arg",
        ),
        // Not validated by RabbitMQ 3.10 (its delivery limit takes any integer); Warren
        // refuses a non-integer rather than keep a limit it cannot read.
        "x-delivery-limit" => non_negative(v).map(drop),
        _ => Ok(()),
    }
}

/// The order RabbitMQ runs its validators in, whatever order the table has.
const VALIDATION_ORDER: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    "x-delivery-limit",
];

impl QueueArgs {
    /// Validate a new queue's arguments as RabbitMQ 3.10 does when it declares one (an
    /// existing queue's are compared instead, see `check_equivalent`), then read them.
    pub fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<Self, AmqpError> {
        let table = args.inner();
        // rabbit_channel checks the dead-letter exchange's type before anything else
        if let Some(v) = table.get("x-dead-letter-exchange") {
            if !matches!(v, AMQPValue::LongString(_)) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{queue}' in vhost '{vhost}'",
                    type_name(v)
                )));
            }
        }
        let invalid = |key: &str, why: Refusal| {
            AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        };
        if let Some(v) = table.get("x-queue-type") {
            check_value("x-queue-type", v, args).map_err(|why| invalid("x-queue-type", why))?;
        }
        let (module, allowed) = queue_type(args);
        for key in VALIDATION_ORDER.iter().filter(|k| allowed.contains(k)) {
            if let Some(v) = table.get(*key) {
                check_value(key, v, args).map_err(|why| invalid(key, why))?;
            }
        }
        let known = |k: &str| {
            CLASSIC_ARGS.contains(&k) || QUORUM_ARGS.contains(&k) || STREAM_ARGS.contains(&k)
        };
        refuse_other_types(args, known, allowed, (queue, vhost, module))?;
        if module == "rabbit_stream_queue" {
            // Accepting it as a classic queue would hand stream clients a queue that
            // forgets what they read; refuse until streams exist.
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': stream queues are not supported by Warren yet"
            )));
        }
        let out = Self::read(args);
        if out.is_quorum() && out.overflow == Overflow::RejectPublishDlx {
            // RabbitMQ 3.10 logs a warning and drops the head instead: a setting accepted
            // and not honoured. Refused here (listed in known-differences.json).
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-overflow' with value 'reject-publish-dlx' for queue '{queue}' in vhost '{vhost}'"
            )));
        }
        Ok(out)
    }

    /// Read arguments already validated (at declare, or stored by an earlier run): a
    /// value of the wrong type reads as absent rather than failing a restart.
    pub fn read(args: &FieldTable) -> Self {
        let table = args.inner();
        let number = |k: &str| {
            table
                .get(k)
                .and_then(int)
                .filter(|n| *n >= 0)
                .map(|n| n as u64)
        };
        let string = |k: &str| table.get(k).and_then(text);
        QueueArgs {
            message_ttl: number("x-message-ttl"),
            expires: number("x-expires").filter(|n| *n > 0),
            max_length: number("x-max-length"),
            max_length_bytes: number("x-max-length-bytes"),
            overflow: match string("x-overflow").as_deref() {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            },
            max_priority: number("x-max-priority").map(|n| n.min(255) as u8),
            dead_letter_exchange: string("x-dead-letter-exchange"),
            dead_letter_routing_key: string("x-dead-letter-routing-key"),
            queue_type: match string("x-queue-type").as_deref() {
                Some("quorum") => QueueType::Quorum,
                _ => QueueType::Classic,
            },
            delivery_limit: number("x-delivery-limit"),
            single_active_consumer: matches!(
                table.get("x-single-active-consumer"),
                Some(AMQPValue::Boolean(true))
            ),
        }
    }

    /// As RabbitMQ: only classic queues may be server-named (`queue.declare` with "");
    /// checked before the name exists, so before any other argument check.
    pub fn check_server_named(args: &FieldTable) -> Result<(), AmqpError> {
        match queue_type(args).0 {
            "rabbit_classic_queue" => Ok(()),
            module => Err(AmqpError::precondition_failed(format!(
                "Cannot declare a server-named queue for type {module}"
            ))),
        }
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

/// basic.consume's arguments on a queue of this type, checked as RabbitMQ 3.10 does
/// (`check_consume_arguments`); the consumer priority (`x-priority`, 0 when absent).
pub fn check_consume_arguments(
    args: &FieldTable,
    queue_args: &QueueArgs,
    queue: &str,
    vhost: &str,
) -> Result<i64, AmqpError> {
    let (module, allowed): (&str, &[&str]) = if queue_args.is_quorum() {
        ("rabbit_quorum_queue", &["x-priority", "x-credit"])
    } else {
        (
            "rabbit_classic_queue",
            &["x-cancel-on-ha-failover", "x-priority", "x-credit"],
        )
    };
    let invalid = |key: &str, why: Refusal| {
        AmqpError::precondition_failed(format!(
            "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    };
    let table = args.inner();
    let mut priority = 0;
    if let Some(v) = table.get("x-priority") {
        priority = integer(v).map_err(|why| invalid("x-priority", why))?;
    }
    // Warren has no mirrors to fail over from, so the flag changes nothing, as on a
    // single RabbitMQ node; only its type is checked.
    if let Some(v) = table
        .get("x-cancel-on-ha-failover")
        .filter(|_| !queue_args.is_quorum())
    {
        if !matches!(v, AMQPValue::Boolean(_)) {
            return Err(invalid("x-cancel-on-ha-failover", unacceptable(v)));
        }
    }
    let known = |k: &str| {
        matches!(
            k,
            "x-priority" | "x-cancel-on-ha-failover" | "x-stream-offset" | "x-credit"
        )
    };
    refuse_other_types(args, known, allowed, (queue, vhost, module))?;
    if table.contains_key("x-credit") {
        // AMQP 1.0 credit flow, used by RabbitMQ's own 1.0 plugin: no 0-9-1 client has it
        return Err(AmqpError::precondition_failed(format!(
            "invalid arg 'x-credit' for queue '{queue}' in vhost '{vhost}': credit flow is not supported by Warren"
        )));
    }
    Ok(priority)
}

/// Values of one type class (any integer width, either float) compare by value.
fn same_value(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (int(a), int(b), text(a), text(b)) {
        (Some(x), Some(y), _, _) => x == y,
        (None, None, Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// RabbitMQ's equivalence check of an existing queue's arguments against a redeclare:
/// the arguments its queue type takes, in that type's order, with RabbitMQ's texts.
pub fn check_equivalent(
    current: &FieldTable,
    received: &FieldTable,
    queue: &str,
    vhost: &str,
) -> Result<(), AmqpError> {
    let (_, keys) = queue_type(current);
    let classic = |v: Option<&AMQPValue>| v.and_then(text).as_deref() == Some("classic");
    for key in keys {
        let (c, r) = (current.inner().get(*key), received.inner().get(*key));
        // RabbitMQ prints a value bare ('5') when both sides have one, and with its type
        // ("the value '5' of type 'signedint'") when only one side does
        let differs = match (c, r) {
            (None, None) => None,
            (Some(a), Some(b)) if same_value(a, b) => None,
            (Some(a), Some(b)) => Some((format!("'{}'", value(b)), format!("'{}'", value(a)))),
            _ if *key == "x-queue-type" && (classic(c) || classic(r)) => None,
            _ => {
                let side = |v: Option<&AMQPValue>| match v {
                    None => "none".to_owned(),
                    Some(v) => format!("the value '{}' of type '{}'", value(v), type_name(v)),
                };
                Some((side(r), side(c)))
            }
        };
        if let Some((received, current)) = differs {
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for queue '{queue}' in vhost '{vhost}': received {received} but current is {current}"
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
