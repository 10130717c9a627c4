//! The opening of a connection: protocol header, connection.start / start-ok (PLAIN or
//! AMQPLAIN), tune / tune-ok and open. Everything here happens before the connection task's
//! main loop exists, under the handshake timeout; a failure sends what RabbitMQ sends (our
//! protocol header for a bad header, connection.close 403 or 530 otherwise) and ends.

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::writer::{Out, WriterTx};
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;
use crate::protocol::frame::{self, RawFrame, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER};
use crate::protocol::{method, reply, sasl, AmqpError};

/// What the client and the broker agreed on.
#[derive(Debug)]
pub struct Negotiated {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub vhost: Arc<VHost>,
    pub user: String,
    pub impersonator: bool,
    pub consumer_cancel_notify: bool,
    /// The client understands connection.blocked / unblocked.
    pub blocked_notify: bool,
    /// What the client said about itself in connection.start-ok.
    pub client_properties: amq_protocol::types::FieldTable,
}

/// Why a handshake ended without a connection.
#[derive(Debug)]
pub enum HandshakeEnd {
    /// The socket closed or failed, or a bad header was answered: nothing more to say.
    Gone,
    /// A protocol error to report with connection.close before closing.
    Refused(AmqpError),
    /// Login refused. RabbitMQ reports it with connection.close only to clients that
    /// announced the `authentication_failure_close` capability; others just see the socket
    /// close (after the same delay).
    LoginRefused { error: AmqpError, notify: bool },
}

impl From<AmqpError> for HandshakeEnd {
    fn from(e: AmqpError) -> Self {
        HandshakeEnd::Refused(e.on_connection())
    }
}

pub fn server_properties(broker: &BrokerState) -> FieldTable {
    let c = &broker.config;
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert("product".into(), s(&c.product));
    props.insert("version".into(), s(&c.product_version));
    props.insert("cluster_name".into(), s(&broker.cluster_name()));
    props.insert(
        "platform".into(),
        s(&format!("Rust (Warren {})", env!("CARGO_PKG_VERSION"))),
    );
    props.insert("copyright".into(), s("Warren contributors, Apache-2.0"));
    props.insert(
        "information".into(),
        s(&format!(
            "Warren {}, an AMQP 0-9-1 broker compatible with RabbitMQ",
            env!("CARGO_PKG_VERSION")
        )),
    );
    props
}

fn send(writer: &WriterTx, channel: u16, m: &AMQPClass) {
    let mut out = BytesMut::new();
    method::encode(&mut out, channel, m);
    writer.send(Out::Data(out.freeze()));
}

/// Read until one frame is complete.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    frame_max: u32,
) -> Result<RawFrame, HandshakeEnd> {
    loop {
        if let Some(f) = frame::split(rbuf, frame_max)? {
            return Ok(f);
        }
        match reader.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(HandshakeEnd::Gone),
            Ok(_) => {}
        }
    }
}

/// Next method frame on channel 0, skipping heartbeats.
async fn read_method<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    frame_max: u32,
) -> Result<AMQPClass, HandshakeEnd> {
    loop {
        let f = read_frame(reader, rbuf, frame_max).await?;
        match f.kind {
            FRAME_HEARTBEAT => continue,
            FRAME_METHOD if f.channel == 0 => return Ok(method::decode(&f.payload)?),
            _ => {
                return Err(AmqpError::command_invalid(
                    "connection handshake expects a method on channel 0",
                )
                .into())
            }
        }
    }
}

fn negotiate(client: u32, server: u32) -> u32 {
    if client == 0 {
        server
    } else {
        client.min(server)
    }
}

/// Runs the handshake up to a connection.open that is accepted; open-ok is left to the
/// caller (`open_ok`), which registers the connection first.
pub async fn handshake<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    writer: &WriterTx,
    broker: &BrokerState,
    peer: SocketAddr,
    tls: Option<&TlsPeer>,
) -> Result<Negotiated, HandshakeEnd> {
    let config = &broker.config;
    while rbuf.len() < 8 {
        match reader.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(HandshakeEnd::Gone),
            Ok(_) => {}
        }
    }
    if &rbuf[..8] != PROTOCOL_HEADER {
        writer.send(Out::Data(bytes::Bytes::from_static(PROTOCOL_HEADER)));
        return Err(HandshakeEnd::Gone);
    }
    let _ = rbuf.split_to(8);

    send(
        writer,
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(broker),
            mechanisms: LongString::from(mechanisms(tls)),
            locales: LongString::from("en_US"),
        })),
    );
    let limit = config.frame_max;
    let start_ok = match read_method(reader, rbuf, limit).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(s)) => s,
        _ => return Err(AmqpError::command_invalid("expected 'connection.start_ok'").into()),
    };
    let mechanism = start_ok.mechanism.as_str().to_owned();
    let consumer_cancel_notify =
        client_capability(&start_ok.client_properties, "consumer_cancel_notify");
    let blocked_notify = client_capability(&start_ok.client_properties, "connection.blocked");
    let notify = client_capability(&start_ok.client_properties, "authentication_failure_close");
    // RabbitMQ's login refusals name no method (class and method 0)
    let login_refused = |text: String| HandshakeEnd::LoginRefused {
        error: AmqpError::access_refused(text).on_connection(),
        notify,
    };
    let refusal = || {
        login_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ))
    };
    let user = match authenticate(broker, &mechanism, start_ok.response.as_bytes(), tls) {
        Ok(user) => user,
        Err(why) => {
            tracing::warn!(%peer, mechanism = %mechanism, "login refused: {why}");
            let delay = broker.login_throttle.failed(peer.ip());
            if !delay.is_zero() {
                tracing::warn!(%peer, "repeated login failures: answering in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            return Err(refusal());
        }
    };
    if config.loopback_users.contains(&user.name) && !peer.ip().is_loopback() {
        tracing::warn!(%peer, user = %user.name, "login refused: user may only connect via localhost");
        return Err(login_refused(format!(
            "user '{}' can only connect via localhost",
            user.name
        )));
    }

    send(
        writer,
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        })),
    );
    let tune_ok = match read_method(reader, rbuf, limit).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)) => t,
        _ => return Err(AmqpError::command_invalid("expected 'connection.tune_ok'").into()),
    };
    let frame_max = negotiate(tune_ok.frame_max, config.frame_max);
    if frame_max < 4096 {
        return Err(
            AmqpError::not_allowed(format!("frame_max={frame_max} < 4096 min size")).into(),
        );
    }
    let channel_max = negotiate(tune_ok.channel_max as u32, config.channel_max as u32) as u16;
    // RabbitMQ takes the client's heartbeat from tune-ok as is (0 disables).
    let heartbeat = tune_ok.heartbeat;

    let open = match read_method(reader, rbuf, frame_max).await? {
        AMQPClass::Connection(connection::AMQPMethod::Open(o)) => o,
        _ => return Err(AmqpError::command_invalid("expected 'connection.open'").into()),
    };
    let vhost_name = open.virtual_host.as_str();
    let Some(vhost) = broker.vhost(vhost_name) else {
        return Err(
            AmqpError::new(reply::NOT_ALLOWED, format!("vhost {vhost_name} not found"))
                .caused_by(10, 40)
                .into(),
        );
    };
    broker
        .permissions
        .check_vhost(&user.name, vhost_name)
        .map_err(|e| e.caused_by(10, 40))?;
    // RabbitMQ's user limit counts the user's open connections (all vhosts); only a user
    // with a limit pays for the count.
    if let Some(limit) = user.limit("max-connections") {
        let open = broker
            .connection_registry
            .list()
            .iter()
            .filter(|c| c.user == user.name)
            .count() as u64;
        if open >= limit {
            return Err(AmqpError::new(
                reply::NOT_ALLOWED,
                format!(
                    "connection refused for user '{}': user connection limit ({limit}) is reached",
                    user.name
                ),
            )
            .caused_by(10, 40)
            .into());
        }
    }
    // Counted here, released by the connection when it ends (or below, if refused).
    let limit = vhost.limit("max-connections", broker.config.vhost_max_connections);
    let before = vhost
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel) as u64;
    if let Some(limit) = limit.filter(|limit| before >= *limit) {
        vhost
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        return Err(AmqpError::new(
            reply::NOT_ALLOWED,
            format!(
                "access to vhost '{vhost_name}' refused for user '{}': connection limit ({limit}) is reached",
                user.name
            ),
        )
        .caused_by(10, 40)
        .into());
    }
    Ok(Negotiated {
        channel_max,
        frame_max,
        heartbeat,
        vhost,
        impersonator: user.has_tag("impersonator"),
        user: user.name,
        consumer_cancel_notify,
        blocked_notify,
        client_properties: start_ok.client_properties,
    })
}

/// Tells the client its connection is open. Sent by the connection's task once it has
/// registered the connection, so a client that asks the management API right after
/// connection.open-ok finds itself listed.
pub fn open_ok(writer: &WriterTx) {
    send(
        writer,
        0,
        &AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
}

/// What TLS told us about the peer, for SASL EXTERNAL.
#[derive(Debug, Default, Clone)]
pub struct TlsPeer {
    /// The user name taken from the verified client certificate (CN or SAN).
    pub cert_user: Option<String>,
    /// The session as the management API shows it.
    pub details: crate::broker::connections::TlsDetails,
}

/// The mechanisms offered: EXTERNAL only when a verified client certificate named a user.
fn mechanisms(tls: Option<&TlsPeer>) -> String {
    match tls.and_then(|t| t.cert_user.as_ref()) {
        Some(_) => format!("EXTERNAL {}", sasl::MECHANISMS),
        None => sasl::MECHANISMS.to_owned(),
    }
}

fn authenticate(
    broker: &BrokerState,
    mechanism: &str,
    response: &[u8],
    tls: Option<&TlsPeer>,
) -> Result<crate::broker::auth::User, String> {
    if mechanism == "EXTERNAL" {
        let name = tls
            .and_then(|t| t.cert_user.clone())
            .ok_or("EXTERNAL without a verified client certificate")?;
        return broker
            .users
            .get(&name)
            .ok_or_else(|| format!("certificate user '{name}' does not exist"));
    }
    let creds = sasl::parse_response(mechanism, response)
        .ok_or("unsupported mechanism or malformed response")?;
    broker
        .users
        .check(&creds.username, &creds.password)
        .ok_or_else(|| format!("bad credentials for user '{}'", creds.username))
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}
