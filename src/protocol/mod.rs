//! The AMQP 0-9-1 wire format, pure: bytes in, values out.
//!
//! Owns framing (`frame`), method encoding and decoding (`method`, the only user of
//! `amq_protocol`), content headers kept as raw property bytes (`content`), reply codes
//! (`reply`), the typed protocol error (`error`) and SASL responses (`sasl`).
//! Nothing here touches a socket, a task, a lock or a log: the connection layer drives it.

pub mod content;
pub mod erlang;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod method;
pub mod reply;
pub mod sasl;
pub mod table;

pub use error::{AmqpError, Scope};
