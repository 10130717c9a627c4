//! confirm.select and tx.select / commit / rollback. A channel is in at most one of the two
//! modes, as in RabbitMQ. Confirms are counted by `complete_publish` and sent once per
//! wake-up by the connection's flush.

use amq_protocol::protocol::{confirm, tx, AMQPClass};

use crate::connection::channel::{ChannelState, TxBuffer};
use crate::connection::session::Session;
use crate::protocol::AmqpError;
use crate::store::{Completion, ConfirmToken};

pub(super) fn confirm_select(
    s: &mut Session,
    ch: &mut ChannelState,
    nowait: bool,
) -> Result<(), AmqpError> {
    if ch.tx.is_some() {
        return Err(AmqpError::precondition_failed(
            "cannot switch from tx to confirm mode",
        ));
    }
    if ch.confirms.is_none() {
        ch.confirms = Some(Default::default());
    }
    if !nowait {
        s.send_method(
            ch.id(),
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        );
    }
    Ok(())
}

pub(super) fn tx_select(s: &mut Session, ch: &mut ChannelState) -> Result<(), AmqpError> {
    if ch.confirms.is_some() {
        return Err(AmqpError::precondition_failed(
            "cannot switch from confirm to tx mode",
        ));
    }
    if ch.tx.is_none() {
        ch.tx = Some(TxBuffer::default());
    }
    s.send_method(
        ch.id(),
        AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
    );
    Ok(())
}

pub(super) async fn tx_commit(s: &mut Session, ch: &mut ChannelState) -> Result<(), AmqpError> {
    let Some(buffer) = ch.tx.replace(TxBuffer::default()) else {
        return Err(AmqpError::precondition_failed(
            "channel is not transactional",
        ));
    };
    // commit-ok only once every persistent publish of the transaction is durable
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let token = ConfirmToken::new(Completion::Notify(done_tx));
    for (message, mandatory) in buffer.publishes {
        let routed = super::publish::route_and_enqueue(
            s,
            ch.id(),
            message,
            mandatory,
            Some(token.clone()),
            false,
        )
        .await;
        ch.count_routed(routed);
    }
    if ConfirmToken::try_disarm(token).is_none() {
        let _ = done_rx.await;
    }
    for (tag, multiple, how) in buffer.settles {
        super::basic::apply_settle(ch, tag, multiple, how).await?;
    }
    s.send_method(
        ch.id(),
        AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
    );
    Ok(())
}

pub(super) fn tx_rollback(s: &mut Session, ch: &mut ChannelState) -> Result<(), AmqpError> {
    if ch.tx.replace(TxBuffer::default()).is_none() {
        return Err(AmqpError::precondition_failed(
            "channel is not transactional",
        ));
    }
    s.send_method(
        ch.id(),
        AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
    );
    Ok(())
}
