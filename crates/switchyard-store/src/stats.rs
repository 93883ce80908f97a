//! Learned scores: the [`StatsStore`] a scorer saves into and a restarted process restores
//! from, so learning survives a restart.
//!
//! The scorer's [`StatsSnapshot`] is stored whole, as its own JSON, in one row replaced on
//! each save inside a transaction: it already carries everything needed to restore the state
//! exactly (decayed counts with the time they were decayed to, EWMA state), and one row keeps
//! a save atomic — a crash leaves the previous snapshot or the new one, never a mix.

use rusqlite::{OptionalExtension, params};
use switchyard_score::{ScoreError, StatsSnapshot, StatsStore};

use crate::db::SqliteStore;
use crate::error::StoreError;

fn boxed(error: StoreError) -> ScoreError {
    ScoreError::Store(Box::new(error))
}

impl StatsStore for SqliteStore {
    fn save(&mut self, snapshot: &StatsSnapshot) -> Result<(), ScoreError> {
        let json = snapshot.to_json();
        let n_candidates = i64::try_from(snapshot.len()).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "INSERT INTO score_snapshot (id, snapshot, n_candidates) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot,
                                               n_candidates = excluded.n_candidates",
                params![json, n_candidates],
            )
            .map_err(|source| boxed(StoreError::Write { what: "score_snapshot", source }))?;
        Ok(())
    }

    fn load(&mut self) -> Result<Option<StatsSnapshot>, ScoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT snapshot FROM score_snapshot WHERE id = 1", [], |row| row.get(0))
            .optional()
            .map_err(|source| boxed(StoreError::Read { what: "score_snapshot", source }))?;
        json.map(|json| StatsSnapshot::from_json(&json)).transpose()
    }
}
