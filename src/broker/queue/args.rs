//! Queue arguments (`x-message-ttl`, `x-expires`, `x-max-length`, ...) parsed and validated
//! in one place. Declaring checks types here; redeclaring compares the arguments RabbitMQ
//! compares for equivalence. The queue features behind them (TTL, expiry, max-length,
//! dead-lettering, priorities) read their settings from `QueueArgs` as they are added.

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
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub max_priority: Option<u8>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
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
                _ => {}
            }
        }
        Ok(out)
    }
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
