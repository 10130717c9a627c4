//! Headers exchange matching: binding arguments against message headers with x-match
//! `all` (default), `any`, `all-with-x` and `any-with-x`. Binding keys starting with `x-`
//! take part only in the `-with-x` modes; a void binding value matches on presence alone.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::erlang;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// Validate `x-match` at bind time, as RabbitMQ does (406 with its text on a bad value).
pub fn validate(binding_args: &FieldTable) -> Result<(), String> {
    match binding_args.inner().get("x-match") {
        None => Ok(()),
        Some(v @ AMQPValue::LongString(_)) => match text(v).as_deref() {
            Some("all" | "any" | "all-with-x" | "any-with-x") => Ok(()),
            other => Err(format!(
                "Invalid x-match field value <<{:?}>>; expected all, any, all-with-x, or any-with-x",
                other.unwrap_or_default()
            )),
        },
        Some(v) => Err(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            erlang::type_name(v),
            erlang::value(v)
        )),
    }
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn mode(binding_args: &FieldTable) -> Mode {
    match binding_args
        .inner()
        .get("x-match")
        .and_then(text)
        .as_deref()
    {
        Some("any") => Mode::Any,
        Some("all-with-x") => Mode::AllWithX,
        Some("any-with-x") => Mode::AnyWithX,
        _ => Mode::All,
    }
}

fn same_value(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn matches(binding_args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = mode(binding_args);
    let with_x = matches!(mode, Mode::AllWithX | Mode::AnyWithX);
    let any = matches!(mode, Mode::Any | Mode::AnyWithX);
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    for (k, want) in binding_args.inner() {
        if k.as_str() == "x-match" || (!with_x && k.as_str().starts_with("x-")) {
            continue;
        }
        let hit = match headers.inner().get(k.as_str()) {
            None => false,
            Some(_) if matches!(want, AMQPValue::Void) => true,
            Some(have) => same_value(want, have),
        };
        if any && hit {
            return true;
        }
        if !any && !hit {
            return false;
        }
    }
    // all: every considered key matched (vacuously true); any: none did
    !any
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }
    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v))
    }

    #[test]
    fn all_needs_every_key_and_any_needs_one() {
        let headers = table(&[("format", s("pdf")), ("type", s("report"))]);
        let all = table(&[
            ("x-match", s("all")),
            ("format", s("pdf")),
            ("type", s("report")),
        ]);
        assert!(matches(&all, Some(&headers)));
        let all_miss = table(&[("format", s("pdf")), ("type", s("log"))]);
        assert!(!matches(&all_miss, Some(&headers)));
        let any = table(&[
            ("x-match", s("any")),
            ("format", s("zip")),
            ("type", s("report")),
        ]);
        assert!(matches(&any, Some(&headers)));
        let any_miss = table(&[("x-match", s("any")), ("format", s("zip"))]);
        assert!(!matches(&any_miss, Some(&headers)));
    }

    #[test]
    fn x_keys_count_only_with_x_modes() {
        let headers = table(&[("x-tenant", s("a"))]);
        let plain_any = table(&[("x-match", s("any")), ("x-tenant", s("a"))]);
        assert!(!matches(&plain_any, Some(&headers)));
        let with_x = table(&[("x-match", s("any-with-x")), ("x-tenant", s("a"))]);
        assert!(matches(&with_x, Some(&headers)));
        let all_with_x = table(&[("x-match", s("all-with-x")), ("x-tenant", s("b"))]);
        assert!(!matches(&all_with_x, Some(&headers)));
    }

    #[test]
    fn void_matches_presence_and_empty_all_matches_everything() {
        let headers = table(&[("k", AMQPValue::LongLongInt(5))]);
        assert!(matches(&table(&[("k", AMQPValue::Void)]), Some(&headers)));
        assert!(matches(&FieldTable::default(), None));
        assert!(!matches(&table(&[("x-match", s("any"))]), Some(&headers)));
    }

    #[test]
    fn bad_x_match_is_refused() {
        assert!(validate(&table(&[("x-match", s("some"))])).is_err());
        assert!(validate(&table(&[("x-match", s("any"))])).is_ok());
    }
}
