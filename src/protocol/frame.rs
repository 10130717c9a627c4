//! Frame splitting: `split` cuts one complete frame off the front of a read buffer without
//! copying its payload. The payload size in the 7-byte header is checked against `frame_max` before
//! any of the payload is waited for, so an oversized frame is refused (501) unbuffered; a frame
//! of an unknown type is refused once it is whole, quoting its payload as RabbitMQ does.

use bytes::{Buf, Bytes, BytesMut};

use super::error::AmqpError;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Frame header (type, channel, size) plus the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One frame as it came off the wire; `payload` shares the read buffer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Bytes,
}

/// Cut the next frame from `buf`. `Ok(None)` means more bytes are needed.
/// `frame_max` of 0 means "no limit" (only before tuning, never negotiated).
pub fn split(buf: &mut BytesMut, frame_max: u32) -> Result<Option<RawFrame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    // RabbitMQ allows the 8 octets of frame overhead on top of frame_max: a payload as
    // large as frame_max is accepted (clients size body frames that way), one more is not.
    if frame_max != 0 && size > frame_max as usize {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
            frame_max as usize - FRAME_OVERHEAD
        )));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        // as RabbitMQ: the whole frame is read, then refused with (a snippet of) its payload
        let payload = &buf[7..7 + size];
        let (which, snippet) = if size <= 16 {
            ("all", payload)
        } else {
            ("first 16", &payload[..16])
        };
        return Err(AmqpError::frame_error(format!(
            "type {kind}, {which} octets = {}: unknown_frame",
            super::erlang::binary(snippet)
        )));
    }
    if buf[7 + size] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, channel {channel}: frame end octet is {:#04x}, expected 0xce",
            buf[7 + size]
        )));
    }
    buf.advance(7);
    let payload = buf.split_to(size).freeze();
    buf.advance(1);
    Ok(Some(RawFrame {
        kind,
        channel,
        payload,
    }))
}

/// Append a frame with the given payload-writing closure; the size is patched afterwards.
pub fn write_frame(
    out: &mut BytesMut,
    kind: u8,
    channel: u16,
    payload: impl FnOnce(&mut BytesMut),
) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(&channel.to_be_bytes());
    let size_at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    payload(out);
    let size = (out.len() - size_at - 4) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[FRAME_END]);
}

pub fn write_heartbeat(out: &mut BytesMut) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_complete_frame_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&[1u8, 0, 5, 0, 0, 0, 2, 0xAA, 0xBB, 0xCE, 8][..]);
        let f = split(&mut buf, 4096).unwrap().unwrap();
        assert_eq!(f.kind, 1);
        assert_eq!(f.channel, 5);
        assert_eq!(&f.payload[..], &[0xAA, 0xBB]);
        assert_eq!(&buf[..], &[8]);
    }

    #[test]
    fn waits_for_more_bytes() {
        let mut buf = BytesMut::from(&[1u8, 0, 5, 0, 0, 0, 2, 0xAA][..]);
        assert_eq!(split(&mut buf, 4096).unwrap(), None);
        assert_eq!(buf.len(), 8);
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 1, 0, 0][..]);
        let err = split(&mut buf, 4096).unwrap_err();
        assert_eq!(err.code, 501);
        assert_eq!(
            err.text,
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,65536,4088}"
        );
    }

    #[test]
    fn a_payload_as_large_as_frame_max_is_accepted_one_more_is_not() {
        let mut frame = vec![3u8, 0, 1, 0, 0, 0x10, 0];
        frame.extend(std::iter::repeat_n(b'x', 4096));
        frame.push(FRAME_END);
        let mut buf = BytesMut::from(&frame[..]);
        assert_eq!(split(&mut buf, 4096).unwrap().unwrap().payload.len(), 4096);
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 1][..]);
        assert_eq!(split(&mut buf, 4096).unwrap_err().code, 501);
    }

    #[test]
    fn wrong_frame_end_is_a_frame_error() {
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0x00][..]);
        assert_eq!(split(&mut buf, 4096).unwrap_err().code, 501);
    }

    #[test]
    fn unknown_frame_type_is_a_frame_error() {
        let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(split(&mut buf, 4096).unwrap_err().code, 501);
    }

    #[test]
    fn write_frame_round_trips_through_split() {
        let mut out = BytesMut::new();
        write_frame(&mut out, FRAME_BODY, 7, |b| b.extend_from_slice(b"hello"));
        let f = split(&mut out, 0).unwrap().unwrap();
        assert_eq!((f.kind, f.channel, &f.payload[..]), (3, 7, &b"hello"[..]));
    }
}
