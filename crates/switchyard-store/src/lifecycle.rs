//! Key lifecycle and the audit log, both in the state file (schema version 8).
//!
//! Lifecycle: each configured key's fingerprint, when it was first seen (or when the vault
//! says it was added), when it was last used and when a rotation alert was sent for it. The
//! gateway registers its keys at start and saves uses in batches, never one write per
//! request. A key whose fingerprint changed under the same id was rotated: its dates start
//! over.
//!
//! Audit: an append-only log of who or what read or changed a key (vault opens, adds,
//! removals, admin disables, resets, pins, reloads), by id and fingerprint only, bounded by
//! count and age ([`AuditRetention`]): each append prunes what falls outside.
//!
//! Times are stored as integer milliseconds since the Unix epoch (UTC).

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::params;
use serde::Serialize;
use switchyard_core::{KeyId, ProviderId};

use crate::db::SqliteStore;
use crate::error::StoreError;

/// The longest text kept in an audit field; longer text is cut (at a character boundary).
pub const MAX_AUDIT_TEXT: usize = 200;

/// A key the gateway serves with, as registered at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySeen {
    /// The provider.
    pub provider: ProviderId,
    /// The key's id.
    pub key: KeyId,
    /// The secret's fingerprint (never the secret).
    pub fingerprint: String,
    /// When it was added, when known (the vault keeps it); otherwise the time of registration.
    pub created: Option<DateTime<Utc>>,
}

/// What the state file knows of a key's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyLifecycle {
    /// The provider.
    pub provider: ProviderId,
    /// The key's id.
    pub key: KeyId,
    /// The fingerprint it was registered with.
    pub fingerprint: String,
    /// When it was added or first seen.
    pub created_at: DateTime<Utc>,
    /// When a request last used it, as of the last batch saved.
    pub last_used: Option<DateTime<Utc>>,
    /// When a `key_rotation_due` alert was sent for it (once per key).
    pub rotation_alerted: Option<DateTime<Utc>>,
}

/// One audit entry: who or what, did what, to which key. Never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who or what acted: `admin-api`, `cli`, `gateway`.
    pub actor: String,
    /// What: `disable`, `enable`, `reset`, `pin`, `unpin`, `reload`, `vault-open`, ...
    pub action: String,
    /// The provider, when the action names one.
    pub provider: Option<ProviderId>,
    /// The key, when the action names one.
    pub key: Option<KeyId>,
    /// The key's fingerprint, when known.
    pub fingerprint: Option<String>,
    /// More words (`for 600 s`, `3 keys`), when any.
    pub detail: Option<String>,
}

/// A stored audit entry with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Increasing with each append. Retention never removes the newest entry, so a number is
    /// never given twice.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// How much audit history is kept: the newest `max_entries` no older than `max_age`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    /// Entries kept at most.
    pub max_entries: u64,
    /// The oldest entry kept.
    pub max_age: TimeDelta,
}

impl Default for AuditRetention {
    /// 10 000 entries, 90 days.
    fn default() -> Self {
        Self { max_entries: 10_000, max_age: TimeDelta::days(90) }
    }
}

fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn time(what: &'static str, at_ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(at_ms)
        .ok_or_else(|| StoreError::Damaged { what, detail: format!("time {at_ms} out of range") })
}

fn write(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Write { what, source }
}

fn read(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Read { what, source }
}

fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_AUDIT_TEXT) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl SqliteStore {
    /// Registers the keys in use, in one transaction: a new key is stamped `created` (or
    /// `now`); a key whose fingerprint changed was rotated, so its dates start over. Returns
    /// how many keys were new or rotated.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing is written then.
    pub fn register_keys(
        &mut self,
        keys: &[KeySeen],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let what = "key lifecycle";
        let tx = self.conn.transaction().map_err(write(what))?;
        let mut changed = 0;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO key_lifecycle (provider, key_id, fingerprint, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (provider, key_id) DO UPDATE SET
                        fingerprint = excluded.fingerprint,
                        created_at_ms = excluded.created_at_ms,
                        last_used_ms = NULL,
                        rotation_alerted_ms = NULL
                     WHERE fingerprint <> excluded.fingerprint",
                )
                .map_err(write(what))?;
            for key in keys {
                let created = key.created.unwrap_or(now).min(now);
                changed += upsert
                    .execute(params![
                        key.provider.as_str(),
                        key.key.as_str(),
                        key.fingerprint,
                        ms(created)
                    ])
                    .map_err(write(what))?;
            }
        }
        tx.commit().map_err(write(what))?;
        Ok(changed)
    }

    /// Saves a batch of uses: each registered key's `last_used` becomes the later of the
    /// stored one and the given one. Unregistered keys are skipped. One transaction.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing is written then.
    pub fn record_key_uses(
        &mut self,
        uses: &[(ProviderId, KeyId, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        let what = "key lifecycle";
        let tx = self.conn.transaction().map_err(write(what))?;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE key_lifecycle SET last_used_ms = max(coalesce(last_used_ms, ?3), ?3)
                     WHERE provider = ?1 AND key_id = ?2",
                )
                .map_err(write(what))?;
            for (provider, key, at) in uses {
                update
                    .execute(params![provider.as_str(), key.as_str(), ms(*at)])
                    .map_err(write(what))?;
            }
        }
        tx.commit().map_err(write(what))
    }

    /// Records that a rotation alert was sent for the key.
    ///
    /// # Errors
    /// [`StoreError::Write`].
    pub fn mark_rotation_alerted(
        &mut self,
        provider: &ProviderId,
        key: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE key_lifecycle SET rotation_alerted_ms = ?3 WHERE provider = ?1 AND key_id = ?2",
                params![provider.as_str(), key.as_str(), ms(at)],
            )
            .map_err(write("key lifecycle"))?;
        Ok(())
    }

    /// Every registered key's lifecycle, by provider then key.
    ///
    /// # Errors
    /// [`StoreError::Read`], or [`StoreError::Damaged`] for a time out of range.
    pub fn key_lifecycle(&self) -> Result<Vec<KeyLifecycle>, StoreError> {
        let what = "key lifecycle";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT provider, key_id, fingerprint, created_at_ms, last_used_ms,
                        rotation_alerted_ms
                 FROM key_lifecycle ORDER BY provider, key_id",
            )
            .map_err(read(what))?;
        type Row = (String, String, String, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
            .and_then(Iterator::collect)
            .map_err(read(what))?;
        rows.into_iter()
            .map(|(provider, key, fingerprint, created, used, alerted)| {
                Ok(KeyLifecycle {
                    provider: provider.into(),
                    key: key.into(),
                    fingerprint,
                    created_at: time(what, created)?,
                    last_used: used.map(|at| time(what, at)).transpose()?,
                    rotation_alerted: alerted.map(|at| time(what, at)).transpose()?,
                })
            })
            .collect()
    }

    /// Appends entries to the audit log, then drops what falls outside `retention` as of the
    /// newest entry's time. One transaction. Text fields are cut at [`MAX_AUDIT_TEXT`]
    /// characters.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing is written then.
    pub fn append_audit(
        &mut self,
        entries: &[AuditEntry],
        retention: AuditRetention,
    ) -> Result<(), StoreError> {
        let what = "audit log";
        let Some(newest) = entries.iter().map(|entry| entry.at).max() else { return Ok(()) };
        let tx = self.conn.transaction().map_err(write(what))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit_log
                        (at_ms, actor, action, provider, key_id, fingerprint, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(write(what))?;
            for entry in entries {
                insert
                    .execute(params![
                        ms(entry.at),
                        cut(&entry.actor),
                        cut(&entry.action),
                        entry.provider.as_ref().map(|p| cut(p.as_str())),
                        entry.key.as_ref().map(|k| cut(k.as_str())),
                        entry.fingerprint.as_deref().map(cut),
                        entry.detail.as_deref().map(cut),
                    ])
                    .map_err(write(what))?;
            }
            let oldest = newest.checked_sub_signed(retention.max_age).unwrap_or(newest);
            tx.execute("DELETE FROM audit_log WHERE at_ms < ?1", params![ms(oldest)])
                .map_err(write(what))?;
            let keep = i64::try_from(retention.max_entries).unwrap_or(i64::MAX);
            tx.execute(
                "DELETE FROM audit_log WHERE id <= (
                    SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                params![keep],
            )
            .map_err(write(what))?;
        }
        tx.commit().map_err(write(what))
    }

    /// The newest `limit` audit entries at or after `since` (all when `None`), oldest first.
    ///
    /// # Errors
    /// [`StoreError::Read`], or [`StoreError::Damaged`] for a time out of range.
    pub fn audit(
        &self,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let what = "audit log";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at_ms, actor, action, provider, key_id, fingerprint, detail
                 FROM audit_log WHERE at_ms >= ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(read(what))?;
        let since_ms = since.map_or(i64::MIN, ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        type Row = (
            i64,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = stmt
            .query_map(params![since_ms, limit], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(read(what))?;
        let mut records = rows
            .into_iter()
            .map(|(id, at, actor, action, provider, key, fingerprint, detail)| {
                Ok(AuditRecord {
                    id,
                    entry: AuditEntry {
                        at: time(what, at)?,
                        actor,
                        action,
                        provider: provider.map(ProviderId::from),
                        key: key.map(KeyId::from),
                        fingerprint,
                        detail,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        records.reverse();
        Ok(records)
    }
}
