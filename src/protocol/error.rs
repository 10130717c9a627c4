//! `AmqpError`: every failure a client can cause, carrying its reply code and RabbitMQ's
//! reply text. The connection's dispatcher is the one place that turns it into a
//! `channel.close` or a `connection.close`; nothing here decides how to send it.

use super::reply::{self, *};

/// Whether an error ends the channel it happened on or the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Channel,
    Connection,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct AmqpError {
    pub scope: Scope,
    pub code: u16,
    /// Full reply text including RabbitMQ's symbolic prefix.
    pub text: String,
    /// The method that caused the error; filled by the dispatcher when it is 0.
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    /// An error whose scope follows the code (hard codes close the connection).
    pub fn new(code: u16, detail: impl AsRef<str>) -> Self {
        let scope = if reply::is_hard(code) {
            Scope::Connection
        } else {
            Scope::Channel
        };
        Self {
            scope,
            code,
            text: format!("{} - {}", reply::name(code), detail.as_ref()),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Force connection scope, for soft codes RabbitMQ raises on the connection
    /// (e.g. 403 on login, 404 for a vhost).
    pub fn on_connection(mut self) -> Self {
        self.scope = Scope::Connection;
        self
    }

    pub fn caused_by(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn access_refused(detail: impl AsRef<str>) -> Self {
        Self::new(ACCESS_REFUSED, detail)
    }
    pub fn not_found(detail: impl AsRef<str>) -> Self {
        Self::new(NOT_FOUND, detail)
    }
    pub fn resource_locked(detail: impl AsRef<str>) -> Self {
        Self::new(RESOURCE_LOCKED, detail)
    }
    pub fn precondition_failed(detail: impl AsRef<str>) -> Self {
        Self::new(PRECONDITION_FAILED, detail)
    }
    pub fn frame_error(detail: impl AsRef<str>) -> Self {
        Self::new(FRAME_ERROR, detail)
    }
    pub fn syntax_error(detail: impl AsRef<str>) -> Self {
        Self::new(SYNTAX_ERROR, detail)
    }
    pub fn command_invalid(detail: impl AsRef<str>) -> Self {
        Self::new(COMMAND_INVALID, detail)
    }
    pub fn channel_error(detail: impl AsRef<str>) -> Self {
        Self::new(CHANNEL_ERROR, detail)
    }
    pub fn unexpected_frame(detail: impl AsRef<str>) -> Self {
        Self::new(UNEXPECTED_FRAME, detail)
    }
    pub fn not_allowed(detail: impl AsRef<str>) -> Self {
        Self::new(NOT_ALLOWED, detail)
    }
    pub fn not_implemented(detail: impl AsRef<str>) -> Self {
        Self::new(NOT_IMPLEMENTED, detail)
    }
    pub fn internal(detail: impl AsRef<str>) -> Self {
        Self::new(INTERNAL_ERROR, detail)
    }
}

pub type AmqpResult<T> = Result<T, AmqpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_codes_close_the_channel_and_hard_codes_the_connection() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.scope, Scope::Channel);
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(AmqpError::frame_error("x").scope, Scope::Connection);
        assert_eq!(
            AmqpError::access_refused("x").on_connection().scope,
            Scope::Connection
        );
    }
}
