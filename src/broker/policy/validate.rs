//! Checking a policy's parameters as RabbitMQ 3.10 does (`rabbit_policy` and the policy
//! validators of `rabbit_policies`, `rabbit_mirror_queue_misc` and
//! `rabbit_queue_location_validator`), with RabbitMQ's texts. Pure: a JSON body in, a
//! `Policy` or RabbitMQ's reason out.
//!
//! Keys a single RabbitMQ node accepts and then has nothing to act on (mirroring, replica
//! placement, stream settings on a broker without streams, storage layout) are accepted
//! here with the same checks, as on one RabbitMQ node; every key that changes what a
//! queue or exchange does is acted on (see `QueueArgs::with_policy` and the router).

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::{ApplyTo, Policy, PolicyKind};

/// The keys a policy may hold, RabbitMQ 3.10 with the management and Prometheus plugins.
const POLICY_KEYS: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "queue-mode",
    "queue-version",
    "overflow",
    "delivery-limit",
    "max-age",
    "stream-max-segment-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-master-locator",
];

/// An operator policy caps resources; these are all it may hold.
const OPERATOR_KEYS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// A JSON value printed as RabbitMQ prints the Erlang term it decoded (`~p`).
pub fn term(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<{:?}>>", s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(term).collect::<Vec<_>>().join(","))
        }
        Value::Object(m) => format!(
            "#{{{}}}",
            m.iter()
                .map(|(k, v)| format!("<<{k:?}>> => {}", term(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn integer_at_least(v: &Value, min: i64) -> bool {
    match (v.as_i64(), v.as_u64()) {
        (Some(n), _) => n >= min,
        (None, big) => big.is_some(),
    }
}

fn one_of(v: &Value, allowed: &[&str]) -> bool {
    v.as_str().is_some_and(|s| allowed.contains(&s))
}

/// `rabbit_policies:validate_policy0`: one key's value, RabbitMQ's reason when refused.
fn check_value(key: &str, v: &Value) -> Result<(), String> {
    let what = match key {
        "alternate-exchange" if !v.is_string() => "a valid alternate exchange name",
        "dead-letter-exchange" if !v.is_string() => "a valid dead letter exchange name",
        "dead-letter-routing-key" if !v.is_string() => "a valid dead letter routing key",
        "dead-letter-strategy" if !one_of(v, &["at-most-once", "at-least-once"]) => {
            "a valid dead letter strategy"
        }
        "message-ttl" if !integer_at_least(v, 0) => "a valid message TTL",
        "expires" if !integer_at_least(v, 1) => "a valid queue expiry",
        "max-length" if !integer_at_least(v, 0) => "a valid maximum length",
        "max-length-bytes" if !integer_at_least(v, 0) => "a valid maximum length in bytes",
        "max-in-memory-length" | "max-in-memory-bytes" if !integer_at_least(v, 0) => {
            "a valid maximum memory in bytes"
        }
        "queue-mode" if !one_of(v, &["default", "lazy"]) => "a valid queue-mode value",
        "queue-version" if !(v.as_i64() == Some(1) || v.as_i64() == Some(2)) => {
            "a valid queue-version value"
        }
        "overflow" if !one_of(v, &["drop-head", "reject-publish", "reject-publish-dlx"]) => {
            "a valid overflow value"
        }
        // RabbitMQ 3.10 takes any integer; what a negative limit means differs between
        // its versions, so Warren refuses one rather than guess.
        "delivery-limit" if !integer_at_least(v, 0) => "a valid delivery limit",
        "max-age" if !max_age(v) => "a valid max age",
        "queue-leader-locator"
            if !one_of(v, &["client-local", "balanced", "random", "least-leaders"]) =>
        {
            "a valid queue leader locator value"
        }
        "initial-cluster-size" if !integer_at_least(v, 0) => "a valid cluster size",
        "stream-max-segment-size-bytes"
            if !(integer_at_least(v, 0) && v.as_u64().is_some_and(|n| n <= 3_000_000_000)) =>
        {
            "a valid segment size"
        }
        _ => return Ok(()),
    };
    Err(format!("{} is not {what}", term(v)))
}

/// `rabbit_amqqueue:check_max_age`: a number and a unit (Y, M, D, h, m, s).
fn max_age(v: &Value) -> bool {
    let Some(s) = v.as_str() else {
        return false;
    };
    let digits = s.trim_end_matches(['Y', 'M', 'D', 'h', 'm', 's']);
    s.len() == digits.len() + 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `rabbit_mirror_queue_misc:validate_policy`: mirroring settings go together. On one node
/// nothing is mirrored, as on a single RabbitMQ node.
fn check_mirroring(d: &BTreeMap<String, Value>) -> Result<(), String> {
    let get = |k: &str| d.get(k);
    let Some(mode) = get("ha-mode") else {
        if [
            "ha-params",
            "ha-sync-mode",
            "ha-sync-batch-size",
            "ha-promote-on-shutdown",
            "ha-promote-on-failure",
        ]
        .iter()
        .any(|k| d.contains_key(*k))
        {
            return Err("ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown".into());
        }
        return Ok(());
    };
    match mode.as_str() {
        Some("all") => {
            if get("ha-params").is_some() {
                return Err("ha-mode=\"all\" does not take parameters".into());
            }
        }
        Some("exactly") => match get("ha-params") {
            Some(p) if p.as_i64().is_some_and(|n| n > 0) => {}
            p => {
                return Err(format!(
                    "ha-mode=\"exactly\" takes an integer, {} given",
                    p.map_or("none".into(), term)
                ))
            }
        },
        Some("nodes") => match get("ha-params") {
            Some(Value::Array(nodes))
                if !nodes.is_empty() && nodes.iter().all(Value::is_string) => {}
            p => {
                return Err(format!(
                    "ha-mode=\"nodes\" takes a non-empty list of node names, {} given",
                    p.map_or("none".into(), term)
                ))
            }
        },
        _ => return Err(format!("{} is not a valid ha-mode value", term(mode))),
    }
    if let Some(m) = get("ha-sync-mode").filter(|m| !one_of(m, &["automatic", "manual"])) {
        return Err(format!(
            "ha-sync-mode must be \"manual\" or \"automatic\", got {}",
            term(m)
        ));
    }
    if let Some(n) = get("ha-sync-batch-size").filter(|n| n.as_i64().is_none_or(|n| n <= 0)) {
        return Err(format!(
            "ha-sync-batch-size takes an integer greater than 0, {} given",
            term(n)
        ));
    }
    for key in ["ha-promote-on-shutdown", "ha-promote-on-failure"] {
        if let Some(m) = get(key).filter(|m| !one_of(m, &["always", "when-synced"])) {
            return Err(format!(
                "{key} must be \"always\" or \"when-synced\", got {}",
                term(m)
            ));
        }
    }
    Ok(())
}

/// `rabbit_queue_location_validator`: where a classic queue's master would go.
fn check_master_locator(d: &BTreeMap<String, Value>) -> Result<(), String> {
    match d.get("queue-master-locator") {
        Some(v) if !one_of(v, &["min-masters", "client-local", "random"]) => {
            Err(format!("{} invalid queue-master-locator value", term(v)))
        }
        _ => Ok(()),
    }
}

/// A definition's keys and values, in RabbitMQ's order of checks: each validator's keys,
/// then whatever no validator took.
fn check_definition(kind: PolicyKind, d: &BTreeMap<String, Value>) -> Result<(), String> {
    if d.is_empty() {
        return Err("no policy provided".into());
    }
    let allowed = match kind {
        PolicyKind::Policy => POLICY_KEYS,
        PolicyKind::Operator => OPERATOR_KEYS,
    };
    for (key, v) in d.iter().filter(|(k, _)| allowed.contains(&k.as_str())) {
        check_value(key, v)?;
    }
    if kind == PolicyKind::Policy {
        check_mirroring(d)?;
        check_master_locator(d)?;
    }
    let unknown: Vec<String> = d
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .map(|(k, v)| format!("{{<<{k:?}>>,{}}}", term(v)))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ));
    }
    Ok(())
}

/// Why a policy body is refused: a missing key (RabbitMQ's `key_missing`, said as is) or a
/// failed check (said after "Validation failed").
#[derive(Debug, PartialEq)]
pub enum Refused {
    KeyMissing(&'static str),
    Invalid(String),
}

impl Refused {
    /// The reason as the management API words it.
    pub fn reason(&self) -> String {
        match self {
            Refused::KeyMissing(k) => format!("[{{key_missing,{k}}}]"),
            Refused::Invalid(why) => format!("Validation failed\n\n{why}\n"),
        }
    }
}

impl Policy {
    /// A policy from the parameter value RabbitMQ keeps (`pattern`, `definition`,
    /// `priority`, `apply-to`), checked in RabbitMQ's order: priority, pattern, apply-to,
    /// definition. A missing priority is 0 and a missing apply-to is "all", as the
    /// management API and rabbitmqctl fill them in.
    pub fn parse(
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        body: &Map<String, Value>,
    ) -> Result<Policy, Refused> {
        let pattern = body.get("pattern").ok_or(Refused::KeyMissing("pattern"))?;
        let definition = body
            .get("definition")
            .ok_or(Refused::KeyMissing("definition"))?;
        let invalid = |why: String| Refused::Invalid(why);
        let priority = match body.get("priority") {
            None | Some(Value::Null) => Number::from(0),
            Some(Value::Number(n)) => n.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "priority should be a number, actually was {}",
                    term(other)
                )))
            }
        };
        let Value::String(pattern) = pattern else {
            return Err(invalid(format!(
                "pattern should be a binary but was {}",
                term(pattern)
            )));
        };
        let regex = regex::Regex::new(pattern).map_err(|e| {
            let why = match e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or_default().trim().to_owned(),
                other => other.to_string(),
            };
            invalid(format!(
                "pattern should be regular expression but is invalid: {{{why:?},0}}"
            ))
        })?;
        let apply_to = match body.get("apply-to") {
            None | Some(Value::Null) => ApplyTo::All,
            Some(v) => ApplyTo::parse(v.as_str().unwrap_or_default()).ok_or_else(|| {
                let shown = v.as_str().map_or_else(|| term(v), str::to_owned);
                invalid(format!(
                    "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ))
            })?,
        };
        let definition: BTreeMap<String, Value> = match definition {
            Value::Object(m) => m.clone().into_iter().collect(),
            other => {
                return Err(invalid(format!(
                    "definition must be a dictionary: {}",
                    term(other)
                )))
            }
        };
        check_definition(kind, &definition).map_err(invalid)?;
        Ok(Policy {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern: pattern.clone(),
            regex,
            apply_to,
            priority,
            definition,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(kind: PolicyKind, body: Value) -> Result<Policy, String> {
        let Value::Object(m) = body else { panic!() };
        Policy::parse(kind, "/", "p", &m).map_err(|e| e.reason())
    }

    #[test]
    fn rabbitmqs_reasons_for_bad_policies() {
        let p = |b| parse(PolicyKind::Policy, b).unwrap_err();
        assert_eq!(
            p(json!({"pattern": "^o", "definition": {"foo": 1, "bar": 2}})),
            "Validation failed\n\n[{<<\"bar\">>,2},{<<\"foo\">>,1}] are not recognised policy settings\n"
        );
        assert_eq!(
            p(json!({"pattern": "^o", "definition": {"message-ttl": -1}})),
            "Validation failed\n\n-1 is not a valid message TTL\n"
        );
        assert_eq!(
            p(json!({"pattern": "^o", "definition": {"message-ttl": "x"}})),
            "Validation failed\n\n<<\"x\">> is not a valid message TTL\n"
        );
        assert_eq!(
            p(json!({"pattern": "^o", "definition": {}})),
            "Validation failed\n\nno policy provided\n"
        );
        assert_eq!(
            p(json!({"definition": {"expires": 1}})),
            "[{key_missing,pattern}]"
        );
        assert_eq!(
            p(json!({"pattern": "a", "definition": {"expires": 1}, "apply-to": "foo"})),
            "Validation failed\n\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
        );
        assert_eq!(
            p(json!({"pattern": "a", "definition": {"expires": 1}, "priority": "3"})),
            "Validation failed\n\npriority should be a number, actually was <<\"3\">>\n"
        );
        assert_eq!(
            p(json!({"pattern": "a", "definition": {"ha-params": 5}})),
            "Validation failed\n\nha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown\n"
        );
        assert!(
            p(json!({"pattern": "(", "definition": {"expires": 1}})).starts_with(
                "Validation failed\n\npattern should be regular expression but is invalid: "
            )
        );
        assert!(p(json!({"pattern": "a", "definition": {"expires": 0}}))
            .contains("0 is not a valid queue expiry"));
    }

    #[test]
    fn operator_policies_hold_only_resource_caps() {
        let e = parse(
            PolicyKind::Operator,
            json!({"pattern": "^o", "definition": {"max-length": 10, "overflow": "reject-publish"}}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"
        );
        let ok = parse(
            PolicyKind::Operator,
            json!({"pattern": "^o", "definition": {"max-length": 10}, "priority": 2.5}),
        )
        .unwrap();
        assert_eq!(ok.apply_to, ApplyTo::All);
        assert_eq!(ok.priority.as_f64(), Some(2.5));
    }

    #[test]
    fn mirroring_and_stream_keys_are_checked_like_rabbitmq() {
        let ok = |b| parse(PolicyKind::Policy, b).is_ok();
        assert!(ok(
            json!({"pattern": ".", "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}})
        ));
        assert!(ok(
            json!({"pattern": ".", "definition": {"ha-mode": "exactly", "ha-params": 2}})
        ));
        assert!(!ok(
            json!({"pattern": ".", "definition": {"ha-mode": "exactly"}})
        ));
        assert!(!ok(
            json!({"pattern": ".", "definition": {"ha-mode": "some"}})
        ));
        assert!(ok(json!({"pattern": ".", "definition": {"max-age": "7D"}})));
        assert!(!ok(
            json!({"pattern": ".", "definition": {"max-age": "7 days"}})
        ));
        assert!(!ok(
            json!({"pattern": ".", "definition": {"federation-upstream-set": "all"}})
        ));
    }
}
