//! A running queue taking on new policies: the settings the actor works with change at
//! once, as in RabbitMQ (`process_args_policy`). Messages already queued keep the expiry
//! they were given; a lower length limit drops from the head at once under drop-head and
//! leaves the queue as it is under reject-publish; a new expiry period starts now.

use super::actor::QueueActor;
use super::args::QueueArgs;
use super::limits::Limits;
use crate::broker::policy::Applied;

impl QueueActor {
    pub(super) fn apply_policy(&mut self, version: u64, applied: Applied, args: QueueArgs) {
        // a change sent later but read first already holds the newer policies
        if version <= self.policy_version {
            return;
        }
        self.policy_version = version;
        if applied == self.policy {
            return;
        }
        self.policy = applied;
        if args.max_length_bytes.is_some() && self.args.max_length_bytes.is_none() {
            // paged messages are counted in bytes only once loaded
            self.load_window(usize::MAX);
        }
        let expires_changed = args.expires != self.args.expires;
        self.args = args;
        self.limits = Limits::new(&self.args);
        if expires_changed {
            self.unused_until = None;
            self.touch();
        }
        self.drop_head_over_limits();
    }
}
