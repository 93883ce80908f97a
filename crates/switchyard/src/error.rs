//! The one typed error a caller gets when nothing could serve, named like the quota status so
//! a client, an operator and a dashboard read the same words.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{ErrorKind, ProviderError};

use crate::trace::Trace;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Every candidate's key is out of quota for its window.
    #[error("QUOTA_EXCEEDED: route {route}: all {n_keys} keys are out of quota{}", reset_text(*.earliest_reset))]
    QuotaExceeded {
        /// The route.
        route: String,
        /// Keys out of quota.
        n_keys: usize,
        /// When the first of them resets, if known.
        earliest_reset: Option<DateTime<Utc>>,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// Some keys still have quota but none could take this request now.
    #[error("PARTIAL_QUOTA: route {route}: {n_busy} of {n_keys} keys have quota left but none can take this request now{}", free_text(*.next_free))]
    PartialQuota {
        /// The route.
        route: String,
        /// Keys with quota left but busy or too small for this request.
        n_busy: usize,
        /// Keys considered.
        n_keys: usize,
        /// When the first frees, if known.
        next_free: Option<DateTime<Utc>>,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// Every key is invalid or billing-stopped.
    #[error(
        "INVALID_KEYS: route {route}: all {n_keys} keys are invalid, revoked or out of credit; replace or re-enable them"
    )]
    InvalidKeys {
        /// The route.
        route: String,
        /// Keys considered.
        n_keys: usize,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// Every attempt failed.
    #[error("ALL_PROVIDERS_FAILED: route {route}: {}", attempts_text(.trace))]
    AllProvidersFailed {
        /// The route.
        route: String,
        /// What the router did, with every attempt and its class.
        trace: Box<Trace>,
    },
    /// The request itself is wrong; it was not retried elsewhere.
    #[error("BAD_REQUEST: {source}")]
    BadRequest {
        /// The upstream's answer.
        #[source]
        source: Box<ProviderError>,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// The provider refused the content and the route does not move such requests elsewhere.
    #[error("CONTENT_FILTERED: {source}")]
    ContentFiltered {
        /// The upstream's answer.
        #[source]
        source: Box<ProviderError>,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// The request's deadline passed.
    #[error("DEADLINE_EXCEEDED: route {route}: no answer within {:.3}s after {} attempts", .after.as_secs_f64(), .trace.attempts.len())]
    DeadlineExceeded {
        /// The route.
        route: String,
        /// The deadline.
        after: Duration,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// No route of that name, and not a `provider/model` the configuration declares (as a
    /// route's target, or a model of its provider). Nothing is kept for a refused name.
    #[error("UNKNOWN_MODEL: no route or configured provider/model named {name:?}; valid: {}{}", .valid.join(", "), more_text(.valid.len(), *.n_valid))]
    UnknownModel {
        /// The name asked for, cut to 120 characters.
        name: String,
        /// Valid names (routes, then declared `provider/model`s), sorted, at most 20.
        valid: Vec<String>,
        /// How many valid names there are in all.
        n_valid: usize,
    },
    /// The quota backend failed and is configured to fail closed.
    #[error("QUOTA_BACKEND: {0}")]
    QuotaBackend(#[source] switchyard_quota::QuotaError),
    /// The route, or every provider it could use, is over its daily budget, and no
    /// candidate cheap enough is left.
    #[error("BUDGET_EXCEEDED: route {route}: spent ${spent:.4} of ${budget:.4} today and no cheaper candidate is left; the budget resets at {}", .resets_at.to_rfc3339())]
    BudgetExceeded {
        /// The route.
        route: String,
        /// Dollars spent on it today.
        spent: f64,
        /// Its daily budget in dollars (infinite when only providers have budgets).
        budget: f64,
        /// When the budget day ends.
        resets_at: DateTime<Utc>,
        /// What the router did.
        trace: Box<Trace>,
    },
    /// The router already has as many requests in flight as it is configured to take.
    #[error("OVERLOADED: {in_flight} requests in flight, the cap is {limit}; retry shortly")]
    Overloaded {
        /// Requests in flight when this one arrived.
        in_flight: u32,
        /// The configured cap.
        limit: u32,
    },
}

impl RouterError {
    /// The error's stable code, as the gateway sends it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::PartialQuota { .. } => "PARTIAL_QUOTA",
            Self::InvalidKeys { .. } => "INVALID_KEYS",
            Self::AllProvidersFailed { .. } => "ALL_PROVIDERS_FAILED",
            Self::BadRequest { .. } => "BAD_REQUEST",
            Self::ContentFiltered { .. } => "CONTENT_FILTERED",
            Self::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            Self::UnknownModel { .. } => "UNKNOWN_MODEL",
            Self::QuotaBackend(_) => "QUOTA_BACKEND",
            Self::Overloaded { .. } => "OVERLOADED",
            Self::BudgetExceeded { .. } => "BUDGET_EXCEEDED",
        }
    }

    /// What the router did, when it got as far as routing.
    pub fn trace(&self) -> Option<&Trace> {
        match self {
            Self::QuotaExceeded { trace, .. }
            | Self::PartialQuota { trace, .. }
            | Self::InvalidKeys { trace, .. }
            | Self::AllProvidersFailed { trace, .. }
            | Self::BadRequest { trace, .. }
            | Self::ContentFiltered { trace, .. }
            | Self::DeadlineExceeded { trace, .. }
            | Self::BudgetExceeded { trace, .. } => Some(trace),
            Self::UnknownModel { .. } | Self::QuotaBackend(_) | Self::Overloaded { .. } => None,
        }
    }

    /// When retrying could succeed, if the router knows (the earliest reset or free slot).
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::QuotaExceeded { earliest_reset, .. } => *earliest_reset,
            Self::PartialQuota { next_free, .. } => *next_free,
            Self::BudgetExceeded { resets_at, .. } => Some(*resets_at),
            Self::InvalidKeys { .. }
            | Self::AllProvidersFailed { .. }
            | Self::BadRequest { .. }
            | Self::ContentFiltered { .. }
            | Self::DeadlineExceeded { .. }
            | Self::UnknownModel { .. }
            | Self::QuotaBackend(_)
            | Self::Overloaded { .. } => None,
        }
    }
}

/// The most characters of a refused name an error repeats (a client can send megabytes).
pub(crate) const MAX_NAME_CHARS: usize = 120;
/// The most valid names an `UNKNOWN_MODEL` error lists.
pub(crate) const MAX_LISTED: usize = 20;

impl RouterError {
    /// The `UNKNOWN_MODEL` error for `name`, listing the first of `valid` (sorted).
    pub(crate) fn unknown_model(name: &str, valid: &[String]) -> Self {
        let mut shown: String = name.chars().take(MAX_NAME_CHARS).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        Self::UnknownModel {
            name: shown,
            valid: valid.iter().take(MAX_LISTED).cloned().collect(),
            n_valid: valid.len(),
        }
    }
}

fn more_text(n_listed: usize, n_valid: usize) -> String {
    if n_valid > n_listed { format!(" (and {} more)", n_valid - n_listed) } else { String::new() }
}

fn reset_text(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| format!("; the first resets at {}", at.to_rfc3339())).unwrap_or_default()
}

fn free_text(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| format!("; the first frees at {}", at.to_rfc3339())).unwrap_or_default()
}

fn attempts_text(trace: &Trace) -> String {
    if trace.attempts.is_empty() {
        return "no candidate could be called".to_owned();
    }
    let mut text = format!("{} attempts failed:", trace.attempts.len());
    for attempt in &trace.attempts {
        let class = attempt.error.map_or("ok", ErrorKind::as_str);
        let _ = write!(text, " {} {};", attempt.candidate, class);
    }
    text.pop();
    text
}

/// A router that cannot be built from what it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A route names a provider that was not added.
    #[error("route {route}: target {target} names provider {provider}, which is not configured")]
    UnknownProvider {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// The provider.
        provider: String,
    },
    /// A target cannot be read.
    #[error("route {route}: {source}")]
    Target {
        /// The route.
        route: String,
        /// Why.
        #[source]
        source: crate::target::TargetError,
    },
    /// A route has no target.
    #[error("route {0} has no targets")]
    EmptyRoute(String),
    /// Two routes share a name.
    #[error("route {0} is defined twice")]
    DuplicateRoute(String),
    /// A model that may be called under a daily budget has no price, so its calls could not
    /// be counted against the budget.
    #[error(
        "model {target} has no price but {budget} has a daily budget: give it a price (a free model declares a price of 0)"
    )]
    Unpriced {
        /// The `provider/model`.
        target: String,
        /// The budget it falls under: `route <name>` or `provider <name>`.
        budget: String,
    },
    /// Reading keys from a key source failed.
    #[error("reading keys from {source_name} failed: {message}")]
    Keys {
        /// The source.
        source_name: String,
        /// Its error, as text.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Candidate;

    #[test]
    fn messages_say_what_to_do() {
        let reset = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z").expect("date").to_utc();
        let error = RouterError::QuotaExceeded {
            route: "default".into(),
            n_keys: 5,
            earliest_reset: Some(reset),
            trace: Box::default(),
        };
        assert_eq!(error.code(), "QUOTA_EXCEEDED");
        assert_eq!(
            error.to_string(),
            "QUOTA_EXCEEDED: route default: all 5 keys are out of quota; the first resets at 2026-11-24T08:00:00+00:00"
        );
        assert_eq!(error.retry_at(), Some(reset));
    }

    #[test]
    fn unknown_model_lists_what_is_valid_and_cuts_a_long_name() {
        let valid: Vec<String> = (0..25).map(|n| format!("p/m{n:02}")).collect();
        let error = RouterError::unknown_model(&"x".repeat(10_000), &valid);
        assert_eq!(error.code(), "UNKNOWN_MODEL");
        let text = error.to_string();
        assert!(text.len() < 600, "{text}");
        assert!(text.contains("p/m00, p/m01") && text.ends_with("p/m19 (and 5 more)"), "{text}");
        let short = RouterError::unknown_model("nope", &valid[..2]);
        assert_eq!(
            short.to_string(),
            "UNKNOWN_MODEL: no route or configured provider/model named \"nope\"; valid: p/m00, p/m01"
        );
    }

    #[test]
    fn all_failed_lists_each_attempt_and_class() {
        let mut trace = Trace::default();
        for (key, kind) in [("g1", ErrorKind::ServerError), ("g2", ErrorKind::Timeout)] {
            trace.attempts.push(crate::trace::Attempt {
                candidate: Candidate::new("gemini", key, "flash"),
                fingerprint: switchyard_core::Fingerprint::of(key),
                error: Some(kind),
                status: None,
                latency: Duration::ZERO,
                upstream_request_id: None,
            });
        }
        let error = RouterError::AllProvidersFailed { route: "r".into(), trace: Box::new(trace) };
        assert_eq!(
            error.to_string(),
            "ALL_PROVIDERS_FAILED: route r: 2 attempts failed: gemini/flash [g1] server_error; gemini/flash [g2] timeout"
        );
    }
}
