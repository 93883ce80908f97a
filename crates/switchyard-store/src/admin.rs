//! Admin actions that must survive a restart: keys an operator disabled, and manual resets.
//! The CLI saves the whole state after each action and loads it at start; no trait, since
//! only the CLI, which knows the store, uses it.
//!
//! Times are stored as integer milliseconds since the Unix epoch (UTC).

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use switchyard_core::{KeyId, ProviderId};

use crate::db::SqliteStore;
use crate::error::StoreError;

/// One key an operator acted on, and when.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdminKeyAction {
    /// The provider.
    pub provider: ProviderId,
    /// The key's id.
    pub key: KeyId,
    /// When the operator acted.
    pub at: DateTime<Utc>,
}

/// The admin state kept across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAdminState {
    /// Keys disabled through the admin API: each stays out of rotation until re-enabled.
    pub disabled: Vec<AdminKeyAction>,
    /// The last manual reset of each key's quota state.
    pub resets: Vec<AdminKeyAction>,
}

fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn write(source: rusqlite::Error) -> StoreError {
    StoreError::Write { what: "admin state", source }
}

fn read(source: rusqlite::Error) -> StoreError {
    StoreError::Read { what: "admin state", source }
}

impl SqliteStore {
    /// Replaces the stored admin state with `state`, in one transaction: a crash leaves the
    /// previous state or this one. A key listed twice keeps its last entry.
    ///
    /// # Errors
    /// [`StoreError::Write`] when it cannot be written; nothing of it is.
    pub fn save_admin_state(&mut self, state: &StoredAdminState) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(write)?;
        for (table, actions) in
            [("admin_disabled_key", &state.disabled), ("admin_reset", &state.resets)]
        {
            tx.execute(&format!("DELETE FROM {table}"), []).map_err(write)?;
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {table} (provider, key_id, at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (provider, key_id) DO UPDATE SET at_ms = excluded.at_ms"
                ))
                .map_err(write)?;
            for action in actions {
                insert
                    .execute(params![action.provider.as_str(), action.key.as_str(), ms(action.at)])
                    .map_err(write)?;
            }
        }
        tx.commit().map_err(write)
    }

    /// The stored admin state (empty when none was saved), each list ordered by provider then
    /// key.
    ///
    /// # Errors
    /// [`StoreError::Read`] when it cannot be read, [`StoreError::Damaged`] when a time is out
    /// of range.
    pub fn load_admin_state(&self) -> Result<StoredAdminState, StoreError> {
        let load = |table: &str| -> Result<Vec<AdminKeyAction>, StoreError> {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT provider, key_id, at_ms FROM {table} ORDER BY provider, key_id"
                ))
                .map_err(read)?;
            let rows: Vec<(String, String, i64)> = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(read)?;
            rows.into_iter()
                .map(|(provider, key, at_ms)| {
                    let at = DateTime::from_timestamp_millis(at_ms).ok_or_else(|| {
                        StoreError::Damaged {
                            what: "admin state",
                            detail: format!("time {at_ms} out of range"),
                        }
                    })?;
                    Ok(AdminKeyAction { provider: provider.into(), key: key.into(), at })
                })
                .collect()
        };
        Ok(StoredAdminState { disabled: load("admin_disabled_key")?, resets: load("admin_reset")? })
    }
}
