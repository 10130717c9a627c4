//! Content headers and bodies. The property list stays as the raw bytes the publisher sent
//! (flags included) and is forwarded to consumers untouched, so every property and nested
//! header table arrives byte-identical. `PropertyPeek` walks the list once to find only what
//! the broker itself needs (delivery mode, priority, headers, expiration) and to refuse a
//! property list whose lengths lie.

use std::ops::Range;

use amq_protocol::types::{generation::gen_field_table, parsing::parse_field_table, FieldTable};
use bytes::{BufMut, Bytes, BytesMut};

use super::error::AmqpError;
use super::frame::{write_frame, FRAME_BODY, FRAME_HEADER, FRAME_OVERHEAD};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Property flags followed by the property values, exactly as received.
    pub properties: Bytes,
}

pub fn parse_header(payload: Bytes) -> Result<ContentHeader, AmqpError> {
    if payload.len() < 14 {
        return Err(AmqpError::frame_error(
            "content header frame shorter than 14 octets",
        ));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes([
        payload[4],
        payload[5],
        payload[6],
        payload[7],
        payload[8],
        payload[9],
        payload[10],
        payload[11],
    ]);
    Ok(ContentHeader {
        class_id,
        body_size,
        properties: payload.slice(12..),
    })
}

/// What the broker reads out of a basic property list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyPeek {
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    /// Byte range of the headers table (with its length prefix) inside the property bytes.
    pub headers: Option<Range<usize>>,
    pub expiration: Option<Range<usize>>,
    /// RabbitMQ validates it against the authenticated user.
    pub user_id: Option<Range<usize>>,
    /// Direct reply-to rewrites it.
    pub reply_to: Option<Range<usize>>,
    /// Seconds since the epoch, as the publisher set it (the management API shows the
    /// head message's).
    pub timestamp: Option<u64>,
}

impl PropertyPeek {
    pub fn persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }
}

/// Walk a basic-class property list, checking every length against the bytes present.
pub fn peek_properties(props: &[u8]) -> Result<PropertyPeek, AmqpError> {
    let bad = || AmqpError::frame_error("content header property list is malformed");
    if props.len() < 2 {
        return Err(bad());
    }
    let flags = u16::from_be_bytes([props[0], props[1]]);
    if flags & 1 != 0 {
        // Basic properties fit in one flag word; a continuation bit is a lie.
        return Err(bad());
    }
    let mut at = 2usize;
    let mut peek = PropertyPeek::default();
    let take = |at: &mut usize, n: usize| -> Result<Range<usize>, AmqpError> {
        if *at + n > props.len() {
            return Err(bad());
        }
        let r = *at..*at + n;
        *at += n;
        Ok(r)
    };
    let short_str = |at: &mut usize| -> Result<Range<usize>, AmqpError> {
        let len = *props.get(*at).ok_or_else(bad)? as usize;
        *at += 1;
        take(at, len)
    };
    for bit in (2..=15).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        match bit {
            4 => peek.user_id = Some(short_str(&mut at)?),
            9 => peek.reply_to = Some(short_str(&mut at)?),
            15 | 14 | 10 | 7 | 5 | 3 | 2 => {
                short_str(&mut at)?;
            }
            8 => peek.expiration = Some(short_str(&mut at)?),
            13 => {
                let len_at = take(&mut at, 4)?;
                let len = u32::from_be_bytes([
                    props[len_at.start],
                    props[len_at.start + 1],
                    props[len_at.start + 2],
                    props[len_at.start + 3],
                ]) as usize;
                take(&mut at, len)?;
                peek.headers = Some(len_at.start..at);
            }
            12 => peek.delivery_mode = Some(props[take(&mut at, 1)?.start]),
            11 => peek.priority = Some(props[take(&mut at, 1)?.start]),
            6 => {
                let r = take(&mut at, 8)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&props[r]);
                peek.timestamp = Some(u64::from_be_bytes(b));
            }
            _ => unreachable!("bits 2..=15 are all matched above"),
        }
    }
    if at != props.len() {
        return Err(bad());
    }
    Ok(peek)
}

/// The byte range of every present property (index = flag bit), lengths checked.
fn property_ranges(props: &[u8]) -> Result<[Option<Range<usize>>; 16], AmqpError> {
    let bad = || AmqpError::frame_error("content header property list is malformed");
    if props.len() < 2 {
        return Err(bad());
    }
    let flags = u16::from_be_bytes([props[0], props[1]]);
    let mut ranges: [Option<Range<usize>>; 16] = Default::default();
    let mut at = 2usize;
    for bit in (2..=15).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        let len = match bit {
            13 => {
                let b = props.get(at..at + 4).ok_or_else(bad)?;
                4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
            }
            12 | 11 => 1,
            6 => 8,
            _ => 1 + *props.get(at).ok_or_else(bad)? as usize,
        };
        if at + len > props.len() {
            return Err(bad());
        }
        ranges[bit] = Some(at..at + len);
        at += len;
    }
    Ok(ranges)
}

/// A new property list made from `props`: the headers table replaced by `headers` (kept
/// as it was when None) and the expiration left out when `drop_expiration`. Every other
/// property keeps its bytes. Dead-lettering and a quorum queue's delivery count use it;
/// the publish path never does.
pub fn rewrite_properties(
    props: &[u8],
    headers: Option<&FieldTable>,
    drop_expiration: bool,
) -> Result<Bytes, AmqpError> {
    let ranges = property_ranges(props)?;
    let encoded_headers = match headers {
        Some(t) => Some(
            cookie_factory::gen(gen_field_table(t), Vec::new())
                .map(|(v, _)| v)
                .map_err(|_| AmqpError::internal("cannot encode a headers table"))?,
        ),
        None => None,
    };
    let mut flags = u16::from_be_bytes([props[0], props[1]]);
    let mut out = BytesMut::with_capacity(props.len() + 256);
    out.put_u16(0);
    for bit in (2..=15).rev() {
        match (bit, &encoded_headers) {
            (13, Some(h)) => {
                flags |= 1 << 13;
                out.extend_from_slice(h);
            }
            (8, _) if drop_expiration => flags &= !(1 << 8),
            _ => {
                if let Some(r) = &ranges[bit] {
                    out.extend_from_slice(&props[r.clone()]);
                }
            }
        }
    }
    out[0..2].copy_from_slice(&flags.to_be_bytes());
    Ok(out.freeze())
}

/// The same property list with `reply_to` set to `reply_to` (direct reply-to's generated
/// name); every other property keeps its bytes.
pub fn with_reply_to(props: &[u8], reply_to: &str) -> Result<Bytes, AmqpError> {
    let ranges = property_ranges(props)?;
    let mut flags = u16::from_be_bytes([props[0], props[1]]) | 1 << 9;
    let mut out = BytesMut::with_capacity(props.len() + reply_to.len() + 1);
    out.put_u16(0);
    for bit in (2..=15).rev() {
        if bit == 9 {
            let Ok(len) = u8::try_from(reply_to.len()) else {
                flags &= !(1 << 9);
                continue;
            };
            out.put_u8(len);
            out.extend_from_slice(reply_to.as_bytes());
        } else if let Some(r) = &ranges[bit] {
            out.extend_from_slice(&props[r.clone()]);
        }
    }
    out[0..2].copy_from_slice(&flags.to_be_bytes());
    Ok(out.freeze())
}

/// The headers table of a property list already checked on the way in (empty when it
/// has none).
pub fn headers_of(props: &[u8]) -> FieldTable {
    peek_properties(props)
        .ok()
        .and_then(|p| p.headers)
        .and_then(|r| decode_headers(props, r).ok())
        .unwrap_or_default()
}

/// Decode the headers table found by `peek_properties`.
pub fn decode_headers(props: &[u8], range: Range<usize>) -> Result<FieldTable, AmqpError> {
    if super::table::check(&props[range.clone()]).is_err() {
        return Err(AmqpError::frame_error(
            "content header: headers table is malformed or nested too deep",
        ));
    }
    match parse_field_table(&props[range]) {
        Ok((_, table)) => Ok(table),
        Err(_) => Err(AmqpError::frame_error(
            "content header: headers table is malformed",
        )),
    }
}

/// Append the content header frame and as many body frames as `frame_max` requires.
pub fn encode_content(
    out: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    write_frame(out, FRAME_HEADER, channel, |b| {
        b.put_u16(60);
        b.put_u16(0);
        b.put_u64(body.len() as u64);
        b.extend_from_slice(properties);
    });
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        write_frame(out, FRAME_BODY, channel, |b| b.extend_from_slice(part));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::split;

    /// content-type "text/plain", headers {a: 'S' "b"}, delivery-mode 2, timestamp.
    fn sample_props() -> Vec<u8> {
        let mut p = vec![];
        let flags: u16 = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 6);
        p.extend_from_slice(&flags.to_be_bytes());
        p.push(10);
        p.extend_from_slice(b"text/plain");
        let table = [1u8, b'a', b'S', 0, 0, 0, 1, b'b'];
        p.extend_from_slice(&(table.len() as u32).to_be_bytes());
        p.extend_from_slice(&table);
        p.push(2);
        p.extend_from_slice(&7u64.to_be_bytes());
        p
    }

    #[test]
    fn peek_finds_delivery_mode_and_headers() {
        let p = sample_props();
        let peek = peek_properties(&p).unwrap();
        assert!(peek.persistent());
        let headers = decode_headers(&p, peek.headers.unwrap()).unwrap();
        assert!(headers.inner().contains_key("a"));
        assert_eq!(peek.timestamp, Some(7));
    }

    #[test]
    fn lying_lengths_are_refused() {
        let mut p = sample_props();
        p.truncate(p.len() - 3);
        assert_eq!(peek_properties(&p).unwrap_err().code, 501);
        let mut p = sample_props();
        p.push(0);
        assert!(peek_properties(&p).is_err());
    }

    #[test]
    fn rewriting_replaces_headers_drops_expiration_and_keeps_the_rest() {
        // content-type, expiration "60000", delivery-mode 2
        let mut p = vec![];
        let flags: u16 = (1 << 15) | (1 << 12) | (1 << 8);
        p.extend_from_slice(&flags.to_be_bytes());
        p.push(4);
        p.extend_from_slice(b"text");
        p.push(2);
        p.push(5);
        p.extend_from_slice(b"60000");
        let mut t = FieldTable::default();
        t.insert("k".into(), amq_protocol::types::AMQPValue::LongLongInt(3));
        let out = rewrite_properties(&p, Some(&t), true).unwrap();
        let peek = peek_properties(&out).unwrap();
        assert!(peek.persistent() && peek.expiration.is_none());
        let h = decode_headers(&out, peek.headers.unwrap()).unwrap();
        assert_eq!(h, t);
        assert_eq!(&out[3..7], b"text");
        // headers already present are replaced, not duplicated
        let again = rewrite_properties(&out, Some(&FieldTable::default()), false).unwrap();
        let peek = peek_properties(&again).unwrap();
        assert!(decode_headers(&again, peek.headers.unwrap())
            .unwrap()
            .inner()
            .is_empty());
        // nothing asked: the same bytes
        assert_eq!(&rewrite_properties(&p, None, false).unwrap()[..], &p[..]);
    }

    #[test]
    fn empty_property_list_is_fine() {
        assert_eq!(peek_properties(&[0, 0]).unwrap(), PropertyPeek::default());
    }

    #[test]
    fn large_bodies_are_split_by_frame_max() {
        let mut out = BytesMut::new();
        encode_content(&mut out, 1, &[0, 0], &[7u8; 25], 18);
        let h = split(&mut out, 0).unwrap().unwrap();
        assert_eq!(parse_header(h.payload).unwrap().body_size, 25);
        let mut sizes = vec![];
        while let Some(f) = split(&mut out, 0).unwrap() {
            sizes.push(f.payload.len());
        }
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    #[test]
    fn zero_length_body_has_no_body_frame() {
        let mut out = BytesMut::new();
        encode_content(&mut out, 1, &[0, 0], &[], 4096);
        split(&mut out, 0).unwrap().unwrap();
        assert!(out.is_empty());
    }
}
