//! basic.qos, consume, cancel, get, ack / nack / reject and recover: the consuming side of
//! a channel. Prefetch is RabbitMQ's: `global=false` sets the limit for consumers started
//! afterwards, `global=true` one shared by the whole channel; both apply together.

use crate::broker::permissions::{Access, ResourceKind};
use std::sync::Arc;

use amq_protocol::protocol::basic;

use crate::broker::consumer::{ConsumerLink, Credit, NO_ACK_WINDOW};
use crate::broker::queue::{args, CancelConsumer, QueueCmd};
use crate::connection::channel::ChannelState;
use crate::connection::channel::{group_by_queue, ConsumerEntry, Settle, Unacked};
use crate::connection::session::Session;
use crate::protocol::{method, AmqpError};

fn consumer_tag() -> String {
    super::server_generated("amq.ctag-")
}

pub(super) async fn basic_qos(
    s: &mut Session,
    ch: &mut ChannelState,
    d: basic::Qos,
) -> Result<(), AmqpError> {
    let mut kick = Vec::new();
    if d.global {
        ch.link.prefetch.set_limit(d.prefetch_count as u32);
        kick = ch.consumed_queues();
    } else {
        ch.consumer_prefetch = d.prefetch_count;
    }
    s.send_method(
        ch.id(),
        method::basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
    );
    for q in kick {
        q.send(QueueCmd::Kick).await;
    }
    Ok(())
}

pub(super) async fn basic_consume(
    s: &mut Session,
    ch: &mut ChannelState,
    d: basic::Consume,
) -> Result<(), AmqpError> {
    if d.queue.as_str() == crate::broker::direct_reply::REPLY_QUEUE {
        return super::direct_reply::consume(s, ch, d);
    }
    let name = ch.queue_name(d.queue.as_str())?;
    // as RabbitMQ: a reused tag is refused before the queue is even looked up
    if ch.consumers.contains_key(d.consumer_tag.as_str()) {
        return Err(AmqpError::not_allowed(format!(
            "attempt to reuse consumer tag '{}'",
            d.consumer_tag
        )));
    }
    s.authorize(Access::Read, ResourceKind::Queue, &name)?;
    let q = s.vhost.queue_for(&name, s.connection_id)?;
    let priority = args::check_consume_arguments(&d.arguments, &q.args, &name, &s.vhost.name)?;
    let events = s.events();
    // from now on queues can reach this channel
    let _ = ch.link.events.set(events);
    let tag: Arc<str> = match d.consumer_tag.as_str() {
        "" => consumer_tag().into(),
        t => t.into(),
    };
    let max = s.broker.config.consumer_max_per_channel;
    if max > 0 && ch.consumers.len() as u64 >= max {
        return Err(AmqpError::not_allowed(format!(
            "reached maximum ({max}) of consumers per channel"
        )));
    }
    let limit = if d.no_ack {
        NO_ACK_WINDOW
    } else {
        ch.consumer_prefetch as u32
    };
    let link = ConsumerLink {
        tag: tag.clone(),
        channel: ch.link.clone(),
        no_ack: d.no_ack,
        exclusive: d.exclusive,
        priority,
        credit: Arc::new(Credit::new(limit, Some(q.tx.clone()))),
    };
    let added = q
        .ask(|reply| QueueCmd::Consume {
            consumer: Box::new(link.clone()),
            reply,
        })
        .await
        .unwrap_or_else(|| {
            Err(AmqpError::not_found(format!(
                "no queue '{name}' in vhost '{}'",
                s.vhost.name
            )))
        });
    added?;
    // The queue may already have sent deliveries, but they are events this task reads
    // only after this handler returns, so consume-ok still goes out first.
    if !d.nowait {
        s.send_method(
            ch.id(),
            method::basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.as_ref().into(),
            })),
        );
    }
    ch.consumers.insert(tag, ConsumerEntry { queue: q, link });
    Ok(())
}

pub(super) async fn basic_cancel(
    s: &mut Session,
    ch: &mut ChannelState,
    d: basic::Cancel,
) -> Result<(), AmqpError> {
    if super::direct_reply::cancel(s, ch, d.consumer_tag.as_str(), d.nowait) {
        return Ok(());
    }
    let epoch = ch.link.epoch;
    if let Some(entry) = ch.consumers.remove(d.consumer_tag.as_str()) {
        entry
            .queue
            .ask(|reply| {
                QueueCmd::Cancel(Box::new(CancelConsumer {
                    epoch,
                    tag: entry.link.tag.clone(),
                    reply: Some(reply),
                }))
            })
            .await;
    }
    if !d.nowait {
        s.send_method(
            ch.id(),
            method::basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: d.consumer_tag,
            })),
        );
    }
    Ok(())
}

pub(super) async fn basic_get(
    s: &mut Session,
    ch: &mut ChannelState,
    d: basic::Get,
) -> Result<(), AmqpError> {
    let name = ch.queue_name(d.queue.as_str())?;
    s.authorize(Access::Read, ResourceKind::Queue, &name)?;
    let q = s.vhost.queue_for(&name, s.connection_id)?;
    let got = q
        .ask(|reply| QueueCmd::Get {
            no_ack: d.no_ack,
            reply,
        })
        .await
        .flatten();
    match got {
        None => {
            ch.stats.get_empty += 1;
            s.send_method(
                ch.id(),
                method::basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            )
        }
        Some((m, remaining)) => {
            let tag = ch.take_delivery_tag();
            ch.stats.redeliver += m.redelivered as u64;
            if d.no_ack {
                ch.stats.get_no_ack += 1;
            } else {
                ch.stats.get += 1;
                ch.unacked.insert(
                    tag,
                    Unacked {
                        queue: q,
                        message_id: m.id,
                        consumer_credit: None,
                        delivered_at: s.broker.clock.now(),
                    },
                );
            }
            let msg = &m.message;
            s.out.get_ok(ch.id(), tag, m.redelivered, remaining, msg);
        }
    }
    Ok(())
}

/// ack / nack / reject. In tx mode the settlement waits for tx.commit.
pub(super) async fn basic_settle(
    ch: &mut ChannelState,
    delivery_tag: u64,
    multiple: bool,
    how: Settle,
) -> Result<(), AmqpError> {
    let known = (multiple && delivery_tag == 0)
        || ch.unacked.contains_key(&delivery_tag)
        || (multiple && ch.unacked.range(..=delivery_tag).next().is_some());
    if !known {
        return Err(AmqpError::precondition_failed(format!(
            "unknown delivery tag {delivery_tag}"
        )));
    }
    if let Some(tx) = ch.tx.as_mut() {
        tx.settles.push((delivery_tag, multiple, how));
        return Ok(());
    }
    apply_settle(ch, delivery_tag, multiple, how).await
}

/// Remove the named unacked entries, give their credit back and tell their queues.
pub(super) async fn apply_settle(
    ch: &mut ChannelState,
    delivery_tag: u64,
    multiple: bool,
    how: Settle,
) -> Result<(), AmqpError> {
    let entries: Vec<Unacked> = if multiple {
        let upto = if delivery_tag == 0 {
            u64::MAX
        } else {
            delivery_tag
        };
        let tags: Vec<u64> = ch.unacked.range(..=upto).map(|(t, _)| *t).collect();
        tags.iter().filter_map(|t| ch.unacked.remove(t)).collect()
    } else {
        match ch.unacked.remove(&delivery_tag) {
            Some(e) => vec![e],
            None => {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {delivery_tag}"
                )))
            }
        }
    };
    if matches!(how, Settle::Ack) {
        ch.stats.ack += entries.len() as u64;
    }
    let mut channel_credit = 0;
    for e in &entries {
        if let Some(c) = &e.consumer_credit {
            c.release(1);
            channel_credit += 1;
        }
    }
    let channel_was_full = ch.link.prefetch.release(channel_credit);
    let kick = if channel_was_full {
        ch.consumed_queues()
    } else {
        Vec::new()
    };
    for (q, ids) in group_by_queue(entries) {
        let cmd = match how {
            Settle::Requeue => QueueCmd::Requeue(ids.into()),
            Settle::Ack => QueueCmd::Ack(ids.into()),
            Settle::Discard => QueueCmd::Reject(ids.into()),
        };
        q.send(cmd).await;
    }
    for q in kick {
        q.send(QueueCmd::Kick).await;
    }
    Ok(())
}

/// basic.recover / recover-async with requeue=true: every unacked message goes back.
pub(super) async fn basic_recover(
    s: &mut Session,
    ch: &mut ChannelState,
    requeue: bool,
    reply: bool,
) -> Result<(), AmqpError> {
    if !requeue {
        return Err(AmqpError::not_implemented("requeue=false"));
    }
    apply_settle(ch, 0, true, Settle::Requeue).await?;
    if reply {
        s.send_method(
            ch.id(),
            method::basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
        );
    }
    Ok(())
}
