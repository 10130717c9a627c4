//! Direct reply-to, as RabbitMQ's `amq.rabbitmq.reply-to`: an RPC client consumes (no-ack)
//! from that pseudo-queue, its requests carry a generated `amq.rabbitmq.reply-to.*` name
//! in `reply_to`, and a reply published to that name on the default exchange goes
//! straight to the client's channel, with no queue in between. This registry maps names
//! to channels; a channel's registration ends when its state is dropped (cancel, channel
//! close, connection loss), so a reply to a client that is gone finds nobody and is
//! dropped. Sends are unbounded events to the connection task; nothing here awaits.

use std::sync::Arc;

use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;

use super::consumer::{ChannelLink, ConnEvent};
use crate::model::message::Message;

/// The pseudo-queue a reply consumer consumes from and requests name in `reply_to`.
pub const REPLY_QUEUE: &str = "amq.rabbitmq.reply-to";
/// What the generated names start with.
pub const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

#[derive(Debug, Default, Clone)]
pub struct DirectReply {
    channels: Arc<DashMap<Arc<str>, Arc<ChannelLink>>>,
}

/// One channel's reply consumer; dropping it unregisters the name.
#[derive(Debug)]
pub struct Registration {
    pub name: Arc<str>,
    channels: Arc<DashMap<Arc<str>, Arc<ChannelLink>>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.channels.remove(&self.name);
    }
}

impl DirectReply {
    /// A fresh, unguessable name for `channel`'s replies.
    pub fn register(&self, channel: Arc<ChannelLink>) -> Registration {
        let mut key = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut key);
        let name: Arc<str> = format!(
            "{REPLY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
        .into();
        self.channels.insert(name.clone(), channel);
        Registration {
            name,
            channels: self.channels.clone(),
        }
    }

    /// Whether a reply consumer answers to `name` (a passive declare asks).
    pub fn exists(&self, name: &str) -> bool {
        name == REPLY_QUEUE || self.channels.contains_key(name)
    }

    /// Hand a reply to the channel behind `name`; false when there is none.
    pub fn deliver(&self, name: &str, message: &Arc<Message>) -> bool {
        let Some(link) = self.channels.get(name).map(|l| l.clone()) else {
            return false;
        };
        link.send(ConnEvent::Reply {
            channel_id: link.channel_id,
            epoch: link.epoch,
            message: message.clone(),
        })
        .is_ok()
    }
}
