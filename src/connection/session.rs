//! `Session`: what a channel's method handlers may use of their connection. That is the
//! vhost and the user acting in it, the frames going out, and the few connection-wide
//! things a method changes: the exclusive queues the connection owns, the event channel
//! queues and the store reach it by, and which channels have confirms to send.
//!
//! Owned by the connection task. Handlers get `&mut Session` and the one channel's
//! `&mut ChannelState`, never the whole connection, so each can be driven alone (see the
//! tests in `handlers`). A session never reads the socket, never writes it (frames wait
//! in `out` until the connection flushes) and never sees another channel's state.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use amq_protocol::protocol::AMQPClass;

use super::channel::ChannelState;
use super::outbound::Outbound;
use crate::broker::consumer::{ConnEvent, EventSink};
use crate::broker::exchange::ExchangeKind;
use crate::broker::inbox;
use crate::broker::permissions::{Access, ResourceKind};
use crate::broker::queue::QueueHandle;
use crate::broker::vhost::VHost;
use crate::broker::BrokerState;
use crate::protocol::AmqpError;
use crate::store::ConfirmSink;

/// Answers to "may this user publish to exchange X" for the publish hot path, dropped
/// whenever any permission changes (so a revocation applies to the next publish).
#[derive(Debug, Default)]
struct AccessCache {
    generation: u64,
    write_ok: HashSet<Arc<str>>,
    /// Whether the user has topic permissions in this vhost (usually not: no check).
    has_topic: bool,
}

pub struct Session {
    /// The connection's id, as queues know their exclusive owner.
    pub connection_id: u64,
    pub broker: Arc<BrokerState>,
    pub vhost: Arc<VHost>,
    pub user: String,
    /// The user has the impersonator tag: may publish with another user_id.
    pub impersonator: bool,
    /// Frames produced during the current wake-up, flushed by the connection at its end.
    pub out: Outbound,
    write_cache: AccessCache,
    /// Where queues and the store reach this connection. Created on first use (a consumer
    /// or a confirm), so an idle connection does not pay for a channel's first block.
    events_tx: Option<inbox::Sender<ConnEvent>>,
    /// `events_tx` as the store's confirm sink, made once and shared by every confirm.
    confirm_sink: Option<Arc<dyn ConfirmSink>>,
    /// A receiver created since the connection's loop last looked; the loop takes it over.
    pub new_events_rx: Option<inbox::Receiver<ConnEvent>>,
    /// Channels with publisher confirms to send at the end of this wake-up.
    pub confirm_dirty: Vec<u16>,
    /// Exclusive queues this connection declared: deleted when it closes.
    pub exclusive_queues: Vec<Arc<QueueHandle>>,
    /// This connection has published: the memory alarm applies to it.
    pub published: bool,
    /// The queue its last routed publish was handed to last (`publish::keep_publish_order`).
    pub last_publish_queue: Weak<QueueHandle>,
    /// A publish was routed since the connection last read from its socket.
    pub routed_since_read: bool,
}

impl Session {
    pub fn new(
        connection_id: u64,
        broker: Arc<BrokerState>,
        vhost: Arc<VHost>,
        user: String,
        impersonator: bool,
        frame_max: u32,
    ) -> Self {
        Session {
            connection_id,
            broker,
            vhost,
            user,
            impersonator,
            out: Outbound::new(frame_max),
            write_cache: AccessCache::default(),
            events_tx: None,
            confirm_sink: None,
            new_events_rx: None,
            confirm_dirty: Vec::new(),
            exclusive_queues: Vec::new(),
            published: false,
            last_publish_queue: Weak::new(),
            routed_since_read: false,
        }
    }

    pub fn send_method(&mut self, channel: u16, m: AMQPClass) {
        self.out.method(channel, &m);
    }

    /// RabbitMQ's permission check for one operation on one resource of this vhost.
    pub fn authorize(
        &self,
        access: Access,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), AmqpError> {
        self.broker
            .permissions
            .check(&self.user, &self.vhost.name, access, kind, name)
    }

    /// Write permission on an exchange, from the cache when permissions have not changed
    /// since it was filled. Also refreshes whether topic permissions need checking.
    pub fn authorize_publish(&mut self, exchange: &Arc<str>) -> Result<(), AmqpError> {
        let permissions = &self.broker.permissions;
        let generation = permissions.generation();
        let cache = &mut self.write_cache;
        if cache.generation != generation || cache.write_ok.is_empty() {
            cache.write_ok.clear();
            cache.generation = generation;
            cache.has_topic = permissions.has_topic(&self.user, &self.vhost.name);
        }
        if !cache.write_ok.contains(exchange.as_ref()) {
            permissions.check(
                &self.user,
                &self.vhost.name,
                Access::Write,
                ResourceKind::Exchange,
                exchange,
            )?;
            // bounded: a client cycling through exchange names cannot grow it forever
            if cache.write_ok.len() >= 64 {
                cache.write_ok.clear();
            }
            cache.write_ok.insert(exchange.clone());
        }
        Ok(())
    }

    /// (un)binding: write on the destination, read on the source exchange and, when the
    /// source is a topic exchange, read topic permission on the binding key.
    pub fn authorize_binding(
        &self,
        kind: ResourceKind,
        destination: &str,
        source: &str,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        let topic = self
            .vhost
            .exchange(source)
            .is_ok_and(|x| x.kind == ExchangeKind::Topic);
        self.broker.permissions.check_binding(
            &self.user,
            &self.vhost.name,
            kind,
            destination,
            source,
            topic,
            routing_key,
        )
    }

    /// Whether topic permissions apply to this user here, as of the last publish check.
    pub fn has_topic_permissions(&self) -> bool {
        self.write_cache.has_topic
    }

    /// The sender queues and the store use to reach this connection.
    pub fn events(&mut self) -> inbox::Sender<ConnEvent> {
        if let Some(tx) = &self.events_tx {
            return tx.clone();
        }
        let (tx, rx) = inbox::unbounded();
        self.events_tx = Some(tx.clone());
        self.new_events_rx = Some(rx);
        tx
    }

    /// Where this connection's publisher confirms are delivered.
    pub fn confirm_sink(&mut self) -> Arc<dyn ConfirmSink> {
        if let Some(sink) = &self.confirm_sink {
            return sink.clone();
        }
        let sink: Arc<dyn ConfirmSink> = Arc::new(EventSink(self.events()));
        self.confirm_sink = Some(sink.clone());
        sink
    }

    /// Publish `seq` on `channel` is durable (or failed); its confirm goes out at the end
    /// of this wake-up.
    pub fn confirm_done(&mut self, channel: &mut ChannelState, seq: u64, ack: bool) {
        let settled = channel
            .confirms
            .as_mut()
            .is_some_and(|c| c.settle(seq, ack));
        if settled {
            self.confirm_dirty.push(channel.id());
        }
    }
}
