//! Key vault: API keys sealed with AES-256-GCM at rest, and the key sources the rest of
//! Switchyard takes credentials from.
//!
//! A [`Vault`] is one file holding many keys with their metadata ([`KeyInfo`]). The file is
//! sealed with AES-256-GCM under a key derived from a [`Passphrase`] by PBKDF2-HMAC-SHA256
//! ([`DEFAULT_ITERATIONS`] rounds, a random salt, both in the header), with a fresh random
//! nonce on every write and the whole header bound as associated data. The format is
//! versioned and described in `docs/vault.md`. Writes are atomic (temporary file, fsync,
//! rename, fsync of the directory), keep the previous version as `<vault>.bak`, leave files
//! at mode 0600 and hold an exclusive lock on `<vault>.lock`, re-reading the file under it,
//! so two processes writing at once lose nothing.
//!
//! [`KeySource`] is where credentials come from: the vault, or [`EnvSource`], the
//! environment conventions users already have (`GEMINI_KEYS=a,b,c`, `GROQ_API_KEY_2`, ...).
//! [`merge`] joins sources and counts a key found twice once. [`check_format`] flags keys
//! that do not look like their provider's, as warnings.
//!
//! ```
//! use switchyard_core::KeyId;
//! use switchyard_vault::{NewKey, Passphrase, Vault, VaultConfig};
//!
//! # fn main() -> Result<(), switchyard_vault::VaultError> {
//! # let dir = tempfile::tempdir().expect("tempdir");
//! let path = dir.path().join("keys.vault");
//! let passphrase = Passphrase::try_new("correct horse battery staple")?;
//! let mut vault = Vault::create(&path, passphrase.clone(), VaultConfig::default())?;
//! let added = vault.add(NewKey::new("groq", "gsk_example_key"))?;
//! assert_eq!(added.id.as_str(), "groq-1");
//!
//! let vault = Vault::open(&path, passphrase, VaultConfig::default())?;
//! let credential = vault.credential(&KeyId::new("groq-1"))?;
//! assert_eq!(credential.to_string(), format!("key groq-1 ({})", added.fingerprint));
//! # Ok(())
//! # }
//! ```
//!
//! This crate never prints, logs or returns a secret in an error: keys show as id and
//! [`Fingerprint`](switchyard_core::Fingerprint). It makes no network call and reads the time
//! only through the [`Clock`](switchyard_core::Clock) in its [`VaultConfig`].

mod check;
mod env;
mod error;
mod format;
mod passphrase;
mod source;
mod store;
mod vault;

pub use check::{FormatProblem, FormatWarning, check_format};
pub use env::{EnvScan, EnvSource};
pub use error::{Backup, VaultError};
pub use format::FORMAT_VERSION;
pub use passphrase::Passphrase;
pub use source::{Duplicate, KeySource, Merged, SourcedKey, merge};
pub use vault::{
    AddOutcome, Added, DEFAULT_ITERATIONS, KeyInfo, MAX_ITERATIONS, NewKey, Vault, VaultConfig,
};
