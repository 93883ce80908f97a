//! Quota counters and key states: the [`LedgerStore`] the quota ledger's write-behind thread
//! saves into and a restarted process loads from.
//!
//! Times are stored as integer milliseconds since the Unix epoch (UTC); a sliding window's
//! slots as a JSON array of `[start_ms, count]` pairs.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use switchyard_core::{KeyId, LimitScope, ModelId, ProviderId};
use switchyard_quota::{
    BucketRecord, HoldRecord, KeyHoldKind, KeyRecord, LearnedKind, LearnedRecord, LedgerSnapshot,
    LedgerStore, MeterRecord,
};

use crate::db::SqliteStore;
use crate::error::StoreError;

fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn time(what: &'static str, millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::Damaged { what, detail: format!("time {millis} out of range") })
}

fn opt_time(what: &'static str, millis: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    millis.map(|millis| time(what, millis)).transpose()
}

fn count(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Damaged { what, detail: format!("negative count {value}") })
}

fn stored(value: u64) -> i64 {
    // Counts this large cannot happen; saturate rather than wrap.
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn hold(
    what: &'static str,
    since: Option<i64>,
    until: Option<i64>,
    reason: Option<String>,
) -> Result<Option<HoldRecord>, StoreError> {
    let Some(since) = since else { return Ok(None) };
    Ok(Some(HoldRecord {
        until: opt_time(what, until)?,
        reason: reason.unwrap_or_default(),
        since: time(what, since)?,
    }))
}

fn read(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Read { what, source }
}

fn write(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Write { what, source }
}

struct BucketRow {
    provider: String,
    group: String,
    pool: String,
    strikes: i64,
    changed_at: Option<i64>,
    cooldown: (Option<i64>, Option<i64>, Option<String>),
    exhausted: (Option<i64>, Option<i64>, Option<String>),
}

impl BucketRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            provider: row.get(0)?,
            group: row.get(1)?,
            pool: row.get(2)?,
            strikes: row.get(3)?,
            changed_at: row.get(4)?,
            cooldown: (row.get(5)?, row.get(6)?, row.get(7)?),
            exhausted: (row.get(8)?, row.get(9)?, row.get(10)?),
        })
    }
}

fn scope_name(scope: LimitScope) -> Option<&'static str> {
    match scope {
        LimitScope::Minute | LimitScope::Unknown => Some("minute"),
        LimitScope::Day => Some("day"),
        LimitScope::Month => None,
    }
}

fn damaged(detail: String) -> StoreError {
    StoreError::Damaged { what: "quota_learned", detail }
}

/// One `quota_learned` row, as read.
type LearnedRow =
    (String, i64, String, i64, Option<i64>, Option<i64>, i64, i64, Option<String>, String, i64);

fn learned_of(row: LearnedRow) -> Result<LearnedRecord, StoreError> {
    let (scope, limit, kind, window_ms, boundary, last_reset, learned_at, from, hint, source, n) =
        row;
    let scope = match scope.as_str() {
        "minute" => LimitScope::Minute,
        "day" => LimitScope::Day,
        other => return Err(damaged(format!("scope {other:?}"))),
    };
    let kind = match kind.as_str() {
        "sliding" => LearnedKind::Sliding,
        "fixed" => LearnedKind::Fixed,
        other => return Err(damaged(format!("kind {other:?}"))),
    };
    Ok(LearnedRecord {
        scope,
        limit: count("quota_learned", limit)?,
        kind,
        window_ms: count("quota_learned", window_ms)?,
        boundary: opt_time("quota_learned", boundary)?,
        last_reset: opt_time("quota_learned", last_reset)?,
        learned_at: time("quota_learned", learned_at)?,
        from_accepted: count("quota_learned", from)?,
        hint,
        source,
        corrections: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

impl SqliteStore {
    fn load_learned(&self, bucket: &BucketRow) -> Result<Vec<LearnedRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT scope, lim, kind, window_ms, boundary_ms, last_reset_ms, learned_at_ms,
                        from_accepted, hint, source, corrections
                 FROM quota_learned WHERE provider = ?1 AND grp = ?2 AND pool = ?3 ORDER BY scope",
            )
            .map_err(read("learned limits"))?;
        let rows: Vec<LearnedRow> = stmt
            .query_map(params![bucket.provider, bucket.group, bucket.pool], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                ))
            })
            .map_err(read("learned limits"))?
            .collect::<Result<_, _>>()
            .map_err(read("learned limits"))?;
        rows.into_iter().map(learned_of).collect()
    }

    fn load_meters(&self, bucket: &BucketRow) -> Result<Vec<MeterRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, used, as_of_ms, day_started_ms, slots FROM quota_meter
                 WHERE provider = ?1 AND grp = ?2 AND pool = ?3 ORDER BY name",
            )
            .map_err(read("quota meters"))?;
        let rows = stmt
            .query_map(params![bucket.provider, bucket.group, bucket.pool], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(read("quota meters"))?;
        let mut meters = Vec::new();
        for row in rows {
            let (name, used, as_of, day_started, slots) = row.map_err(read("quota meters"))?;
            let slots: Vec<(i64, i64)> = serde_json::from_str(&slots).map_err(|error| {
                StoreError::Damaged { what: "quota_meter", detail: error.to_string() }
            })?;
            meters.push(MeterRecord {
                name,
                used: count("quota_meter", used)?,
                as_of: time("quota_meter", as_of)?,
                day_started: opt_time("quota_meter", day_started)?,
                slots: slots
                    .into_iter()
                    .map(|(start, n)| Ok((time("quota_meter", start)?, count("quota_meter", n)?)))
                    .collect::<Result<_, StoreError>>()?,
            });
        }
        Ok(meters)
    }

    fn load_buckets(&self) -> Result<Vec<BucketRecord>, StoreError> {
        let rows: Vec<BucketRow> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT provider, grp, pool, strikes, changed_at_ms,
                            cooldown_since_ms, cooldown_until_ms, cooldown_reason,
                            exhausted_since_ms, exhausted_until_ms, exhausted_reason
                     FROM quota_bucket ORDER BY provider, grp, pool",
                )
                .map_err(read("quota buckets"))?;
            stmt.query_map([], BucketRow::from_row)
                .map_err(read("quota buckets"))?
                .collect::<Result<_, _>>()
                .map_err(read("quota buckets"))?
        };
        rows.into_iter()
            .map(|row| {
                let meters = self.load_meters(&row)?;
                let learned = self.load_learned(&row)?;
                let (since, until, reason) = row.cooldown;
                let cooldown = hold("quota_bucket", since, until, reason)?;
                let (since, until, reason) = row.exhausted;
                let exhausted = hold("quota_bucket", since, until, reason)?;
                Ok(BucketRecord {
                    provider: ProviderId::from(row.provider),
                    group: row.group,
                    pool: ModelId::from(row.pool),
                    meters,
                    cooldown,
                    exhausted,
                    strikes: u32::try_from(row.strikes).unwrap_or(u32::MAX),
                    changed_at: opt_time("quota_bucket", row.changed_at)?,
                    learned,
                })
            })
            .collect()
    }

    fn load_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT provider, key_id, hold, since_ms, until_ms, reason, changed_at_ms
                 FROM quota_key ORDER BY provider, key_id",
            )
            .map_err(read("key states"))?;
        type KeyRow =
            (String, String, Option<String>, Option<i64>, Option<i64>, Option<String>, Option<i64>);
        let rows: Vec<KeyRow> = stmt
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })
            .map_err(read("key states"))?
            .collect::<Result<_, _>>()
            .map_err(read("key states"))?;
        rows.into_iter()
            .map(|(provider, key, kind, since, until, reason, changed_at)| {
                let hold = match kind {
                    None => None,
                    Some(name) => {
                        let kind =
                            KeyHoldKind::from_name(&name).ok_or_else(|| StoreError::Damaged {
                                what: "quota_key",
                                detail: format!("state {name:?}"),
                            })?;
                        hold("quota_key", since, until, reason)?.map(|hold| (kind, hold))
                    }
                };
                Ok(KeyRecord {
                    provider: ProviderId::from(provider),
                    key: KeyId::from(key),
                    hold,
                    changed_at: opt_time("quota_key", changed_at)?,
                })
            })
            .collect()
    }

    /// The newest time any quota state was saved, if any was.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read.
    pub fn quota_saved_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT MAX(as_of_ms) FROM quota_meter", [], |row| row.get(0))
            .optional()
            .map_err(read("quota meters"))?
            .flatten();
        opt_time("quota_meter", newest)
    }
}

impl LedgerStore for SqliteStore {
    type Error = StoreError;

    fn load(&mut self) -> Result<LedgerSnapshot, StoreError> {
        Ok(LedgerSnapshot {
            taken_at: self.quota_saved_at()?.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            buckets: self.load_buckets()?,
            keys: self.load_keys()?,
        })
    }

    fn save(&mut self, snapshot: &LedgerSnapshot) -> Result<(), StoreError> {
        // One transaction: a save lands whole or not at all.
        let tx = self.conn.transaction().map_err(write("quota state"))?;
        {
            let mut bucket_stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO quota_bucket VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(write("quota buckets"))?;
            let mut meter_stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO quota_meter VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(write("quota meters"))?;
            let mut learned_stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO quota_learned
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(write("learned limits"))?;
            for bucket in &snapshot.buckets {
                for learned in &bucket.learned {
                    let Some(scope) = scope_name(learned.scope) else { continue };
                    learned_stmt
                        .execute(params![
                            bucket.provider.as_str(),
                            bucket.group,
                            bucket.pool.as_str(),
                            scope,
                            stored(learned.limit),
                            learned.kind.as_str(),
                            stored(learned.window_ms),
                            learned.boundary.map(ms),
                            learned.last_reset.map(ms),
                            ms(learned.learned_at),
                            stored(learned.from_accepted),
                            learned.hint,
                            learned.source,
                            i64::from(learned.corrections),
                        ])
                        .map_err(write("learned limits"))?;
                }
                let cooldown = bucket.cooldown.as_ref();
                let exhausted = bucket.exhausted.as_ref();
                bucket_stmt
                    .execute(params![
                        bucket.provider.as_str(),
                        bucket.group,
                        bucket.pool.as_str(),
                        i64::from(bucket.strikes),
                        bucket.changed_at.map(ms),
                        cooldown.map(|hold| ms(hold.since)),
                        cooldown.and_then(|hold| hold.until.map(ms)),
                        cooldown.map(|hold| hold.reason.as_str()),
                        exhausted.map(|hold| ms(hold.since)),
                        exhausted.and_then(|hold| hold.until.map(ms)),
                        exhausted.map(|hold| hold.reason.as_str()),
                    ])
                    .map_err(write("quota buckets"))?;
                for meter in &bucket.meters {
                    let slots: Vec<(i64, i64)> =
                        meter.slots.iter().map(|&(start, n)| (ms(start), stored(n))).collect();
                    let slots = serde_json::to_string(&slots).map_err(|error| {
                        StoreError::Damaged { what: "quota_meter", detail: error.to_string() }
                    })?;
                    meter_stmt
                        .execute(params![
                            bucket.provider.as_str(),
                            bucket.group,
                            bucket.pool.as_str(),
                            meter.name,
                            stored(meter.used),
                            ms(meter.as_of),
                            meter.day_started.map(ms),
                            slots,
                        ])
                        .map_err(write("quota meters"))?;
                }
            }
            let mut key_stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO quota_key VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(write("key states"))?;
            for key in &snapshot.keys {
                let hold = key.hold.as_ref();
                key_stmt
                    .execute(params![
                        key.provider.as_str(),
                        key.key.as_str(),
                        hold.map(|(kind, _)| kind.as_str()),
                        hold.map(|(_, hold)| ms(hold.since)),
                        hold.and_then(|(_, hold)| hold.until.map(ms)),
                        hold.map(|(_, hold)| hold.reason.as_str()),
                        key.changed_at.map(ms),
                    ])
                    .map_err(write("key states"))?;
            }
        }
        tx.commit().map_err(write("quota state"))
    }
}
