//! The one place frames meet channel state: `handle_frame` checks which frames may arrive
//! in which state (RabbitMQ's 503/504/505/530 rules), hands methods to the per-class
//! handlers, and turns every `AmqpError` into `channel.close` or `connection.close`.
//! Events from queues (deliveries, cancellations) are applied here too.

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::channel::{ChannelState, Phase, Unacked};
use super::{handlers, Connection};
use crate::broker::consumer::ConnEvent;
use crate::broker::queue::{QueueCmd, QueueHandle};
use crate::model::message::QueuedMessage;
use crate::protocol::frame::{RawFrame, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use crate::protocol::{method, AmqpError, Scope};

impl Connection {
    pub(super) async fn handle_frame(&mut self, f: RawFrame) {
        if self.closing.is_some() {
            self.while_closing(f);
            return;
        }
        let ch = f.channel;
        if self.closed_by_client.contains(&ch) && !self.channels.contains_key(&ch) {
            let reopens = f.kind == FRAME_METHOD && method::ids(&f.payload) == (20, 10);
            if !reopens {
                return;
            }
            self.closed_by_client.retain(|c| *c != ch);
        }
        let result = match f.kind {
            FRAME_HEARTBEAT if ch == 0 => Ok(()),
            // as RabbitMQ words it: heartbeats belong on channel 0
            FRAME_HEARTBEAT => Err(AmqpError::unexpected_frame(format!(
                "type 8, all octets = {}",
                crate::protocol::erlang::binary(&f.payload)
            ))),
            FRAME_METHOD => self.handle_method_frame(ch, f.payload).await,
            FRAME_HEADER | FRAME_BODY => self.handle_content(ch, f.kind, f.payload).await,
            other => Err(AmqpError::frame_error(format!(
                "unknown frame type {other}"
            ))),
        };
        if let Err(e) = result {
            self.fail(ch, e).await;
        }
    }

    /// After we sent connection.close only close-ok (or a crossing close) matters.
    fn while_closing(&mut self, f: RawFrame) {
        if f.kind != FRAME_METHOD || f.channel != 0 {
            return;
        }
        if self.client_closed {
            // as RabbitMQ: every repeated connection.close gets its close-ok
            if let Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) =
                method::decode(&f.payload)
            {
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
            }
            return;
        }
        match method::decode(&f.payload) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => self.done = true,
            Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.done = true;
            }
            _ => {}
        }
    }

    pub(super) fn send_method(&mut self, channel: u16, m: AMQPClass) {
        self.session.send_method(channel, m);
    }

    async fn handle_method_frame(&mut self, ch: u16, payload: Bytes) -> Result<(), AmqpError> {
        let (class_id, method_id) = method::ids(&payload);
        // The hot path: basic.publish on an open channel with nothing pending is parsed
        // in place; everything else (and any malformed publish) takes the general decoder.
        if (class_id, method_id) == (60, 40) {
            let open = self
                .channels
                .get_mut(&ch)
                .filter(|c| c.phase == Phase::Open && c.pending.is_none());
            if let Some(state) = open {
                if let Some((exchange, routing_key, mandatory, immediate)) =
                    method::parse_publish(&payload)
                {
                    let session = &mut self.session;
                    return handlers::basic_publish(
                        session,
                        state,
                        exchange,
                        routing_key,
                        mandatory,
                        immediate,
                    )
                    .map_err(|e| e.caused_by(class_id, method_id));
                }
            }
        }
        let m = method::decode(&payload)?;
        if ch == 0 {
            if let AMQPClass::Connection(connection::AMQPMethod::Close(_)) = m {
                self.connection_method(m)?;
                // RabbitMQ closes every channel before answering, then lingers reading
                // (and discarding) until the client hangs up: clients such as amqplib may
                // still be flushing publishes queued before their close.
                self.teardown().await;
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.closing = Some(tokio::time::Instant::now() + super::CLOSED_LINGER);
                return Ok(());
            }
            return self
                .connection_method(m)
                .map_err(|e| e.caused_by(class_id, method_id).on_connection());
        }
        let phase = self
            .channels
            .get(&ch)
            .map(|c| (c.phase, c.pending.is_some()));
        match phase {
            None => match m {
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                    // channel_max limits how many channels are open, not their numbers; RabbitMQ
                    // raises this from its reader, so the close names no method
                    let open = self.channels.len();
                    if self.channel_max != 0 && open >= self.channel_max as usize {
                        return Err(AmqpError::not_allowed(format!(
                            "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                            self.channel_max
                        ))
                        .on_connection());
                    }
                    self.check_user_channel_limit()?;
                    self.open_channel(ch);
                    Ok(())
                }
                _ => Err(AmqpError::channel_error("expected 'channel.open'")
                    .caused_by(class_id, method_id)),
            },
            // The broker closed the channel and waits for close-ok, as RabbitMQ's closing
            // channel does: a client close that crossed ours is answered, but the number
            // stays taken until the client's close-ok (which such a client still sends),
            // so that close-ok is not taken for a frame on a channel that is not open.
            Some((Phase::Closing, _)) => match m {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    self.channels.remove(&ch);
                    Ok(())
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.send_method(
                        ch,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                    Ok(())
                }
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                    Err(AmqpError::channel_error("second 'channel.open' seen")
                        .caused_by(class_id, method_id))
                }
                _ => Ok(()), // dropped, as the spec asks while a close is in flight
            },
            Some((Phase::Open, true)) => Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got non content header frame instead ({})",
                method::method_name(class_id, method_id)
            ))
            .caused_by(class_id, method_id)),
            Some((Phase::Open, false)) => {
                let qos_size =
                    (class_id, method_id) == (60, 10) && method::qos_prefetch_size(&payload) != 0;
                if qos_size {
                    return Err(AmqpError::not_implemented(format!(
                        "prefetch_size!=0 ({})",
                        method::qos_prefetch_size(&payload)
                    ))
                    .caused_by(class_id, method_id));
                }
                if let AMQPClass::Channel(channel::AMQPMethod::Close(_)) = m {
                    self.channel_close(ch).await;
                    return Ok(());
                }
                let Some(state) = self.channels.get_mut(&ch) else {
                    return Ok(());
                };
                handlers::channel_method(&mut self.session, state, m)
                    .await
                    .map_err(|e| e.caused_by(class_id, method_id))
            }
        }
    }

    /// The client closes a channel: everything it held goes back, then close-ok.
    async fn channel_close(&mut self, ch: u16) {
        if let Some(state) = self.channels.remove(&ch) {
            self.channel_gone();
            handlers::teardown_channel(state).await;
        }
        self.closed_by_client.push(ch);
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        );
    }

    /// A content header or body frame: on an open channel it continues the publish in
    /// progress; on a closing one it is dropped.
    async fn handle_content(&mut self, ch: u16, kind: u8, payload: Bytes) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(if ch == 0 {
                AmqpError::command_invalid("content frame on channel 0")
            } else {
                AmqpError::channel_error("expected 'channel.open'")
            });
        };
        if state.phase == Phase::Closing {
            return Ok(());
        }
        if kind == FRAME_HEADER {
            handlers::content_header(&mut self.session, state, payload).await
        } else {
            handlers::content_body(&mut self.session, state, payload).await
        }
    }

    fn connection_method(&mut self, m: AMQPClass) -> Result<(), AmqpError> {
        match m {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                tracing::debug!(code = c.reply_code, text = %c.reply_text, "client closed the connection");
                self.client_closed = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                self.done = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            // A client may send these only to a client; RabbitMQ ignores them.
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            ) => Ok(()),
            AMQPClass::Connection(_) => Err(AmqpError::command_invalid("connection already open")),
            // RabbitMQ's code and words for a channel method on channel 0
            _ => Err(AmqpError::channel_error(
                "unexpected method in connection state running",
            )),
        }
    }

    /// RabbitMQ's max-channels user limit counts the user's channels on every connection;
    /// raised, as RabbitMQ does, as a connection error.
    fn check_user_channel_limit(&self) -> Result<(), AmqpError> {
        let broker = &self.session.broker;
        let Some(limit) = broker
            .users
            .get(&self.session.user)
            .and_then(|u| u.limit("max-channels"))
        else {
            return Ok(());
        };
        let open: u64 = broker
            .connection_registry
            .list()
            .iter()
            .filter(|c| c.user == self.session.user)
            .map(|c| u64::from(c.channel_count()))
            .sum();
        if open >= limit {
            return Err(AmqpError::not_allowed(format!(
                "number of channels opened for user '{}' has reached the maximum allowed user limit of ({limit})",
                self.session.user
            ))
            .on_connection());
        }
        Ok(())
    }

    fn open_channel(&mut self, ch: u16) {
        let epoch = self.session.broker.next_id();
        let state = ChannelState::open(ch, epoch, self.session.connection_id);
        self.session.broker.metrics.channels_opened.inc();
        self.info
            .channels
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.channels.insert(ch, Box::new(state));
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        );
    }

    /// Report `e`: channel errors close the channel, the rest the connection.
    pub(super) async fn fail(&mut self, ch: u16, e: AmqpError) {
        if e.scope == Scope::Connection || ch == 0 {
            self.begin_close(&e);
            return;
        }
        tracing::info!(channel = ch, code = e.code, "closing channel: {}", e.text);
        let Some(state) = self.channels.remove(&ch) else {
            return;
        };
        if state.phase == Phase::Closing {
            self.channels.insert(ch, state);
            return;
        }
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: e.code,
                reply_text: method::short(&e.text),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
        let link = state.link.clone();
        self.channel_gone();
        handlers::teardown_channel(state).await;
        let mut closing = Box::new(ChannelState::new(link));
        closing.phase = Phase::Closing;
        self.channels.insert(ch, closing);
    }

    /// Act on one event from a queue or the store. Never awaits, so the connection's
    /// task does not carry an awaiting handler's state for its whole life: a delivery that
    /// has to go back to its queue is returned for the caller to send.
    pub(super) fn handle_event(&mut self, ev: ConnEvent) -> Option<GoesBack> {
        match ev {
            ConnEvent::Deliver {
                channel_id,
                epoch,
                consumer_tag,
                queue,
                message,
                no_ack,
            } => {
                let live = live_channel(&mut self.channels, channel_id, epoch);
                let Some(ch) = live else {
                    return Some(GoesBack(queue, message));
                };
                let Some(consumer) = ch.consumers.get(&consumer_tag) else {
                    // Cancelled while this delivery was on its way: it goes back.
                    if !no_ack {
                        ch.link.prefetch.release(1);
                    }
                    return Some(GoesBack(queue, message));
                };
                let credit = consumer.link.credit.clone();
                let tag = ch.take_delivery_tag();
                let m = &message.message;
                self.session
                    .out
                    .deliver(channel_id, &consumer_tag, tag, message.redelivered, m);
                ch.stats.redeliver += message.redelivered as u64;
                if no_ack {
                    ch.stats.deliver_no_ack += 1;
                    self.releases.push((credit, 1));
                } else {
                    ch.stats.deliver += 1;
                    ch.unacked.insert(
                        tag,
                        Unacked {
                            queue,
                            message_id: message.id,
                            consumer_credit: Some(credit),
                            delivered_at: self.session.broker.clock.now(),
                        },
                    );
                }
            }
            ConnEvent::Reply {
                channel_id,
                epoch,
                message,
            } => {
                // a reply for a consumer that has gone is dropped, as in RabbitMQ
                let ch = live_channel(&mut self.channels, channel_id, epoch)?;
                let Some((tag, _)) = &ch.reply_consumer else {
                    return None;
                };
                // RabbitMQ 3.10 sends the channel's next tag without taking it: nothing is
                // acknowledged on a no-ack reply consumer
                let delivery_tag = ch.next_delivery_tag;
                self.session
                    .out
                    .deliver(channel_id, tag, delivery_tag, false, &message);
                ch.stats.deliver_no_ack += 1;
            }
            ConnEvent::Confirmed {
                channel_id,
                epoch,
                seq,
                ack,
            } => {
                let live = self
                    .channels
                    .get_mut(&channel_id)
                    .filter(|c| c.link.epoch == epoch);
                if let Some(state) = live {
                    self.session.confirm_done(state, seq, ack);
                }
            }
            ConnEvent::ConsumerCancelled {
                channel_id,
                epoch,
                consumer_tag,
            } => {
                let notify = self.consumer_cancel_notify;
                let ch = live_channel(&mut self.channels, channel_id, epoch)?;
                if ch.consumers.remove(&consumer_tag).is_some() && notify {
                    self.send_method(
                        channel_id,
                        method::basic(basic::AMQPMethod::Cancel(basic::Cancel {
                            consumer_tag: consumer_tag.as_ref().into(),
                            nowait: true,
                        })),
                    );
                }
            }
        }
        None
    }
}

/// A delivery that found its channel or consumer gone: it returns to its queue.
pub(super) struct GoesBack(pub Arc<QueueHandle>, pub QueuedMessage);

impl GoesBack {
    pub(super) async fn send(self) {
        self.0.send(QueueCmd::Reinsert(Box::new([self.1]))).await;
    }
}

/// The channel an event is for, if it is still the same opening of it and open.
fn live_channel(
    channels: &mut HashMap<u16, Box<ChannelState>>,
    channel_id: u16,
    epoch: u64,
) -> Option<&mut Box<ChannelState>> {
    channels
        .get_mut(&channel_id)
        .filter(|c| c.link.epoch == epoch && c.phase == Phase::Open)
}
