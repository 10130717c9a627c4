//! The registry of open client connections, for the management API: who is connected,
//! from where, to which vhost, with what client, and a way to ask one to close. Each
//! connection task registers itself once its handshake is done and removes itself when it
//! ends; it keeps its channel count here up to date. The registry never touches a socket:
//! closing is a request the connection's own task carries out (connection.close 320).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use amq_protocol::types::{AMQPValue, FieldTable};
use tokio::sync::oneshot;

use super::inbox;
use super::queue::stats::{MessageCounters, Sampler};

/// What the management API may ask of a connection's task.
#[derive(Debug)]
pub enum ConnectionRequest {
    /// Close with 320 CONNECTION_FORCED and this reason.
    Close(String),
    /// Describe every open channel.
    Channels(oneshot::Sender<Vec<ChannelSnapshot>>),
}

/// One channel as its connection's task sees it, for `/api/channels`.
#[derive(Debug, Clone, Default)]
pub struct ChannelSnapshot {
    pub number: u16,
    pub confirm: bool,
    pub transactional: bool,
    pub consumer_count: usize,
    pub messages_unacknowledged: usize,
    pub messages_unconfirmed: usize,
    pub messages_uncommitted: usize,
    pub acks_uncommitted: usize,
    /// basic.qos per consumer (global=false) and per channel (global=true).
    pub prefetch_count: u32,
    pub global_prefetch_count: u32,
    /// Messages through this channel, under RabbitMQ's `message_stats` names, and their
    /// per-second rates, and the publisher confirms it sent and the unroutable messages it
    /// returned and dropped, with theirs.
    pub counters: MessageCounters,
    pub rates: [f64; 9],
    pub publisher: [(&'static str, u64, f64); 3],
}

/// What a connection's socket carried: bytes and reads counted by its task, bytes and
/// writes where they are written (the connection task or its writer). Relaxed counters,
/// one add per read or write batch.
#[derive(Debug, Default)]
pub struct Traffic {
    pub recv_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_oct: AtomicU64,
    pub send_cnt: AtomicU64,
}

impl Traffic {
    pub fn received(&self, bytes: usize) {
        self.recv_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.recv_cnt.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize) {
        self.send_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.send_cnt.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes received and sent so far.
    pub fn octets(&self) -> [u64; 2] {
        [
            self.recv_oct.load(Ordering::Relaxed),
            self.send_oct.load(Ordering::Relaxed),
        ]
    }
}

/// A TLS session in RabbitMQ's terms (`ssl_protocol`, `ssl_cipher`, ...), taken once the
/// handshake is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsDetails {
    /// `tlsv1.3`, `tlsv1.2`
    pub protocol: String,
    /// `aes_256_gcm`, `chacha20_poly1305`
    pub cipher: String,
    /// `any` under TLS 1.3 (the suite does not fix it), `ecdhe_rsa` and the like before
    pub key_exchange: String,
    /// `aead` for the AEAD suites, as Erlang's ssl names their MAC
    pub hash: String,
    pub peer_cert_subject: Option<String>,
    pub peer_cert_issuer: Option<String>,
    pub peer_cert_validity: Option<String>,
}

#[derive(Debug)]
pub struct ConnectionInfo {
    pub id: u64,
    /// RabbitMQ's name for it: "PEER -> LOCAL".
    pub name: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    /// Set for a TLS connection; boxed, so a plain connection does not carry its space.
    pub tls: Option<Box<TlsDetails>>,
    pub traffic: Arc<Traffic>,
    /// Byte rates, sampled when the management API asks.
    octet_rates: Mutex<Sampler<2>>,
    pub client_properties: FieldTable,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    /// Milliseconds since the Unix epoch when the handshake finished.
    pub connected_at: u64,
    pub channels: AtomicU32,
    /// Requests to the connection's task: close it, describe its channels.
    requests: inbox::Sender<ConnectionRequest>,
}

impl ConnectionInfo {
    /// A registry entry and the receiver the connection's task watches for close requests.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        user: String,
        vhost: String,
        tls: Option<Box<TlsDetails>>,
        traffic: Arc<Traffic>,
        client_properties: FieldTable,
        (frame_max, channel_max, heartbeat): (u32, u16, u16),
    ) -> (Arc<Self>, inbox::Receiver<ConnectionRequest>) {
        let (requests, receiver) = inbox::unbounded();
        let connected_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let info = ConnectionInfo {
            id,
            name: format!("{peer} -> {local}"),
            peer,
            local,
            user,
            vhost,
            tls,
            traffic,
            octet_rates: Mutex::new(Sampler::default()),
            client_properties,
            frame_max,
            channel_max,
            heartbeat,
            connected_at,
            channels: AtomicU32::new(0),
            requests,
        };
        (Arc::new(info), receiver)
    }

    /// Bytes per second received and sent, over RabbitMQ's statistics interval.
    pub fn octet_rates(&self) -> [f64; 2] {
        let octets = self.traffic.octets();
        self.octet_rates
            .lock()
            .map(|mut s| s.rates(tokio::time::Instant::now(), octets))
            .unwrap_or([0.0; 2])
    }

    /// The name the client gave this connection (`connection_name` in its client
    /// properties, as pika, aio-pika, the Java and .NET clients send it), which RabbitMQ
    /// reports as `user_provided_name` and operators search connections by.
    pub fn user_provided_name(&self) -> Option<String> {
        match self.client_properties.inner().get("connection_name")? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        }
    }

    pub fn channel_count(&self) -> u32 {
        self.channels.load(Ordering::Relaxed)
    }

    /// Ask the connection to close; false when it has already gone.
    pub fn request_close(&self, reason: String) -> bool {
        self.requests.send(ConnectionRequest::Close(reason)).is_ok()
    }

    /// Its channels, from its own task; empty when it has gone meanwhile.
    pub async fn channels(&self) -> Vec<ChannelSnapshot> {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(ConnectionRequest::Channels(reply))
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// Open connections by id. Touched on connect and disconnect only, never per message.
#[derive(Debug, Default)]
pub struct ConnectionRegistry {
    open: Mutex<HashMap<u64, Arc<ConnectionInfo>>>,
}

impl ConnectionRegistry {
    pub fn add(&self, info: Arc<ConnectionInfo>) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(info.id, info);
        }
    }

    pub fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Every open connection, by name.
    pub fn list(&self) -> Vec<Arc<ConnectionInfo>> {
        let mut all: Vec<Arc<ConnectionInfo>> = self
            .open
            .lock()
            .map(|open| open.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn by_id(&self, id: u64) -> Option<Arc<ConnectionInfo>> {
        self.open.lock().ok()?.get(&id).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<ConnectionInfo>> {
        self.list().into_iter().find(|c| c.name == name)
    }
}
