//! AMQP field tables as the management API writes and reads them: arguments in JSON, as
//! RabbitMQ's management plugin converts them (a JSON integer is a signed 64-bit `long`, a
//! string a long string, an object a nested table). Pure conversion; no broker state.

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::{Map, Number, Value};

pub fn table_to_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.inner() {
        m.insert(k.as_str().to_owned(), value_to_json(v));
    }
    Value::Object(m)
}

fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => Value::from(d.value as f64 / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b.as_slice()).into_owned())
        }
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON object of arguments as a field table; anything else is refused with the reason.
pub fn json_to_table(v: &Value) -> Result<FieldTable, String> {
    match v {
        Value::Null => Ok(FieldTable::default()),
        Value::Object(m) => {
            let mut t = FieldTable::default();
            for (k, v) in m {
                t.insert(k.as_str().into(), json_to_value(v));
            }
            Ok(t)
        }
        other => Err(format!("arguments must be a JSON object, got {other}")),
    }
}

fn json_to_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_value).collect::<Vec<_>>(),
        )),
        Value::Object(_) => match json_to_table(v) {
            Ok(t) => AMQPValue::FieldTable(t),
            Err(_) => AMQPValue::Void,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_round_trip_as_rabbitmq_types_them() {
        let args = json!({
            "x-max-length": 10,
            "x-dead-letter-exchange": "dlx",
            "x-single-active-consumer": true,
            "ratio": 0.5,
            "nested": {"a": [1, "b"]},
        });
        let t = json_to_table(&args).unwrap();
        assert_eq!(
            t.inner().get("x-max-length"),
            Some(&AMQPValue::LongLongInt(10))
        );
        assert!(matches!(
            t.inner().get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString(_))
        ));
        assert_eq!(table_to_json(&t), args);
        assert!(json_to_table(&json!([1])).is_err());
    }
}
