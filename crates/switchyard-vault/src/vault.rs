//! [`Vault`]: many API keys with their metadata, sealed in one file.
//!
//! A `Vault` holds the contents as of its last read or write. Every change takes the write
//! lock, re-reads the file, applies itself to what is on disk now and writes the result, so
//! two processes adding keys at the same time both keep their keys.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use switchyard_core::{Clock, Credential, Fingerprint, KeyId, ProviderId, SystemClock};
use zeroize::Zeroizing;

use crate::check::{FormatWarning, check_format};
use crate::format::{self, KdfParams, SealingKey};
use crate::store::{Store, WriteLock};
use crate::{Passphrase, VaultError};

/// PBKDF2-HMAC-SHA256 iterations for new vaults: OWASP's advice for this hash
/// (Password Storage Cheat Sheet, 2023 onwards).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
// Lowering the default below OWASP's advice must be a deliberate, reviewed change.
const _: () = assert!(DEFAULT_ITERATIONS >= 600_000 && DEFAULT_ITERATIONS <= MAX_ITERATIONS);
/// The largest iteration count a vault file may ask for. A header claiming more is refused
/// before any derivation: a flipped high bit must not cost minutes of CPU.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// How vaults are created and opened.
#[derive(Clone)]
pub struct VaultConfig {
    /// PBKDF2 iterations for a new vault or a new passphrase. A passphrase change keeps the
    /// file's count if that is higher.
    pub iterations: NonZeroU32,
    /// The largest count accepted when reading a file.
    pub max_iterations: NonZeroU32,
    /// Source of the `created` and `last_used` times.
    pub clock: Arc<dyn Clock>,
}

impl Default for VaultConfig {
    /// [`DEFAULT_ITERATIONS`], [`MAX_ITERATIONS`], the system clock.
    fn default() -> Self {
        Self {
            iterations: NonZeroU32::new(DEFAULT_ITERATIONS).expect("invariant: non-zero"),
            max_iterations: NonZeroU32::new(MAX_ITERATIONS).expect("invariant: non-zero"),
            clock: Arc::new(SystemClock),
        }
    }
}

impl VaultConfig {
    /// For tests only: a low iteration count so each derivation takes microseconds instead
    /// of a third of a second. A vault made this way is only as strong as its passphrase;
    /// never use it for real keys.
    pub fn insecure_for_tests(iterations: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            iterations: NonZeroU32::new(iterations.max(1)).expect("invariant: at least 1"),
            clock,
            ..Self::default()
        }
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("iterations", &self.iterations)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

/// What the vault knows about a key, without its secret: safe to print and serialize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key's id (`groq-2`).
    pub id: KeyId,
    /// The provider it is for.
    pub provider: ProviderId,
    /// A free-form label.
    pub label: Option<String>,
    /// Free-form tags (`free-tier`, `team-a`).
    pub tags: Vec<String>,
    /// Whether the key is handed out.
    pub enabled: bool,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// When [`Vault::mark_used`] last ran for it.
    pub last_used: Option<DateTime<Utc>>,
    /// The secret's fingerprint.
    pub fingerprint: Fingerprint,
}

/// A key to add. Its `Debug` shows the provider, label and fingerprint, never the secret.
pub struct NewKey {
    /// The provider it is for.
    pub provider: ProviderId,
    /// A free-form label.
    pub label: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    secret: Zeroizing<String>,
}

impl NewKey {
    /// A key for `provider`, with no label or tags. Surrounding whitespace is trimmed (a
    /// trailing newline from a pasted key or a pipe is never part of it).
    pub fn new(provider: impl Into<ProviderId>, secret: impl Into<String>) -> Self {
        let mut secret = Zeroizing::new(secret.into());
        let end = secret.trim_end().len();
        secret.truncate(end);
        let start = secret.len() - secret.trim_start().len();
        secret.drain(..start);
        Self { provider: provider.into(), label: None, tags: Vec::new(), secret }
    }

    /// The secret's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.secret)
    }

    /// Checks what [`Vault::add`] would refuse, so a caller can fail before creating a vault
    /// or asking for a passphrase.
    ///
    /// # Errors
    /// [`VaultError::EmptySecret`], or [`VaultError::InvalidProvider`] for a provider name
    /// with characters outside `a-z`, `0-9`, `-`, `_`, `.`.
    pub fn validate(&self) -> Result<(), VaultError> {
        if self.secret.is_empty() {
            return Err(VaultError::EmptySecret);
        }
        check_provider(&self.provider)
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("provider", &self.provider)
            .field("label", &self.label)
            .field("tags", &self.tags)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A key that [`Vault::add`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// The id it was given.
    pub id: KeyId,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Format checks it failed: stored anyway, reported to the user.
    pub warnings: Vec<FormatWarning>,
}

/// What [`Vault::add_many`] did with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// Stored under a new id.
    Added(Added),
    /// The same secret is already stored under `id`; nothing was added.
    AlreadyPresent {
        /// The id it is stored under.
        id: KeyId,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
}

/// One stored key: the shareable metadata and the secret, which is zeroed on drop.
#[derive(Clone)]
struct Entry {
    info: KeyInfo,
    secret: Zeroizing<String>,
}

/// The decrypted document.
#[derive(Clone, Default)]
struct Contents {
    entries: Vec<Entry>,
    /// The next number per provider, so a removed key's id is never given to another key
    /// (quota and score history is kept by id).
    next_index: BTreeMap<ProviderId, u64>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    keys: Vec<KeyOut<'a>>,
    next_index: &'a BTreeMap<ProviderId, u64>,
}

#[derive(Serialize)]
struct KeyOut<'a> {
    id: &'a KeyId,
    provider: &'a ProviderId,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    tags: &'a [String],
    enabled: bool,
    created: DateTime<Utc>,
    last_used: Option<DateTime<Utc>>,
    secret: &'a str,
}

#[derive(Deserialize)]
struct DocumentIn {
    keys: Vec<KeyIn>,
    #[serde(default)]
    next_index: BTreeMap<ProviderId, u64>,
}

#[derive(Deserialize)]
struct KeyIn {
    id: KeyId,
    provider: ProviderId,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    enabled: bool,
    created: DateTime<Utc>,
    #[serde(default)]
    last_used: Option<DateTime<Utc>>,
    secret: SecretIn,
}

/// Deserializes a secret straight into a zeroizing buffer.
struct SecretIn(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretIn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|secret| Self(Zeroizing::new(secret)))
    }
}

impl Contents {
    fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let document = DocumentOut {
            keys: self
                .entries
                .iter()
                .map(|entry| KeyOut {
                    id: &entry.info.id,
                    provider: &entry.info.provider,
                    label: entry.info.label.as_deref(),
                    tags: &entry.info.tags,
                    enabled: entry.info.enabled,
                    created: entry.info.created,
                    last_used: entry.info.last_used,
                    secret: &entry.secret,
                })
                .collect(),
            next_index: &self.next_index,
        };
        let mut json = Zeroizing::new(Vec::with_capacity(self.json_capacity()));
        serde_json::to_writer(&mut *json, &document)
            .expect("invariant: the document has string keys and serializes");
        json
    }

    /// An upper bound of the document's length: every character escaped as `\uXXXX` (six
    /// bytes), so the buffer is sized once and growing it never leaves a stray plaintext
    /// copy in freed memory.
    fn json_capacity(&self) -> usize {
        256 + self.next_index.keys().map(|provider| 32 + 6 * provider.as_str().len()).sum::<usize>()
            + self
                .entries
                .iter()
                .map(|entry| {
                    let info = &entry.info;
                    let text = entry.secret.len()
                        + info.id.as_str().len()
                        + info.provider.as_str().len()
                        + info.label.as_deref().map_or(0, str::len)
                        + info.tags.iter().map(|tag| tag.len() + 3).sum::<usize>();
                    256 + 6 * text
                })
                .sum::<usize>()
    }

    /// Parses a decrypted document. On failure only the position survives: a serde message
    /// can quote the offending value, which may be a secret.
    fn from_json(json: &[u8]) -> Result<Self, (usize, usize)> {
        let document: DocumentIn =
            serde_json::from_slice(json).map_err(|error| (error.line(), error.column()))?;
        let entries = document
            .keys
            .into_iter()
            .map(|key| Entry {
                info: KeyInfo {
                    fingerprint: Fingerprint::of(&key.secret.0),
                    id: key.id,
                    provider: key.provider,
                    label: key.label,
                    tags: key.tags,
                    enabled: key.enabled,
                    created: key.created,
                    last_used: key.last_used,
                },
                secret: key.secret.0,
            })
            .collect();
        Ok(Self { entries, next_index: document.next_index })
    }

    fn entry_mut(&mut self, id: &KeyId) -> Result<&mut Entry, VaultError> {
        self.entries
            .iter_mut()
            .find(|entry| &entry.info.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.clone()))
    }

    fn find_secret(&self, secret: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.secret.as_str() == secret)
    }

    fn allocate_id(&mut self, provider: &ProviderId) -> KeyId {
        let next = self.next_index.entry(provider.clone()).or_insert(1);
        loop {
            let id = KeyId::new(format!("{provider}-{next}"));
            *next += 1;
            if !self.entries.iter().any(|entry| entry.info.id == id) {
                return id;
            }
        }
    }

    fn insert(&mut self, key: NewKey, now: DateTime<Utc>) -> Result<AddOutcome, VaultError> {
        key.validate()?;
        let fingerprint = key.fingerprint();
        if let Some(existing) = self.find_secret(&key.secret) {
            return Ok(AddOutcome::AlreadyPresent { id: existing.info.id.clone(), fingerprint });
        }
        let warnings = check_format(&key.provider, &key.secret).into_iter().collect();
        let id = self.allocate_id(&key.provider);
        self.entries.push(Entry {
            info: KeyInfo {
                id: id.clone(),
                provider: key.provider,
                label: key.label,
                tags: key.tags,
                enabled: true,
                created: now,
                last_used: None,
                fingerprint,
            },
            secret: key.secret,
        });
        Ok(AddOutcome::Added(Added { id, fingerprint, warnings }))
    }
}

/// Provider names become part of key ids and file names elsewhere: keep them plain.
fn check_provider(provider: &ProviderId) -> Result<(), VaultError> {
    let name = provider.as_str();
    let plain = !name.is_empty()
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_.".contains(&byte)
        });
    if plain { Ok(()) } else { Err(VaultError::InvalidProvider(name.to_owned())) }
}

/// An open vault.
pub struct Vault {
    store: Store,
    passphrase: Passphrase,
    key: SealingKey,
    contents: Contents,
    config: VaultConfig,
    rng: SystemRandom,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.store.path())
            .field("keys", &self.contents.entries.len())
            .field("iterations", &self.key.params().iterations)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a new, empty vault at `path` (and its directory, mode 0700, if missing).
    ///
    /// # Errors
    /// [`VaultError::AlreadyExists`] if anything is at `path` (it is left untouched);
    /// [`VaultError::NotWritable`] and the other write errors if the file cannot be written.
    pub fn create(
        path: impl Into<PathBuf>,
        passphrase: Passphrase,
        config: VaultConfig,
    ) -> Result<Self, VaultError> {
        let store = Store::new(path.into());
        store.ensure_dir()?;
        let lock = store.lock()?;
        Self::create_locked(store, &lock, passphrase, config)
    }

    /// Opens the vault at `path`. Reads only: a file that fails to open is never rewritten.
    ///
    /// # Errors
    /// [`VaultError::NotFound`], [`VaultError::IsDirectory`], [`VaultError::Read`] when
    /// there is no readable file; [`VaultError::Empty`], [`VaultError::NotAVault`],
    /// [`VaultError::UnsupportedVersion`], [`VaultError::UnknownAlgorithm`],
    /// [`VaultError::Truncated`], [`VaultError::IterationsOutOfRange`] for a bad header;
    /// [`VaultError::Unseal`] for a wrong passphrase or any changed byte.
    pub fn open(
        path: impl Into<PathBuf>,
        passphrase: Passphrase,
        config: VaultConfig,
    ) -> Result<Self, VaultError> {
        let store = Store::new(path.into());
        let sealed = store.read()?;
        let (key, contents) = decode(&store, &sealed, &passphrase, &config, None)?;
        let key = key.expect("invariant: decode derives a key when none is given");
        Ok(Self { store, passphrase, key, contents, config, rng: SystemRandom::new() })
    }

    /// Opens the vault at `path`, or creates it if nothing is there. The check and the
    /// creation happen under the write lock, so two processes racing to create one vault
    /// end up sharing it. Returns the vault and whether it was created.
    ///
    /// # Errors
    /// As [`Vault::open`] and [`Vault::create`].
    pub fn open_or_create(
        path: impl Into<PathBuf>,
        passphrase: Passphrase,
        config: VaultConfig,
    ) -> Result<(Self, bool), VaultError> {
        let store = Store::new(path.into());
        store.ensure_dir()?;
        let lock = store.lock()?;
        if store.exists() {
            let path = store.path().to_owned();
            drop(lock);
            return Self::open(path, passphrase, config).map(|vault| (vault, false));
        }
        Self::create_locked(store, &lock, passphrase, config).map(|vault| (vault, true))
    }

    fn create_locked(
        store: Store,
        lock: &WriteLock,
        passphrase: Passphrase,
        config: VaultConfig,
    ) -> Result<Self, VaultError> {
        if store.path().is_dir() {
            return Err(VaultError::IsDirectory { path: store.path().to_owned() });
        }
        if store.exists() {
            return Err(VaultError::AlreadyExists { path: store.path().to_owned() });
        }
        let rng = SystemRandom::new();
        let params = KdfParams::generate(config.iterations, &rng).ok_or(VaultError::Random)?;
        let key = SealingKey::derive(&passphrase, params);
        let vault = Self { store, passphrase, key, contents: Contents::default(), config, rng };
        vault.persist(lock, &vault.contents)?;
        Ok(vault)
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Where the previous version is kept (`<vault>.bak`).
    pub fn backup_path(&self) -> PathBuf {
        self.store.backup_path()
    }

    /// The PBKDF2 iteration count of the file as last read or written.
    pub fn iterations(&self) -> u32 {
        self.key.params().iterations.get()
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.contents.entries.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.contents.entries.is_empty()
    }

    /// Every key's metadata and fingerprint, in the order they were added.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &KeyInfo> {
        self.contents.entries.iter().map(|entry| &entry.info)
    }

    /// One key's metadata.
    pub fn key(&self, id: &KeyId) -> Option<&KeyInfo> {
        self.keys().find(|info| &info.id == id)
    }

    /// The credential of an enabled key.
    ///
    /// # Errors
    /// [`VaultError::UnknownKey`] or [`VaultError::KeyDisabled`].
    pub fn credential(&self, id: &KeyId) -> Result<Credential, VaultError> {
        let entry = self
            .contents
            .entries
            .iter()
            .find(|entry| &entry.info.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.clone()))?;
        if !entry.info.enabled {
            return Err(VaultError::KeyDisabled(id.clone()));
        }
        Ok(Credential::new(entry.info.id.clone(), entry.secret.as_str()))
    }

    /// Every enabled key with its provider.
    pub fn enabled_credentials(&self) -> impl Iterator<Item = (&KeyInfo, Credential)> {
        self.contents.entries.iter().filter(|entry| entry.info.enabled).map(|entry| {
            (&entry.info, Credential::new(entry.info.id.clone(), entry.secret.as_str()))
        })
    }

    /// Adds one key under a new id `<provider>-<n>`. Format checks that fail come back as
    /// warnings; the key is stored anyway.
    ///
    /// # Errors
    /// [`VaultError::DuplicateKey`] if the secret is already stored (nothing is written),
    /// [`VaultError::EmptySecret`], [`VaultError::InvalidProvider`], and the errors of a
    /// write.
    pub fn add(&mut self, key: NewKey) -> Result<Added, VaultError> {
        let now = self.config.clock.utc();
        self.change(|contents| match contents.insert(key, now)? {
            AddOutcome::Added(added) => Ok(added),
            AddOutcome::AlreadyPresent { id, fingerprint } => {
                Err(VaultError::DuplicateKey { id, fingerprint })
            }
        })
    }

    /// Adds many keys in one write. A secret already stored (or given twice) is reported as
    /// [`AddOutcome::AlreadyPresent`], not as an error.
    ///
    /// # Errors
    /// [`VaultError::EmptySecret`] or [`VaultError::InvalidProvider`] for any key (then none
    /// is added), and the errors of a write.
    pub fn add_many(
        &mut self,
        keys: impl IntoIterator<Item = NewKey>,
    ) -> Result<Vec<AddOutcome>, VaultError> {
        let now = self.config.clock.utc();
        self.change(|contents| keys.into_iter().map(|key| contents.insert(key, now)).collect())
    }

    /// Removes a key and returns what it was.
    ///
    /// # Errors
    /// [`VaultError::UnknownKey`], and the errors of a write.
    pub fn remove(&mut self, id: &KeyId) -> Result<KeyInfo, VaultError> {
        self.change(|contents| {
            let index = contents
                .entries
                .iter()
                .position(|entry| &entry.info.id == id)
                .ok_or_else(|| VaultError::UnknownKey(id.clone()))?;
            Ok(contents.entries.remove(index).info)
        })
    }

    /// Lets the key be handed out again. Returns whether it was disabled.
    ///
    /// # Errors
    /// [`VaultError::UnknownKey`], and the errors of a write.
    pub fn enable(&mut self, id: &KeyId) -> Result<bool, VaultError> {
        self.change(|contents| {
            let entry = contents.entry_mut(id)?;
            Ok(!std::mem::replace(&mut entry.info.enabled, true))
        })
    }

    /// Stops the key from being handed out, keeping it stored. Returns whether it was
    /// enabled.
    ///
    /// # Errors
    /// [`VaultError::UnknownKey`], and the errors of a write.
    pub fn disable(&mut self, id: &KeyId) -> Result<bool, VaultError> {
        self.change(|contents| {
            let entry = contents.entry_mut(id)?;
            Ok(std::mem::replace(&mut entry.info.enabled, false))
        })
    }

    /// Records that the key was used now. The gateway records uses in batches instead
    /// ([`Vault::mark_used_many`]), never once per request.
    ///
    /// # Errors
    /// [`VaultError::UnknownKey`], and the errors of a write.
    pub fn mark_used(&mut self, id: &KeyId) -> Result<(), VaultError> {
        let now = self.config.clock.utc();
        self.change(|contents| {
            contents.entry_mut(id)?.info.last_used = Some(now);
            Ok(())
        })
    }

    /// Records a batch of uses in one write: each key's `last_used` becomes the later of the
    /// stored time and the given one (a batch saved late never moves it back). Ids the vault
    /// does not hold (keys from `switchyard.toml`, or removed since) are skipped. Returns how
    /// many keys changed; nothing is written when none did.
    ///
    /// # Errors
    /// The errors of a re-read and a write.
    pub fn mark_used_many(&mut self, uses: &[(KeyId, DateTime<Utc>)]) -> Result<usize, VaultError> {
        let newer = |contents: &Contents| {
            uses.iter()
                .filter(|(id, at)| {
                    contents.entries.iter().any(|entry| {
                        &entry.info.id == id && entry.info.last_used.is_none_or(|used| used < *at)
                    })
                })
                .count()
        };
        // Most saves find nothing new for the vault: skip the lock and the write then.
        if newer(&self.contents) == 0 {
            return Ok(0);
        }
        self.change(|contents| {
            let mut changed = 0;
            for (id, at) in uses {
                if let Some(entry) = contents.entries.iter_mut().find(|entry| &entry.info.id == id)
                    && entry.info.last_used.is_none_or(|used| used < *at)
                {
                    entry.info.last_used = Some(*at);
                    changed += 1;
                }
            }
            Ok(changed)
        })
    }

    /// Re-seals everything under a new passphrase, a fresh salt and the configured iteration
    /// count (or the file's, if higher). The backup is replaced by a copy sealed under the
    /// new passphrase, so the old passphrase no longer opens any file of this vault.
    ///
    /// # Errors
    /// The errors of a re-read and a write, after which the file still opens with the old
    /// passphrase; or [`VaultError::StaleBackup`] when the change is done but the backup
    /// could not be replaced.
    pub fn change_passphrase(&mut self, new: Passphrase) -> Result<(), VaultError> {
        let lock = self.store.lock()?;
        let (derived, contents) = self.reread(&lock)?;
        let current = derived.as_ref().unwrap_or(&self.key).params().iterations;
        let iterations = current.max(self.config.iterations);
        let params = KdfParams::generate(iterations, &self.rng).ok_or(VaultError::Random)?;
        let key = SealingKey::derive(&new, params);
        let sealed = key.seal(&contents.to_json(), &self.rng).ok_or(VaultError::Random)?;
        let written = self.store.write(&lock, &sealed);
        if let Err(error) = written {
            if !matches!(error, VaultError::AfterWrite { .. }) {
                return Err(error);
            }
            // The file is sealed under the new passphrase now: follow it, then report.
            self.key = key;
            self.passphrase = new;
            self.contents = contents;
            return Err(error);
        }
        self.key = key;
        self.passphrase = new;
        self.contents = contents;
        self.store
            .write_backup(&lock, &sealed)
            .map_err(|source| VaultError::StaleBackup { backup: self.store.backup_path(), source })
    }

    /// Reads the file again, picking up changes by other processes.
    ///
    /// # Errors
    /// As [`Vault::open`], or [`VaultError::PassphraseChanged`].
    pub fn reload(&mut self) -> Result<(), VaultError> {
        let sealed = self.store.read()?;
        let (derived, contents) = self.decode_current(&sealed)?;
        if let Some(key) = derived {
            self.key = key;
        }
        self.contents = contents;
        Ok(())
    }

    /// The one path every change takes: lock, re-read what is on disk now, apply, write.
    /// If `apply` fails nothing is written and this handle keeps its previous view.
    fn change<T>(
        &mut self,
        apply: impl FnOnce(&mut Contents) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let lock = self.store.lock()?;
        let (derived, mut contents) = self.reread(&lock)?;
        let output = apply(&mut contents)?;
        if let Some(key) = derived {
            self.key = key;
        }
        match self.persist(&lock, &contents) {
            Ok(()) => {
                self.contents = contents;
                Ok(output)
            }
            // The file holds the change: so must this handle, even though we report.
            Err(error @ VaultError::AfterWrite { .. }) => {
                self.contents = contents;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    fn reread(&self, _lock: &WriteLock) -> Result<(Option<SealingKey>, Contents), VaultError> {
        let sealed = self.store.read()?;
        self.decode_current(&sealed)
    }

    fn decode_current(&self, sealed: &[u8]) -> Result<(Option<SealingKey>, Contents), VaultError> {
        decode(&self.store, sealed, &self.passphrase, &self.config, Some(&self.key)).map_err(
            |error| match error {
                // A new salt that our passphrase cannot open: someone ran `passwd`.
                VaultError::Unseal { path, .. }
                    if format::parse_header(sealed, self.config.max_iterations)
                        .is_ok_and(|params| params != self.key.params()) =>
                {
                    VaultError::PassphraseChanged { path }
                }
                other => other,
            },
        )
    }

    fn persist(&self, lock: &WriteLock, contents: &Contents) -> Result<(), VaultError> {
        let sealed = self.key.seal(&contents.to_json(), &self.rng).ok_or(VaultError::Random)?;
        self.store.write(lock, &sealed)
    }

    #[cfg(test)]
    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// Checks the header, derives the key unless `cached` was derived from the same salt and
/// count, authenticates and parses. Returns the newly derived key, if any.
fn decode(
    store: &Store,
    sealed: &[u8],
    passphrase: &Passphrase,
    config: &VaultConfig,
    cached: Option<&SealingKey>,
) -> Result<(Option<SealingKey>, Contents), VaultError> {
    let max = config.max_iterations;
    let params =
        format::parse_header(sealed, max).map_err(|damage| store.damage(damage, max.get()))?;
    let derived = match cached {
        Some(key) if key.params() == params => None,
        _ => Some(SealingKey::derive(passphrase, params)),
    };
    let key = derived.as_ref().or(cached).expect("invariant: one of the two is set");
    let json = key.open(sealed).map_err(|damage| store.damage(damage, max.get()))?;
    let contents = Contents::from_json(&json).map_err(|(line, column)| VaultError::Malformed {
        path: store.path().to_owned(),
        line,
        column,
        backup: store.backup(),
    })?;
    Ok((derived, contents))
}

#[cfg(test)]
mod tests {
    //! The crash tests: they need the private rename hook.

    use std::io;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use switchyard_core::ManualClock;

    use super::*;

    fn config() -> VaultConfig {
        VaultConfig::insecure_for_tests(1_000, Arc::new(ManualClock::default()))
    }

    fn passphrase() -> Passphrase {
        Passphrase::try_new("crash test passphrase").expect("non-empty")
    }

    fn ids(vault: &Vault) -> Vec<String> {
        vault.keys().map(|info| info.id.to_string()).collect()
    }

    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| {
                path.file_name().is_some_and(|name| name.to_string_lossy().contains(".tmp-"))
            })
            .collect()
    }

    fn vault_with_one_key(dir: &Path) -> (PathBuf, Vault) {
        let path = dir.join("keys.vault");
        let mut vault = Vault::create(&path, passphrase(), config()).expect("create");
        vault.add(NewKey::new("groq", "gsk_first_key_0001")).expect("add");
        (path, vault)
    }

    #[test]
    fn the_json_buffer_is_sized_once_even_when_every_character_is_escaped() {
        let mut contents = Contents::default();
        let now = config().clock.utc();
        let escaped = "\u{1}\"\\".repeat(300);
        let mut key = NewKey::new("groq", format!("gsk_{}", "\u{2}".repeat(500)));
        key.label = Some(escaped.clone());
        key.tags = vec![escaped.clone(), String::new()];
        contents.insert(key, now).expect("insert");
        let json = contents.to_json();
        assert!(
            json.len() <= contents.json_capacity(),
            "{} > {}",
            json.len(),
            contents.json_capacity()
        );
        assert_eq!(json.capacity(), contents.json_capacity(), "the buffer grew");
        let parsed = Contents::from_json(&json).expect("parses");
        assert_eq!(parsed.entries[0].info.label.as_deref(), Some(escaped.as_str()));
    }

    #[test]
    fn a_failed_rename_leaves_the_old_vault_readable_and_the_handle_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut vault) = vault_with_one_key(dir.path());
        let before = std::fs::read(&path).expect("read vault");
        let backup_before = std::fs::read(vault.backup_path()).expect("read backup");
        vault
            .store_mut()
            .set_rename(|_, _| Err(io::Error::other("injected: disk gone before rename")));

        let error = vault.add(NewKey::new("groq", "gsk_second_key_002")).expect_err("rename fails");

        assert!(matches!(error, VaultError::Write { .. }), "{error:?}");
        assert!(error.to_string().contains("the previous version is intact"), "{error}");
        assert_eq!(ids(&vault), ["groq-1"], "the handle must not claim a key that was not written");
        assert_eq!(std::fs::read(&path).expect("read vault"), before, "vault bytes changed");
        assert_eq!(
            std::fs::read(vault.backup_path()).expect("read"),
            backup_before,
            "backup changed"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "a failed write leaves nothing behind: {leftovers:?}");
        let reopened = Vault::open(&path, passphrase(), config()).expect("old vault opens");
        assert_eq!(ids(&reopened), ["groq-1"]);
    }

    #[test]
    fn a_crash_between_temp_write_and_rename_leaves_the_old_vault_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut vault) = vault_with_one_key(dir.path());
        // A panic in the hook unwinds past every clean-up, as a killed process would: the
        // temporary file is written and synced, the rename never happens.
        vault.store_mut().set_rename(|_, _| panic!("simulated crash before rename"));
        let crashed =
            catch_unwind(AssertUnwindSafe(|| vault.add(NewKey::new("groq", "gsk_second_key_002"))));
        assert!(crashed.is_err(), "the hook must have run");

        let leftovers = temp_files(dir.path());
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        let staged = Vault::open(&leftovers[0], passphrase(), config()).expect("temp is complete");
        assert_eq!(ids(&staged), ["groq-1", "groq-2"], "the crash came after the temp write");

        let mut reopened = Vault::open(&path, passphrase(), config()).expect("old vault opens");
        assert_eq!(ids(&reopened), ["groq-1"]);

        // The next write, under the lock, clears the crashed write's leftover.
        reopened.add(NewKey::new("groq", "gsk_third_key_0003")).expect("add after crash");
        assert!(temp_files(dir.path()).is_empty(), "{:?}", temp_files(dir.path()));
        let reopened = Vault::open(&path, passphrase(), config()).expect("opens");
        assert_eq!(ids(&reopened), ["groq-1", "groq-2"]);
        assert_eq!(
            reopened.credential(&KeyId::new("groq-2")).expect("present").expose_secret(),
            "gsk_third_key_0003",
            "the crashed write's key never reached the vault"
        );
    }

    #[test]
    fn a_failed_passphrase_change_keeps_the_old_passphrase_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut vault) = vault_with_one_key(dir.path());
        vault.store_mut().set_rename(|_, _| Err(io::Error::other("injected")));
        let new = Passphrase::try_new("the new passphrase").expect("non-empty");
        assert!(vault.change_passphrase(new.clone()).is_err());
        assert!(
            Vault::open(&path, passphrase(), config()).is_ok(),
            "old passphrase must still open"
        );
        assert!(matches!(Vault::open(&path, new, config()), Err(VaultError::Unseal { .. })));
        // The handle still works with its old passphrase once the fault is gone.
        vault.store_mut().set_rename(|from, to| std::fs::rename(from, to));
        vault.add(NewKey::new("groq", "gsk_after_fault_01")).expect("add");
        assert_eq!(ids(&vault), ["groq-1", "groq-2"]);
    }
}
