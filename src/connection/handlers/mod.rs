//! Per-class method handlers, one file per AMQP class, all `impl Connection`. Each returns
//! `AmqpError` and leaves sending the close to the dispatcher.

mod basic;
mod channel;
mod confirm_tx;
mod exchange;
mod publish;
mod queue;

use amq_protocol::protocol::{
    access, basic as b, channel as c, confirm, exchange as e, queue as q, tx, AMQPClass,
};

use rand::Rng;

use std::collections::HashSet;
use std::sync::Arc;

use super::Connection;
use crate::broker::permissions::{Access, ResourceKind};
use crate::protocol::AmqpError;

/// Answers to "may this user publish to exchange X" for the publish hot path, dropped
/// whenever any permission changes (so a revocation applies to the next publish).
#[derive(Debug, Default)]
pub struct AccessCache {
    generation: u64,
    write_ok: HashSet<Arc<str>>,
    /// Whether the user has topic permissions in this vhost (usually not: no check).
    pub has_topic: bool,
}

/// A name the server makes up, as RabbitMQ's: `prefix` and 22 URL-safe base64 characters
/// (server-named queues `amq.gen-...`, consumer tags `amq.ctag-...`).
fn server_generated(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

impl Connection {
    /// RabbitMQ's permission check for one operation on one resource of this vhost.
    fn authorize(&self, access: Access, kind: ResourceKind, name: &str) -> Result<(), AmqpError> {
        self.broker
            .permissions
            .check(&self.user, &self.vhost.name, access, kind, name)
    }

    /// Write permission on an exchange, from the cache when permissions have not changed
    /// since it was filled. Also refreshes whether topic permissions need checking.
    fn authorize_publish(&mut self, exchange: &Arc<str>) -> Result<(), AmqpError> {
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

    pub(super) async fn channel_method(&mut self, ch: u16, m: AMQPClass) -> Result<(), AmqpError> {
        match m {
            AMQPClass::Channel(c::AMQPMethod::Open(_)) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            AMQPClass::Channel(c::AMQPMethod::Flow(f)) => self.channel_flow(ch, f.active),
            AMQPClass::Channel(c::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Channel(c::AMQPMethod::Close(_)) => self.channel_close(ch).await,
            AMQPClass::Channel(c::AMQPMethod::CloseOk(_)) => Ok(()),
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.send_method(
                    ch,
                    AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            AMQPClass::Exchange(e::AMQPMethod::Declare(d)) => self.exchange_declare(ch, d).await,
            AMQPClass::Exchange(e::AMQPMethod::Delete(d)) => self.exchange_delete(ch, d).await,
            AMQPClass::Exchange(e::AMQPMethod::Bind(d)) => self.exchange_bind(ch, d).await,
            AMQPClass::Exchange(e::AMQPMethod::Unbind(d)) => self.exchange_unbind(ch, d).await,
            AMQPClass::Queue(q::AMQPMethod::Declare(d)) => self.queue_declare(ch, d).await,
            AMQPClass::Queue(q::AMQPMethod::Bind(d)) => self.queue_bind(ch, d).await,
            AMQPClass::Queue(q::AMQPMethod::Unbind(d)) => self.queue_unbind(ch, d).await,
            AMQPClass::Queue(q::AMQPMethod::Purge(d)) => self.queue_purge(ch, d).await,
            AMQPClass::Queue(q::AMQPMethod::Delete(d)) => self.queue_delete(ch, d).await,
            AMQPClass::Basic(b::AMQPMethod::Qos(d)) => self.basic_qos(ch, d).await,
            AMQPClass::Basic(b::AMQPMethod::Consume(d)) => self.basic_consume(ch, d).await,
            AMQPClass::Basic(b::AMQPMethod::Cancel(d)) => self.basic_cancel(ch, d).await,
            AMQPClass::Basic(b::AMQPMethod::Publish(d)) => self.basic_publish(
                ch,
                d.exchange.as_str(),
                d.routing_key.as_str(),
                d.mandatory,
                d.immediate,
            ),
            AMQPClass::Basic(b::AMQPMethod::Get(d)) => self.basic_get(ch, d).await,
            AMQPClass::Basic(b::AMQPMethod::Ack(d)) => {
                self.basic_settle(ch, d.delivery_tag, d.multiple, super::channel::Settle::Ack)
                    .await
            }
            AMQPClass::Basic(b::AMQPMethod::Nack(d)) => {
                let how = if d.requeue {
                    super::channel::Settle::Requeue
                } else {
                    super::channel::Settle::Discard
                };
                self.basic_settle(ch, d.delivery_tag, d.multiple, how).await
            }
            AMQPClass::Basic(b::AMQPMethod::Reject(d)) => {
                let how = if d.requeue {
                    super::channel::Settle::Requeue
                } else {
                    super::channel::Settle::Discard
                };
                self.basic_settle(ch, d.delivery_tag, false, how).await
            }
            AMQPClass::Basic(b::AMQPMethod::Recover(d)) => {
                self.basic_recover(ch, d.requeue, true).await
            }
            AMQPClass::Basic(b::AMQPMethod::RecoverAsync(d)) => {
                self.basic_recover(ch, d.requeue, false).await
            }
            AMQPClass::Confirm(confirm::AMQPMethod::Select(d)) => self.confirm_select(ch, d.nowait),
            AMQPClass::Tx(tx::AMQPMethod::Select(_)) => self.tx_select(ch),
            AMQPClass::Tx(tx::AMQPMethod::Commit(_)) => self.tx_commit(ch).await,
            AMQPClass::Tx(tx::AMQPMethod::Rollback(_)) => self.tx_rollback(ch),
            AMQPClass::Connection(_) => Err(AmqpError::command_invalid(
                "connection method on a non-zero channel",
            )),
            other => Err(AmqpError::command_invalid(format!(
                "method {} is sent by servers, not clients",
                crate::protocol::method::method_name(other.get_amqp_class_id(), 0)
            ))),
        }
    }
}
