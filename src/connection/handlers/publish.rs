//! basic.publish: the method, content header and body frames are assembled into a `Message`,
//! routed through the vhost without locks or awaits, and handed to each target queue's
//! bounded mailbox (awaited: a full queue slows this publisher down). Unroutable mandatory
//! messages come back as basic.return; in confirm mode each publish is then confirmed, and in
//! tx mode it waits in the transaction buffer for tx.commit. A publish to an
//! `x-delayed-message` exchange with an `x-delay` goes to the vhost's delay task instead.

use crate::broker::direct_reply::REPLY_PREFIX;
use crate::broker::exchange::ExchangeKind;
use crate::broker::permissions::Access;
use std::sync::Arc;

use bytes::Bytes;

use crate::broker::queue::QueueHandle;
use crate::connection::channel::{BodyParts, ChannelState, PendingPublish};
use crate::connection::session::Session;
use crate::connection::wake_order;
use crate::model::message::{Content, Message};
use crate::protocol::content::{parse_header, peek_properties};
use crate::protocol::{reply, AmqpError};
use crate::store::{Completion, ConfirmToken};

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

/// basic.publish, parsed in place by the dispatcher (the hot path allocates nothing
/// for the method itself).
pub fn basic_publish(
    s: &mut Session,
    ch: &mut ChannelState,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    immediate: bool,
) -> Result<(), AmqpError> {
    if immediate {
        return Err(AmqpError::not_implemented("immediate=true"));
    }
    s.published = true;
    let (exchange, routing_key) = ch.intern(exchange, routing_key);
    ch.pending = Some(PendingPublish {
        exchange,
        routing_key,
        mandatory,
        header: None,
        body: BodyParts::Empty,
    });
    Ok(())
}

/// The publish a content frame continues (the dispatcher has checked that the channel is
/// open).
fn pending(ch: &mut ChannelState) -> Result<&mut PendingPublish, AmqpError> {
    ch.pending.as_mut().ok_or_else(|| {
        AmqpError::unexpected_frame("expected method frame, got non method frame instead")
    })
}

/// A content header frame: the publish is complete here when its body is empty.
pub async fn content_header(
    s: &mut Session,
    ch: &mut ChannelState,
    payload: Bytes,
) -> Result<(), AmqpError> {
    let max = s.broker.config.max_message_size;
    let pending = pending(ch)?;
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
        ch.pending = None;
        return Err(AmqpError::precondition_failed(format!(
            "message size {size} is larger than configured max size {max}"
        ))
        .caused_by(60, 40));
    }
    let complete = header.body_size == 0;
    pending.header = Some(header);
    if complete {
        complete_publish(s, ch).await?;
    }
    Ok(())
}

/// A content body frame: the publish is complete once the announced size has arrived.
pub async fn content_body(
    s: &mut Session,
    ch: &mut ChannelState,
    payload: Bytes,
) -> Result<(), AmqpError> {
    let pending = pending(ch)?;
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
        complete_publish(s, ch).await?;
    }
    Ok(())
}

async fn complete_publish(s: &mut Session, ch: &mut ChannelState) -> Result<(), AmqpError> {
    let Some(p) = ch.pending.take() else {
        return Ok(());
    };
    let Some(header) = p.header else {
        return Ok(());
    };
    let err = |e: AmqpError| e.caused_by(60, 40);
    s.authorize_publish(&p.exchange).map_err(err)?;
    if !p.exchange.is_empty() {
        let x = s.vhost.exchange(&p.exchange).map_err(err)?;
        if x.kind == ExchangeKind::Topic && s.has_topic_permissions() {
            s.broker
                .permissions
                .check_topic(
                    &s.user,
                    &s.vhost.name,
                    &p.exchange,
                    Access::Write,
                    &p.routing_key,
                )
                .map_err(err)?;
        }
        if x.internal {
            return Err(err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                p.exchange, s.vhost.name
            ))));
        }
    }
    let peek = peek_properties(&header.properties)?;
    if let Some(range) = &peek.user_id {
        // RabbitMQ's validated user-id: a publisher cannot claim to be someone else
        // unless it has the impersonator tag
        let claimed = &header.properties[range.clone()];
        if claimed != s.user.as_bytes() && !s.impersonator {
            return Err(err(AmqpError::precondition_failed(format!(
                "user_id property set to '{}' but authenticated user was '{}'",
                String::from_utf8_lossy(claimed),
                s.user
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
    let properties =
        match super::direct_reply::rewrite_reply_to(ch, &header.properties, peek.reply_to)
            .map_err(err)?
        {
            Some(rewritten) => rewritten,
            None => header.properties,
        };
    let message = Arc::new(Message {
        content: Content::new(properties, p.body.into_bytes()),
        persistent,
        priority: peek.priority.unwrap_or(0),
        expiration,
        exchange: p.exchange,
        routing_key: p.routing_key,
        store_id: crate::model::message::next_store_id(),
    });
    s.broker
        .alarm
        .note_messages(crate::model::message::message_bytes());
    let metrics = &s.broker.metrics;
    s.vhost.count_published();
    ch.stats.publish += 1;
    if ch.confirms.is_some() {
        metrics.messages_received_confirm.inc();
    }
    let sink = if ch.confirms.is_some() {
        Some(s.confirm_sink())
    } else {
        None
    };
    if let Some(tx) = ch.tx.as_mut() {
        tx.publishes.push((message, p.mandatory));
        return Ok(());
    }
    let token = ch.confirms.as_mut().zip(sink).map(|(confirms, sink)| {
        let seq = confirms.assign();
        ConfirmToken::new(Completion::Confirm {
            sink,
            channel_id: ch.link.channel_id,
            epoch: ch.link.epoch,
            seq,
        })
    });
    // A channel that also consumes gets its deliveries before the publisher ack, as from
    // RabbitMQ: the queues hold the confirm until they have dispatched. Publisher-only
    // channels (the common case) are confirmed without that round trip.
    let via_queues = !ch.consumers.is_empty();
    let routed =
        route_and_enqueue(s, ch.id(), message, p.mandatory, token.clone(), via_queues).await;
    ch.count_routed(routed);
    // Nothing went to the store and every queue has let go: confirm now (a nack if a
    // queue refused it). Otherwise the token fires once the last holder drops it.
    if let Some((Completion::Confirm { seq, .. }, ok)) = token.and_then(ConfirmToken::try_disarm) {
        s.confirm_done(ch, seq, ok);
    }
    Ok(())
}

/// What became of a published message, for the channel's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routed {
    /// Handed to queues, or held back by a delayed exchange.
    Accepted,
    /// Unroutable and mandatory: sent back with basic.return.
    Returned,
    /// Unroutable, not mandatory: gone.
    Dropped,
}

impl ChannelState {
    /// Count an unroutable publish in this channel's `message_stats`.
    pub(super) fn count_routed(&mut self, routed: Routed) {
        match routed {
            Routed::Accepted => {}
            Routed::Returned => self.returned += 1,
            Routed::Dropped => self.dropped += 1,
        }
    }
}

/// Route and enqueue; an unroutable mandatory message is returned (312 NO_ROUTE).
/// `confirm_via_queues`: every target queue holds the confirm, not only those that store
/// the message or may refuse it.
pub(super) async fn route_and_enqueue(
    s: &mut Session,
    ch: u16,
    message: Arc<Message>,
    mandatory: bool,
    confirm: Option<Arc<ConfirmToken>>,
    confirm_via_queues: bool,
) -> Routed {
    if message.exchange.is_empty() && message.routing_key.starts_with(REPLY_PREFIX) {
        // As RabbitMQ: the reply goes straight to its channel and counts as routed to no
        // queue, so a mandatory reply also comes back as NO_ROUTE.
        s.broker
            .direct_reply
            .deliver(&message.routing_key, &message);
    }
    let metrics = &s.broker.metrics;
    if let Some(delay) = s.vhost.delay_for(&message) {
        // Held back rather than routed now. Unlike the plugin, which returns every delayed
        // mandatory message at once, a mandatory one comes back only if it has nowhere
        // to go now.
        if mandatory && s.vhost.targets(&message).is_empty() {
            s.vhost.count_unroutable(true);
            s.out
                .basic_return(ch, reply::NO_ROUTE, "NO_ROUTE", &message);
            return Routed::Returned;
        }
        s.vhost.count_held_back(&message);
        s.vhost.hold_back(&message, delay, confirm).await;
        return Routed::Accepted;
    }
    let targets = s.vhost.route_publish(&message);
    if targets.is_empty() {
        if mandatory {
            s.vhost.count_unroutable(true);
            s.out
                .basic_return(ch, reply::NO_ROUTE, "NO_ROUTE", &message);
            return Routed::Returned;
        }
        s.vhost.count_unroutable(false);
        return Routed::Dropped;
    }
    metrics.messages_routed.inc();
    keep_publish_order(s, &targets).await;
    // Only a copy that will be stored, or a queue that may refuse it, holds up the confirm.
    QueueHandle::publish_to(targets, &message, confirm.as_ref(), |q| {
        confirm_via_queues || q.takes_confirm(&message)
    })
    .await;
    Routed::Accepted
}

/// Publishes to different queues reach their consumers in the order they were published, as
/// they do from RabbitMQ in practice: Celery revokes a task by broadcasting to its workers'
/// pidbox queues from one connection and then publishes the next task from another, and a
/// worker that sees the task first runs it. tokio runs the task it woke last ahead of those
/// woken before it (its LIFO slot), so without care the newer publish overtakes the older:
/// - from one connection, a queue woken by this publish overtook the queue the previous
///   publish woke in the same wake-up: when that queue has not taken its message yet and this
///   publish goes elsewhere, the connection gives way once so it runs first;
/// - from two connections whose data one poll of the socket driver found, the connection
///   woken last ran first: on its first publish after a read, a connection gives way once
///   when another connection's socket has woken it and it has not run yet.
///
/// A stream of publishes to one queue from a lone publisher never gives way.
async fn keep_publish_order(s: &mut Session, targets: &[Arc<QueueHandle>]) {
    let mut give_way = !s.routed_since_read && wake_order::others_woken();
    s.routed_since_read = true;
    if let Some(previous) = s.last_publish_queue.upgrade() {
        let same = targets.len() == 1 && Arc::ptr_eq(&targets[0], &previous);
        give_way |= !same && previous.has_pending();
    }
    if give_way {
        tokio::task::yield_now().await;
    }
    if let Some(last) = targets.last() {
        if !std::ptr::eq(s.last_publish_queue.as_ptr(), Arc::as_ptr(last)) {
            s.last_publish_queue = Arc::downgrade(last);
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
