//! channel.flow from the client, and what ending a channel gives back. channel.close itself
//! is the dispatcher's: it owns the map of channels.

use std::sync::atomic::Ordering;

use amq_protocol::protocol::{channel, AMQPClass};

use crate::broker::queue::{CancelConsumer, QueueCmd};
use crate::connection::channel::{group_by_queue, ChannelState};
use crate::connection::session::Session;
use crate::protocol::AmqpError;

/// As RabbitMQ 3.x: a client may not pause deliveries with flow(active=false) (540,
/// closing the connection; prefetch is the way); flow(active=true) is answered.
pub(super) fn channel_flow(
    s: &mut Session,
    ch: &mut ChannelState,
    active: bool,
) -> Result<(), AmqpError> {
    if !active {
        return Err(AmqpError::not_implemented("active=false"));
    }
    // deliveries are never paused by the client, so there is nothing to resume
    s.send_method(
        ch.id(),
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
    );
    Ok(())
}

/// A channel ends: its consumers are cancelled, then its unacked messages requeued.
pub async fn teardown_channel(ch: Box<ChannelState>) {
    ch.link.delivering.store(false, Ordering::Release);
    for (tag, c) in ch.consumers {
        c.queue
            .send(QueueCmd::Cancel(Box::new(CancelConsumer {
                epoch: ch.link.epoch,
                tag,
                reply: None,
            })))
            .await;
    }
    for (q, ids) in group_by_queue(ch.unacked.into_values()) {
        q.send(QueueCmd::Requeue(ids.into())).await;
    }
}
