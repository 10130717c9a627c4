//! Per-class method handlers, one file per AMQP class. Each is a function over the
//! connection's `Session` (vhost, user, outgoing frames) and one channel's `ChannelState`;
//! the dispatcher calls them for an open channel. They return `AmqpError` and leave
//! sending the close to the dispatcher; none of them sees the socket or another channel.

mod basic;
mod channel;
mod confirm_tx;
mod direct_reply;
mod exchange;
mod publish;
mod queue;
#[cfg(test)]
mod tests;

use amq_protocol::protocol::{
    access, basic as b, channel as c, confirm, exchange as e, queue as q, tx, AMQPClass,
};

use rand::Rng;

use super::channel::{ChannelState, Settle};
use super::session::Session;
use crate::protocol::AmqpError;
pub(super) use channel::teardown_channel;
pub(super) use publish::{basic_publish, content_body, content_header};

use basic::{basic_cancel, basic_consume, basic_get, basic_qos, basic_recover, basic_settle};
use channel::channel_flow;
use confirm_tx::{confirm_select, tx_commit, tx_rollback, tx_select};
use exchange::{exchange_bind, exchange_declare, exchange_delete, exchange_unbind};
use queue::{queue_bind, queue_declare, queue_delete, queue_purge, queue_unbind};

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

/// One method on an open channel with no content pending. channel.close is not here: it
/// ends the channel's state, which the dispatcher owns.
pub(super) async fn channel_method(
    s: &mut Session,
    ch: &mut ChannelState,
    m: AMQPClass,
) -> Result<(), AmqpError> {
    match m {
        AMQPClass::Channel(c::AMQPMethod::Open(_)) => {
            Err(AmqpError::channel_error("second 'channel.open' seen"))
        }
        AMQPClass::Channel(c::AMQPMethod::Flow(f)) => channel_flow(s, ch, f.active),
        AMQPClass::Channel(c::AMQPMethod::FlowOk(_)) => Ok(()),
        AMQPClass::Channel(c::AMQPMethod::CloseOk(_)) => Ok(()),
        AMQPClass::Access(access::AMQPMethod::Request(_)) => {
            s.send_method(
                ch.id(),
                AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
            );
            Ok(())
        }
        AMQPClass::Exchange(e::AMQPMethod::Declare(d)) => exchange_declare(s, ch, d).await,
        AMQPClass::Exchange(e::AMQPMethod::Delete(d)) => exchange_delete(s, ch, d).await,
        AMQPClass::Exchange(e::AMQPMethod::Bind(d)) => exchange_bind(s, ch, d).await,
        AMQPClass::Exchange(e::AMQPMethod::Unbind(d)) => exchange_unbind(s, ch, d).await,
        AMQPClass::Queue(q::AMQPMethod::Declare(d)) => queue_declare(s, ch, d).await,
        AMQPClass::Queue(q::AMQPMethod::Bind(d)) => queue_bind(s, ch, d).await,
        AMQPClass::Queue(q::AMQPMethod::Unbind(d)) => queue_unbind(s, ch, d).await,
        AMQPClass::Queue(q::AMQPMethod::Purge(d)) => queue_purge(s, ch, d).await,
        AMQPClass::Queue(q::AMQPMethod::Delete(d)) => queue_delete(s, ch, d).await,
        AMQPClass::Basic(b::AMQPMethod::Qos(d)) => basic_qos(s, ch, d).await,
        AMQPClass::Basic(b::AMQPMethod::Consume(d)) => basic_consume(s, ch, d).await,
        AMQPClass::Basic(b::AMQPMethod::Cancel(d)) => basic_cancel(s, ch, d).await,
        AMQPClass::Basic(b::AMQPMethod::Publish(d)) => basic_publish(
            s,
            ch,
            d.exchange.as_str(),
            d.routing_key.as_str(),
            d.mandatory,
            d.immediate,
        ),
        AMQPClass::Basic(b::AMQPMethod::Get(d)) => basic_get(s, ch, d).await,
        AMQPClass::Basic(b::AMQPMethod::Ack(d)) => {
            basic_settle(ch, d.delivery_tag, d.multiple, Settle::Ack).await
        }
        AMQPClass::Basic(b::AMQPMethod::Nack(d)) => {
            let how = if d.requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            };
            basic_settle(ch, d.delivery_tag, d.multiple, how).await
        }
        AMQPClass::Basic(b::AMQPMethod::Reject(d)) => {
            let how = if d.requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            };
            basic_settle(ch, d.delivery_tag, false, how).await
        }
        AMQPClass::Basic(b::AMQPMethod::Recover(d)) => basic_recover(s, ch, d.requeue, true).await,
        AMQPClass::Basic(b::AMQPMethod::RecoverAsync(d)) => {
            basic_recover(s, ch, d.requeue, false).await
        }
        AMQPClass::Confirm(confirm::AMQPMethod::Select(d)) => confirm_select(s, ch, d.nowait),
        AMQPClass::Tx(tx::AMQPMethod::Select(_)) => tx_select(s, ch),
        AMQPClass::Tx(tx::AMQPMethod::Commit(_)) => tx_commit(s, ch).await,
        AMQPClass::Tx(tx::AMQPMethod::Rollback(_)) => tx_rollback(s, ch),
        AMQPClass::Connection(_) => Err(AmqpError::command_invalid(
            "connection method on a non-zero channel",
        )),
        other => Err(AmqpError::command_invalid(format!(
            "method {} is sent by servers, not clients",
            crate::protocol::method::method_name(other.get_amqp_class_id(), 0)
        ))),
    }
}
