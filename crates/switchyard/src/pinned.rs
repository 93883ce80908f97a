//! The keys an operator pinned and when each pin ends (see [`Router::pin_key`]). Read on
//! the hot path, written by hand.
//!
//! [`Router::pin_key`]: crate::Router::pin_key

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use switchyard_core::{Candidate, Clock, KeyId, ProviderId};

/// The pinned keys and when each pin ends. Read on the hot path: one atomic load while no
/// key is pinned, the usual case.
#[derive(Default)]
pub(crate) struct PinnedKeys {
    count: AtomicUsize,
    // Bounded by the configured keys: only a key a route uses can be pinned.
    keys: RwLock<HashMap<(ProviderId, KeyId), Instant>>,
}

impl PinnedKeys {
    /// Pins a key until `until`, or unpins it; returns the expiry it had.
    pub(crate) fn set(
        &self,
        provider: &ProviderId,
        key: &KeyId,
        until: Option<Instant>,
    ) -> Option<Instant> {
        let mut keys = self.keys.write();
        let before = match until {
            Some(until) => keys.insert((provider.clone(), key.clone()), until),
            None => keys.remove(&(provider.clone(), key.clone())),
        };
        self.count.store(keys.len(), Ordering::Release);
        before
    }

    /// The pins in force at `now`, sorted, with their expiries; expired ones are dropped.
    pub(crate) fn live(&self, now: Instant) -> Vec<(ProviderId, KeyId, Instant)> {
        let mut keys = self.keys.write();
        keys.retain(|_, until| now < *until);
        self.count.store(keys.len(), Ordering::Release);
        let mut listed: Vec<(ProviderId, KeyId, Instant)> =
            keys.iter().map(|((p, k), until)| (p.clone(), k.clone(), *until)).collect();
        listed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        listed
    }

    fn is_pinned(&self, candidate: &Candidate, now: Instant) -> bool {
        self.keys
            .read()
            .get(&(candidate.provider.clone(), candidate.key.clone()))
            .is_some_and(|&until| now < until)
    }

    /// Moves the pinned candidates of `order` (indexes into `candidates`) to its front,
    /// keeping the ranking's order within the pinned and within the rest.
    /// The clock is read only when a key is pinned.
    pub(crate) fn promote(&self, clock: &dyn Clock, candidates: &[Candidate], order: &mut [usize]) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let now = clock.now();
        order.sort_by_key(|&idx| {
            !candidates.get(idx).is_some_and(|candidate| self.is_pinned(candidate, now))
        });
    }
}
