//! A raw AMQP client over a plain TcpStream: frames written byte for byte, so tests can send
//! what no well-behaved client library would and read exactly what the broker answers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::protocol::frame::{self, RawFrame, FRAME_HEARTBEAT, FRAME_METHOD};
use warren::protocol::method::{self, protocol::*, FieldTable, LongString};

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

#[derive(Default)]
pub struct Tune {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("tcp connect"),
            buf: BytesMut::new(),
        }
    }

    /// Full handshake as guest/guest on vhost "/", answering tune with `tune`
    /// (0 = take the server's value). Returns the server's tune.
    pub async fn open(addr: SocketAddr, tune: Tune) -> (Raw, connection::Tune) {
        Self::open_with(addr, tune, "guest", "guest").await
    }

    /// The same handshake as another user.
    pub async fn open_as(addr: SocketAddr, user: &str, password: &str) -> (Raw, connection::Tune) {
        Self::open_with(addr, Tune::default(), user, password).await
    }

    async fn open_with(
        addr: SocketAddr,
        tune: Tune,
        user: &str,
        password: &str,
    ) -> (Raw, connection::Tune) {
        let mut raw = Raw::connect(addr).await;
        raw.send_bytes(frame::PROTOCOL_HEADER).await;
        let start = raw.recv_method().await;
        assert!(matches!(
            start.1,
            AMQPClass::Connection(connection::AMQPMethod::Start(_))
        ));
        let response = format!("\0{user}\0{password}");
        raw.send(0, start_ok("PLAIN", response.as_bytes())).await;
        let server_tune = match raw.recv_method().await.1 {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => panic!("expected tune, got {other:?}"),
        };
        let pick = |ours: u32, theirs: u32| if ours == 0 { theirs } else { ours };
        raw.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: pick(tune.channel_max as u32, server_tune.channel_max as u32) as u16,
                frame_max: pick(tune.frame_max, server_tune.frame_max),
                heartbeat: tune.heartbeat,
            })),
        )
        .await;
        raw.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
        .await;
        match raw.recv_method().await.1 {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected open-ok, got {other:?}"),
        }
        (raw, server_tune)
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, channel: u16, m: AMQPClass) {
        let mut out = BytesMut::new();
        method::encode(&mut out, channel, &m);
        self.send_bytes(&out).await;
    }

    pub async fn open_channel(&mut self, ch: u16) {
        self.send(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match self.recv_method().await {
            (c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if c == ch => {}
            other => panic!("expected channel.open-ok on {ch}, got {other:?}"),
        }
    }

    /// Next frame, or None when the broker closed the socket. Panics after 10 s.
    pub async fn recv_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some(f) = frame::split(&mut self.buf, 0).expect("broker sent a valid frame") {
                return Some(f);
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("broker answered within 10 s");
            match n {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Next method frame (heartbeats skipped).
    pub async fn recv_method(&mut self) -> (u16, AMQPClass) {
        loop {
            let f = self.recv_frame().await.expect("socket still open");
            match f.kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD => {
                    return (
                        f.channel,
                        method::decode(&f.payload).expect("decodable method"),
                    )
                }
                _ => panic!("expected a method frame, got kind {}", f.kind),
            }
        }
    }

    /// Expect connection.close; answer close-ok; return (code, text, class, method).
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        loop {
            match self.recv_method().await {
                (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    self.send(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    )
                    .await;
                    return (
                        c.reply_code,
                        c.reply_text.to_string(),
                        c.class_id,
                        c.method_id,
                    );
                }
                _ => continue,
            }
        }
    }

    /// Expect channel.close on `ch`; answer close-ok; return (code, text).
    pub async fn expect_channel_close(&mut self, ch: u16) -> (u16, String) {
        loop {
            match self.recv_method().await {
                (c, AMQPClass::Channel(channel::AMQPMethod::Close(close))) if c == ch => {
                    self.send(
                        ch,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    )
                    .await;
                    return (close.reply_code, close.reply_text.to_string());
                }
                (_, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    panic!(
                        "connection closed instead of channel: {} {}",
                        c.reply_code, c.reply_text
                    )
                }
                _ => continue,
            }
        }
    }

    /// True when the broker closes the socket within 10 s (skipping whatever it sends).
    pub async fn closed_by_broker(&mut self) -> bool {
        loop {
            match self.recv_frame().await {
                None => return true,
                Some(_) => continue,
            }
        }
    }
}

/// start-ok advertising the capabilities RabbitMQ's own clients do.
pub fn start_ok(mechanism: &str, response: &[u8]) -> AMQPClass {
    let mut caps = FieldTable::default();
    for cap in [
        "authentication_failure_close",
        "connection.blocked",
        "consumer_cancel_notify",
    ] {
        caps.insert(
            cap.into(),
            warren::protocol::method::AMQPValue::Boolean(true),
        );
    }
    let mut client_properties = FieldTable::default();
    client_properties.insert(
        "capabilities".into(),
        warren::protocol::method::AMQPValue::FieldTable(caps),
    );
    AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties,
        mechanism: mechanism.into(),
        response: LongString::from(response.to_vec()),
        locale: "en_US".into(),
    }))
}
