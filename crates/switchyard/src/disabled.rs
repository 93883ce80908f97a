//! The keys an operator took out of rotation (see [`Router::disable_key`]). Read on the hot
//! path, written by hand: one atomic load while the set is empty, which is the usual case.
//!
//! [`Router::disable_key`]: crate::Router::disable_key

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;
use switchyard_core::{Candidate, KeyId, ProviderId};

/// The keys an operator disabled.
#[derive(Default)]
pub(crate) struct DisabledKeys {
    count: AtomicUsize,
    keys: RwLock<HashSet<(ProviderId, KeyId)>>,
}

impl DisabledKeys {
    /// Whether no key is disabled: one atomic load.
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Whether the candidate's key is disabled.
    pub(crate) fn contains(&self, candidate: &Candidate) -> bool {
        self.holds(&candidate.provider, &candidate.key)
    }

    /// Whether this key is disabled.
    pub(crate) fn holds(&self, provider: &ProviderId, key: &KeyId) -> bool {
        if self.is_empty() {
            return false;
        }
        // The set is tiny and rarely written: a clone of two Arcs per lookup is not worth
        // avoiding with a borrowed-key map.
        self.keys.read().contains(&(provider.clone(), key.clone()))
    }

    /// Disables or enables a key; true when that changed anything.
    pub(crate) fn set(&self, provider: &ProviderId, key: &KeyId, disabled: bool) -> bool {
        let mut keys = self.keys.write();
        let changed = if disabled {
            keys.insert((provider.clone(), key.clone()))
        } else {
            keys.remove(&(provider.clone(), key.clone()))
        };
        self.count.store(keys.len(), Ordering::Release);
        changed
    }

    /// The disabled keys, sorted.
    pub(crate) fn list(&self) -> Vec<(ProviderId, KeyId)> {
        let mut keys: Vec<(ProviderId, KeyId)> = self.keys.read().iter().cloned().collect();
        keys.sort();
        keys
    }
}
