//! From a scenario step's JSON fields to AMQP wire values (argument tables, message
//! properties), and from what a broker sends back to one comparable line of text.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use regex::Regex;
use serde_json::{Map, Value};

/// JSON to an AMQP field value the way pika and amqplib type them: integers as 32-bit
/// signed when they fit, else 64-bit; a string as a long string.
pub fn value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i32::try_from(i).is_ok() => AMQPValue::LongInt(i as i32),
            (Some(i), _) => AMQPValue::LongLongInt(i),
            (None, Some(f)) => AMQPValue::Double(f),
            _ => AMQPValue::Void,
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(table(Some(map))),
    }
}

pub fn table(map: Option<&Map<String, Value>>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map.into_iter().flatten() {
        t.insert(ShortString::from(k.as_str()), value(v));
    }
    t
}

/// basic.publish properties from the step's `props` object; an unknown key is an error so a
/// typo in a scenario cannot silently test nothing.
pub fn properties(map: Option<&Map<String, Value>>) -> Result<AMQPProperties, String> {
    let mut p = AMQPProperties::default();
    let text = |v: &Value| ShortString::from(v.as_str().unwrap_or_default());
    let number = |v: &Value| v.as_u64().unwrap_or_default();
    for (k, v) in map.into_iter().flatten() {
        p = match k.as_str() {
            "content_type" => p.with_content_type(text(v)),
            "content_encoding" => p.with_content_encoding(text(v)),
            "headers" => p.with_headers(table(v.as_object())),
            "delivery_mode" => p.with_delivery_mode(number(v) as u8),
            "priority" => p.with_priority(number(v) as u8),
            "correlation_id" => p.with_correlation_id(text(v)),
            "reply_to" => p.with_reply_to(text(v)),
            "expiration" => p.with_expiration(text(v)),
            "message_id" => p.with_message_id(text(v)),
            "timestamp" => p.with_timestamp(number(v)),
            "type" => p.with_type(text(v)),
            "user_id" => p.with_user_id(text(v)),
            "app_id" => p.with_app_id(text(v)),
            other => return Err(format!("unknown message property '{other}'")),
        };
    }
    Ok(p)
}

pub fn encode_properties(p: &AMQPProperties) -> Vec<u8> {
    cookie_factory::gen_simple(amq_protocol::protocol::basic::gen_properties(p), Vec::new())
        .unwrap_or_default()
}

/// One method as text: amq-protocol's Debug output with the wrapper noise taken out, so
/// every field is compared and a difference reads plainly.
pub fn describe(m: &AMQPClass) -> String {
    tidy(&format!("{m:?}"))
}

pub fn describe_properties(p: &AMQPProperties) -> String {
    tidy(&format!("{p:?}"))
}

fn tidy(s: &str) -> String {
    static WRAPPERS: std::sync::OnceLock<[Regex; 3]> = std::sync::OnceLock::new();
    let [strings, bytes, death_time] = WRAPPERS.get_or_init(|| {
        [
            Regex::new(r#"(?:ShortString|LongString)\(("(?:[^"\\]|\\.)*")\)"#)
                .expect("valid regex"),
            // header values print as byte lists: show them as text, so names compare
            Regex::new(r"LongString\(LongString\(\[([0-9, ]*)\]\)\)").expect("valid regex"),
            // when a message died differs from run to run; that it has a time does not
            Regex::new(r#""time": Timestamp\(\d+\)"#).expect("valid regex"),
        ]
    });
    let s = strings.replace_all(s, "$1");
    let s = bytes.replace_all(&s, |c: &regex::Captures| {
        let raw: Vec<u8> = c[1]
            .split(", ")
            .filter_map(|b| b.trim().parse().ok())
            .collect();
        format!("{:?}", String::from_utf8_lossy(&raw))
    });
    death_time
        .replace_all(&s, r#""time": Timestamp(..)"#)
        .into_owned()
}

/// Makes two runs comparable: the run's name prefix comes out, and names the broker made up
/// (consumer tags, queue names) become numbered in order of first appearance.
pub struct Normalizer {
    prefix: String,
    generated: Regex,
    seen: Vec<String>,
}

impl Normalizer {
    pub fn new(prefix: &str) -> Self {
        Normalizer {
            prefix: prefix.to_owned(),
            generated: Regex::new(r"amq\.(ctag|gen)-[A-Za-z0-9_\-]+").expect("valid regex"),
            seen: Vec::new(),
        }
    }

    pub fn line(&mut self, s: &str) -> String {
        let s = s.replace(&self.prefix, "");
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for m in self.generated.find_iter(&s) {
            out.push_str(&s[last..m.start()]);
            let name = m.as_str().to_owned();
            let n = match self.seen.iter().position(|x| *x == name) {
                Some(n) => n,
                None => {
                    self.seen.push(name);
                    self.seen.len() - 1
                }
            };
            let kind = if m.as_str().starts_with("amq.ctag") {
                "ctag"
            } else {
                "gen"
            };
            out.push_str(&format!("amq.{kind}-#{n}"));
            last = m.end();
        }
        out.push_str(&s[last..]);
        out
    }
}
