//! An operator's pin: for a while, the requests of every route that holds a pinned key try
//! that key's candidates first ([`Router::pin_key`]). A pin only reorders: a pinned key that
//! is cooling, spent, disabled or behind an open circuit is skipped as usual, and the rest
//! of the ranking follows. A pin ends at its expiry, read on the router's [`Clock`], or by
//! [`Router::unpin_key`]; it is not kept across a reload or a restart.
//!
//! [`Clock`]: switchyard_core::Clock

use std::time::Duration;

use switchyard_core::{KeyId, ProviderId};

use crate::admin::AdminError;
use crate::router::Router;

/// The longest a pin lasts: a forgotten pin must not steer traffic for days.
pub const MAX_PIN: Duration = Duration::from_secs(24 * 3600);

/// A key pinned by an operator, as [`Router::pins`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedKey {
    /// The provider.
    pub provider: ProviderId,
    /// The key.
    pub key: KeyId,
    /// How long the pin still holds.
    pub remaining: Duration,
}

impl Router {
    /// Pins a key for `duration` (at most [`MAX_PIN`]): every route's requests try its
    /// candidates first, in their ranked order, until the pin ends. Pinning a pinned key
    /// sets a new expiry. Returns how long the pin holds.
    ///
    /// # Errors
    /// [`AdminError::UnknownKey`] when no route uses this key.
    pub fn pin_key(
        &self,
        provider: &ProviderId,
        key: &KeyId,
        duration: Duration,
    ) -> Result<Duration, AdminError> {
        self.keys().iter().find(|(p, k)| p == provider && k == key).ok_or_else(|| {
            AdminError::UnknownKey { provider: provider.clone(), key: key.clone() }
        })?;
        let duration = duration.min(MAX_PIN);
        let until = self.inner().clock().now() + duration;
        self.inner().pins().set(provider, key, Some(until));
        tracing::warn!(%provider, %key, secs = duration.as_secs(), "key pinned by an operator");
        Ok(duration)
    }

    /// Ends a pin. Returns whether the key was pinned (an expired pin counts as ended).
    ///
    /// # Errors
    /// [`AdminError::UnknownKey`] when no route uses this key.
    pub fn unpin_key(&self, provider: &ProviderId, key: &KeyId) -> Result<bool, AdminError> {
        if !self.keys().iter().any(|(p, k)| p == provider && k == key) {
            return Err(AdminError::UnknownKey { provider: provider.clone(), key: key.clone() });
        }
        let now = self.inner().clock().now();
        let was = self.inner().pins().set(provider, key, None).is_some_and(|until| now < until);
        if was {
            tracing::info!(%provider, %key, "key unpinned by an operator");
        }
        Ok(was)
    }

    /// The pins in force, sorted; expired ones are dropped on the way.
    pub fn pins(&self) -> Vec<PinnedKey> {
        let now = self.inner().clock().now();
        self.inner()
            .pins()
            .live(now)
            .into_iter()
            .map(|(provider, key, until)| PinnedKey {
                provider,
                key,
                remaining: until.saturating_duration_since(now),
            })
            .collect()
    }
}
