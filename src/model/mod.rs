//! The values every layer passes around, below all of them: a published `Message` (and the
//! record of it the store keeps) and the `Destination` of a binding. `protocol` is the only
//! module this imports from; `store`, `broker` and `connection` build on it. Nothing here
//! does I/O, locks or spawns.

pub mod message;

use std::sync::Arc;

/// Where a binding leads: a queue or (exchange-to-exchange) another exchange, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(Arc<str>),
    Exchange(Arc<str>),
}
