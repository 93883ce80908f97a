//! [`VaultError`]: everything that can go wrong with a vault file, a passphrase or a key
//! source, each with its own message.
//!
//! No variant carries a secret, a passphrase or decrypted text: parse errors of decrypted
//! contents keep only a position, because `serde_json` quotes the offending value.

use std::fmt;
use std::io;
use std::path::PathBuf;

use switchyard_core::{Classify, Fingerprint, KeyId, NextStep};

/// Where the previous version of a vault lives, named in every error that means "this file
/// is damaged" so the operator knows what to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup(pub Option<PathBuf>);

impl fmt::Display for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(path) => write!(f, "backup: {}", path.display()),
            None => f.write_str("no backup exists yet"),
        }
    }
}

/// Errors of the vault and the key sources.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// There is no file at the vault path.
    #[error("no vault at {}", .path.display())]
    NotFound {
        /// The vault path.
        path: PathBuf,
    },
    /// `create` found a file already there; it is left untouched.
    #[error("a vault already exists at {}", .path.display())]
    AlreadyExists {
        /// The vault path.
        path: PathBuf,
    },
    /// A directory sits where the vault file should be.
    #[error("{} is a directory, not a vault file", .path.display())]
    IsDirectory {
        /// The vault path.
        path: PathBuf,
    },
    /// The file could not be read (permissions, I/O error).
    #[error("cannot read vault file {}", .path.display())]
    Read {
        /// The vault path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file exists but holds zero bytes.
    #[error("vault file {} is empty ({backup})", .path.display())]
    Empty {
        /// The vault path.
        path: PathBuf,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The file does not start with the vault's magic bytes.
    #[error("{} is not a switchyard vault file or its header is damaged ({backup})", .path.display())]
    NotAVault {
        /// The vault path.
        path: PathBuf,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The header names a format version this build cannot read.
    #[error(
        "vault {} has format version {found}, this build reads version {supported} \
         (written by a newer switchyard, or damaged; {backup})",
        .path.display()
    )]
    UnsupportedVersion {
        /// The vault path.
        path: PathBuf,
        /// The version found in the header.
        found: u16,
        /// The version this build writes and reads.
        supported: u16,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The header names a key derivation or cipher this build does not know.
    #[error(
        "vault {} names an unknown key derivation ({kdf}) or cipher ({cipher}); \
         damaged or written by a newer switchyard ({backup})",
        .path.display()
    )]
    UnknownAlgorithm {
        /// The vault path.
        path: PathBuf,
        /// The key-derivation id found.
        kdf: u8,
        /// The cipher id found.
        cipher: u8,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The file is shorter than a header and an authentication tag.
    #[error("vault file {} is truncated: {len} bytes, a vault has at least {min} ({backup})", .path.display())]
    Truncated {
        /// The vault path.
        path: PathBuf,
        /// The file's length.
        len: usize,
        /// The least length of a sealed vault.
        min: usize,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The header asks for an iteration count outside the accepted range; refused before
    /// any derivation so a damaged header cannot hang the process.
    #[error(
        "vault {} asks for {found} PBKDF2 iterations, outside the accepted 1..={max}; \
         refusing to derive a key (damaged header? {backup})",
        .path.display()
    )]
    IterationsOutOfRange {
        /// The vault path.
        path: PathBuf,
        /// The count in the header.
        found: u32,
        /// The largest count accepted.
        max: u32,
        /// The previous version, if any.
        backup: Backup,
    },
    /// Authentication failed: the passphrase is wrong, or a byte of the file changed.
    #[error("wrong passphrase or damaged vault {} ({backup})", .path.display())]
    Unseal {
        /// The vault path.
        path: PathBuf,
        /// The previous version, if any.
        backup: Backup,
    },
    /// Another process changed the passphrase since this vault was opened; this handle's
    /// passphrase no longer opens the file.
    #[error("the passphrase of vault {} was changed since it was opened; open it again", .path.display())]
    PassphraseChanged {
        /// The vault path.
        path: PathBuf,
    },
    /// The file authenticated but its contents do not parse: written by a buggy or newer
    /// build. Only the position is kept, never the text.
    #[error(
        "vault {} decrypted but its contents are malformed at line {line}, column {column} ({backup})",
        .path.display()
    )]
    Malformed {
        /// The vault path.
        path: PathBuf,
        /// Line of the decrypted document.
        line: usize,
        /// Column of the decrypted document.
        column: usize,
        /// The previous version, if any.
        backup: Backup,
    },
    /// The process may not create or replace files in the vault's directory.
    #[error("cannot write the vault: no write permission in {}", .dir.display())]
    NotWritable {
        /// The directory (or lock file) that refused.
        dir: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Writing the new version failed (disk full, I/O error); the previous version is intact.
    #[error("cannot write vault {}; the previous version is intact", .path.display())]
    Write {
        /// The vault path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The new version is in place, but a step after the rename failed (moving the previous
    /// version to the backup, or syncing the directory to disk).
    #[error("vault {} was written, but {step} failed", .path.display())]
    AfterWrite {
        /// The vault path.
        path: PathBuf,
        /// What failed.
        step: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A passphrase change is done, but the backup (sealed under the old passphrase) could
    /// not be replaced.
    #[error(
        "the passphrase was changed, but the backup {} could not be replaced and still opens \
         with the old passphrase; delete it",
        .backup.display()
    )]
    StaleBackup {
        /// The backup file.
        backup: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The write lock could not be taken.
    #[error("cannot lock vault {} for writing", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The system's random number generator failed; nothing was written.
    #[error("the system random number generator failed")]
    Random,
    /// An empty passphrase was given.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// A key file could not be read.
    #[error("cannot read key file {}", .path.display())]
    Keyfile {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An empty secret was offered as a key.
    #[error("the key is empty")]
    EmptySecret,
    /// A provider name with characters outside `a-z`, `0-9`, `-`, `_`, `.`.
    #[error("invalid provider name {0:?}: use lowercase letters, digits, '-', '_' or '.'")]
    InvalidProvider(String),
    /// The key is already in the vault.
    #[error("this key is already in the vault as {id} ({fingerprint})")]
    DuplicateKey {
        /// The id it is stored under.
        id: KeyId,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// No key with this id.
    #[error("no key {0} in the vault")]
    UnknownKey(KeyId),
    /// The key exists but is disabled.
    #[error("key {0} is disabled")]
    KeyDisabled(KeyId),
    /// A `.env` file could not be read or parsed. The offending line is not quoted: it may
    /// hold a secret.
    #[error("cannot read .env file {}: {reason}", .path.display())]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// What went wrong, without the line's text.
        reason: String,
    },
}

impl Classify for VaultError {
    fn next_step(&self) -> NextStep {
        match self {
            // No `_` arm: a new variant does not compile until someone decides what it means.
            Self::UnknownKey(_) | Self::KeyDisabled(_) => NextStep::NextKey,
            Self::NotFound { .. }
            | Self::AlreadyExists { .. }
            | Self::IsDirectory { .. }
            | Self::Read { .. }
            | Self::Empty { .. }
            | Self::NotAVault { .. }
            | Self::UnsupportedVersion { .. }
            | Self::UnknownAlgorithm { .. }
            | Self::Truncated { .. }
            | Self::IterationsOutOfRange { .. }
            | Self::Unseal { .. }
            | Self::PassphraseChanged { .. }
            | Self::Malformed { .. }
            | Self::NotWritable { .. }
            | Self::Write { .. }
            | Self::AfterWrite { .. }
            | Self::StaleBackup { .. }
            | Self::Lock { .. }
            | Self::Random
            | Self::EmptyPassphrase
            | Self::Keyfile { .. }
            | Self::EmptySecret
            | Self::InvalidProvider(_)
            | Self::DuplicateKey { .. }
            | Self::DotEnv { .. } => NextStep::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_disabled_key_sends_the_router_to_the_next_key_and_the_rest_stop() {
        let key = KeyId::new("groq-2");
        assert_eq!(VaultError::UnknownKey(key.clone()).next_step(), NextStep::NextKey);
        assert_eq!(VaultError::KeyDisabled(key).next_step(), NextStep::NextKey);
        let unseal = VaultError::Unseal { path: PathBuf::from("/v"), backup: Backup(None) };
        assert_eq!(unseal.next_step(), NextStep::Stop);
        assert_eq!(VaultError::Random.next_step(), NextStep::Stop);
        assert_eq!(unseal.retry_after(), None);
    }
}
