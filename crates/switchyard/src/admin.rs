//! What an operator does by hand: take a key out of rotation and put it back, and clear a
//! cooldown or an exhaustion the ledger holds (after fixing billing, or when a provider's
//! reset came early). A disabled key is skipped before ranking, on every route, until it is
//! enabled again; nothing else about it (quota counts, scores) is forgotten.
//!
//! What an operator set survives a reload and a restart through [`AdminState`]: read it from
//! the old router with [`Router::admin_state`], keep it (the CLI writes it to the state
//! file), and apply it to the new router with [`Router::restore_admin_state`]. A manual reset
//! needs no keeping: it clears the ledger's state, and the ledger's own persistence carries
//! that.

use serde::{Deserialize, Serialize};
use switchyard_core::{KeyId, ProviderId};
use switchyard_quota::QuotaError;

use crate::router::Router;

/// What operators changed by hand on a router, to carry over to the next one (a reload) or
/// the next process (a restart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminState {
    /// Keys taken out of rotation, as (provider, key), sorted.
    pub disabled: Vec<(ProviderId, KeyId)>,
}

/// A key the router was asked about but does not know.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No configured candidate uses this provider and key.
    #[error("no key {key} is configured for provider {provider}")]
    UnknownKey {
        /// The provider named.
        provider: ProviderId,
        /// The key named.
        key: KeyId,
    },
    /// The quota ledger could not clear the key's state.
    #[error("the quota ledger could not reset key {key} of {provider}: {source}")]
    Ledger {
        /// The provider.
        provider: ProviderId,
        /// The key.
        key: KeyId,
        /// The ledger's error.
        #[source]
        source: Box<QuotaError>,
    },
    /// No configured candidate uses this provider.
    #[error("no key is configured for provider {0}")]
    UnknownProvider(ProviderId),
}

impl Router {
    /// Every (provider, key) the router's routes use, sorted, each once.
    pub fn keys(&self) -> Vec<(ProviderId, KeyId)> {
        let mut keys: Vec<(ProviderId, KeyId)> = self
            .inner()
            .slots()
            .iter()
            .map(|slot| (slot.candidate().provider.clone(), slot.candidate().key.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Takes a key out of rotation on every route until [`Router::enable_key`]. Returns
    /// whether it was enabled before.
    ///
    /// # Errors
    /// [`AdminError::UnknownKey`] when no route uses this key.
    pub fn disable_key(&self, provider: &ProviderId, key: &KeyId) -> Result<bool, AdminError> {
        self.known(provider, key)?;
        let changed = self.inner().disabled().set(provider, key, true);
        if changed {
            tracing::warn!(%provider, %key, "key disabled by an operator");
        }
        Ok(changed)
    }

    /// Puts a disabled key back in rotation. Returns whether it was disabled.
    ///
    /// # Errors
    /// [`AdminError::UnknownKey`] when no route uses this key.
    pub fn enable_key(&self, provider: &ProviderId, key: &KeyId) -> Result<bool, AdminError> {
        self.known(provider, key)?;
        let changed = self.inner().disabled().set(provider, key, false);
        if changed {
            tracing::info!(%provider, %key, "key enabled by an operator");
        }
        Ok(changed)
    }

    /// Whether an operator disabled this key.
    pub fn is_disabled(&self, provider: &ProviderId, key: &KeyId) -> bool {
        self.inner().disabled().holds(provider, key)
    }

    /// Clears what the ledger holds against a key (a cooldown, an exhaustion, an invalid or
    /// billing-stopped mark) and closes the circuits of its candidates, so the next request
    /// may use it. Counts of use in the current windows stay: a reset does not grant quota
    /// the provider would refuse.
    ///
    /// # Errors
    /// [`AdminError::UnknownKey`] when no route uses this key; [`AdminError::Ledger`] when the
    /// ledger (Redis, say) cannot be written.
    pub async fn reset_key(&self, provider: &ProviderId, key: &KeyId) -> Result<(), AdminError> {
        self.known(provider, key)?;
        let inner = self.inner();
        inner.ledger().reenable(provider, key).await.map_err(|source| AdminError::Ledger {
            provider: provider.clone(),
            key: key.clone(),
            source: Box::new(source),
        })?;
        for slot in inner.slots() {
            if &slot.candidate().provider == provider && &slot.candidate().key == key {
                slot.circuit().reset();
            }
        }
        tracing::info!(%provider, %key, "key reset by an operator");
        Ok(())
    }

    /// Resets every key the routes use ([`Router::reset_key`] on each), or only those of
    /// `provider`: the bulk reset an operator runs after a provider's quotas came back.
    /// Returns the keys reset, sorted.
    ///
    /// # Errors
    /// [`AdminError::UnknownProvider`] when no route uses `provider`; [`AdminError::Ledger`]
    /// when the ledger cannot be written (the keys before the failing one stay reset).
    pub async fn reset_keys(
        &self,
        provider: Option<&ProviderId>,
    ) -> Result<Vec<(ProviderId, KeyId)>, AdminError> {
        let keys: Vec<(ProviderId, KeyId)> = self
            .keys()
            .into_iter()
            .filter(|(p, _)| provider.is_none_or(|wanted| p == wanted))
            .collect();
        if let Some(provider) = provider
            && keys.is_empty()
        {
            return Err(AdminError::UnknownProvider(provider.clone()));
        }
        for (provider, key) in &keys {
            self.reset_key(provider, key).await?;
        }
        Ok(keys)
    }

    /// What operators changed on this router, to restore on the next.
    pub fn admin_state(&self) -> AdminState {
        AdminState { disabled: self.inner().disabled().list() }
    }

    /// Applies what operators changed on a previous router (or process): disables its
    /// disabled keys. Returns the keys this router does not know (removed from the
    /// configuration since), which are left out, so a stale state file creates nothing.
    pub fn restore_admin_state(&self, state: &AdminState) -> Vec<(ProviderId, KeyId)> {
        let mut unknown = Vec::new();
        for (provider, key) in &state.disabled {
            if self.known(provider, key).is_ok() {
                self.inner().disabled().set(provider, key, true);
            } else {
                unknown.push((provider.clone(), key.clone()));
            }
        }
        unknown
    }

    fn known(&self, provider: &ProviderId, key: &KeyId) -> Result<(), AdminError> {
        let found = self
            .inner()
            .slots()
            .iter()
            .any(|slot| &slot.candidate().provider == provider && &slot.candidate().key == key);
        if found {
            Ok(())
        } else {
            Err(AdminError::UnknownKey { provider: provider.clone(), key: key.clone() })
        }
    }
}
