//! The admin API's JSON, written once: the gateway serializes these types and `switchyard
//! status`, `stats` and `demo` deserialize the very same ones, so a field renamed or added on
//! one side cannot drift from the other unnoticed (an answer missing a field fails to read,
//! with the field named, instead of defaulting). Fields a newer gateway adds are ignored by
//! an older reader.
//!
//! `GET /admin/status` answers [`StatusView`]; `GET /admin/analytics/usage`, `/hourly` and
//! `/errors` answer [`UsageView`], [`HourlyView`] and [`ErrorsView`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use switchyard_store::analytics::{
    ClientUsage, ErrorReport, ErrorRow, HourlyReport, HourlyRow, KeyUsage, UsageReport,
};

/// `GET /admin/status`: every route, provider and key now, and what needs attention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// When the view was made, RFC 3339 in UTC.
    pub generated_at: String,
    /// `healthy`, `degraded` or `down`.
    pub health: String,
    /// Each route and whether it can serve.
    pub routes: Vec<RouteView>,
    /// Each provider with its keys.
    pub providers: Vec<ProviderView>,
    /// What needs attention.
    pub alerts: Vec<AlertView>,
}

/// One route: can it serve now?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// Its name.
    pub name: String,
    /// Whether some candidate can serve now.
    pub can_serve: bool,
    /// Its candidates.
    pub candidates: usize,
    /// Those available now.
    pub available: usize,
}

/// One provider and its keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Its name.
    pub name: String,
    /// `AVAILABLE`, `PARTIAL_QUOTA`, `PARTIAL_INVALID`, `QUOTA_EXCEEDED`, `INVALID_KEYS` or
    /// `DISABLED`.
    pub status: String,
    /// The zone its resets are written in (`America/Los_Angeles`, `UTC`).
    pub time_zone: String,
    /// Its keys.
    pub keys: Vec<KeyView>,
}

/// One key, its state the worst of its models'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    /// Its id.
    pub id: String,
    /// Its fingerprint (the key itself is never shown).
    pub fingerprint: String,
    /// `available`, `cooling`, `exhausted`, `billing_stopped`, `invalid` or `disabled`.
    pub state: String,
    /// Why, when not available.
    pub reason: Option<String>,
    /// When it comes back, in the provider's zone.
    pub until: Option<String>,
    /// The same instant in UTC.
    pub until_utc: Option<String>,
    /// Its models.
    pub models: Vec<ModelView>,
}

/// One candidate (key and model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// The model.
    pub model: String,
    /// Its state, as [`KeyView::state`].
    pub state: String,
    /// Why, when not available.
    pub reason: Option<String>,
    /// When it comes back, in the provider's zone.
    pub until: Option<String>,
    /// The same instant in UTC.
    pub until_utc: Option<String>,
    /// The circuit breaker: `closed`, `open` or `half_open`.
    pub circuit: String,
    /// The learned score, when it is a number.
    pub score: Option<f64>,
    /// Its quota windows.
    pub limits: Vec<LimitView>,
}

/// One limit's use in its current window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitView {
    /// `requests/day-1`, ...
    pub name: String,
    /// What it counts (`requests`, `tokens`).
    pub unit: String,
    /// Spent in the window.
    pub used: u64,
    /// The window's size.
    pub limit: u64,
    /// Left.
    pub remaining: u64,
    /// When it resets, in the provider's zone.
    pub resets_at: Option<String>,
    /// The same instant in UTC.
    pub resets_at_utc: Option<String>,
    /// For a limit learned from 429s rather than declared: how and from what. Absent for
    /// declared limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedView>,
}

/// How a limit nobody declared was learned: its window and the evidence that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedView {
    /// `minute` or `day`: the window the provider's 429 named.
    pub scope: String,
    /// `sliding` or `fixed`.
    pub window: String,
    /// The window's length in milliseconds.
    pub window_ms: u64,
    /// When the limit was last set, RFC 3339 in UTC.
    pub learned_at: String,
    /// How many accepted requests it was set from.
    pub from_accepted: u64,
    /// The provider's hint that set the window (`retry after 2.5s`), if there was one.
    pub hint: Option<String>,
    /// What set it last (`429`, `lowered on a further 429`, `raised: ...`).
    pub source: String,
    /// Corrections since it was first learned.
    pub corrections: u32,
}

/// A condition an operator should look at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// `provider_down`, `key_low_success` or `no_route`.
    pub kind: String,
    /// The provider it is about, if one.
    pub provider: Option<String>,
    /// The key it is about, if one.
    pub key: Option<String>,
    /// The route it is about, if one.
    pub route: Option<String>,
    /// In words.
    pub message: String,
}

/// `GET /admin/analytics/usage`: usage per key and per client over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    /// The window's first instant (included).
    pub start: DateTime<Utc>,
    /// The window's end (excluded).
    pub end: DateTime<Utc>,
    /// One row per provider and key, ordered by provider then key.
    pub keys: Vec<KeyUsageView>,
    /// One row per named client, ordered by client.
    pub clients: Vec<ClientUsageView>,
}

/// What one key did over a window (counted over its attempts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyUsageView {
    /// The provider.
    pub provider: String,
    /// The key's id.
    pub key: String,
    /// Attempts made with it.
    pub requests: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// Mean latency over its attempts, in milliseconds.
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
    /// What the requests it answered (or was tried last for) cost, in dollars.
    pub served_cost: f64,
}

/// What one client asked for over a window (counted over its requests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientUsageView {
    /// The client's name.
    pub client: String,
    /// Requests made.
    pub requests: u64,
    /// Of which answered successfully.
    pub successes: u64,
    /// What they cost, in dollars (those whose cost is known), streams included.
    pub cost: f64,
    /// Its requests whose cost is not known.
    pub uncosted: u64,
}

/// `GET /admin/analytics/hourly`: attempts per UTC hour and key over one UTC day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourlyView {
    /// The UTC day.
    pub date: NaiveDate,
    /// One row per hour with attempts and key, ordered by hour, provider, key.
    pub hours: Vec<HourView>,
}

/// One key's attempts in one UTC hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourView {
    /// The hour's first instant.
    pub hour: DateTime<Utc>,
    /// The provider.
    pub provider: String,
    /// The key's id.
    pub key: String,
    /// Attempts made.
    pub requests: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// Mean latency, in milliseconds.
    pub avg_latency_ms: f64,
}

/// `GET /admin/analytics/errors`: failed attempts per error class over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorsView {
    /// The window's first instant (included).
    pub start: DateTime<Utc>,
    /// The window's end (excluded).
    pub end: DateTime<Utc>,
    /// One row per class, most frequent first.
    pub errors: Vec<ErrorClassView>,
}

/// One error class over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorClassView {
    /// `rate_limited`, `invalid_key`, ...
    pub class: String,
    /// Attempts that failed with it.
    pub count: u64,
    /// The keys that met it, as `provider/key`, sorted, each once.
    pub keys: Vec<String>,
}

impl From<UsageReport> for UsageView {
    fn from(report: UsageReport) -> Self {
        Self {
            start: report.start,
            end: report.end,
            keys: report.keys.into_iter().map(KeyUsageView::from).collect(),
            clients: report.clients.into_iter().map(ClientUsageView::from).collect(),
        }
    }
}

impl From<KeyUsage> for KeyUsageView {
    fn from(row: KeyUsage) -> Self {
        Self {
            provider: row.provider,
            key: row.key,
            requests: row.requests,
            successes: row.successes,
            failures: row.failures,
            avg_latency_ms: row.avg_latency_ms,
            quota_errors: row.quota_errors,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cost: row.cost,
            uncosted: row.uncosted,
            served_cost: row.served_cost,
        }
    }
}

impl From<ClientUsage> for ClientUsageView {
    fn from(row: ClientUsage) -> Self {
        Self {
            client: row.client,
            requests: row.requests,
            successes: row.successes,
            cost: row.cost,
            uncosted: row.uncosted,
        }
    }
}

impl From<HourlyReport> for HourlyView {
    fn from(report: HourlyReport) -> Self {
        Self { date: report.date, hours: report.hours.into_iter().map(HourView::from).collect() }
    }
}

impl From<HourlyRow> for HourView {
    fn from(row: HourlyRow) -> Self {
        Self {
            hour: row.hour,
            provider: row.provider,
            key: row.key,
            requests: row.requests,
            successes: row.successes,
            failures: row.failures,
            avg_latency_ms: row.avg_latency_ms,
        }
    }
}

impl From<ErrorReport> for ErrorsView {
    fn from(report: ErrorReport) -> Self {
        Self {
            start: report.start,
            end: report.end,
            errors: report.errors.into_iter().map(ErrorClassView::from).collect(),
        }
    }
}

impl From<ErrorRow> for ErrorClassView {
    fn from(row: ErrorRow) -> Self {
        Self { class: row.class, count: row.count, keys: row.keys }
    }
}
