//! Opening the file: pragmas and migrations.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;
use crate::schema::MIGRATIONS;

/// One connection to the store's SQLite file. Open one per thread that writes (the quota
/// write-behind thread owns one); WAL mode lets them share the file.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it to the newest schema.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the file cannot be opened, [`StoreError::SchemaTooNew`] when
    /// a newer build wrote it, [`StoreError::Migrate`] when a migration fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| StoreError::Open { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(open_error)?;
        Self::configure(conn, path)
    }

    /// Opens a private in-memory store, migrated to the newest schema; it vanishes when
    /// dropped and no other connection can see it (for tests and throwaway runs).
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory()
            .map_err(|source| StoreError::Open { path: path.clone(), source })?;
        Self::configure(conn, path)
    }

    fn configure(conn: Connection, path: PathBuf) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open { path: path.clone(), source };
        // WAL: readers never block the writer. NORMAL sync: a committed save survives the
        // process being killed (only a power loss can drop the last commits).
        // The busy timeout first: switching a fresh file to WAL takes a lock another
        // connection opening it at the same moment may hold.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
        set_wal(&conn).map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_error)?;
        let mut store = Self { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file (the number of migrations applied).
    ///
    /// # Errors
    /// [`StoreError::Read`] when the version cannot be read.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| StoreError::Read { what: "schema version", source })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        let applied = usize::try_from(found).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        let path = self.path.clone();
        for (idx, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let version = idx + 1;
            let failed = |source| StoreError::Migrate {
                path: path.clone(),
                version,
                name: migration.name,
                source,
            };
            // IMMEDIATE takes the write lock before reading the version: when two connections
            // open a fresh file at once (the quota store and the analytics writer), the second
            // waits, then sees the step done and skips it instead of failing on it.
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let now_at: i64 =
                tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(failed)?;
            if usize::try_from(now_at).unwrap_or(usize::MAX) >= version {
                continue;
            }
            tx.execute_batch(migration.sql).map_err(failed)?;
            tx.pragma_update(None, "user_version", i64::try_from(version).unwrap_or(i64::MAX))
                .map_err(failed)?;
            tx.commit().map_err(failed)?;
        }
        Ok(())
    }
}

/// How often switching a fresh file to WAL is tried while other connections opening it hold
/// the locks the switch needs.
const WAL_TRIES: u32 = 50;

/// Puts the file in WAL mode. SQLite answers `SQLITE_BUSY` at once, without calling the busy
/// handler, when another connection opening the same fresh file holds a lock the switch
/// needs (seen under load in `connections_opening_a_fresh_file_at_once_all_succeed`: 15
/// failures in 300 runs). After a busy answer, an empty exclusive transaction waits for
/// those locks through the busy handler (the busy timeout bounds each wait), then the
/// switch is tried again, a bounded number of times.
fn set_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut tries = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::DatabaseBusy && tries < WAL_TRIES =>
            {
                tries += 1;
                conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")?;
            }
            other => return other,
        }
    }
}
