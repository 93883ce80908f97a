//! Money spent per day: the [`SpendStore`] the facade's budgets save into (from a
//! write-behind, off the request path) and a restarted process loads today's spend from.
//!
//! One row per day, scope (`route` or `provider`) and name, replaced whole on each save
//! inside one transaction: a crash leaves the previous record of the day or the new one,
//! never a mix. Days older than [`SPEND_RETENTION_DAYS`] are deleted on save.

use std::path::Path;

use chrono::NaiveDate;
use parking_lot::Mutex;
use rusqlite::params;
use switchyard_core::{SpendDay, SpendError, SpendStore};

use crate::db::SqliteStore;
use crate::error::StoreError;

/// How many days of spend are kept: a little over a year, for monthly and yearly reports.
pub const SPEND_RETENTION_DAYS: u64 = 400;

fn backend(error: StoreError) -> SpendError {
    SpendError::Backend(Box::new(error))
}

/// A dollar amount as stored: SQLite keeps NaN as NULL, which the column refuses, so a
/// non-finite amount (never a real spend) is stored as zero rather than failing the save.
fn finite(usd: f64) -> f64 {
    if usd.is_finite() { usd } else { 0.0 }
}

/// [`SpendStore`] in the `[state]` SQLite file. Its own connection behind a lock: the trait
/// is shared (`&self`) between the budgets and their write-behind, and a save may block, which
/// is why the facade calls it off the request path. `parking_lot::Mutex`: nothing awaits
/// while it is held.
#[derive(Debug)]
pub struct SqliteSpendStore {
    store: Mutex<SqliteStore>,
}

impl SqliteSpendStore {
    /// Opens (creating if needed) the store file at `path` — the file the quota state lives
    /// in — and migrates it to the newest schema.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self { store: Mutex::new(SqliteStore::open(path)?) })
    }

    /// A spend store on a connection already open.
    pub fn new(store: SqliteStore) -> Self {
        Self { store: Mutex::new(store) }
    }

    /// The days with spend recorded, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read, [`StoreError::Damaged`] when a day
    /// cannot be parsed.
    pub fn days(&self) -> Result<Vec<NaiveDate>, StoreError> {
        let store = self.store.lock();
        let mut stmt = store
            .conn
            .prepare_cached("SELECT DISTINCT day FROM spend_day ORDER BY day")
            .map_err(|source| StoreError::Read { what: "spend_day", source })?;
        let days: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|source| StoreError::Read { what: "spend_day", source })?;
        days.iter().map(|day| parse_day(day)).collect()
    }
}

fn parse_day(text: &str) -> Result<NaiveDate, StoreError> {
    text.parse::<NaiveDate>()
        .map_err(|_| StoreError::Damaged { what: "spend_day", detail: format!("day {text:?}") })
}

impl SpendStore for SqliteSpendStore {
    fn load(&self, day: NaiveDate) -> Result<SpendDay, SpendError> {
        let store = self.store.lock();
        let read = |source| backend(StoreError::Read { what: "spend_day", source });
        let mut stmt = store
            .conn
            .prepare_cached("SELECT scope, name, usd FROM spend_day WHERE day = ?1")
            .map_err(read)?;
        let rows: Vec<(String, String, f64)> = stmt
            .query_map(params![day.to_string()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(read)?;
        if rows.is_empty() {
            return Ok(SpendDay::default());
        }
        let mut spend = SpendDay { day: Some(day), ..SpendDay::default() };
        for (scope, name, usd) in rows {
            let map = match scope.as_str() {
                "route" => &mut spend.per_route,
                "provider" => &mut spend.per_provider,
                other => {
                    let detail = format!("scope {other:?}");
                    return Err(backend(StoreError::Damaged { what: "spend_day", detail }));
                }
            };
            map.insert(name, usd);
        }
        Ok(spend)
    }

    fn save(&self, spend: &SpendDay) -> Result<(), SpendError> {
        // A record of no day is nothing to keep (the budgets have not started a day yet).
        let Some(day) = spend.day else { return Ok(()) };
        let write = |source| backend(StoreError::Write { what: "spend_day", source });
        let mut store = self.store.lock();
        let tx = store.conn.transaction().map_err(write)?;
        {
            let text = day.to_string();
            tx.execute("DELETE FROM spend_day WHERE day = ?1", params![text]).map_err(write)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO spend_day (day, scope, name, usd) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(write)?;
            let rows = spend
                .per_route
                .iter()
                .map(|(name, usd)| ("route", name, usd))
                .chain(spend.per_provider.iter().map(|(name, usd)| ("provider", name, usd)));
            for (scope, name, usd) in rows {
                insert.execute(params![text, scope, name, finite(*usd)]).map_err(write)?;
            }
            let retention = chrono::Days::new(SPEND_RETENTION_DAYS);
            if let Some(oldest) = day.checked_sub_days(retention) {
                tx.execute("DELETE FROM spend_day WHERE day < ?1", params![oldest.to_string()])
                    .map_err(write)?;
            }
        }
        tx.commit().map_err(write)
    }
}
