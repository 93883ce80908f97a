//! Key lifecycle for `config`, `serve` and `keys`: rotation deadlines from
//! `rotate_after_days`, the vault's creation dates, a vault handle that records the gateway's
//! batched uses, and the audit entries the CLI writes to the state file (`--state`) when it
//! changes the vault. It uses none of those modules, so each may use it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use switchyard_core::{Clock as _, KeyId, ProviderId, SystemClock};
use switchyard_server::{KeyUseSink, LifecycleConfig};
use switchyard_store::{AuditEntry, AuditRetention, SqliteStore};
use switchyard_vault::Vault;

/// The longest rotation deadline accepted: ten years.
const MAX_ROTATE_AFTER_DAYS: u32 = 3650;

/// What the configuration says about key lifecycle, gathered while it is built.
#[derive(Default)]
pub(crate) struct KeyLifeSettings {
    /// When each vault key was added.
    pub(crate) created: BTreeMap<(ProviderId, KeyId), DateTime<Utc>>,
    /// A vault handle for recording uses, with a state file to drive it.
    pub(crate) vault_uses: Option<Vault>,
    /// The vault's path and its number of keys, for the audit entry of the gateway's open.
    vault_opened: Option<(String, usize)>,
}

impl KeyLifeSettings {
    /// Takes the vault's creation dates; `uses` records the gateway's uses later.
    pub(crate) fn read_vault(&mut self, vault: &Vault, uses: Option<Vault>) {
        for info in vault.keys() {
            self.created.insert((info.provider.clone(), info.id.clone()), info.created);
        }
        self.vault_opened = Some((vault.path().display().to_string(), vault.len()));
        self.vault_uses = uses;
    }
}

/// `rotate_after_days`, checked.
///
/// # Errors
/// The words for the loader's error when `days` is 0 or over ten years.
pub(crate) fn rotate_after(days: u32) -> Result<Duration, String> {
    if (1..=MAX_ROTATE_AFTER_DAYS).contains(&days) {
        Ok(Duration::from_secs(u64::from(days) * 86_400))
    } else {
        Err(format!("expected days from 1 to {MAX_ROTATE_AFTER_DAYS}"))
    }
}

/// Records the gateway's batched uses in the vault.
struct VaultUses(Mutex<Vault>);

impl KeyUseSink for VaultUses {
    fn mark_used(&self, uses: &[(ProviderId, KeyId, DateTime<Utc>)]) -> Result<(), String> {
        // Nothing awaits while it is held: the gateway calls this on a blocking thread.
        let mut vault = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the vault's own keys: a configured key may share an id with another
        // provider's vault key.
        let mine: Vec<(KeyId, DateTime<Utc>)> = uses
            .iter()
            .filter(|(provider, key, _)| {
                vault.key(key).is_some_and(|info| &info.provider == provider)
            })
            .map(|(_, key, at)| (key.clone(), *at))
            .collect();
        vault.mark_used_many(&mine).map(drop).map_err(|error| error.to_string())
    }
}

/// The gateway's lifecycle keeper on `state_file`, with what the configuration gave; the
/// vault's open is the first audit entry.
///
/// # Errors
/// The state file cannot be opened or written.
pub(crate) fn lifecycle_config(
    state_file: &Path,
    settings: KeyLifeSettings,
) -> anyhow::Result<LifecycleConfig> {
    let mut store = SqliteStore::open(state_file)
        .with_context(|| format!("cannot open the state file {}", state_file.display()))?;
    if let Some((path, n_keys)) = &settings.vault_opened {
        let entry =
            audit_entry("gateway", "vault-open", None, Some(format!("{path}: {n_keys} keys")));
        store.append_audit(&[entry], AuditRetention::default()).context("writing the audit log")?;
    }
    let mut config = LifecycleConfig::new(store);
    config.created = settings.created;
    config.vault = settings.vault_uses.map(|vault| {
        std::sync::Arc::new(VaultUses(Mutex::new(vault))) as std::sync::Arc<dyn KeyUseSink>
    });
    Ok(config)
}

/// An audit entry stamped now.
pub(crate) fn audit_entry(
    actor: &str,
    action: &str,
    key: Option<(&ProviderId, &KeyId, String)>,
    detail: Option<String>,
) -> AuditEntry {
    AuditEntry {
        at: SystemClock.utc(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        provider: key.as_ref().map(|(provider, _, _)| (*provider).clone()),
        key: key.as_ref().map(|(_, key, _)| (*key).clone()),
        fingerprint: key.map(|(_, _, fingerprint)| fingerprint),
        detail,
    }
}

/// Appends `entries` to the audit log of `state` (the `keys` commands' `--state`). A state
/// file that cannot be written is a warning: the vault change is done either way.
pub(crate) fn audit_to(state: Option<&Path>, entries: &[AuditEntry]) {
    let Some(state) = state else { return };
    let written = SqliteStore::open(state)
        .and_then(|mut store| store.append_audit(entries, AuditRetention::default()));
    if let Err(error) = written {
        eprintln!("warning: audit log in {} not written: {error}", state.display());
    }
}
