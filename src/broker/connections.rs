//! The registry of open client connections, for the management API: who is connected,
//! from where, to which vhost, with what client, and a way to ask one to close. Each
//! connection task registers itself once its handshake is done and removes itself when it
//! ends; it keeps its channel count here up to date. The registry never touches a socket:
//! closing is a request the connection's own task carries out (connection.close 320).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use amq_protocol::types::FieldTable;
use tokio::sync::{mpsc, oneshot};

use super::queue::stats::MessageCounters;

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
    /// per-second rates; `confirmed` is the publisher confirms it sent.
    pub counters: MessageCounters,
    pub rates: [f64; 8],
    pub confirmed: u64,
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
    pub tls: bool,
    pub client_properties: FieldTable,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    /// Milliseconds since the Unix epoch when the handshake finished.
    pub connected_at: u64,
    pub channels: AtomicU32,
    /// Requests to the connection's task: close it, describe its channels.
    requests: mpsc::UnboundedSender<ConnectionRequest>,
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
        tls: bool,
        client_properties: FieldTable,
        (frame_max, channel_max, heartbeat): (u32, u16, u16),
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<ConnectionRequest>) {
        let (requests, receiver) = mpsc::unbounded_channel();
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
