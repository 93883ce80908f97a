//! How Gemini says something failed, read into the one [`ErrorKind`] vocabulary.
//!
//! Gemini answers errors as `google.rpc.Status`: a canonical `status`, a message and typed
//! `details`. The details decide first (`ErrorInfo.reason` names an invalid key whatever the
//! status; `QuotaFailure` names the window of a spent quota; `RetryInfo` the delay), then the
//! canonical status, then the HTTP status. Gemini sends no rate-limit headers; the delay,
//! window and reset are settled from every hint by [`switchyard_core::hints::settle`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize as _;
use serde_json::Value;
use switchyard_core::bounded::snippet;
use switchyard_core::hints::{StatedHints, message_hint, quota_window, settle};
use switchyard_core::http::AdapterError;
use switchyard_core::ratelimit::parse_proto_duration;
use switchyard_core::{ErrorKind, LimitScope, ProviderError, ProviderId, RateLimitSnapshot};

pub use switchyard_core::hints::{is_zero_limit, next_pacific_midnight};

use crate::wire::{Detail, ErrorBody, Status};

/// How much of an unreadable error body is quoted in the message.
const BODY_SNIPPET_CHARS: usize = 300;

/// A failure of this adapter before or after the HTTP exchange: a request it will not send,
/// an answer it cannot read, a stream that broke, a prompt Gemini blocked.
#[derive(Debug, thiserror::Error)]
pub enum GeminiError {
    /// The request uses something Gemini cannot take, and dropping it would change the
    /// answer's meaning.
    #[error("request refused before sending to gemini: {0}")]
    Refused(String),
    /// A body or chunk that is not what the API sends.
    #[error("unreadable {what} from gemini")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// An answer with no candidate and no block reason: nothing to return.
    #[error("gemini answered without a candidate")]
    NoCandidate,
    /// Gemini blocked the prompt (`promptFeedback.blockReason`, no candidates).
    #[error("gemini blocked the prompt: {0}")]
    Blocked(String),
    /// The stream ended before a chunk carried a `finishReason`: the connection was cut.
    #[error("gemini stream ended before a finish reason")]
    Cut,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for gemini")]
    Client(#[source] reqwest::Error),
    /// The configured base URL is not an `http://` or `https://` URL (or the configuration
    /// holds a value no header may).
    #[error("provider {id}: base URL {url:?} is not an http(s) URL")]
    BaseUrl {
        /// The provider.
        id: ProviderId,
        /// The URL given.
        url: String,
    },
    /// Gemini reported a failure inside the stream (a chunk that is an error body).
    #[error("{kind} reported in the gemini stream: {message}")]
    InStream {
        /// The classification.
        kind: ErrorKind,
        /// Gemini's words.
        message: String,
    },
}

impl GeminiError {
    /// The failure in the shared vocabulary.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(_) => ErrorKind::BadRequest,
            // Configuration: no other attempt fixes it; the operator must.
            Self::BaseUrl { .. } => ErrorKind::BadRequest,
            Self::Malformed { .. } | Self::NoCandidate => ErrorKind::MalformedResponse,
            Self::Blocked(_) => ErrorKind::ContentFiltered,
            Self::Cut | Self::Client(_) => ErrorKind::Network,
            Self::InStream { kind, .. } => *kind,
        }
    }
}

// Classified by its kind: `Classify` comes with `AdapterError`.
impl AdapterError for GeminiError {
    fn kind(&self) -> ErrorKind {
        GeminiError::kind(self)
    }
}

/// The window a `QuotaFailure` names, by quota id or metric: a `PerDay` quota outranks a
/// `PerMinute` one (the longer wait decides when the key is usable again).
pub fn quota_scope(details: &[Detail]) -> LimitScope {
    details
        .iter()
        .flat_map(|detail| &detail.violations)
        .flat_map(|violation| [&violation.quota_id, &violation.quota_metric])
        .fold(LimitScope::Unknown, |scope, name| scope.longer(quota_window(name)))
}

/// Classifies a `google.rpc.Status` with the HTTP status it came with.
pub fn classify(http_status: u16, status: &Status) -> ErrorKind {
    let reasons = || status.details.iter().filter_map(|detail| detail.reason.as_deref());
    if reasons().any(|reason| {
        matches!(reason, "API_KEY_INVALID" | "API_KEY_EXPIRED" | "ACCESS_TOKEN_TYPE_UNSUPPORTED")
    }) {
        return ErrorKind::InvalidKey;
    }
    match status.status.as_str() {
        "RESOURCE_EXHAUSTED" => resource_exhausted(status),
        "UNAUTHENTICATED" => ErrorKind::InvalidKey,
        // A leaked or blocked key, a disabled API, no key at all.
        "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "NOT_FOUND" => ErrorKind::ModelNotFound,
        // "User location is not supported", "enable billing": this key's project cannot
        // use the API; another key might.
        "FAILED_PRECONDITION" => ErrorKind::PermissionDenied,
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => invalid_argument(&status.message),
        "UNAVAILABLE" => ErrorKind::Overloaded,
        // Gemini's error table lists "input context too long" under 500 INTERNAL: a prompt
        // over the model's window, which another model may take; retrying here never helps.
        "INTERNAL" if is_context_too_long(&status.message) => ErrorKind::ContextTooLong,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => ErrorKind::ServerError,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "CANCELLED" => ErrorKind::Network,
        _ => classify_http(http_status, status),
    }
}

fn resource_exhausted(status: &Status) -> ErrorKind {
    let scope = quota_scope(&status.details);
    if is_zero_limit(&status.message) {
        ErrorKind::QuotaExhausted { scope }
    } else {
        ErrorKind::RateLimited { scope }
    }
}

/// Whether a message says the prompt is over the model's context window: "input context too
/// long" (Gemini's error table), "The input token count (1234567) exceeds the maximum number
/// of tokens allowed (1048576).".
fn is_context_too_long(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("exceeds the maximum number of tokens")
        || lower.contains("context too long")
        || lower.contains("context is too long")
}

fn invalid_argument(message: &str) -> ErrorKind {
    if is_context_too_long(message) { ErrorKind::ContextTooLong } else { ErrorKind::BadRequest }
}

fn classify_http(http_status: u16, status: &Status) -> ErrorKind {
    match http_status {
        429 => resource_exhausted(status),
        400 | 422 => invalid_argument(&status.message),
        500 if is_context_too_long(&status.message) => ErrorKind::ContextTooLong,
        401 => ErrorKind::InvalidKey,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::ModelNotFound,
        503 => ErrorKind::Overloaded,
        408 | 504 => ErrorKind::Timeout,
        499 => ErrorKind::Network,
        500..=599 => ErrorKind::ServerError,
        _ => ErrorKind::MalformedResponse,
    }
}

/// The delay Gemini states: the longer of `RetryInfo.retryDelay` (whole seconds, rounded
/// down) and "Please retry in 38.9s." in the message.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    let retry_info = status
        .details
        .iter()
        .filter_map(|detail| detail.retry_delay.as_deref())
        .filter_map(parse_proto_duration)
        .max();
    retry_info.max(message_hint(&status.message, DateTime::<Utc>::UNIX_EPOCH).0)
}

/// The error of a non-2xx response. `now` dates a per-day quota's reset (next midnight
/// Pacific) and an HTTP-date `retry-after`.
pub fn error_from_response(
    provider: &ProviderId,
    http_status: u16,
    body: &[u8],
    rate_limits: RateLimitSnapshot,
    now: DateTime<Utc>,
) -> ProviderError {
    // `{"error": Status}`, or the list `[{"error": Status}]` Gemini's OpenAI-compatible
    // surface answers (and a proxy may pass on).
    let value = serde_json::from_slice::<Value>(body).ok();
    let listed = match &value {
        Some(Value::Array(items)) => items.first(),
        other => other.as_ref(),
    };
    let parsed = listed.and_then(|value| ErrorBody::deserialize(value).ok());
    let (status, mut stated) = match (parsed, &value) {
        (Some(parsed), Some(value)) => (parsed.error, StatedHints::from_value(value, now)),
        _ => {
            let message = snippet(&String::from_utf8_lossy(body), BODY_SNIPPET_CHARS);
            let stated = StatedHints::from_message(&message, now);
            (Status { code: http_status, message, ..Status::default() }, stated)
        }
    };
    // Every day Gemini counts ends at midnight Pacific, named in the body or not.
    stated.google_quota = true;
    let kind = classify(http_status, &status);
    let retry_after = retry_delay(&status).or(rate_limits.retry_after);
    let mut error = ProviderError::new(kind, provider.clone(), status.message)
        .with_status(http_status)
        .with_retry_after(retry_after);
    error.rate_limits = rate_limits;
    settle(error, &stated, now)
}

/// The `retry-after-ms` and `retry-after` headers, which Gemini itself does not send but a
/// proxy in front may.
pub use switchyard_core::retry_wire::retry_after_headers as rate_limits_from_headers;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z").expect("date").to_utc()
    }

    fn error(http_status: u16, body: &serde_json::Value) -> ProviderError {
        error_from_response(
            &ProviderId::new("gemini"),
            http_status,
            body.to_string().as_bytes(),
            RateLimitSnapshot::default(),
            now(),
        )
    }

    fn quota_429(message: &str, quota_id: &str, retry_delay: Option<&str>) -> serde_json::Value {
        let mut details = vec![json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id, "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "15"}]})];
        if let Some(delay) = retry_delay {
            details.push(
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
            );
        }
        json!({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}})
    }

    #[test]
    fn a_per_minute_429_cools_down_for_the_retry_delay() {
        let error = error(
            429,
            &quota_429(
                "You exceeded your current quota... limit: 15, model: gemini-2.5-flash\nPlease retry in 38.922534355s.",
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                Some("38s"),
            ),
        );
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
        // RetryInfo says 38s, rounded down; the message says 38.92s: the longer one.
        assert_eq!(error.retry_after, Some(Duration::new(38, 922_534_355)));
        assert_eq!(error.resets_at, None);
    }

    #[test]
    fn a_per_day_429_is_spent_until_pacific_midnight() {
        let error = error(
            429,
            &quota_429(
                "You exceeded your current quota",
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                None,
            ),
        );
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
        // 12:00 UTC on 15 January is 04:00 PST; the next Pacific midnight is 08:00 UTC on the 16th.
        assert_eq!(
            error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
            Some("2026-01-16T08:00:00+00:00")
        );
    }

    #[test]
    fn limit_zero_means_no_quota_in_this_tier() {
        let error = error(
            429,
            &quota_429(
                "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro",
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                Some("20s"),
            ),
        );
        assert_eq!(error.kind, ErrorKind::QuotaExhausted { scope: LimitScope::Day });
        assert_eq!(
            error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
            Some("2026-01-16T08:00:00+00:00"),
            "exhausted until the next midnight Pacific"
        );
        assert!(!is_zero_limit("limit: 05"));
        assert!(!is_zero_limit("limit: 0.5"));
        assert!(is_zero_limit("limit: 0"));
    }

    #[test]
    fn the_retry_delay_falls_back_to_the_message() {
        let error = error(
            429,
            &json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Resource exhausted. Please retry in 1.5s."}}),
        );
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Unknown });
        assert_eq!(error.retry_after, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn each_documented_error_body_gets_its_kind() {
        let cases = [
            (
                400,
                json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}}]}}),
                ErrorKind::InvalidKey,
            ),
            (
                401,
                json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED"}]}}),
                ErrorKind::InvalidKey,
            ),
            (
                403,
                json!({"error": {"code": 403, "message": "Your API key was reported as leaked. Please use another API key.", "status": "PERMISSION_DENIED"}}),
                ErrorKind::PermissionDenied,
            ),
            (
                404,
                json!({"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.", "status": "NOT_FOUND"}}),
                ErrorKind::ModelNotFound,
            ),
            (
                400,
                json!({"error": {"code": 400, "message": "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}),
                ErrorKind::ContextTooLong,
            ),
            (
                400,
                json!({"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}),
                ErrorKind::BadRequest,
            ),
            (
                400,
                json!({"error": {"code": 400, "message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}}),
                ErrorKind::PermissionDenied,
            ),
            (
                500,
                json!({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}),
                ErrorKind::ServerError,
            ),
            (
                503,
                json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
                ErrorKind::Overloaded,
            ),
            (
                504,
                json!({"error": {"code": 504, "message": "Deadline exceeded", "status": "DEADLINE_EXCEEDED"}}),
                ErrorKind::Timeout,
            ),
        ];
        for (http_status, body, kind) in cases {
            assert_eq!(error(http_status, &body).kind, kind, "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_status_json_fall_back_to_the_http_status() {
        let error_of = |status: u16, body: &str| {
            error_from_response(
                &ProviderId::new("gemini"),
                status,
                body.as_bytes(),
                RateLimitSnapshot::default(),
                now(),
            )
            .kind
        };
        assert_eq!(error_of(503, "<html>"), ErrorKind::Overloaded);
        assert_eq!(error_of(502, ""), ErrorKind::ServerError);
        assert_eq!(
            error_of(429, "slow down"),
            ErrorKind::RateLimited { scope: LimitScope::Unknown }
        );
        assert_eq!(error_of(404, "nope"), ErrorKind::ModelNotFound);
    }
}
