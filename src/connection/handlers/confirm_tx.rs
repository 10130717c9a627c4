//! confirm.select and tx.select / commit / rollback. A channel is in at most one of the two
//! modes, as in RabbitMQ. Confirms are counted by `complete_publish` and sent once per
//! wake-up by the connection's flush.

use amq_protocol::protocol::{confirm, tx, AMQPClass};

use crate::connection::channel::TxBuffer;
use crate::connection::Connection;
use crate::protocol::AmqpError;
use crate::store::{Completion, ConfirmToken};

impl Connection {
    pub(in crate::connection) fn confirm_select(
        &mut self,
        ch: u16,
        nowait: bool,
    ) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        if state.tx.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from tx to confirm mode",
            ));
        }
        if state.confirms.is_none() {
            state.confirms = Some(Default::default());
        }
        if !nowait {
            self.send_method(
                ch,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
            );
        }
        Ok(())
    }

    pub(in crate::connection) fn tx_select(&mut self, ch: u16) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        if state.confirms.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from confirm to tx mode",
            ));
        }
        if state.tx.is_none() {
            state.tx = Some(TxBuffer::default());
        }
        self.send_method(ch, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
        Ok(())
    }

    pub(in crate::connection) async fn tx_commit(&mut self, ch: u16) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let Some(buffer) = state.tx.replace(TxBuffer::default()) else {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        };
        // commit-ok only once every persistent publish of the transaction is durable
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let token = ConfirmToken::new(Completion::Notify(done_tx));
        for (message, mandatory) in buffer.publishes {
            self.route_and_enqueue(ch, message, mandatory, Some(token.clone()))
                .await;
        }
        if ConfirmToken::try_disarm(token).is_none() {
            let _ = done_rx.await;
        }
        for (tag, multiple, how) in buffer.settles {
            self.apply_settle(ch, tag, multiple, how).await?;
        }
        self.send_method(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
        Ok(())
    }

    pub(in crate::connection) fn tx_rollback(&mut self, ch: u16) -> Result<(), AmqpError> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        if state.tx.replace(TxBuffer::default()).is_none() {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        }
        self.send_method(
            ch,
            AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }
}
