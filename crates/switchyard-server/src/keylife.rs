//! Key lifecycle and the audit log, kept in the state file (`switchyard-store`, schema 8).
//!
//! Uses are never written per request: an attempt stamps the key's entry in the
//! [`EventHub`](crate::EventHub) (a field of a map entry the hub touches anyway), and a
//! background task saves the keys used since the last save every `flush_every`, on the
//! gateway's clock, and once more when the gateway's owner calls
//! [`Gateway::flush_key_lifecycle`] at shutdown. The same save registers the keys in use (a
//! changed fingerprint under the same id starts the key's life over), hands the uses to the
//! vault ([`KeyUseSink`], one vault write per batch), writes the queued audit entries and
//! raises `key_rotation_due` alerts: once per key, kept in the state file.
//!
//! Audit entries (admin disable/enable/reset/pin/unpin, reloads) are queued in memory,
//! bounded, and written by the next save; `GET /admin/audit` saves first, then reads. They
//! name keys by id and fingerprint, never a secret.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use switchyard::{KeyId, ProviderId};
use switchyard_store::{AuditEntry, AuditRetention, KeySeen, SqliteStore, StoreError};

use crate::{Gateway, ServerError};

/// Audit entries held in memory between saves at most; past it the oldest is dropped (and
/// logged). Admin actions are rare: a save every 30 s never comes near it.
const AUDIT_QUEUE: usize = 1024;
/// `GET /admin/audit` answers this many entries when no `limit` is given.
pub(crate) const DEFAULT_AUDIT_LIMIT: usize = 100;
/// The largest `limit` honoured.
pub(crate) const MAX_AUDIT_LIMIT: usize = 1000;

/// Marks keys used in the vault they came from, one batch at a time (the CLI opens its vault
/// and calls `Vault::mark_used_many`). Runs on a blocking thread.
pub trait KeyUseSink: Send + Sync + 'static {
    /// Records each key's last use; keys the vault does not hold are skipped.
    ///
    /// # Errors
    /// What went wrong, in words for the log (no secret).
    fn mark_used(&self, uses: &[(ProviderId, KeyId, DateTime<Utc>)]) -> Result<(), String>;
}

/// How the gateway keeps key lifecycle and audit. Plain data, apart from the store.
pub struct LifecycleConfig {
    /// A connection to the state file.
    pub store: SqliteStore,
    /// How often uses and audit entries are saved.
    pub flush_every: Duration,
    /// How much audit history is kept.
    pub audit_retention: AuditRetention,
    /// When keys were added, as their vault says; other keys date from their first sighting.
    pub created: BTreeMap<(ProviderId, KeyId), DateTime<Utc>>,
    /// Where uses of vault keys are recorded too.
    pub vault: Option<Arc<dyn KeyUseSink>>,
}

impl LifecycleConfig {
    /// Lifecycle in `store`: saves every 30 s, the default audit retention (10 000 entries,
    /// 90 days). Rotation deadlines are [`GatewayConfig::rotate_after`](crate::GatewayConfig),
    /// so a reload changes them.
    pub fn new(store: SqliteStore) -> Self {
        Self {
            store,
            flush_every: Duration::from_secs(30),
            audit_retention: AuditRetention::default(),
            created: BTreeMap::new(),
            vault: None,
        }
    }
}

impl std::fmt::Debug for LifecycleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleConfig")
            .field("store", &self.store.path())
            .field("flush_every", &self.flush_every)
            .field("audit_retention", &self.audit_retention)
            .field("vault", &self.vault.is_some())
            .finish_non_exhaustive()
    }
}

/// The running lifecycle keeper.
pub(crate) struct KeyLife {
    /// Nothing awaits while it is held: it is only taken on blocking threads.
    store: Mutex<SqliteStore>,
    flush_every: Duration,
    retention: AuditRetention,
    created: BTreeMap<(ProviderId, KeyId), DateTime<Utc>>,
    vault: Option<Arc<dyn KeyUseSink>>,
    audit: Mutex<VecDeque<AuditEntry>>,
    /// The use last saved per key, so a save writes only what changed.
    saved: Mutex<HashMap<(ProviderId, KeyId), DateTime<Utc>>>,
    /// The alert queue's bound.
    alert_queue: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data and a connection whose transactions roll back on unwind.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyLife {
    pub(crate) fn new(config: LifecycleConfig, alert_queue: usize) -> Self {
        Self {
            store: Mutex::new(config.store),
            flush_every: config.flush_every.max(Duration::from_secs(1)),
            retention: config.audit_retention,
            created: config.created,
            vault: config.vault,
            audit: Mutex::new(VecDeque::new()),
            saved: Mutex::new(HashMap::new()),
            alert_queue,
        }
    }
}

/// Starts the saver; it runs as long as the runtime does.
pub(crate) fn spawn(gateway: &Gateway) {
    let Some(life) = gateway.shared.keylife.clone() else { return };
    let gateway = gateway.clone();
    tokio::spawn(async move {
        loop {
            let clock = Arc::clone(&gateway.shared.clock);
            clock.sleep_until(clock.now() + life.flush_every).await;
            let saving = gateway.clone();
            match tokio::task::spawn_blocking(move || saving.flush_key_lifecycle()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "key lifecycle not saved"),
                Err(error) => tracing::warn!(%error, "the key lifecycle save failed"),
            }
        }
    });
}

impl Gateway {
    /// Saves what the lifecycle keeper holds: keys in use, their last uses (to the state
    /// file and the vault), queued audit entries, and rotation alerts due. Blocks on the
    /// disk: call it from a blocking thread (the CLI calls it once at shutdown). Does nothing
    /// without [`Services::lifecycle`](crate::Services::lifecycle).
    ///
    /// # Errors
    /// The state file's error; what was queued stays queued for the next save.
    pub fn flush_key_lifecycle(&self) -> Result<(), StoreError> {
        let Some(life) = self.shared.keylife.as_deref() else { return Ok(()) };
        let now = self.shared.clock.utc();
        let router = self.router();
        let config = self.shared.config.load_full();
        let events = self.shared.events.as_deref();
        let configured = router.keys();
        let mut store = lock(&life.store);

        let seen: Vec<KeySeen> = configured
            .iter()
            .filter_map(|(provider, key)| {
                let id = (provider.clone(), key.clone());
                let fingerprint = config.fingerprints.get(&id).cloned().or_else(|| {
                    let candidate = switchyard::Candidate::new(provider.as_str(), key.as_str(), "");
                    events.and_then(|events| events.fingerprint(&candidate))
                })?;
                Some(KeySeen {
                    provider: provider.clone(),
                    key: key.clone(),
                    fingerprint,
                    created: life.created.get(&id).copied(),
                })
            })
            .collect();
        store.register_keys(&seen, now)?;

        let mut uses: Vec<(ProviderId, KeyId, DateTime<Utc>)> = Vec::new();
        {
            let saved = lock(&life.saved);
            for (provider, key, at) in events.map(crate::EventHub::last_uses).unwrap_or_default() {
                if saved.get(&(provider.clone(), key.clone())).is_none_or(|before| *before < at) {
                    uses.push((provider, key, at));
                }
            }
        }
        if !uses.is_empty() {
            store.record_key_uses(&uses)?;
            let mut saved = lock(&life.saved);
            for (provider, key, at) in &uses {
                saved.insert((provider.clone(), key.clone()), *at);
            }
            drop(saved);
            if let Some(vault) = &life.vault
                && let Err(error) = vault.mark_used(&uses)
            {
                tracing::warn!(%error, n_keys = uses.len(), "key uses not recorded in the vault");
            }
        }

        let queued: Vec<AuditEntry> = lock(&life.audit).iter().cloned().collect();
        if !queued.is_empty() {
            store.append_audit(&queued, life.retention)?;
            lock(&life.audit).drain(..queued.len());
        }

        if let Some(outbox) = &self.shared.outbox {
            for row in store.key_lifecycle()? {
                let Some(after) = config.rotate_after.get(&row.provider) else { continue };
                let after = TimeDelta::from_std(*after).unwrap_or(TimeDelta::MAX);
                let due = row.created_at.checked_add_signed(after).is_some_and(|due| due <= now);
                let configured =
                    configured.iter().any(|(p, k)| *p == row.provider && *k == row.key);
                if !due || row.rotation_alerted.is_some() || !configured {
                    continue;
                }
                let age_days = (now - row.created_at).num_days();
                tracing::warn!(provider = %row.provider, key = %row.key, age_days, "key rotation due");
                outbox.push(
                    json!({
                        "kind": "key_rotation_due", "severity": "warning",
                        "provider": row.provider, "key": row.key,
                        "fingerprint": row.fingerprint,
                        "created_at": row.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                        "age_days": age_days,
                        "at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                        "message": format!("key {} of {} is {age_days} days old: rotate it", row.key, row.provider),
                    }),
                    life.alert_queue,
                );
                store.mark_rotation_alerted(&row.provider, &row.key, now)?;
            }
        }
        Ok(())
    }

    /// Queues an admin API audit entry naming `key` by id and fingerprint.
    pub(crate) fn audit(
        &self,
        action: &str,
        key: Option<(&ProviderId, &KeyId)>,
        detail: Option<String>,
    ) {
        self.record_audit("admin-api", action, key, detail);
    }

    /// Queues an audit entry (written by the next save), naming `key` by id and fingerprint;
    /// a no-op without [`Services::lifecycle`](crate::Services::lifecycle). The CLI records
    /// its SIGHUP reloads here.
    pub fn record_audit(
        &self,
        actor: &str,
        action: &str,
        key: Option<(&ProviderId, &KeyId)>,
        detail: Option<String>,
    ) {
        let Some(life) = self.shared.keylife.as_deref() else { return };
        let fingerprint = key.and_then(|(provider, key)| {
            self.shared.config.load().fingerprints.get(&(provider.clone(), key.clone())).cloned()
        });
        let entry = AuditEntry {
            at: self.shared.clock.utc(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            provider: key.map(|(provider, _)| provider.clone()),
            key: key.map(|(_, key)| key.clone()),
            fingerprint,
            detail,
        };
        let mut queue = lock(&life.audit);
        if queue.len() >= AUDIT_QUEUE {
            queue.pop_front();
            tracing::warn!(
                "an audit entry was dropped: the state file has not been written for long"
            );
        }
        queue.push_back(entry);
    }
}

/// The newest `limit` audit entries at or after `since`, oldest first, after what is queued
/// is written (the admin API's `GET /admin/audit`, which reads and clamps the parameters).
pub(crate) async fn audit(
    gateway: Gateway,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Value, ServerError> {
    if gateway.shared.keylife.is_none() {
        return Err(ServerError::AuditDisabled);
    }
    let read = tokio::task::spawn_blocking(move || {
        // What is queued is written first: the log shows every action taken before the read.
        gateway.flush_key_lifecycle()?;
        let life = gateway.shared.keylife.as_deref().expect("invariant: checked above");
        lock(&life.store).audit(since, limit)
    })
    .await
    .map_err(|error| ServerError::InvalidInput(format!("the audit task failed: {error}")))?;
    let records = read.map_err(ServerError::Audit)?;
    Ok(json!({ "entries": records, "limit": limit }))
}
