//! Admin actions that outlive the process. Keys an operator disabled through the admin API
//! are kept in the `[state]` file (switchyard-store's admin tables), restored when `serve`
//! starts, and saved when they change: `serve` asks [`AdminSaver::save_if_changed`] once a
//! second and once more at shutdown, so a `kill -9` loses at most the last second, as with the
//! quota counts. A reload needs none of this: the new router carries the old one's state.

use std::path::Path;

use chrono::{DateTime, Utc};
use switchyard::{AdminState, Router};
use switchyard_store::{AdminKeyAction, SqliteStore, StoredAdminState};

/// Saves a router's admin state to the state file when it differs from what was saved last.
pub(crate) struct AdminSaver {
    store: SqliteStore,
    saved: StoredAdminState,
}

impl AdminSaver {
    /// Opens the state file and applies what it holds to `router`. Keys the file names that
    /// the configuration no longer has are returned, to be logged, and dropped at next save.
    ///
    /// # Errors
    /// The store's error, as text.
    pub(crate) fn open(file: &Path, router: &Router) -> Result<(Self, Vec<String>), String> {
        let store = SqliteStore::open(file).map_err(|error| error.to_string())?;
        let saved = store.load_admin_state().map_err(|error| error.to_string())?;
        let state = AdminState {
            disabled: saved
                .disabled
                .iter()
                .map(|action| (action.provider.clone(), action.key.clone()))
                .collect(),
        };
        let unknown = router
            .restore_admin_state(&state)
            .into_iter()
            .map(|(provider, key)| format!("{provider}/{key}"))
            .collect();
        Ok((Self { store, saved }, unknown))
    }

    /// Saves `router`'s admin state if it changed since the last save; says whether it did.
    /// A key disabled before keeps the time it was first disabled.
    ///
    /// # Errors
    /// The store's error, as text.
    pub(crate) fn save_if_changed(
        &mut self,
        router: &Router,
        now: DateTime<Utc>,
    ) -> Result<bool, String> {
        let state = router.admin_state();
        let unchanged = state.disabled.len() == self.saved.disabled.len()
            && state.disabled.iter().zip(&self.saved.disabled).all(|((provider, key), action)| {
                &action.provider == provider && &action.key == key
            });
        if unchanged {
            return Ok(false);
        }
        let since = |provider: &switchyard::ProviderId, key: &switchyard::KeyId| {
            self.saved
                .disabled
                .iter()
                .find(|action| &action.provider == provider && &action.key == key)
                .map_or(now, |action| action.at)
        };
        let mut next = StoredAdminState {
            disabled: state
                .disabled
                .iter()
                .map(|(provider, key)| AdminKeyAction {
                    provider: provider.clone(),
                    key: key.clone(),
                    at: since(provider, key),
                })
                .collect(),
            resets: self.saved.resets.clone(),
        };
        // The store lists by provider then key, as the router does: keep that order so the
        // comparison above holds after a restart.
        next.disabled.sort();
        self.store.save_admin_state(&next).map_err(|error| error.to_string())?;
        self.saved = next;
        Ok(true)
    }
}
