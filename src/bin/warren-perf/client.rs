//! A lean AMQP 0-9-1 client for load generation, built on Warren's own codec: one TCP
//! connection, hand-batched publishes, acks and confirms read straight off the frames.
//! It speaks to any broker (Warren or RabbitMQ) and allocates nothing per message on the
//! publish path.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use warren::protocol::frame::{self, RawFrame, FRAME_HEARTBEAT, FRAME_METHOD};
use warren::protocol::method::{self, protocol::*, FieldTable, LongString};

/// amqp://user:pass@host:port/vhost
#[derive(Debug, Clone)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub vhost: String,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("amqp://")
            .ok_or("URL must start with amqp://")?;
        let (auth_host, vhost) = match rest.split_once('/') {
            Some((a, v)) => (a, pct_decode(v)),
            None => (rest, "/".to_owned()),
        };
        let (auth, hostport) = match auth_host.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, auth_host),
        };
        let (user, pass) = match auth.and_then(|a| a.split_once(':')) {
            Some((u, p)) => (pct_decode(u), pct_decode(p)),
            None => ("guest".into(), "guest".into()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse().map_err(|_| "bad port")?,
            ),
            _ => (hostport.trim_matches(['[', ']']).to_owned(), 5672),
        };
        Ok(Url {
            host,
            port,
            user,
            pass,
            vhost: if vhost.is_empty() { "/".into() } else { vhost },
        })
    }
}

pub struct Reader {
    r: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// Next frame (heartbeats included).
    pub async fn frame(&mut self) -> io::Result<RawFrame> {
        loop {
            match frame::split(&mut self.buf, 0) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(io::Error::other(e.text)),
            }
            if self.r.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Next method frame, skipping heartbeats; a close from the broker is an error.
    pub async fn method(&mut self) -> io::Result<(u16, AMQPClass)> {
        loop {
            let f = self.frame().await?;
            if f.kind == FRAME_HEARTBEAT {
                continue;
            }
            if f.kind != FRAME_METHOD {
                continue;
            }
            let m = method::decode(&f.payload).map_err(|e| io::Error::other(e.text))?;
            match &m {
                AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                    return Err(io::Error::other(format!(
                        "connection closed: {} {}",
                        c.reply_code, c.reply_text
                    )))
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                    return Err(io::Error::other(format!(
                        "channel closed: {} {}",
                        c.reply_code, c.reply_text
                    )))
                }
                _ => return Ok((f.channel, m)),
            }
        }
    }
}

pub struct Writer {
    w: OwnedWriteHalf,
    pub buf: BytesMut,
}

impl Writer {
    pub fn method(&mut self, channel: u16, m: &AMQPClass) {
        method::encode(&mut self.buf, channel, m);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.w.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Append one basic.publish with its content (properties raw, as the broker sees them).
    pub fn publish(
        &mut self,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        props: &[u8],
        body: &[u8],
        frame_max: u32,
    ) {
        frame::write_frame(&mut self.buf, FRAME_METHOD, channel, |b| {
            b.put_u16(60);
            b.put_u16(40);
            b.put_u16(0);
            b.put_u8(exchange.len() as u8);
            b.extend_from_slice(exchange.as_bytes());
            b.put_u8(routing_key.len() as u8);
            b.extend_from_slice(routing_key.as_bytes());
            b.put_u8(0);
        });
        warren::protocol::content::encode_content(&mut self.buf, channel, props, body, frame_max);
    }

    /// basic.reject without requeue (the message is dead-lettered if its queue says so).
    pub fn reject(&mut self, channel: u16, tag: u64) {
        frame::write_frame(&mut self.buf, FRAME_METHOD, channel, |b| {
            b.put_u16(60);
            b.put_u16(90);
            b.put_u64(tag);
            b.put_u8(0);
        });
    }

    pub fn ack(&mut self, channel: u16, tag: u64, multiple: bool) {
        frame::write_frame(&mut self.buf, FRAME_METHOD, channel, |b| {
            b.put_u16(60);
            b.put_u16(80);
            b.put_u64(tag);
            b.put_u8(multiple as u8);
        });
    }

    pub async fn close(mut self) {
        self.method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        let _ = self.flush().await;
    }
}

pub struct Conn {
    pub reader: Reader,
    pub writer: Writer,
    pub frame_max: u32,
}

impl Conn {
    pub async fn open(url: &Url) -> io::Result<Conn> {
        Self::open_buffered(url, 256 * 1024).await
    }

    /// With read and write buffers that start at `buffer` bytes (they grow as needed): a
    /// fleet of thousands of connections starts small.
    pub async fn open_buffered(url: &Url, buffer: usize) -> io::Result<Conn> {
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            Self::handshake(url, buffer),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))?
    }

    async fn handshake(url: &Url, buffer: usize) -> io::Result<Conn> {
        let connect = TcpStream::connect((url.host.as_str(), url.port));
        let stream = tokio::time::timeout(std::time::Duration::from_secs(10), connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = Conn {
            reader: Reader {
                r,
                buf: BytesMut::with_capacity(buffer),
            },
            writer: Writer {
                w,
                buf: BytesMut::with_capacity(buffer),
            },
            frame_max: 131072,
        };
        c.writer.buf.extend_from_slice(frame::PROTOCOL_HEADER);
        c.writer.flush().await?;
        c.reader.method().await?; // start
        let mut response = vec![0u8];
        response.extend_from_slice(url.user.as_bytes());
        response.push(0);
        response.extend_from_slice(url.pass.as_bytes());
        c.writer.method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(response),
                locale: "en_US".into(),
            })),
        );
        c.writer.flush().await?;
        let tune = match c.reader.method().await?.1 {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => return Err(io::Error::other(format!("expected tune, got {other:?}"))),
        };
        c.frame_max = if tune.frame_max == 0 {
            131072
        } else {
            tune.frame_max
        };
        c.writer.method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        );
        c.writer.method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: url.vhost.as_str().into(),
            })),
        );
        c.writer.flush().await?;
        c.reader.method().await?; // open-ok
        c.rpc(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await?;
        Ok(c)
    }

    /// Send a method and wait for the next method (its -ok).
    pub async fn rpc(&mut self, channel: u16, m: AMQPClass) -> io::Result<AMQPClass> {
        self.writer.method(channel, &m);
        self.writer.flush().await?;
        Ok(self.reader.method().await?.1)
    }

    pub async fn declare_queue(&mut self, name: &str, durable: bool) -> io::Result<u32> {
        self.declare_queue_with(name, durable, FieldTable::default())
            .await
    }

    pub async fn declare_queue_with(
        &mut self,
        name: &str,
        durable: bool,
        arguments: FieldTable,
    ) -> io::Result<u32> {
        let ok = self
            .rpc(
                1,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: name.into(),
                    passive: false,
                    durable,
                    exclusive: false,
                    auto_delete: false,
                    nowait: false,
                    arguments,
                })),
            )
            .await?;
        match ok {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(d)) => Ok(d.message_count),
            other => Err(io::Error::other(format!(
                "expected declare-ok, got {other:?}"
            ))),
        }
    }

    pub async fn delete_queue(&mut self, name: &str) -> io::Result<()> {
        self.rpc(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: name.into(),
                if_unused: false,
                if_empty: false,
                nowait: false,
            })),
        )
        .await
        .map(|_| ())
    }

    pub async fn declare_exchange(&mut self, name: &str, kind: &str) -> io::Result<()> {
        self.rpc(
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: name.into(),
                kind: kind.into(),
                passive: false,
                durable: false,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await
        .map(|_| ())
    }

    pub async fn bind(&mut self, queue: &str, exchange: &str) -> io::Result<()> {
        self.rpc(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: queue.into(),
                exchange: exchange.into(),
                routing_key: "".into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await
        .map(|_| ())
    }

    /// Channel 1 is open from the handshake; more as PerfTest's channels per connection.
    pub async fn open_channel(&mut self, channel: u16) -> io::Result<()> {
        self.rpc(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await
        .map(|_| ())
    }

    pub async fn confirm_select(&mut self) -> io::Result<()> {
        self.confirm_select_on(1).await
    }

    pub async fn confirm_select_on(&mut self, channel: u16) -> io::Result<()> {
        self.rpc(
            channel,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await
        .map(|_| ())
    }

    pub async fn consume(&mut self, queue: &str, prefetch: u16, no_ack: bool) -> io::Result<()> {
        if prefetch > 0 {
            self.rpc(1, qos(prefetch)).await?;
        }
        self.rpc(1, consume(queue, no_ack)).await.map(|_| ())
    }

    /// basic.qos and basic.consume written without waiting for their -oks: with several
    /// consuming channels on one connection, deliveries on one may arrive before another's
    /// consume-ok, so the caller's frame loop skips the -oks instead. Call `flush` after.
    pub fn consume_pipelined(&mut self, channel: u16, queue: &str, prefetch: u16) {
        if prefetch > 0 {
            self.writer.method(channel, &qos(prefetch));
        }
        self.writer.method(channel, &consume(queue, false));
    }

    pub fn split(self) -> (Reader, Writer, u32) {
        (self.reader, self.writer, self.frame_max)
    }
}

fn qos(prefetch_count: u16) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count,
        global: false,
    }))
}

/// basic.consume with a server-named consumer tag.
fn consume(queue: &str, no_ack: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// The delivery tag of a basic.deliver payload, read without decoding the rest.
pub fn deliver_tag(payload: &[u8]) -> Option<u64> {
    let mut p = payload;
    if p.len() < 5 || p[0..4] != [0, 60, 0, 60] {
        return None;
    }
    p.advance(4);
    let n = p[0] as usize;
    if p.len() < 1 + n + 8 {
        return None;
    }
    p.advance(1 + n);
    Some(p.get_u64())
}

/// (delivery tag, multiple, ack?) of a broker's basic.ack / basic.nack.
pub fn confirm_of(payload: &[u8]) -> Option<(u64, bool, bool)> {
    if payload.len() < 13 || payload[0..2] != [0, 60] {
        return None;
    }
    let ack = match payload[3] {
        80 => true,
        120 => false,
        _ => return None,
    };
    let tag = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    Some((tag, payload[12] & 1 == 1, ack))
}

/// Follows basic.deliver, content header and body frames to where a delivery is complete.
#[derive(Debug, Default)]
pub struct Deliveries {
    tag: u64,
    remaining: u64,
}

impl Deliveries {
    /// The delivery tag when `f` completes a delivery.
    pub fn complete(&mut self, f: &RawFrame) -> Option<u64> {
        let done = match f.kind {
            FRAME_METHOD => {
                if let Some(t) = deliver_tag(&f.payload) {
                    self.tag = t;
                }
                false
            }
            frame::FRAME_HEADER => {
                self.remaining = body_size(&f.payload);
                self.remaining == 0
            }
            frame::FRAME_BODY => {
                self.remaining = self.remaining.saturating_sub(f.payload.len() as u64);
                self.remaining == 0
            }
            _ => false,
        };
        done.then_some(self.tag)
    }
}

/// Body size announced by a content header payload.
pub fn body_size(payload: &[u8]) -> u64 {
    if payload.len() < 12 {
        return 0;
    }
    u64::from_be_bytes(payload[4..12].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_amqp_uris() {
        let u = Url::parse("amqp://a:b%40c@127.0.0.1:5673/%2F").unwrap();
        assert_eq!(
            (u.user.as_str(), u.pass.as_str(), u.port, u.vhost.as_str()),
            ("a", "b@c", 5673, "/")
        );
        let u = Url::parse("amqp://[::1]:5672/shop").unwrap();
        assert_eq!((u.host.as_str(), u.vhost.as_str()), ("::1", "shop"));
        let u = Url::parse("amqp://localhost").unwrap();
        assert_eq!((u.port, u.vhost.as_str()), (5672, "/"));
    }
}
