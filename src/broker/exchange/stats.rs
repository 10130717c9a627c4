//! An exchange's publish counts, as RabbitMQ's management API shows them: `publish_in`,
//! messages published to it, and `publish_out`, copies it routed to queues (a message that
//! reaches three queues counts three). Counted once, at the exchange a client published
//! to, by the channel's publish path (and the management API's publish); messages that a
//! delayed exchange releases later are not counted again, as with the plugin. Rates are
//! worked out only when the API asks. Never routes anything.

use std::sync::Mutex;

use crate::broker::metrics::{sampled, Counter};
use crate::broker::queue::stats::Sampler;

/// Four slots per counter: enough for a 2-4 thread runtime to rarely share one, small
/// enough that thousands of exchanges cost little (512 bytes each).
type Slots = Counter<4>;

#[derive(Debug, Default)]
pub struct ExchangeStats {
    publish_in: Slots,
    publish_out: Slots,
    rates: Mutex<Sampler<2>>,
}

/// What the management API shows for one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExchangeCounts {
    pub publish_in: u64,
    pub publish_out: u64,
    /// Per second, over RabbitMQ's statistics interval.
    pub rates: [f64; 2],
}

impl ExchangeStats {
    /// A message published here went to `queues` queues (0: unroutable or held back).
    pub fn published(&self, queues: usize) {
        self.publish_in.inc();
        if queues > 0 {
            self.publish_out.add(queues as u64);
        }
    }

    pub fn counts(&self) -> ExchangeCounts {
        let now = [self.publish_in.get(), self.publish_out.get()];
        let rates = sampled(&self.rates, now);
        ExchangeCounts {
            publish_in: now[0],
            publish_out: now[1],
            rates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_per_queue_goes_out_and_an_unroutable_message_only_comes_in() {
        let s = ExchangeStats::default();
        s.published(3);
        s.published(0);
        s.published(1);
        let c = s.counts();
        assert_eq!((c.publish_in, c.publish_out), (3, 4));
    }
}
