//! The analytics event log: one row per request and per attempt, and the reports the admin
//! API serves from it (usage per key and per client, attempts per hour, errors per class).
//!
//! The gateway records events through an [`AnalyticsWriter`], which writes them in batches on
//! a thread of its own so no request ever waits on the disk, and deletes rows older than its
//! retention. Reports are read through an [`Analytics`] opened on the same file: each holds
//! its own connection, and WAL mode lets a reader run while the writer writes.
//!
//! Times are stored as integer milliseconds since the Unix epoch (UTC). Every report's window
//! is half-open: `start` is included, `end` is not, so consecutive windows never count an
//! event twice. Events carry key ids, never secrets.

mod writer;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Row, ToSql, params};
use serde::{Deserialize, Serialize};

use crate::db::SqliteStore;
use crate::error::StoreError;

pub use writer::{AnalyticsWriter, AnalyticsWriterConfig};

const HOUR_MS: i64 = 3_600_000;

/// Whether an event is a whole request or one attempt of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A client's request, as answered: one per request, whatever the number of attempts.
    /// Its tokens and cost are what the client is charged for.
    Request,
    /// One call to one provider key on behalf of a request.
    Attempt,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Attempt => "attempt",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "request" => Some(Self::Request),
            "attempt" => Some(Self::Attempt),
            _ => None,
        }
    }
}

/// One recorded request or attempt. Plain owned data: the gateway builds it from what it
/// already knows and hands it to [`AnalyticsWriter::record`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnalyticsEvent {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// A request or one attempt of it.
    pub kind: EventKind,
    /// The gateway's id of the request (shared by the request and its attempts).
    pub request_id: String,
    /// The client token's name, when the request came with one.
    pub client: Option<String>,
    /// The route asked for.
    pub route: String,
    /// The provider called (for a request: the one that answered, or was tried last).
    pub provider: Option<String>,
    /// The key's id, never the secret.
    pub key: Option<String>,
    /// The model called.
    pub model: Option<String>,
    /// Whether it succeeded.
    pub success: bool,
    /// The failure's stable snake-case kind (`rate_limited`, `invalid_key`, ...), if it failed.
    pub error_class: Option<String>,
    /// Whether the failure was a spent rate limit or quota.
    pub quota_error: bool,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// Prompt tokens used.
    pub prompt_tokens: u64,
    /// Completion tokens used.
    pub completion_tokens: u64,
    /// What it cost, in dollars; `None` when that is not known (an unpriced model). A
    /// request's cost is everything it spent, a stream's included (stored in `cost_usd`).
    pub cost: Option<f64>,
    /// A request's tags (the gateway's `x-switchyard-tags`, bounded there: 16 tags of at most
    /// 64 bytes, none holding a comma); empty for attempts.
    pub tags: Vec<String>,
}

/// Tags as stored: `,a,b,` (so one tag is found as `,tag,`), `NULL` for none.
fn stored_tags(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| format!(",{},", tags.join(",")))
}

/// Usage per key and per client over a window: `GET /admin/analytics/usage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The window's first instant (included).
    pub start: DateTime<Utc>,
    /// The window's end (excluded).
    pub end: DateTime<Utc>,
    /// One row per provider and key, from attempt events, ordered by provider then key.
    pub keys: Vec<KeyUsage>,
    /// One row per client, from request events, ordered by client.
    pub clients: Vec<ClientUsage>,
}

/// What one key did over a window (counted over its attempts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// The provider.
    pub provider: String,
    /// The key's id.
    pub key: String,
    /// Attempts made with this key.
    pub requests: u64,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Mean latency over all its attempts, in milliseconds.
    pub avg_latency_ms: f64,
    /// Attempts that failed on a spent rate limit or quota.
    pub quota_errors: u64,
    /// Prompt tokens used.
    pub prompt_tokens: u64,
    /// Completion tokens used.
    pub completion_tokens: u64,
    /// What its attempts cost, in dollars (those whose cost is known).
    pub cost: f64,
    /// Its attempts whose cost is not known.
    pub uncosted: u64,
    /// What the requests it answered (or was tried last for) cost, in dollars: their whole
    /// cost, a stream's settled cost included, from the request rows.
    pub served_cost: f64,
}

/// What one client asked for over a window (counted over its requests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientUsage {
    /// The client token's name.
    pub client: String,
    /// Requests made.
    pub requests: u64,
    /// Requests answered successfully.
    pub successes: u64,
    /// What its requests cost, in dollars (those whose cost is known), streams included.
    pub cost: f64,
    /// Its requests whose cost is not known.
    pub uncosted: u64,
}

/// Attempts per UTC hour and key over one UTC day: `GET /admin/analytics/hourly`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourlyReport {
    /// The UTC day.
    pub date: NaiveDate,
    /// One row per hour with attempts and key, ordered by hour, provider, key.
    pub hours: Vec<HourlyRow>,
}

/// One key's attempts in one UTC hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourlyRow {
    /// The hour's first instant.
    pub hour: DateTime<Utc>,
    /// The provider.
    pub provider: String,
    /// The key's id.
    pub key: String,
    /// Attempts made.
    pub requests: u64,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Mean latency, in milliseconds.
    pub avg_latency_ms: f64,
}

/// Failed attempts per error class over a window: `GET /admin/analytics/errors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// The window's first instant (included).
    pub start: DateTime<Utc>,
    /// The window's end (excluded).
    pub end: DateTime<Utc>,
    /// One row per class, most frequent first (ties by class name).
    pub errors: Vec<ErrorRow>,
}

/// One error class over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// The class (`rate_limited`, `invalid_key`, ...).
    pub class: String,
    /// Attempts that failed with it.
    pub count: u64,
    /// The keys involved, as `provider/key`, sorted, each once.
    pub keys: Vec<String>,
}

/// A key filter for [`Analytics::usage`]: `groq-1`, or `groq/groq-1` when ids repeat across
/// providers.
enum KeyFilter<'a> {
    Any,
    Key(&'a str),
    ProviderKey(&'a str, &'a str),
}

impl<'a> KeyFilter<'a> {
    fn parse(key: Option<&'a str>) -> Self {
        match key {
            None => Self::Any,
            Some(text) => match text.split_once('/') {
                Some((provider, key)) => Self::ProviderKey(provider, key),
                None => Self::Key(text),
            },
        }
    }

    /// The SQL condition; `?3` is the key id, `?4` the provider.
    fn clause(&self) -> &'static str {
        match self {
            Self::Any => "",
            Self::Key(_) => "AND key_id = ?3",
            Self::ProviderKey(..) => "AND key_id = ?3 AND provider = ?4",
        }
    }

    fn key(&self) -> Option<&'a str> {
        match *self {
            Self::Any => None,
            Self::Key(key) | Self::ProviderKey(_, key) => Some(key),
        }
    }

    fn provider(&self) -> Option<&'a str> {
        match *self {
            Self::Any | Self::Key(_) => None,
            Self::ProviderKey(provider, _) => Some(provider),
        }
    }
}

fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn stored(value: u64) -> i64 {
    // Counts this large cannot happen; saturate rather than wrap.
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// SQLite stores NaN as NULL, which the NOT NULL columns refuse; one bad number must not
/// make a whole batch fail, so a non-finite measure is stored as zero.
fn finite(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

fn count(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Damaged { what, detail: format!("negative count {value}") })
}

fn time(what: &'static str, millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| StoreError::Damaged { what, detail: format!("time {millis} out of range") })
}

fn read(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Read { what, source }
}

fn write(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Write { what, source }
}

/// Running sums of one group of events, added up row by row.
#[derive(Debug, Default)]
struct Sums {
    n: u64,
    successes: u64,
    latency_ms: f64,
    quota_errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: f64,
    uncosted: u64,
    served_cost: f64,
}

impl Sums {
    fn add_cost(&mut self, cost: Option<f64>) {
        match cost {
            Some(cost) => self.cost += cost,
            None => self.uncosted += 1,
        }
    }

    /// Adds an attempt whose columns from `first` on are: success, latency_ms, quota_error,
    /// prompt_tokens, completion_tokens, cost_usd.
    fn add_attempt(&mut self, row: &Row<'_>, first: usize) -> Result<(), StoreError> {
        let column = |idx: usize| first + idx;
        let get = read("analytics events");
        let success: bool = row.get(column(0)).map_err(&get)?;
        let latency_ms: f64 = row.get(column(1)).map_err(&get)?;
        let quota_error: bool = row.get(column(2)).map_err(&get)?;
        let prompt_tokens: i64 = row.get(column(3)).map_err(&get)?;
        let completion_tokens: i64 = row.get(column(4)).map_err(&get)?;
        let cost: Option<f64> = row.get(column(5)).map_err(&get)?;
        self.n += 1;
        self.successes += u64::from(success);
        self.latency_ms += latency_ms;
        self.quota_errors += u64::from(quota_error);
        self.prompt_tokens += count("analytics_event", prompt_tokens)?;
        self.completion_tokens += count("analytics_event", completion_tokens)?;
        self.add_cost(cost);
        Ok(())
    }

    /// Adds a request whose columns from `first` on are: success, cost_usd.
    fn add_request(&mut self, row: &Row<'_>, first: usize) -> Result<(), StoreError> {
        let get = read("analytics events");
        let success: bool = row.get(first).map_err(&get)?;
        let cost: Option<f64> = row.get(first + 1).map_err(&get)?;
        self.n += 1;
        self.successes += u64::from(success);
        self.add_cost(cost);
        Ok(())
    }

    fn avg_latency_ms(&self) -> f64 {
        // A group exists only once a row was added to it, so `n` is never zero here; the
        // guard keeps a NaN out of the JSON all the same.
        if self.n == 0 { 0.0 } else { self.latency_ms / self.n as f64 }
    }

    fn key_usage(self, provider: String, key: String) -> KeyUsage {
        KeyUsage {
            provider,
            key,
            requests: self.n,
            successes: self.successes,
            failures: self.n - self.successes,
            avg_latency_ms: self.avg_latency_ms(),
            quota_errors: self.quota_errors,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cost: self.cost,
            uncosted: self.uncosted,
            served_cost: self.served_cost,
        }
    }
}

/// The entry for `name`, made on first use; looks up by `&str` so a row's text is copied
/// only for a new group.
fn slot<'m, V: Default>(map: &'m mut BTreeMap<String, V>, name: &str) -> &'m mut V {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), V::default());
    }
    map.get_mut(name).expect("invariant: inserted just above")
}

/// A text column, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, idx: usize) -> Result<&'r str, StoreError> {
    let damaged = |detail: String| StoreError::Damaged { what: "analytics_event", detail };
    match row.get_ref(idx).map_err(read("analytics events"))? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|error| damaged(format!("column {idx} is not UTF-8: {error}"))),
        other => Err(damaged(format!("column {idx} is {}, not text", other.data_type()))),
    }
}

/// The event log on one connection: inserts, reports, retention. Open one per thread that
/// uses it (the [`AnalyticsWriter`] owns one; the admin API opens another for reports).
#[derive(Debug)]
pub struct Analytics {
    store: SqliteStore,
}

impl Analytics {
    /// Opens (creating if needed) the store file at `path` — the same file the quota and
    /// score state live in works — and migrates it to the newest schema.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self { store: SqliteStore::open(path)? })
    }

    /// A private in-memory log, for tests; no other connection can see it.
    ///
    /// # Errors
    /// As [`SqliteStore::open_in_memory`].
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(Self { store: SqliteStore::open_in_memory()? })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Writes `events` in one transaction: all of them or none.
    ///
    /// # Errors
    /// [`StoreError::Write`] when the batch cannot be written; nothing of it is.
    pub fn insert_batch(&mut self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        let tx = self.store.conn.transaction().map_err(write("analytics events"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO analytics_event (at_ms, kind, request_id, client, route,
                        provider, key_id, model, success, error_class, quota_error, status,
                        latency_ms, prompt_tokens, completion_tokens, cost, cost_usd, tags)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                             ?17, ?18)",
                )
                .map_err(write("analytics events"))?;
            for event in events {
                stmt.execute(params![
                    ms(event.at),
                    event.kind.as_str(),
                    event.request_id,
                    event.client,
                    event.route,
                    event.provider,
                    event.key,
                    event.model,
                    event.success,
                    event.error_class,
                    event.quota_error,
                    event.status,
                    finite(event.latency_ms),
                    stored(event.prompt_tokens),
                    stored(event.completion_tokens),
                    finite(event.cost.unwrap_or(0.0)),
                    // A cost that is not a number is not known.
                    event.cost.filter(|cost| cost.is_finite()),
                    stored_tags(&event.tags),
                ])
                .map_err(write("analytics events"))?;
            }
        }
        tx.commit().map_err(write("analytics events"))
    }

    /// How many events the log holds.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read.
    pub fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .store
            .conn
            .query_row("SELECT COUNT(*) FROM analytics_event", [], |row| row.get(0))
            .map_err(read("analytics events"))?;
        count("analytics_event", n)
    }

    /// Whether the log holds no event.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The events in `[start, end)`, oldest first (ties in the order they were written).
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read, [`StoreError::Damaged`] when a row
    /// cannot be understood.
    pub fn events(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<AnalyticsEvent>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached(
                "SELECT at_ms, kind, request_id, client, route, provider, key_id, model, success,
                        error_class, quota_error, status, latency_ms, prompt_tokens,
                        completion_tokens, cost_usd, tags
                 FROM analytics_event WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY at_ms, id",
            )
            .map_err(read("analytics events"))?;
        let rows = stmt
            .query_map(params![ms(start), ms(end)], RawEvent::from_row)
            .map_err(read("analytics events"))?;
        let mut events = Vec::new();
        for row in rows {
            events.push(row.map_err(read("analytics events"))?.into_event()?);
        }
        Ok(events)
    }

    /// Usage in `[start, end)`: per provider and key over attempts, per client over requests.
    /// `key` keeps only that key (`groq-1`, or `groq/groq-1`); for clients, only the requests
    /// that key answered (or was tried last for). Attempts without a provider or key, and
    /// requests without a client, have no row.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read, [`StoreError::Damaged`] when a row
    /// cannot be understood.
    pub fn usage(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        key: Option<&str>,
    ) -> Result<UsageReport, StoreError> {
        self.usage_tagged(start, end, key, None)
    }

    /// [`Analytics::usage`] of the requests tagged `tag` only (their attempts, for keys), when
    /// a tag is given.
    ///
    /// # Errors
    /// As [`Analytics::usage`].
    pub fn usage_tagged(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        key: Option<&str>,
        tag: Option<&str>,
    ) -> Result<UsageReport, StoreError> {
        let filter = KeyFilter::parse(key);
        let (start_ms, end_ms) = (ms(start), ms(end));
        let mut window: Vec<&dyn ToSql> = vec![&start_ms, &end_ms];
        let (filter_key, filter_provider) = (filter.key(), filter.provider());
        if let Some(key) = &filter_key {
            window.push(key);
        }
        if let Some(provider) = &filter_provider {
            window.push(provider);
        }
        let tag_pattern = tag.map(|tag| format!(",{tag},"));
        let mut key_clause = filter.clause().to_owned();
        if let Some(pattern) = &tag_pattern {
            window.push(pattern);
            // Attempts carry no tags: they count when their request was tagged.
            key_clause.push_str(&format!(
                " AND request_id IN (SELECT request_id FROM analytics_event
                     WHERE kind = 'request' AND instr(tags, ?{}) > 0)",
                window.len()
            ));
        }
        // One pass in time order, summed here: SQLite's GROUP BY would sort every row of the
        // window first, which costs several times the scan itself.
        let keys_sql = format!(
            "SELECT provider, key_id, success, latency_ms, quota_error, prompt_tokens,
                    completion_tokens, cost_usd
             FROM analytics_event
             WHERE kind = 'attempt' AND provider IS NOT NULL AND key_id IS NOT NULL
               AND at_ms >= ?1 AND at_ms < ?2 {key_clause}"
        );
        let mut stmt = self.store.conn.prepare_cached(&keys_sql).map_err(read("key usage"))?;
        let mut rows = stmt.query(window.as_slice()).map_err(read("key usage"))?;
        let mut by_key: BTreeMap<String, BTreeMap<String, Sums>> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(read("key usage"))? {
            let sums = slot(slot(&mut by_key, text(row, 0)?), text(row, 1)?);
            sums.add_attempt(row, 2)?;
        }
        drop(rows);
        // What the requests each key served cost: the request rows carry a stream's cost,
        // which its attempt rows may not.
        let served_sql = format!(
            "SELECT provider, key_id, cost_usd
             FROM analytics_event
             WHERE kind = 'request' AND provider IS NOT NULL AND key_id IS NOT NULL
               AND cost_usd IS NOT NULL AND at_ms >= ?1 AND at_ms < ?2 {key_clause}",
        );
        let mut stmt = self.store.conn.prepare_cached(&served_sql).map_err(read("key usage"))?;
        let mut rows = stmt.query(window.as_slice()).map_err(read("key usage"))?;
        while let Some(row) = rows.next().map_err(read("key usage"))? {
            let cost: f64 = row.get(2).map_err(read("key usage"))?;
            slot(slot(&mut by_key, text(row, 0)?), text(row, 1)?).served_cost += cost;
        }
        drop(rows);
        let keys = by_key
            .into_iter()
            .flat_map(|(provider, keys)| {
                keys.into_iter().map(move |(key, sums)| sums.key_usage(provider.clone(), key))
            })
            .collect();

        let clients_sql = format!(
            "SELECT client, success, cost_usd
             FROM analytics_event
             WHERE kind = 'request' AND client IS NOT NULL
               AND at_ms >= ?1 AND at_ms < ?2 {key_clause}"
        );
        let mut stmt =
            self.store.conn.prepare_cached(&clients_sql).map_err(read("client usage"))?;
        let mut rows = stmt.query(window.as_slice()).map_err(read("client usage"))?;
        let mut by_client: BTreeMap<String, Sums> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(read("client usage"))? {
            let sums = slot(&mut by_client, text(row, 0)?);
            sums.add_request(row, 1)?;
        }
        let clients = by_client
            .into_iter()
            .map(|(client, sums)| ClientUsage {
                client,
                requests: sums.n,
                successes: sums.successes,
                cost: sums.cost,
                uncosted: sums.uncosted,
            })
            .collect();
        Ok(UsageReport { start, end, keys, clients })
    }

    /// Attempts per UTC hour and key on the UTC day `date` (hours without attempts have no
    /// row).
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read, [`StoreError::Damaged`] when a
    /// row cannot be understood.
    pub fn hourly(&self, date: NaiveDate) -> Result<HourlyReport, StoreError> {
        let start = date.and_time(NaiveTime::MIN).and_utc();
        // The last representable day has no next midnight; its window runs to the end of time.
        let end = start.checked_add_signed(TimeDelta::days(1)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut stmt = self
            .store
            .conn
            .prepare_cached(
                "SELECT provider, key_id, success, latency_ms, quota_error, prompt_tokens,
                        completion_tokens, cost_usd, at_ms
                 FROM analytics_event
                 WHERE kind = 'attempt' AND provider IS NOT NULL AND key_id IS NOT NULL
                   AND at_ms >= ?1 AND at_ms < ?2",
            )
            .map_err(read("hourly usage"))?;
        let mut rows = stmt.query(params![ms(start), ms(end)]).map_err(read("hourly usage"))?;
        let mut by_hour: BTreeMap<i64, BTreeMap<String, BTreeMap<String, Sums>>> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(read("hourly usage"))? {
            let at_ms: i64 = row.get(8).map_err(read("hourly usage"))?;
            let hour = by_hour.entry(at_ms.div_euclid(HOUR_MS) * HOUR_MS).or_default();
            let sums = slot(slot(hour, text(row, 0)?), text(row, 1)?);
            sums.add_attempt(row, 2)?;
        }
        let mut hours = Vec::new();
        for (hour_ms, providers) in by_hour {
            let hour = time("analytics_event", hour_ms)?;
            for (provider, keys) in providers {
                for (key, sums) in keys {
                    hours.push(HourlyRow {
                        hour,
                        provider: provider.clone(),
                        key,
                        requests: sums.n,
                        successes: sums.successes,
                        failures: sums.n - sums.successes,
                        avg_latency_ms: sums.avg_latency_ms(),
                    });
                }
            }
        }
        Ok(HourlyReport { date, hours })
    }

    /// Failed attempts per error class in `[start, end)`, with the keys involved.
    ///
    /// # Errors
    /// [`StoreError::Read`] when the table cannot be read, [`StoreError::Damaged`] when a
    /// count is negative.
    pub fn errors(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ErrorReport, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached(
                "SELECT error_class, provider, key_id, COUNT(*)
                 FROM analytics_event
                 WHERE kind = 'attempt' AND error_class IS NOT NULL
                   AND at_ms >= ?1 AND at_ms < ?2
                 GROUP BY error_class, provider, key_id",
            )
            .map_err(read("error classes"))?;
        type ClassRow = (String, Option<String>, Option<String>, i64);
        let rows: Vec<ClassRow> = stmt
            .query_map(params![ms(start), ms(end)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(read("error classes"))?
            .collect::<Result<_, _>>()
            .map_err(read("error classes"))?;
        let mut classes: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
        for (class, provider, key, n) in rows {
            let entry = classes.entry(class).or_default();
            entry.0 += count("analytics_event", n)?;
            if let (Some(provider), Some(key)) = (provider, key) {
                entry.1.push(format!("{provider}/{key}"));
            }
        }
        let mut errors: Vec<ErrorRow> = classes
            .into_iter()
            .map(|(class, (count, mut keys))| {
                keys.sort();
                keys.dedup();
                ErrorRow { class, count, keys }
            })
            .collect();
        // Stable sort: equal counts keep the class order the map gave.
        errors.sort_by_key(|row| std::cmp::Reverse(row.count));
        Ok(ErrorReport { start, end, errors })
    }

    /// Deletes every event before `older_than` and says how many went.
    ///
    /// # Errors
    /// [`StoreError::Write`] when the rows cannot be deleted; none are.
    pub fn prune(&mut self, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        self.store
            .conn
            .execute("DELETE FROM analytics_event WHERE at_ms < ?1", params![ms(older_than)])
            .map_err(write("analytics retention"))
    }
}

/// A row as stored, before its kind and time are checked.
struct RawEvent {
    at_ms: i64,
    kind: String,
    request_id: String,
    client: Option<String>,
    route: String,
    provider: Option<String>,
    key: Option<String>,
    model: Option<String>,
    success: bool,
    error_class: Option<String>,
    quota_error: bool,
    status: Option<i64>,
    latency_ms: f64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost: Option<f64>,
    tags: Option<String>,
}

impl RawEvent {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            at_ms: row.get(0)?,
            kind: row.get(1)?,
            request_id: row.get(2)?,
            client: row.get(3)?,
            route: row.get(4)?,
            provider: row.get(5)?,
            key: row.get(6)?,
            model: row.get(7)?,
            success: row.get(8)?,
            error_class: row.get(9)?,
            quota_error: row.get(10)?,
            status: row.get(11)?,
            latency_ms: row.get(12)?,
            prompt_tokens: row.get(13)?,
            completion_tokens: row.get(14)?,
            cost: row.get(15)?,
            tags: row.get(16)?,
        })
    }

    fn into_event(self) -> Result<AnalyticsEvent, StoreError> {
        let what = "analytics_event";
        let kind = EventKind::from_name(&self.kind)
            .ok_or_else(|| StoreError::Damaged { what, detail: format!("kind {:?}", self.kind) })?;
        let status = self
            .status
            .map(|status| {
                u16::try_from(status)
                    .map_err(|_| StoreError::Damaged { what, detail: format!("status {status}") })
            })
            .transpose()?;
        Ok(AnalyticsEvent {
            at: time(what, self.at_ms)?,
            kind,
            request_id: self.request_id,
            client: self.client,
            route: self.route,
            provider: self.provider,
            key: self.key,
            model: self.model,
            success: self.success,
            error_class: self.error_class,
            quota_error: self.quota_error,
            status,
            latency_ms: self.latency_ms,
            prompt_tokens: count(what, self.prompt_tokens)?,
            completion_tokens: count(what, self.completion_tokens)?,
            cost: self.cost,
            tags: self
                .tags
                .as_deref()
                .map(|tags| {
                    tags.split(',').filter(|tag| !tag.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
        })
    }
}
