//! Method frames: decoding via `amq_protocol` (the only module that names it) and encoding,
//! with hand-written encoders for the methods on the delivery hot path (deliver, get-ok,
//! ack, return) so that they never allocate.

use amq_protocol::protocol::{basic, parse_class, AMQPClass};
use bytes::{BufMut, BytesMut};

use super::error::AmqpError;
use super::frame::{write_frame, FRAME_METHOD};

pub use amq_protocol::protocol;
pub use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

/// Class and method ids at the front of a method payload.
pub fn ids(payload: &[u8]) -> (u16, u16) {
    if payload.len() < 4 {
        return (0, 0);
    }
    (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    )
}

/// Decode one method payload. Unknown classes or methods are 540; arguments that do not
/// parse are 501 FRAME_ERROR "cannot decode", as RabbitMQ answers them.
pub fn decode(payload: &[u8]) -> Result<AMQPClass, AmqpError> {
    let (class_id, method_id) = ids(payload);
    if payload.len() < 4 {
        return Err(AmqpError::frame_error(
            "method frame shorter than its class and method ids",
        ));
    }
    if !known_method(class_id, method_id) {
        return Err(AmqpError::not_implemented(format!(
            "unknown class or method: class {class_id}, method {method_id}"
        ))
        .caused_by(class_id, method_id));
    }
    if let Some(at) = table_offset(class_id, method_id, &payload[4..]) {
        if let Err(e) = super::table::check(&payload[4 + at..]) {
            return Err(AmqpError::frame_error(match e {
                super::table::TableError::TooDeep => format!(
                    "cannot decode {}: field table nested deeper than {} levels",
                    method_name(class_id, method_id),
                    super::table::MAX_DEPTH
                ),
                super::table::TableError::Malformed => {
                    format!(
                        "cannot decode {}: malformed field table",
                        method_name(class_id, method_id)
                    )
                }
            })
            .caused_by(class_id, method_id));
        }
    }
    match parse_class(payload) {
        Ok((_, class)) => Ok(class),
        Err(_) => Err(AmqpError::frame_error(format!(
            "cannot decode {}",
            super::erlang::bytes(&payload[4..])
        ))
        .caused_by(class_id, method_id)),
    }
}

/// Where the field table starts in the arguments of a client method that carries one
/// (None for the others, or when the arguments before it are cut short).
fn table_offset(class_id: u16, method_id: u16, args: &[u8]) -> Option<usize> {
    enum A {
        U16,
        Short,
        Bits,
    }
    use A::*;
    let before: &[A] = match (class_id, method_id) {
        (10, 11) => &[],                        // connection.start-ok: client properties
        (40, 10) => &[U16, Short, Short, Bits], // exchange.declare
        (40, 30) | (40, 40) => &[U16, Short, Short, Short, Bits], // exchange.bind / unbind
        (50, 10) => &[U16, Short, Bits],        // queue.declare
        (50, 20) => &[U16, Short, Short, Short, Bits], // queue.bind
        (50, 50) => &[U16, Short, Short, Short], // queue.unbind
        (60, 20) => &[U16, Short, Short, Bits], // basic.consume
        _ => return None,
    };
    let mut at = 0usize;
    for a in before {
        at += match a {
            U16 => 2,
            Bits => 1,
            Short => 1 + *args.get(at)? as usize,
        };
    }
    (at < args.len()).then_some(at)
}

fn known_method(class_id: u16, method_id: u16) -> bool {
    method_name(class_id, method_id) != "unknown"
}

/// RabbitMQ's name for a method, used in reply texts ("expected 'channel.open'").
pub fn method_name(class_id: u16, method_id: u16) -> &'static str {
    match (class_id, method_id) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start_ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure_ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune_ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open_ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close_ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update_secret",
        (10, 71) => "connection.update_secret_ok",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open_ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow_ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close_ok",
        (30, 10) => "access.request",
        (30, 11) => "access.request_ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare_ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete_ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind_ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind_ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare_ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind_ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge_ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete_ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind_ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos_ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume_ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel_ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get_ok",
        (60, 72) => "basic.get_empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover_async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover_ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select_ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select_ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit_ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback_ok",
        _ => "unknown",
    }
}

/// basic.publish's arguments read in place, without allocating: (exchange, routing key,
/// mandatory, immediate). `None` when the payload is not a well-formed basic.publish.
pub fn parse_publish(payload: &[u8]) -> Option<(&str, &str, bool, bool)> {
    let rest = payload.strip_prefix(&[0, 60, 0, 40])?.get(2..)?; // ticket
    let (exchange, rest) = short_str(rest)?;
    let (routing_key, rest) = short_str(rest)?;
    let bits = *rest.first()?;
    if rest.len() != 1 {
        return None;
    }
    Some((exchange, routing_key, bits & 1 != 0, bits & 2 != 0))
}

fn short_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let n = *b.first()? as usize;
    let s = b.get(1..1 + n)?;
    Some((std::str::from_utf8(s).ok()?, &b[1 + n..]))
}

/// The `prefetch_size` argument of basic.qos, which `amq_protocol` does not expose and
/// RabbitMQ refuses when non-zero.
pub fn qos_prefetch_size(payload: &[u8]) -> u32 {
    if payload.len() >= 8 {
        u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])
    } else {
        0
    }
}

/// Append a method frame for any method.
pub fn encode(out: &mut BytesMut, channel: u16, method: &AMQPClass) {
    write_frame(out, FRAME_METHOD, channel, |b| {
        // Serialising into a growable Vec cannot fail for well-formed values; a
        // ShortString longer than 255 bytes would, so callers build texts with `short`.
        if let Ok((buf, _)) =
            cookie_factory::gen(amq_protocol::protocol::gen_class(method), Vec::new())
        {
            b.extend_from_slice(&buf);
        }
    });
}

/// A ShortString from text that may be too long (reply texts, names echoed back):
/// truncated on a char boundary to 255 bytes.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

fn put_short_str(b: &mut BytesMut, s: &[u8]) {
    let n = s.len().min(255);
    b.put_u8(n as u8);
    b.extend_from_slice(&s[..n]);
}

pub fn encode_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    write_frame(out, FRAME_METHOD, channel, |b| {
        b.put_u16(60);
        b.put_u16(60);
        put_short_str(b, consumer_tag.as_bytes());
        b.put_u64(delivery_tag);
        b.put_u8(redelivered as u8);
        put_short_str(b, exchange.as_bytes());
        put_short_str(b, routing_key.as_bytes());
    });
}

pub fn encode_get_ok(
    out: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    message_count: u32,
) {
    write_frame(out, FRAME_METHOD, channel, |b| {
        b.put_u16(60);
        b.put_u16(71);
        b.put_u64(delivery_tag);
        b.put_u8(redelivered as u8);
        put_short_str(b, exchange.as_bytes());
        put_short_str(b, routing_key.as_bytes());
        b.put_u32(message_count);
    });
}

pub fn encode_return(
    out: &mut BytesMut,
    channel: u16,
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
) {
    write_frame(out, FRAME_METHOD, channel, |b| {
        b.put_u16(60);
        b.put_u16(50);
        b.put_u16(reply_code);
        put_short_str(b, reply_text.as_bytes());
        put_short_str(b, exchange.as_bytes());
        put_short_str(b, routing_key.as_bytes());
    });
}

/// basic.ack (positive) or basic.nack (negative, requeue=false) from the broker in
/// confirm mode.
pub fn encode_confirm(
    out: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    multiple: bool,
    ack: bool,
) {
    write_frame(out, FRAME_METHOD, channel, |b| {
        b.put_u16(60);
        if ack {
            b.put_u16(80);
            b.put_u64(delivery_tag);
            b.put_u8(multiple as u8);
        } else {
            b.put_u16(120);
            b.put_u64(delivery_tag);
            // requeue set, as RabbitMQ sends it (its record's default; publishers ignore it)
            b.put_u8(multiple as u8 | 0b10);
        }
    });
}

/// Convenience constructor used by the connection for every non-hot-path reply.
pub fn basic(m: basic::AMQPMethod) -> AMQPClass {
    AMQPClass::Basic(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::split;

    #[test]
    fn hand_encoded_deliver_decodes_with_amq_protocol() {
        let mut out = BytesMut::new();
        encode_deliver(&mut out, 3, "ctag", 42, true, "ex", "rk");
        let f = split(&mut out, 0).unwrap().unwrap();
        match decode(&f.payload).unwrap() {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => {
                assert_eq!(d.consumer_tag.as_str(), "ctag");
                assert_eq!(d.delivery_tag, 42);
                assert!(d.redelivered);
                assert_eq!(d.exchange.as_str(), "ex");
                assert_eq!(d.routing_key.as_str(), "rk");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hand_encoded_get_ok_and_return_decode() {
        let mut out = BytesMut::new();
        encode_get_ok(&mut out, 1, 7, false, "", "q", 9);
        encode_return(&mut out, 1, 312, "NO_ROUTE", "x", "k");
        encode_confirm(&mut out, 1, 5, true, false);
        let f = split(&mut out, 0).unwrap().unwrap();
        assert!(
            matches!(decode(&f.payload).unwrap(), AMQPClass::Basic(basic::AMQPMethod::GetOk(g)) if g.message_count == 9)
        );
        let f = split(&mut out, 0).unwrap().unwrap();
        assert!(
            matches!(decode(&f.payload).unwrap(), AMQPClass::Basic(basic::AMQPMethod::Return(r)) if r.reply_code == 312)
        );
        let f = split(&mut out, 0).unwrap().unwrap();
        assert!(
            matches!(decode(&f.payload).unwrap(), AMQPClass::Basic(basic::AMQPMethod::Nack(n)) if n.multiple && n.delivery_tag == 5)
        );
    }

    #[test]
    fn unknown_method_is_540_and_garbage_arguments_are_501() {
        assert_eq!(decode(&[0, 60, 0, 99]).unwrap_err().code, 540);
        assert_eq!(decode(&[0, 50, 0, 10, 0]).unwrap_err().code, 501);
    }

    #[test]
    fn publish_is_parsed_in_place_and_malformed_ones_are_refused() {
        let mut out = BytesMut::new();
        encode(
            &mut out,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "orders".into(),
                routing_key: "order.created".into(),
                mandatory: true,
                immediate: false,
            })),
        );
        let f = split(&mut out, 0).unwrap().unwrap();
        assert_eq!(
            parse_publish(&f.payload),
            Some(("orders", "order.created", true, false))
        );
        assert_eq!(parse_publish(&f.payload[..f.payload.len() - 1]), None);
        let mut bad = f.payload.to_vec();
        bad[7] = 0xFF; // invalid UTF-8 inside the exchange name
        assert_eq!(parse_publish(&bad), None);
    }

    #[test]
    fn short_truncates_on_a_char_boundary() {
        let s = "é".repeat(200);
        assert!(short(&s).as_str().len() <= 255);
    }
}
