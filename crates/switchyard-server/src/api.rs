//! The admin API's JSON, written once: the gateway serializes these types and `switchyard
//! status`, `stats` and `demo` deserialize the very same ones, so a field renamed or added on
//! one side cannot drift from the other unnoticed (an answer missing a field fails to read,
//! with the field named, instead of defaulting). Fields a newer gateway adds are ignored by
//! an older reader.
//!
//! `GET /admin/status` answers [`StatusView`]; `GET /admin/analytics/usage`, `/hourly` and
//! `/errors` answer [`UsageView`], [`HourlyView`] and [`ErrorsView`].

use serde::{Deserialize, Serialize};
// The analytics answers are the store's reports, serialized as they are: the store derives
// both directions, so the gateway and the CLI read and write one definition.
pub use switchyard_store::analytics::{
    ClientUsage as ClientUsageView, ErrorReport as ErrorsView, ErrorRow as ErrorClassView,
    HourlyReport as HourlyView, HourlyRow as HourView, KeyUsage as KeyUsageView,
    UsageReport as UsageView,
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
