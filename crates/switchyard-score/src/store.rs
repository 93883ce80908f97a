//! [`StatsStore`]: where learned statistics go between runs, so learning survives a restart.
//! The SQLite store lives in `switchyard-store`; [`JsonFileStore`] keeps them in one JSON file
//! in the shape of [`StatsSnapshot`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{ScoreError, Scorer, StatsSnapshot};

/// Durable storage for a scorer's statistics. Calls block (a file, a database): the facade
/// runs them off the request path, on the thread that owns the store (hence `&mut self` and
/// no `Sync`, like `switchyard_quota::LedgerStore`: a SQLite connection is one thread's).
pub trait StatsStore: Send + 'static {
    /// Replaces the stored statistics with `snapshot`.
    ///
    /// # Errors
    /// The store's failure, as [`ScoreError::Store`] or [`ScoreError::File`].
    fn save(&mut self, snapshot: &StatsSnapshot) -> Result<(), ScoreError>;

    /// The stored statistics, or `None` when nothing was saved yet.
    ///
    /// # Errors
    /// The store's failure, or [`ScoreError::Json`] when what is stored cannot be read.
    fn load(&mut self) -> Result<Option<StatsSnapshot>, ScoreError>;

    /// Saves everything `scorer` knows; returns how many candidates were saved.
    ///
    /// # Errors
    /// As [`save`](StatsStore::save).
    fn save_from(&mut self, scorer: &dyn Scorer) -> Result<usize, ScoreError> {
        let snapshot = scorer.export();
        self.save(&snapshot)?;
        Ok(snapshot.len())
    }

    /// Loads the stored statistics into `scorer`; returns how many candidates were restored.
    ///
    /// # Errors
    /// As [`load`](StatsStore::load) and [`Scorer::import`].
    fn restore_into(&mut self, scorer: &dyn Scorer) -> Result<usize, ScoreError> {
        match self.load()? {
            Some(snapshot) => {
                scorer.import(&snapshot)?;
                Ok(snapshot.len())
            }
            None => Ok(0),
        }
    }
}

fn _object_safe(_: &dyn StatsStore) {} // the facade stores `Arc<dyn StatsStore>`

/// Statistics in one JSON file, replaced whole on each save (written to a sibling temporary
/// file, then renamed over the old one, so a crash leaves the old or the new file, never half
/// of one).
#[derive(Clone, Debug)]
pub struct JsonFileStore {
    path: PathBuf,
}

impl JsonFileStore {
    /// A store at `path`; nothing is touched until the first save or load.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StatsStore for JsonFileStore {
    fn save(&mut self, snapshot: &StatsSnapshot) -> Result<(), ScoreError> {
        let file_error =
            |source| ScoreError::File { action: "write", path: self.path.clone(), source };
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = fs::File::create(&temporary).map_err(file_error)?;
        file.write_all(snapshot.to_json().as_bytes()).map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        fs::rename(&temporary, &self.path).map_err(file_error)
    }

    fn load(&mut self) -> Result<Option<StatsSnapshot>, ScoreError> {
        match fs::read_to_string(&self.path) {
            Ok(json) => StatsSnapshot::from_json(&json).map(Some),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => {
                Err(ScoreError::File { action: "read", path: self.path.clone(), source })
            }
        }
    }
}
