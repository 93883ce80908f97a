//! How Anthropic says something failed, read into the one [`ErrorKind`] vocabulary: error
//! bodies of non-2xx responses, `error` events inside a stream, and the
//! `anthropic-ratelimit-*` / `retry-after` headers that come with both.
//!
//! Classification matches `error.type` first and the status second; a message substring is
//! read only where Anthropic uses one type for several causes (a 400 `invalid_request_error`
//! is a prompt too long, an empty credit balance or a spend cap as often as a bad request).

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName};
use switchyard_core::bounded::snippet;
use switchyard_core::hints::{StatedHints, settle};
use switchyard_core::http::AdapterError;
use switchyard_core::ratelimit::{
    clamp_reset, parse_count, parse_retry_after, parse_retry_after_ms, parse_rfc3339,
};
use switchyard_core::{
    ErrorKind, LimitReading, LimitScope, LimitUnit, ProviderError, ProviderId, RateLimitSnapshot,
    Reset,
};

use crate::wire::ErrorBody;

/// How much of an unreadable error body is quoted in the message.
const BODY_SNIPPET_CHARS: usize = 300;

/// A failure of this adapter before or after the HTTP exchange: a request it will not send,
/// an answer it cannot read, a stream that broke.
#[derive(Debug, thiserror::Error)]
pub enum AnthropicError {
    /// The request uses something Anthropic cannot take, and dropping it would change the
    /// answer's meaning.
    #[error("request refused before sending to anthropic: {0}")]
    Refused(String),
    /// A body or event that is not what the Messages API sends.
    #[error("unreadable {what} from anthropic")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The stream opened more content blocks than any answer has.
    #[error("anthropic stream opened more than {limit} content blocks")]
    TooManyBlocks {
        /// The bound, [`crate::MAX_BLOCKS`].
        limit: usize,
    },
    /// The stream ended without `message_stop`: the connection was cut.
    #[error("anthropic stream ended before message_stop")]
    Cut,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for anthropic")]
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
    /// Anthropic reported a failure inside the stream (`event: error`).
    #[error("{kind} reported in the anthropic stream: {message}")]
    InStream {
        /// The classification of the error's type.
        kind: ErrorKind,
        /// Anthropic's words.
        message: String,
    },
}

impl AnthropicError {
    /// The failure in the shared vocabulary.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(_) => ErrorKind::BadRequest,
            // Configuration: no other attempt fixes it; the operator must.
            Self::BaseUrl { .. } => ErrorKind::BadRequest,
            Self::Malformed { .. } | Self::TooManyBlocks { .. } => ErrorKind::MalformedResponse,
            Self::Cut | Self::Client(_) => ErrorKind::Network,
            Self::InStream { kind, .. } => *kind,
        }
    }
}

// Classified by its kind: `Classify` comes with `AdapterError`.
impl AdapterError for AnthropicError {
    fn kind(&self) -> ErrorKind {
        AnthropicError::kind(self)
    }
}

/// Classifies an error by Anthropic's `error.type`, the HTTP status (when there was one) and
/// the message.
pub fn classify(error_type: &str, status: Option<u16>, message: &str) -> ErrorKind {
    match error_type {
        "rate_limit_error" => ErrorKind::RateLimited { scope: LimitScope::Minute },
        "overloaded_error" => ErrorKind::Overloaded,
        "authentication_error" => ErrorKind::InvalidKey,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::ModelNotFound,
        "billing_error" => ErrorKind::BillingStopped,
        "timeout_error" => ErrorKind::Timeout,
        "api_error" => ErrorKind::ServerError,
        // Cloudflare's 32 MB body limit on Messages: no other key takes it, but another
        // model or provider (with a larger limit, or a shorter encoding) may, so move on.
        "request_too_large" => ErrorKind::RequestTooLarge,
        "invalid_request_error" => classify_invalid_request(message),
        _ => classify_status(status, message),
    }
}

/// A 400 `invalid_request_error` is also how Anthropic reports a prompt over the context
/// window, an output limit over the model's (`max_tokens: 21333 > 4096, which is the maximum
/// allowed number of output tokens for ...`: another model may allow it), an empty credit
/// balance and a reached spend cap.
fn classify_invalid_request(message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if lower.contains("prompt is too long")
        || (lower.starts_with("max_tokens") && lower.contains("maximum allowed number of"))
    {
        ErrorKind::ContextTooLong
    } else if lower.contains("credit balance is too low")
        || lower.contains("reached your specified api usage limits")
    {
        ErrorKind::BillingStopped
    } else {
        ErrorKind::BadRequest
    }
}

/// For a body without a known `error.type` (a proxy's HTML page, an empty body).
fn classify_status(status: Option<u16>, message: &str) -> ErrorKind {
    match status {
        Some(429) => ErrorKind::RateLimited { scope: LimitScope::Minute },
        Some(529 | 503) => ErrorKind::Overloaded,
        Some(401) => ErrorKind::InvalidKey,
        Some(402) => ErrorKind::BillingStopped,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::ModelNotFound,
        Some(408 | 504) => ErrorKind::Timeout,
        Some(413) => ErrorKind::RequestTooLarge,
        Some(400 | 422) => classify_invalid_request(message),
        Some(status) if status >= 500 => ErrorKind::ServerError,
        Some(_) | None => ErrorKind::MalformedResponse,
    }
}

/// The error of a non-2xx response: its kind, Anthropic's message, the retry delay from the
/// headers and, for a spend cap, the time access returns (no later than
/// [`MAX_HINT`](switchyard_core::MAX_HINT) after `now`).
pub fn error_from_response(
    provider: &ProviderId,
    status: u16,
    body: &[u8],
    rate_limits: RateLimitSnapshot,
    now: DateTime<Utc>,
) -> ProviderError {
    let (kind, message, request_id) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => (
            classify(&parsed.error.kind, Some(status), &parsed.error.message),
            parsed.error.message,
            parsed.request_id,
        ),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            (classify_status(Some(status), &text), snippet(&text, BODY_SNIPPET_CHARS), None)
        }
    };
    let mut error = ProviderError::new(kind, provider.clone(), message)
        .with_status(status)
        .with_retry_after(rate_limits.retry_after);
    if kind == ErrorKind::BillingStopped {
        let regained = regain_access_at(&error.message);
        error = error.with_resets_at(regained, now);
    }
    error.rate_limits = rate_limits;
    error.upstream_request_id = request_id;
    // A 429's delay, window and reset from every hint: `retry-after`, the spent buckets'
    // resets, and a delay in the message.
    let stated = StatedHints::from_message(&error.message, now);
    settle(error, &stated, now)
}

/// The time in "You will regain access on 2026-04-01 at 00:00 UTC." (a spend cap's message).
pub fn regain_access_at(message: &str) -> Option<DateTime<Utc>> {
    const MARKER: &str = "regain access on ";
    let start = message.find(MARKER)? + MARKER.len();
    let rest = &message[start..];
    let end = rest.find(" UTC")?;
    let at = NaiveDateTime::parse_from_str(&rest[..end], "%Y-%m-%d at %H:%M").ok()?;
    Some(at.and_utc())
}

/// Reads `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
/// and `retry-after-ms` / `retry-after` (seconds or an HTTP date, read against `now`).
/// Anthropic's buckets refill continuously over a minute, so every reading is per-minute.
pub fn rate_limits_from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
    let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    let number = |name: &HeaderName| text(name).and_then(parse_count);
    let mut snapshot = RateLimitSnapshot::default();
    for (unit, [limit, remaining, reset]) in &BUCKETS {
        let limit = number(limit);
        let remaining = number(remaining);
        // A reset from outside is held to at most MAX_HINT from now.
        let reset = text(reset).and_then(parse_rfc3339).map(|at| Reset::At(clamp_reset(at, now)));
        if limit.is_some() || remaining.is_some() || reset.is_some() {
            snapshot.readings.push(LimitReading {
                unit: *unit,
                scope: LimitScope::Minute,
                limit,
                remaining,
                reset,
            });
        }
    }
    snapshot.retry_after = text(&RETRY_AFTER_MS).and_then(parse_retry_after_ms).or_else(|| {
        text(&reqwest::header::RETRY_AFTER).and_then(|value| parse_retry_after(value, now))
    });
    snapshot
}

/// `anthropic-ratelimit-{bucket}-{limit,remaining,reset}` by unit, named once: the headers
/// are read on every response.
static BUCKETS: [(LimitUnit, [HeaderName; 3]); 4] = [
    (
        LimitUnit::Requests,
        [
            HeaderName::from_static("anthropic-ratelimit-requests-limit"),
            HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
            HeaderName::from_static("anthropic-ratelimit-requests-reset"),
        ],
    ),
    (
        LimitUnit::Tokens,
        [
            HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
            HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
            HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
        ],
    ),
    (
        LimitUnit::InputTokens,
        [
            HeaderName::from_static("anthropic-ratelimit-input-tokens-limit"),
            HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
            HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
        ],
    ),
    (
        LimitUnit::OutputTokens,
        [
            HeaderName::from_static("anthropic-ratelimit-output-tokens-limit"),
            HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
            HeaderName::from_static("anthropic-ratelimit-output-tokens-reset"),
        ],
    ),
];

static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn provider() -> ProviderId {
        ProviderId::new("anthropic")
    }

    /// Twelve days before the spend cap of the reference message lifts.
    fn now() -> DateTime<Utc> {
        parse_rfc3339("2026-03-20T00:00:00Z").expect("date")
    }

    #[track_caller]
    fn kind_of(status: u16, body: &str) -> ErrorKind {
        error_from_response(
            &provider(),
            status,
            body.as_bytes(),
            RateLimitSnapshot::default(),
            now(),
        )
        .kind
    }

    fn body(error_type: &str, message: &str) -> String {
        serde_json::json!({"type": "error", "error": {"type": error_type, "message": message},
            "request_id": "req_011CYhr1kdGzCrPHfrhibMen"})
        .to_string()
    }

    #[test]
    fn each_documented_error_body_gets_its_kind() {
        let cases = [
            (
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization (0000) of 40,000 input tokens per minute.",
                ErrorKind::RateLimited { scope: LimitScope::Minute },
            ),
            (529, "overloaded_error", "Overloaded", ErrorKind::Overloaded),
            (401, "authentication_error", "invalid x-api-key", ErrorKind::InvalidKey),
            (
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
                ErrorKind::PermissionDenied,
            ),
            (404, "not_found_error", "model: claude-nonexistent", ErrorKind::ModelNotFound),
            (
                400,
                "invalid_request_error",
                "prompt is too long: 208310 tokens > 200000 maximum",
                ErrorKind::ContextTooLong,
            ),
            (
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                ErrorKind::BillingStopped,
            ),
            (
                400,
                "invalid_request_error",
                "You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC.",
                ErrorKind::BillingStopped,
            ),
            (
                400,
                "invalid_request_error",
                "max_tokens: 21333 > 4096, which is the maximum allowed number of output tokens for claude-3-haiku",
                ErrorKind::ContextTooLong,
            ),
            (500, "api_error", "Internal server error", ErrorKind::ServerError),
            (
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
                ErrorKind::RequestTooLarge,
            ),
        ];
        for (status, error_type, message, kind) in cases {
            assert_eq!(
                kind_of(status, &body(error_type, message)),
                kind,
                "{error_type}: {message}"
            );
        }
    }

    #[test]
    fn bodies_that_are_not_anthropic_json_fall_back_to_the_status() {
        assert_eq!(kind_of(529, "<html>overloaded</html>"), ErrorKind::Overloaded);
        assert_eq!(kind_of(502, "Bad Gateway"), ErrorKind::ServerError);
        assert_eq!(kind_of(429, ""), ErrorKind::RateLimited { scope: LimitScope::Minute });
        assert_eq!(kind_of(401, "nope"), ErrorKind::InvalidKey);
        assert_eq!(kind_of(418, "teapot"), ErrorKind::MalformedResponse);
    }

    #[test]
    fn a_spend_cap_carries_the_time_access_returns() {
        let error = error_from_response(
            &provider(),
            400,
            body("invalid_request_error", "You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC.").as_bytes(),
            RateLimitSnapshot::default(),
            now(),
        );
        assert_eq!(
            error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
            Some("2026-04-01T00:00:00+00:00")
        );
        assert_eq!(error.upstream_request_id.as_deref(), Some("req_011CYhr1kdGzCrPHfrhibMen"));
        let no_credit = error_from_response(
            &provider(),
            400,
            body(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API.",
            )
            .as_bytes(),
            RateLimitSnapshot::default(),
            now(),
        );
        assert_eq!(no_credit.resets_at, None);
    }

    #[test]
    fn headers_become_per_minute_readings_and_a_retry_delay() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-01-15T12:00:59Z"),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            ("anthropic-ratelimit-input-tokens-reset", "2026-01-15T12:00:01Z"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("retry-after", "17"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let now = parse_rfc3339("2026-01-15T12:00:00Z").expect("date");
        let snapshot = rate_limits_from_headers(&headers, now);
        let requests = snapshot.reading(LimitUnit::Requests).expect("requests");
        assert_eq!((requests.limit, requests.remaining), (Some(50), Some(49)));
        assert_eq!(
            requests.reset,
            Some(Reset::At(parse_rfc3339("2026-01-15T12:00:59Z").expect("date")))
        );
        assert_eq!(requests.scope, LimitScope::Minute);
        let input = snapshot.reading(LimitUnit::InputTokens).expect("input tokens");
        assert_eq!(input.remaining, Some(39_000));
        let output = snapshot.reading(LimitUnit::OutputTokens).expect("output tokens");
        assert_eq!((output.limit, output.remaining, output.reset), (Some(8000), None, None));
        assert_eq!(snapshot.reading(LimitUnit::Tokens), None);
        assert_eq!(snapshot.retry_after, Some(Duration::from_secs(17)));
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        headers.insert("retry-after-ms", HeaderValue::from_static("1250"));
        let snapshot = rate_limits_from_headers(&headers, DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(snapshot.retry_after, Some(Duration::from_millis(1250)));
        assert!(snapshot.readings.is_empty());
    }

    #[test]
    fn a_rate_limit_error_keeps_the_retry_delay_of_its_headers() {
        let snapshot = RateLimitSnapshot {
            retry_after: Some(Duration::from_secs(9)),
            ..RateLimitSnapshot::default()
        };
        let error = error_from_response(
            &provider(),
            429,
            body("rate_limit_error", "Rate limited").as_bytes(),
            snapshot,
            now(),
        );
        assert_eq!(switchyard_core::Classify::retry_after(&error), Some(Duration::from_secs(9)));
        assert_eq!(error.status, Some(429));
        assert_eq!(error.message, "Rate limited");
    }
}
