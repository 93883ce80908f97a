//! The vault file on disk: reading it with a precise error for each way it can be missing,
//! and replacing it atomically under an exclusive lock.
//!
//! A write goes: temporary file in the same directory (mode 0600, created exclusively),
//! write, fsync; hard link of the current version to a staged name (a copy where hard links
//! are not supported); rename of the temporary file over the vault; rename of the staged
//! link to `<vault>.bak`; fsync of the directory. A crash at any point leaves either the old
//! or the new version at the vault path, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Backup;
use crate::format::{Damage, MIN_FILE_LEN};
use crate::{FORMAT_VERSION, VaultError};

/// How a file is moved into place. A plain function so tests can make the rename fail the
/// way a crash or a full disk would, without a trait on the public API.
pub(crate) type RenameFn = fn(&Path, &Path) -> io::Result<()>;

/// Proof that the write lock is held: [`Store::write`] takes it, so a write without the lock
/// does not compile. The lock is released when this is dropped (the descriptor closes).
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

/// Paths and file operations of one vault.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    path: PathBuf,
    rename: RenameFn,
}

impl Store {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, rename: |from, to| fs::rename(from, to) }
    }

    #[cfg(test)]
    pub(crate) fn set_rename(&mut self, rename: RenameFn) {
        self.rename = rename;
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `<vault>.bak`: the version before the last write.
    pub(crate) fn backup_path(&self) -> PathBuf {
        self.sibling(".bak", false)
    }

    /// `<vault>.lock`: the file the exclusive write lock is taken on. A separate file because
    /// the vault itself is replaced on every write, and a lock on a replaced file guards
    /// nothing.
    pub(crate) fn lock_path(&self) -> PathBuf {
        self.sibling(".lock", false)
    }

    fn sibling(&self, suffix: &str, hidden: bool) -> PathBuf {
        let name = self.path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        let dot = if hidden { "." } else { "" };
        self.dir().join(format!("{dot}{name}{suffix}"))
    }

    fn temp_prefix(&self) -> String {
        let name = self.path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        format!(".{name}.tmp-")
    }

    pub(crate) fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// The backup, named in errors only if it exists.
    pub(crate) fn backup(&self) -> Backup {
        let path = self.backup_path();
        Backup(path.is_file().then_some(path))
    }

    /// Turns a format problem into the error that names this file and its backup.
    pub(crate) fn damage(&self, damage: Damage, max_iterations: u32) -> VaultError {
        let path = self.path.clone();
        let backup = self.backup();
        match damage {
            Damage::Empty => VaultError::Empty { path, backup },
            Damage::NotAVault => VaultError::NotAVault { path, backup },
            Damage::UnsupportedVersion(found) => {
                VaultError::UnsupportedVersion { path, found, supported: FORMAT_VERSION, backup }
            }
            Damage::UnknownAlgorithm { kdf, cipher } => {
                VaultError::UnknownAlgorithm { path, kdf, cipher, backup }
            }
            Damage::Truncated { len } => {
                VaultError::Truncated { path, len, min: MIN_FILE_LEN, backup }
            }
            Damage::IterationsOutOfRange(found) => {
                VaultError::IterationsOutOfRange { path, found, max: max_iterations, backup }
            }
            Damage::Unseal => VaultError::Unseal { path, backup },
        }
    }

    /// Whether anything (file, directory, dangling link) sits at the vault path.
    pub(crate) fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok()
    }

    /// Reads the sealed bytes.
    pub(crate) fn read(&self) -> Result<Vec<u8>, VaultError> {
        let path = &self.path;
        match fs::metadata(path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(VaultError::NotFound { path: path.clone() });
            }
            Err(source) => return Err(VaultError::Read { path: path.clone(), source }),
            Ok(metadata) if metadata.is_dir() => {
                return Err(VaultError::IsDirectory { path: path.clone() });
            }
            Ok(_) => {}
        }
        fs::read(path).map_err(|source| VaultError::Read { path: path.clone(), source })
    }

    /// Creates the vault's directory (mode 0700) if it is missing.
    pub(crate) fn ensure_dir(&self) -> Result<(), VaultError> {
        let dir = self.dir();
        if dir.is_dir() {
            return Ok(());
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|source| self.write_error(source))
    }

    /// Takes the exclusive write lock, waiting for another writer to finish.
    pub(crate) fn lock(&self) -> Result<WriteLock, VaultError> {
        let path = self.lock_path();
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    VaultError::NotWritable { dir: self.dir(), source }
                }
                _ => VaultError::Lock { path: path.clone(), source },
            })?;
        file.lock().map_err(|source| VaultError::Lock { path, source })?;
        Ok(WriteLock { _file: file })
    }

    /// Replaces the vault with `sealed`, making the current version the backup.
    ///
    /// Errors before the rename leave vault and backup as they were; an error after it is
    /// [`VaultError::AfterWrite`]: the new version is in place.
    pub(crate) fn write(&self, _lock: &WriteLock, sealed: &[u8]) -> Result<(), VaultError> {
        self.remove_stale_temps();
        let temp = self.write_temp(sealed)?;
        let staged = match self.stage_backup() {
            Ok(staged) => staged,
            Err(error) => {
                let _ = fs::remove_file(&temp);
                return Err(error);
            }
        };
        if let Err(source) = (self.rename)(&temp, &self.path) {
            // Best effort: the next write under the lock removes leftovers anyway.
            let _ = fs::remove_file(&temp);
            if let Some(staged) = &staged {
                let _ = fs::remove_file(staged);
            }
            return Err(self.write_error(source));
        }
        if let Some(staged) = staged {
            fs::rename(&staged, self.backup_path()).map_err(|source| VaultError::AfterWrite {
                path: self.path.clone(),
                step: "keeping the previous version as the backup",
                source,
            })?;
        }
        self.sync_dir()
    }

    /// Replaces the backup with `sealed` (after a passphrase change, so that the old
    /// passphrase opens no file this vault wrote).
    pub(crate) fn write_backup(&self, _lock: &WriteLock, sealed: &[u8]) -> io::Result<()> {
        let staged = self.sibling(".bak-new", true);
        let _ = fs::remove_file(&staged);
        let written = private_options()
            .write(true)
            .create_new(true)
            .open(&staged)
            .and_then(|mut file| {
                restrict_to_owner(&file)?;
                file.write_all(sealed)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&staged, self.backup_path()));
        if written.is_err() {
            let _ = fs::remove_file(&staged);
        }
        written?;
        #[cfg(unix)]
        File::open(self.dir())?.sync_all()?;
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> VaultError {
        match source.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                VaultError::NotWritable { dir: self.dir(), source }
            }
            _ => VaultError::Write { path: self.path.clone(), source },
        }
    }

    fn write_temp(&self, sealed: &[u8]) -> Result<PathBuf, VaultError> {
        let mut suffix = [0u8; 8];
        SystemRandom::new().fill(&mut suffix).map_err(|_| VaultError::Random)?;
        let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
        let temp = self.dir().join(format!("{}{suffix}", self.temp_prefix()));
        // `create_new` refuses a file (or a planted symlink) already at the name.
        let mut file = private_options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| self.write_error(source))?;
        let written = restrict_to_owner(&file)
            .and_then(|()| file.write_all(sealed))
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(self.write_error(source));
        }
        Ok(temp)
    }

    /// Stages the current version for the backup under a hidden name: a hard link (no
    /// copy), or a synced copy where the file system has no hard links. The caller renames
    /// it to `<vault>.bak` only once the new version is in place, so a failed write leaves
    /// the backup as it was.
    fn stage_backup(&self) -> Result<Option<PathBuf>, VaultError> {
        if !self.path.is_file() {
            return Ok(None);
        }
        let staged = self.sibling(".bak-new", true);
        let _ = fs::remove_file(&staged);
        if fs::hard_link(&self.path, &staged).is_err() {
            fs::copy(&self.path, &staged)
                .and_then(|_| File::open(&staged)?.sync_all())
                .map_err(|source| self.write_error(source))?;
        }
        Ok(Some(staged))
    }

    /// Under the lock no other writer is between its temporary write and its rename, so any
    /// temporary file left in the directory is from a crashed write.
    fn remove_stale_temps(&self) {
        let prefix = self.temp_prefix();
        let Ok(entries) = fs::read_dir(self.dir()) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn sync_dir(&self) -> Result<(), VaultError> {
        #[cfg(unix)]
        {
            File::open(self.dir()).and_then(|dir| dir.sync_all()).map_err(|source| {
                VaultError::AfterWrite {
                    path: self.path.clone(),
                    step: "syncing its directory to disk",
                    source,
                }
            })?;
        }
        Ok(())
    }
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Sets mode 0600 even if the umask would have left more bits (or a looser file system
/// default applied).
fn restrict_to_owner(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
