//! Direct reply-to on a channel, as RabbitMQ 3.10's `rabbit_channel` does it: basic.consume
//! on `amq.rabbitmq.reply-to` (no-ack only, one per channel), basic.cancel of it, a publish
//! whose `reply_to` names the pseudo-queue (rewritten to the channel's generated name), and
//! queue.declare of either name (always passive in effect). Replies themselves are routed
//! by the publish path (`route_and_enqueue`) through `broker::direct_reply`.

use std::sync::Arc;

use amq_protocol::protocol::{basic, queue, AMQPClass};
use bytes::Bytes;

use crate::broker::direct_reply::{REPLY_PREFIX, REPLY_QUEUE};
use crate::connection::channel::ChannelState;
use crate::connection::session::Session;
use crate::protocol::content::with_reply_to;
use crate::protocol::{method, AmqpError};

/// basic.consume on `amq.rabbitmq.reply-to`, with RabbitMQ's checks in its order.
pub(super) fn consume(
    s: &mut Session,
    ch: &mut ChannelState,
    d: basic::Consume,
) -> Result<(), AmqpError> {
    if ch.consumers.contains_key(d.consumer_tag.as_str()) {
        return Err(AmqpError::not_allowed(format!(
            "attempt to reuse consumer tag '{}'",
            d.consumer_tag
        )));
    }
    if !d.no_ack {
        return Err(AmqpError::precondition_failed(
            "reply consumer cannot acknowledge",
        ));
    }
    if ch.reply_consumer.is_some() {
        return Err(AmqpError::precondition_failed("reply consumer already set"));
    }
    let tag: Arc<str> = match d.consumer_tag.as_str() {
        "" => super::server_generated("amq.ctag-").into(),
        t => t.into(),
    };
    // from now on replies can reach this channel
    let _ = ch.link.events.set(s.events());
    let registration = s.broker.direct_reply.register(ch.link.clone());
    ch.reply_consumer = Some((tag.clone(), registration));
    if !d.nowait {
        s.send_method(
            ch.id(),
            method::basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_ref().into(),
            })),
        );
    }
    Ok(())
}

/// basic.cancel of the reply consumer; false when `tag` is another consumer's.
pub(super) fn cancel(s: &mut Session, ch: &mut ChannelState, tag: &str, nowait: bool) -> bool {
    if ch
        .reply_consumer
        .as_ref()
        .is_none_or(|(t, _)| t.as_ref() != tag)
    {
        return false;
    }
    ch.reply_consumer = None;
    if !nowait {
        s.send_method(
            ch.id(),
            method::basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: tag.into(),
            })),
        );
    }
    true
}

/// queue.declare of the pseudo-queue or a generated name: declare-ok with one consumer
/// when someone answers to it, else 404. None for any other name.
pub(super) fn declare(
    s: &mut Session,
    ch: &mut ChannelState,
    d: &queue::Declare,
) -> Option<Result<(), AmqpError>> {
    let name = d.queue.as_str();
    if name != REPLY_QUEUE && !name.starts_with(REPLY_PREFIX) {
        return None;
    }
    if !s.broker.direct_reply.exists(name) {
        return Some(Err(AmqpError::not_found(format!(
            "no queue '{name}' in vhost '{}'",
            s.vhost.name
        ))));
    }
    if !d.nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: name.into(),
                message_count: 0,
                consumer_count: 1,
            })),
        );
    }
    Some(Ok(()))
}

/// A request whose `reply_to` is the pseudo-queue gets the channel's generated name
/// instead; without a reply consumer on the channel that is RabbitMQ's 406.
pub(super) fn rewrite_reply_to(
    ch: &ChannelState,
    properties: &Bytes,
    reply_to: Option<std::ops::Range<usize>>,
) -> Result<Option<Bytes>, AmqpError> {
    match reply_to {
        Some(r) if &properties[r.clone()] == REPLY_QUEUE.as_bytes() => match &ch.reply_consumer {
            Some((_, registration)) => with_reply_to(properties, &registration.name).map(Some),
            None => Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            )),
        },
        _ => Ok(None),
    }
}
