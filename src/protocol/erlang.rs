//! How RabbitMQ prints Erlang terms in its reply texts, so Warren's texts read the same:
//! field value types (`signedint`, `longstr`), values, and binaries. Pure formatting,
//! used by every layer that words an error as RabbitMQ does; decides nothing.

use amq_protocol::types::AMQPValue;

/// A field value's type as RabbitMQ names it in its `{unacceptable_type,T}` errors.
pub fn type_name(v: &AMQPValue) -> &'static str {
    use AMQPValue::*;
    match v {
        Boolean(_) => "bool",
        ShortShortInt(_) => "byte",
        ShortShortUInt(_) => "unsignedbyte",
        ShortInt(_) => "short",
        ShortUInt(_) => "unsignedshort",
        LongInt(_) => "signedint",
        LongUInt(_) => "unsignedint",
        LongLongInt(_) => "long",
        Float(_) => "float",
        Double(_) => "double",
        DecimalValue(_) => "decimal",
        ShortString(_) => "shortstr",
        LongString(_) => "longstr",
        FieldArray(_) => "array",
        Timestamp(_) => "timestamp",
        FieldTable(_) => "table",
        ByteArray(_) => "binary",
        Void => "void",
    }
}

/// A field value as RabbitMQ's texts show it: integers of any width as numbers, strings
/// as their text, booleans and floats as Erlang prints them.
pub fn value(v: &AMQPValue) -> String {
    use AMQPValue::*;
    match v {
        Boolean(b) => b.to_string(),
        ShortShortInt(n) => n.to_string(),
        ShortShortUInt(n) => n.to_string(),
        ShortInt(n) => n.to_string(),
        ShortUInt(n) => n.to_string(),
        LongInt(n) => n.to_string(),
        LongUInt(n) => n.to_string(),
        LongLongInt(n) => n.to_string(),
        Float(f) => f.to_string(),
        Double(f) => f.to_string(),
        LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

/// Bytes as Erlang's `~p` prints a binary, the form RabbitMQ's frame errors quote:
/// `<<"text">>` when every byte is printable, `<<1,2,3>>` otherwise.
pub fn binary(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| (32..127).contains(b)) {
        let text: String = bytes
            .iter()
            .flat_map(|b| match b {
                b'"' | b'\\' => vec!['\\', *b as char],
                _ => vec![*b as char],
            })
            .collect();
        return format!("<<\"{text}\">>");
    }
    self::bytes(bytes)
}

/// Bytes as Erlang's `~w` prints a binary: `<<1,2,3>>`.
pub fn bytes(bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    format!("<<{}>>", list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_binaries_print_as_rabbitmq_prints_them() {
        assert_eq!(type_name(&AMQPValue::LongInt(5)), "signedint");
        assert_eq!(value(&AMQPValue::LongInt(5)), "5");
        assert_eq!(value(&AMQPValue::Boolean(true)), "true");
        assert_eq!(
            value(&AMQPValue::LongString("drop-head".into())),
            "drop-head"
        );
        assert_eq!(binary(b""), "<<>>");
        assert_eq!(binary(b"abc"), "<<\"abc\">>");
        assert_eq!(binary(&[1, 2]), "<<1,2>>");
        assert_eq!(bytes(b"ab"), "<<97,98>>");
    }
}
