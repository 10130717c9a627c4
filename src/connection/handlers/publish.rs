//! basic.publish: the method, content header and body frames are assembled into a `Message`,
//! routed through the vhost without locks or awaits, and handed to each target queue's
//! bounded mailbox (awaited: a full queue slows this publisher down). Unroutable mandatory
//! messages come back as basic.return; in confirm mode each publish is then confirmed, and in
//! tx mode it waits in the transaction buffer for tx.commit.

use crate::broker::exchange::ExchangeKind;
use crate::broker::permissions::Access;
use std::sync::Arc;

use bytes::Bytes;

use crate::broker::queue::{QueueCmd, QueueHandle};
use crate::connection::channel::{BodyParts, PendingPublish, Phase};
use crate::connection::Connection;
use crate::model::message::Message;
use crate::protocol::content::{decode_headers, parse_header, peek_properties};
use crate::protocol::{reply, AmqpError};
use crate::store::{Completion, ConfirmToken};

/// Small messages are copied out of the read buffer into one exact-size allocation: zero-copy
/// slices would pin the whole read chunk, frame headers and method frames included, for as
/// long as the message sits in a queue. Large bodies stay zero-copy.
const COMPACT_BELOW: usize = 2048;

fn compact(properties: Bytes, body: Bytes) -> (Bytes, Bytes) {
    if properties.len() + body.len() > COMPACT_BELOW {
        return (properties, body);
    }
    let mut both = bytes::BytesMut::with_capacity(properties.len() + body.len());
    both.extend_from_slice(&properties);
    both.extend_from_slice(&body);
    let both = both.freeze();
    (
        both.slice(..properties.len()),
        both.slice(properties.len()..),
    )
}

/// The expiration property as RabbitMQ reads it (Erlang's `string:to_integer`, then its
/// ten-year bound): milliseconds, or the term RabbitMQ puts in its 406 text.
fn parse_expiration(text: &str) -> Result<u64, String> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits = unsigned.len()
        - unsigned
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 {
        return Err("no_integer".into());
    }
    let rest = &unsigned[digits..];
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,{rest:?}}}"));
    }
    let number = &text[..text.len() - rest.len()];
    match number.parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("{{value_negative,{n}}}")),
        Ok(n) if n <= 315_360_000_000 => Ok(n as u64),
        _ => Err(format!(
            "{{value_too_large,{}}}",
            number.trim_start_matches('+')
        )),
    }
}

impl Connection {
    /// basic.publish, parsed in place by the dispatcher (the hot path allocates nothing
    /// for the method itself).
    pub(in crate::connection) fn basic_publish(
        &mut self,
        ch: u16,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        immediate: bool,
    ) -> Result<(), AmqpError> {
        if immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        self.published = true;
        if let Some(state) = self.channels.get_mut(&ch) {
            let (exchange, routing_key) = state.intern(exchange, routing_key);
            state.pending = Some(PendingPublish {
                exchange,
                routing_key,
                mandatory,
                header: None,
                body: BodyParts::Empty,
            });
        }
        Ok(())
    }

    /// Check that a content frame may arrive on `ch` now; None means drop it silently
    /// (the channel is closing).
    fn content_channel(&mut self, ch: u16) -> Result<Option<&mut PendingPublish>, AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(if ch == 0 {
                AmqpError::command_invalid("content frame on channel 0")
            } else {
                AmqpError::channel_error("expected 'channel.open'")
            });
        };
        if state.phase == Phase::Closing {
            return Ok(None);
        }
        match state.pending.as_mut() {
            Some(p) => Ok(Some(p)),
            None => Err(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            )),
        }
    }

    pub(in crate::connection) async fn handle_header(
        &mut self,
        ch: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let max = self.broker.config.max_message_size;
        let Some(pending) = self.content_channel(ch)? else {
            return Ok(());
        };
        if pending.header.is_some() {
            return Err(AmqpError::unexpected_frame(
                "expected content body, got non content body frame instead",
            ));
        }
        let header = parse_header(payload)?;
        if header.class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got class {}",
                header.class_id
            )));
        }
        peek_properties(&header.properties)?;
        if header.body_size > max {
            let size = header.body_size;
            if let Some(state) = self.channels.get_mut(&ch) {
                state.pending = None;
            }
            return Err(AmqpError::precondition_failed(format!(
                "message size {size} is larger than configured max size {max}"
            ))
            .caused_by(60, 40));
        }
        let complete = header.body_size == 0;
        pending.header = Some(header);
        if complete {
            self.complete_publish(ch).await?;
        }
        Ok(())
    }

    pub(in crate::connection) async fn handle_body(
        &mut self,
        ch: u16,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        let Some(pending) = self.content_channel(ch)? else {
            return Ok(());
        };
        let Some(header) = pending.header.as_ref() else {
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            ));
        };
        let expected = header.body_size;
        pending.body.push(payload);
        let have = pending.body.len() as u64;
        if have > expected {
            return Err(AmqpError::frame_error(format!(
                "content body is {have} bytes, longer than the {expected} its header announced"
            )));
        }
        if have == expected {
            self.complete_publish(ch).await?;
        }
        Ok(())
    }

    async fn complete_publish(&mut self, ch: u16) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let Some(p) = state.pending.take() else {
            return Ok(());
        };
        let Some(header) = p.header else {
            return Ok(());
        };
        let err = |e: AmqpError| e.caused_by(60, 40);
        self.authorize_publish(&p.exchange).map_err(err)?;
        if !p.exchange.is_empty() {
            let x = self.vhost.exchange(&p.exchange).map_err(err)?;
            if x.kind == ExchangeKind::Topic && self.write_cache.has_topic {
                self.broker
                    .permissions
                    .check_topic(
                        &self.user,
                        &self.vhost.name,
                        &p.exchange,
                        Access::Write,
                        &p.routing_key,
                    )
                    .map_err(err)?;
            }
            if x.internal {
                return Err(err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{}'",
                    p.exchange, self.vhost.name
                ))));
            }
        }
        let peek = peek_properties(&header.properties)?;
        if let Some(range) = &peek.user_id {
            // RabbitMQ's validated user-id: a publisher cannot claim to be someone else
            // unless it has the impersonator tag
            let claimed = &header.properties[range.clone()];
            if claimed != self.user.as_bytes() && !self.impersonator {
                return Err(err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    String::from_utf8_lossy(claimed),
                    self.user
                ))));
            }
        }
        let expiration = match &peek.expiration {
            None => None,
            Some(range) => {
                let text = String::from_utf8_lossy(&header.properties[range.clone()]).into_owned();
                match parse_expiration(&text) {
                    Ok(ms) => Some(ms),
                    Err(why) => {
                        return Err(err(AmqpError::precondition_failed(format!(
                            "invalid expiration '{text}': {why}"
                        ))))
                    }
                }
            }
        };
        let persistent = peek.persistent();
        let (properties, body) = compact(header.properties, p.body.into_bytes());
        let message = Arc::new(Message {
            accounted: crate::model::message::Accounted::new(&properties, &body),
            persistent,
            priority: peek.priority.unwrap_or(0),
            expiration,
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties,
            body,
            store_id: crate::model::message::next_store_id(),
        });
        self.broker
            .alarm
            .note_messages(crate::model::message::message_bytes());
        let confirming = self.channels.get(&ch).is_some_and(|s| s.confirms.is_some());
        let sink = if confirming {
            Some(self.confirm_sink())
        } else {
            None
        };
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        if let Some(tx) = state.tx.as_mut() {
            tx.publishes.push((message, p.mandatory));
            return Ok(());
        }
        let token = state.confirms.as_mut().zip(sink).map(|(confirms, sink)| {
            let seq = confirms.assign();
            ConfirmToken::new(Completion::Confirm {
                sink,
                channel_id: ch,
                epoch: state.link.epoch,
                seq,
            })
        });
        self.route_and_enqueue(ch, message, p.mandatory, token.clone())
            .await;
        // Nothing went to the store and every queue has let go: confirm now (a nack if a
        // queue refused it). Otherwise the token fires once the last holder drops it.
        if let Some((Completion::Confirm { seq, .. }, ok)) =
            token.and_then(ConfirmToken::try_disarm)
        {
            self.confirm_done(ch, seq, ok);
        }
        Ok(())
    }

    /// Route and enqueue; an unroutable mandatory message is returned (312 NO_ROUTE).
    pub(in crate::connection) async fn route_and_enqueue(
        &mut self,
        ch: u16,
        message: Arc<Message>,
        mandatory: bool,
        confirm: Option<Arc<ConfirmToken>>,
    ) {
        let mut targets: Vec<Arc<QueueHandle>> = Vec::new();
        if message.exchange.is_empty() {
            targets.extend(self.vhost.route_default(&message.routing_key));
        } else if let Ok(x) = self.vhost.exchange(&message.exchange) {
            let props = &message.properties;
            let mut headers = || {
                let range = peek_properties(props).ok()?.headers?;
                decode_headers(props, range).ok()
            };
            self.vhost
                .route(&x, &message.routing_key, &mut headers, &mut targets);
        }
        if targets.is_empty() {
            if mandatory {
                self.out
                    .basic_return(ch, reply::NO_ROUTE, "NO_ROUTE", &message);
            }
            return;
        }
        for q in targets {
            // Only a copy that will be stored, or a queue that may refuse it, holds up
            // the confirm.
            let confirm = if q.takes_confirm(&message) {
                confirm.clone()
            } else {
                None
            };
            q.send(QueueCmd::Publish {
                message: message.clone(),
                confirm,
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_expiration;

    #[test]
    fn expiration_is_read_as_rabbitmq_reads_it() {
        assert_eq!(parse_expiration("60000"), Ok(60000));
        assert_eq!(parse_expiration("+5"), Ok(5));
        assert_eq!(parse_expiration("abc"), Err("no_integer".into()));
        assert_eq!(parse_expiration(""), Err("no_integer".into()));
        assert_eq!(parse_expiration("-5"), Err("{value_negative,-5}".into()));
        assert_eq!(
            parse_expiration("12ms"),
            Err("{leftover_string,\"ms\"}".into())
        );
        assert_eq!(
            parse_expiration("315360000001"),
            Err("{value_too_large,315360000001}".into())
        );
    }
}
