//! `Outbound`: every frame a connection sends its client after the handshake is encoded
//! here, into one buffer that the connection hands to its writer task once per wake-up,
//! so everything one wake-up produced leaves in one write. Content is cut into body
//! frames by the negotiated frame_max here and nowhere else. Owned by the connection
//! task; never writes to the socket itself and never decides what to send.

use amq_protocol::protocol::{connection, AMQPClass};
use bytes::{Bytes, BytesMut};

use crate::model::message::Message;
use crate::protocol::content::encode_content;
use crate::protocol::{frame, method, AmqpError};

pub struct Outbound {
    buf: BytesMut,
    frame_max: u32,
}

impl Outbound {
    /// `frame_max` 0 before tuning: a close carries no content, so it never matters there.
    pub fn new(frame_max: u32) -> Self {
        Outbound {
            buf: BytesMut::new(),
            frame_max,
        }
    }

    pub fn method(&mut self, channel: u16, m: &AMQPClass) {
        method::encode(&mut self.buf, channel, m);
    }

    /// connection.close for `e`, with its reply code, text and the method that caused it.
    pub fn connection_close(&mut self, e: &AmqpError) {
        self.method(0, &connection_close(e));
    }

    pub fn heartbeat(&mut self) {
        frame::write_heartbeat(&mut self.buf);
    }

    /// basic.ack (`ack`) or basic.nack to a confirming publisher.
    pub fn confirm(&mut self, channel: u16, delivery_tag: u64, multiple: bool, ack: bool) {
        method::encode_confirm(&mut self.buf, channel, delivery_tag, multiple, ack);
    }

    pub fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        m: &Message,
    ) {
        method::encode_deliver(
            &mut self.buf,
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            &m.exchange,
            &m.routing_key,
        );
        self.content(channel, m);
    }

    pub fn get_ok(
        &mut self,
        channel: u16,
        delivery_tag: u64,
        redelivered: bool,
        message_count: u32,
        m: &Message,
    ) {
        method::encode_get_ok(
            &mut self.buf,
            channel,
            delivery_tag,
            redelivered,
            &m.exchange,
            &m.routing_key,
            message_count,
        );
        self.content(channel, m);
    }

    /// basic.return of an unroutable mandatory message.
    pub fn basic_return(&mut self, channel: u16, reply_code: u16, reply_text: &str, m: &Message) {
        method::encode_return(
            &mut self.buf,
            channel,
            reply_code,
            reply_text,
            &m.exchange,
            &m.routing_key,
        );
        self.content(channel, m);
    }

    fn content(&mut self, channel: u16, m: &Message) {
        encode_content(
            &mut self.buf,
            channel,
            m.properties(),
            m.body(),
            self.frame_max,
        );
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Everything encoded since the last take, for one write.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

pub fn connection_close(e: &AmqpError) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: e.code,
        reply_text: method::short(&e.text),
        class_id: e.class_id,
        method_id: e.method_id,
    }))
}
