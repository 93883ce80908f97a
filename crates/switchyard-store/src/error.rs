//! The store's one error enum.

use std::path::PathBuf;

/// What went wrong with the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be opened or configured.
    #[error("cannot open store {}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer build; opening it here could damage it.
    #[error("store {} has schema version {found}; this build knows up to {known}", .path.display())]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// A migration failed; the file stays at the version before it.
    #[error("cannot migrate store {} to schema version {version} ({name})", .path.display())]
    Migrate {
        /// The file.
        path: PathBuf,
        /// The version that failed.
        version: usize,
        /// The migration's name.
        name: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading saved state failed.
    #[error("cannot read {what} from the store")]
    Read {
        /// What was being read.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Saving state failed; nothing of that save was written.
    #[error("cannot write {what} to the store")]
    Write {
        /// What was being written.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The analytics writer's thread cannot be started.
    #[error("cannot start the analytics writer thread")]
    WriterStart {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The analytics writer's thread is gone (it panicked), so nothing more can be written.
    #[error("the analytics writer thread stopped")]
    WriterStopped,
    /// A stored row cannot be understood.
    #[error("damaged {what} row in the store: {detail}")]
    Damaged {
        /// Which table.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}
