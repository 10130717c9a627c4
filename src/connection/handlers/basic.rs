//! basic.qos, consume, cancel, get, ack / nack / reject and recover: the consuming side of
//! a channel. Prefetch is RabbitMQ's: `global=false` sets the limit for consumers started
//! afterwards, `global=true` one shared by the whole channel; both apply together.

use crate::broker::permissions::{Access, ResourceKind};
use std::sync::Arc;

use amq_protocol::protocol::basic;

use crate::broker::consumer::{ConsumerLink, Credit, NO_ACK_WINDOW};
use crate::broker::queue::{args, QueueCmd};
use crate::connection::channel::{group_by_queue, ConsumerEntry, Settle, Unacked};
use crate::connection::Connection;
use crate::protocol::{method, AmqpError};

fn consumer_tag() -> String {
    super::server_generated("amq.ctag-")
}

impl Connection {
    pub(in crate::connection) async fn basic_qos(
        &mut self,
        ch: u16,
        d: basic::Qos,
    ) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let mut kick = Vec::new();
        if d.global {
            state.link.prefetch.set_limit(d.prefetch_count as u32);
            kick = state.consumed_queues();
        } else {
            state.consumer_prefetch = d.prefetch_count;
        }
        self.send_method(ch, method::basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
        for q in kick {
            q.send(QueueCmd::Kick).await;
        }
        Ok(())
    }

    pub(in crate::connection) async fn basic_consume(
        &mut self,
        ch: u16,
        d: basic::Consume,
    ) -> Result<(), AmqpError> {
        let name = match d.queue.as_str() {
            "" => self
                .channels
                .get(&ch)
                .and_then(|c| c.last_queue.clone())
                .ok_or_else(|| AmqpError::not_found("no previously declared queue"))?,
            n => n.to_owned(),
        };
        // as RabbitMQ: a reused tag is refused before the queue is even looked up
        let reused = self
            .channels
            .get(&ch)
            .is_some_and(|c| c.consumers.contains_key(d.consumer_tag.as_str()));
        if reused {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                d.consumer_tag
            )));
        }
        self.authorize(Access::Read, ResourceKind::Queue, &name)?;
        let q = self.vhost.queue_for(&name, self.id)?;
        let priority =
            args::check_consume_arguments(&d.arguments, &q.args, &name, &self.vhost.name)?;
        let events = self.events();
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        // from now on queues can reach this channel
        let _ = state.link.events.set(events);
        let tag: Arc<str> = match d.consumer_tag.as_str() {
            "" => consumer_tag().into(),
            t => t.into(),
        };
        let max = self.broker.config.consumer_max_per_channel;
        if max > 0 && state.consumers.len() as u64 >= max {
            return Err(AmqpError::not_allowed(format!(
                "reached maximum ({max}) of consumers per channel"
            )));
        }
        let limit = if d.no_ack {
            NO_ACK_WINDOW
        } else {
            state.consumer_prefetch as u32
        };
        let link = ConsumerLink {
            tag: tag.clone(),
            channel: state.link.clone(),
            no_ack: d.no_ack,
            exclusive: d.exclusive,
            priority,
            credit: Arc::new(Credit::new(limit, Some(q.tx.clone()))),
        };
        let added = q
            .ask(|reply| QueueCmd::Consume {
                consumer: link.clone(),
                reply,
            })
            .await
            .unwrap_or_else(|| {
                Err(AmqpError::not_found(format!(
                    "no queue '{name}' in vhost '{}'",
                    self.vhost.name
                )))
            });
        added?;
        // The queue may already have sent deliveries, but they are events this task reads
        // only after this handler returns, so consume-ok still goes out first.
        if !d.nowait {
            self.send_method(
                ch,
                method::basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        if let Some(state) = self.channels.get_mut(&ch) {
            state
                .consumers
                .insert(tag, ConsumerEntry { queue: q, link });
        }
        Ok(())
    }

    pub(in crate::connection) async fn basic_cancel(
        &mut self,
        ch: u16,
        d: basic::Cancel,
    ) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let epoch = state.link.epoch;
        if let Some(entry) = state.consumers.remove(d.consumer_tag.as_str()) {
            entry
                .queue
                .ask(|reply| QueueCmd::Cancel {
                    epoch,
                    tag: entry.link.tag.clone(),
                    reply: Some(reply),
                })
                .await;
        }
        if !d.nowait {
            self.send_method(
                ch,
                method::basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag: d.consumer_tag,
                })),
            );
        }
        Ok(())
    }

    pub(in crate::connection) async fn basic_get(
        &mut self,
        ch: u16,
        d: basic::Get,
    ) -> Result<(), AmqpError> {
        let name = match d.queue.as_str() {
            "" => self
                .channels
                .get(&ch)
                .and_then(|c| c.last_queue.clone())
                .ok_or_else(|| AmqpError::not_found("no previously declared queue"))?,
            n => n.to_owned(),
        };
        self.authorize(Access::Read, ResourceKind::Queue, &name)?;
        let q = self.vhost.queue_for(&name, self.id)?;
        let got = q
            .ask(|reply| QueueCmd::Get {
                no_ack: d.no_ack,
                reply,
            })
            .await
            .flatten();
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        match got {
            None => self.send_method(
                ch,
                method::basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            ),
            Some((m, remaining)) => {
                let tag = state.take_delivery_tag();
                if !d.no_ack {
                    state.unacked.insert(
                        tag,
                        Unacked {
                            queue: q,
                            message_id: m.id,
                            consumer_credit: None,
                        },
                    );
                }
                let msg = &m.message;
                self.out.get_ok(ch, tag, m.redelivered, remaining, msg);
            }
        }
        Ok(())
    }

    /// ack / nack / reject. In tx mode the settlement waits for tx.commit.
    pub(in crate::connection) async fn basic_settle(
        &mut self,
        ch: u16,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let known = (multiple && delivery_tag == 0)
            || state.unacked.contains_key(&delivery_tag)
            || (multiple && state.unacked.range(..=delivery_tag).next().is_some());
        if !known {
            return Err(AmqpError::precondition_failed(format!(
                "unknown delivery tag {delivery_tag}"
            )));
        }
        if let Some(tx) = state.tx.as_mut() {
            tx.settles.push((delivery_tag, multiple, how));
            return Ok(());
        }
        self.apply_settle(ch, delivery_tag, multiple, how).await
    }

    /// Remove the named unacked entries, give their credit back and tell their queues.
    pub(in crate::connection) async fn apply_settle(
        &mut self,
        ch: u16,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let entries: Vec<Unacked> = if multiple {
            let upto = if delivery_tag == 0 {
                u64::MAX
            } else {
                delivery_tag
            };
            let tags: Vec<u64> = state.unacked.range(..=upto).map(|(t, _)| *t).collect();
            tags.iter()
                .filter_map(|t| state.unacked.remove(t))
                .collect()
        } else {
            match state.unacked.remove(&delivery_tag) {
                Some(e) => vec![e],
                None => {
                    return Err(AmqpError::precondition_failed(format!(
                        "unknown delivery tag {delivery_tag}"
                    )))
                }
            }
        };
        let mut channel_credit = 0;
        for e in &entries {
            if let Some(c) = &e.consumer_credit {
                c.release(1);
                channel_credit += 1;
            }
        }
        let channel_was_full = state.link.prefetch.release(channel_credit);
        let kick = if channel_was_full {
            state.consumed_queues()
        } else {
            Vec::new()
        };
        for (q, ids) in group_by_queue(entries) {
            let cmd = match how {
                Settle::Requeue => QueueCmd::Requeue(ids),
                Settle::Ack => QueueCmd::Ack(ids),
                Settle::Discard => QueueCmd::Reject(ids),
            };
            q.send(cmd).await;
        }
        for q in kick {
            q.send(QueueCmd::Kick).await;
        }
        Ok(())
    }

    /// basic.recover / recover-async with requeue=true: every unacked message goes back.
    pub(in crate::connection) async fn basic_recover(
        &mut self,
        ch: u16,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        self.apply_settle(ch, 0, true, Settle::Requeue).await?;
        if reply {
            self.send_method(
                ch,
                method::basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
            );
        }
        Ok(())
    }
}
