//! Error bodies and rate-limit headers of the OpenAI family, read into Switchyard's one
//! classification. Pure functions of the status, the body and the headers.
//!
//! Codes and types are matched first; message text only where the provider puts the meaning
//! nowhere else (the window of a `rate_limit_exceeded`, "Request too large").

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use switchyard_core::ratelimit::{
    parse_count, parse_go_duration, parse_retry_after, parse_retry_after_ms, parse_try_again_in,
};
use switchyard_core::{ErrorKind, LimitReading, LimitScope, LimitUnit, RateLimitSnapshot, Reset};

use crate::Preset;

/// An error report as the upstream wrote it, whatever its shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireError {
    /// A numeric code in the body (OpenRouter's `error.code`), read as an HTTP status.
    pub status: Option<u16>,
    /// The message.
    pub message: String,
    /// `error.type` (`insufficient_quota`, `invalid_request_error`, `rate_limited`).
    pub kind: Option<String>,
    /// `error.code` as text (`rate_limit_exceeded`, `1300`).
    pub code: Option<String>,
    /// Rate-limit headers quoted inside the body (OpenRouter's `error.metadata.headers`:
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` in epoch milliseconds).
    pub quoted_headers: Vec<(String, String)>,
    /// Whether OpenRouter names its in-flight budget as the limit hit
    /// (`error.metadata.limit_source: "openrouter_in_flight_budget"`): a 402 that passes.
    pub in_flight_budget: bool,
    /// Whether the metadata carries a moderation verdict (OpenRouter's `reasons` or
    /// `flagged_input` on a 403).
    pub moderated: bool,
}

impl WireError {
    /// The limit reading and reset time quoted in the body, if any, over the window the
    /// message names.
    pub fn quoted_limit(&self) -> Option<(LimitReading, Option<DateTime<Utc>>)> {
        let quoted = |name: &str| {
            self.quoted_headers
                .iter()
                .find(|(header, _)| header.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
        };
        let limit = quoted("x-ratelimit-limit").and_then(parse_count);
        let remaining = quoted("x-ratelimit-remaining").and_then(parse_count);
        let resets_at = quoted("x-ratelimit-reset")
            .and_then(|value| value.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        if limit.is_none() && remaining.is_none() && resets_at.is_none() {
            return None;
        }
        let reading = LimitReading {
            unit: LimitUnit::Requests,
            scope: scope_in_message(&self.message),
            limit,
            remaining,
            reset: resets_at.map(Reset::At),
        };
        Some((reading, resets_at))
    }
}

/// Reads an error body: `{"error": {...}}` (OpenAI, Groq, OpenRouter), `{"error": "..."}`,
/// Mistral's top-level `{"message", "type", "code"}` and `{"detail": ...}`, and the list
/// `[{"error": {...}}]` Gemini's OpenAI-compatible endpoint answers (its first entry). `None`
/// when the body is not JSON or says nothing recognisable.
pub fn parse_error_body(bytes: &[u8]) -> Option<WireError> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let value = match &value {
        Value::Array(items) => items.first()?,
        _ => &value,
    };
    let error = parse_error_value(value);
    let said_nothing = error.message.is_empty() && error.kind.is_none() && error.code.is_none();
    (!said_nothing).then_some(error)
}

/// Reads an error report from a parsed body.
pub(crate) fn parse_error_value(value: &Value) -> WireError {
    let object = match value.get("error") {
        Some(Value::String(message)) => {
            return WireError { message: message.clone(), ..WireError::default() };
        }
        Some(error @ Value::Object(_)) => error,
        _ => value,
    };
    let code_value = object.get("code");
    let status = code_value.and_then(|code| match code {
        Value::Number(number) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    });
    let code = code_value.and_then(|code| match code {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    });
    let message = match (object.get("message"), object.get("detail")) {
        (Some(Value::String(message)), _) => message.clone(),
        (_, Some(Value::String(detail))) => detail.clone(),
        // Mistral's 422 validation errors: a list of {loc, msg, type}.
        (_, Some(Value::Array(details))) => details
            .iter()
            .filter_map(|detail| detail.get("msg").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    };
    let kind = object.get("type").and_then(Value::as_str).map(str::to_owned);
    let quoted_headers = object
        .pointer("/metadata/headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| {
                    let value = match value {
                        Value::String(text) => text.clone(),
                        Value::Number(number) => number.to_string(),
                        _ => return None,
                    };
                    Some((name.clone(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    let metadata = object.get("metadata");
    let in_flight_budget = metadata
        .and_then(|metadata| metadata.get("limit_source"))
        .and_then(Value::as_str)
        .is_some_and(|source| source == "openrouter_in_flight_budget");
    let moderated = metadata.is_some_and(|metadata| {
        ["reasons", "flagged_input"].iter().any(|field| metadata.get(*field).is_some())
    });
    WireError { status, message, kind, code, quoted_headers, in_flight_budget, moderated }
}

/// The window a rate-limit message names: `(RPM)`/`(TPM)` per minute, `(RPD)`/`(TPD)` per
/// day, OpenRouter's `free-models-per-min`/`-per-day`.
pub fn scope_in_message(message: &str) -> LimitScope {
    let lower = message.to_ascii_lowercase();
    if ["(rpd)", "(tpd)", "per day", "per-day"].iter().any(|mark| lower.contains(mark)) {
        LimitScope::Day
    } else if ["(rpm)", "(tpm)", "per min", "per-min"].iter().any(|mark| lower.contains(mark)) {
        LimitScope::Minute
    } else if lower.contains("per month") || lower.contains("monthly") {
        LimitScope::Month
    } else {
        LimitScope::Unknown
    }
}

/// Classifies a failed call from its HTTP status (200 for an error inside a 200 body or a
/// stream) and its error report, if the body had one.
pub fn classify(status: u16, error: Option<&WireError>) -> ErrorKind {
    let Some(error) = error else {
        return classify_status(status).unwrap_or(if (200..300).contains(&status) {
            ErrorKind::MalformedResponse
        } else {
            ErrorKind::BadRequest
        });
    };
    // OpenRouter reports the status inside a 200 body.
    let status = if (200..300).contains(&status) { error.status.unwrap_or(status) } else { status };
    let code = error.code.as_deref().unwrap_or_default();
    let kind = error.kind.as_deref().unwrap_or_default();
    let message = error.message.to_ascii_lowercase();
    if code == "insufficient_quota" || kind == "insufficient_quota" || status == 402 {
        return ErrorKind::BillingStopped;
    }
    if code == "invalid_api_key" || status == 401 {
        return ErrorKind::InvalidKey;
    }
    if error.moderated || message.contains("flagged") || message.contains("moderation") {
        return ErrorKind::ContentFiltered;
    }
    if status == 403 {
        return ErrorKind::PermissionDenied;
    }
    if matches!(code, "model_not_found" | "model_decommissioned" | "1500")
        || kind == "invalid_model"
    {
        return ErrorKind::ModelNotFound;
    }
    if code == "context_length_exceeded"
        || message.contains("maximum context length")
        || message.contains("prompt is too long")
    {
        return ErrorKind::ContextTooLong;
    }
    if status == 413 || message.starts_with("request too large") {
        return ErrorKind::RequestTooLarge;
    }
    let rate_limited = status == 429
        || matches!(code, "rate_limit_exceeded" | "1300" | "slow_down")
        || matches!(kind, "rate_limited" | "rate_limit_error" | "requests" | "tokens");
    if rate_limited {
        // Mistral answers capacity shortages with the same 429 body as rate limits; only
        // the message tells them apart.
        if message.contains("capacity exceeded") || message.contains("overloaded") {
            return ErrorKind::Overloaded;
        }
        return ErrorKind::RateLimited { scope: scope_in_message(&error.message) };
    }
    if code == "server_is_overloaded" || kind == "service_unavailable_error" {
        return ErrorKind::Overloaded;
    }
    classify_status(status).unwrap_or(if (200..300).contains(&status) {
        // An error report inside a 200 with no status of its own: the upstream failed.
        ErrorKind::ServerError
    } else {
        ErrorKind::BadRequest
    })
}

/// [`classify`], with what one provider means differently: Groq's 422 (a model's malformed
/// output, "may retry") is a server error, not a bad request; OpenRouter's 402 with a
/// `Retry-After` (or its in-flight budget as the limit source) is a wait, not an empty
/// account. `snapshot` holds the response's rate-limit headers.
pub fn classify_preset(
    preset: Preset,
    status: u16,
    error: Option<&WireError>,
    snapshot: &RateLimitSnapshot,
) -> ErrorKind {
    let reported = if (200..300).contains(&status) {
        error.and_then(|error| error.status).unwrap_or(status)
    } else {
        status
    };
    match preset {
        Preset::Groq if reported == 422 => ErrorKind::ServerError,
        Preset::OpenRouter if reported == 402 => {
            let in_flight = error.is_some_and(|error| error.in_flight_budget);
            if in_flight || snapshot.retry_after.is_some() {
                ErrorKind::RateLimited { scope: LimitScope::Minute }
            } else {
                ErrorKind::BillingStopped
            }
        }
        Preset::OpenAi
        | Preset::Groq
        | Preset::Mistral
        | Preset::OpenRouter
        | Preset::Compatible => classify(status, error),
    }
}

fn classify_status(status: u16) -> Option<ErrorKind> {
    match status {
        401 => Some(ErrorKind::InvalidKey),
        402 => Some(ErrorKind::BillingStopped),
        403 => Some(ErrorKind::PermissionDenied),
        404 => Some(ErrorKind::ModelNotFound),
        408 => Some(ErrorKind::Timeout),
        413 => Some(ErrorKind::RequestTooLarge),
        429 => Some(ErrorKind::RateLimited { scope: LimitScope::Unknown }),
        // 498: Groq's flex tier out of capacity; 529: overloaded at Anthropic-style proxies.
        498 | 503 | 529 => Some(ErrorKind::Overloaded),
        500..=599 => Some(ErrorKind::ServerError),
        _ => None,
    }
}

/// The delay an error asks for before the hints are settled: the headers' (already in
/// `snapshot`), else "try again in" in the message. A 429's delay is then settled from every
/// hint by [`switchyard_core::hints::settle`]; this one stays for the other kinds (a 503's
/// `retry-after`).
pub fn retry_delay(
    snapshot: &RateLimitSnapshot,
    error: Option<&WireError>,
) -> Option<std::time::Duration> {
    snapshot.retry_after.or_else(|| error.and_then(|error| parse_try_again_in(&error.message)))
}

/// OpenAI-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, by unit.
static OPENAI_HEADERS: [(LimitUnit, [HeaderName; 3]); 2] = [
    (
        LimitUnit::Requests,
        [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
        ],
    ),
    (
        LimitUnit::Tokens,
        [
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
        ],
    ),
];

/// Mistral-style `x-ratelimit-{limit,remaining}-{req,tokens}-{minute,day,month}`.
static MISTRAL_HEADERS: [(LimitUnit, LimitScope, [HeaderName; 2]); 6] = [
    (
        LimitUnit::Requests,
        LimitScope::Minute,
        [
            HeaderName::from_static("x-ratelimit-limit-req-minute"),
            HeaderName::from_static("x-ratelimit-remaining-req-minute"),
        ],
    ),
    (
        LimitUnit::Requests,
        LimitScope::Day,
        [
            HeaderName::from_static("x-ratelimit-limit-req-day"),
            HeaderName::from_static("x-ratelimit-remaining-req-day"),
        ],
    ),
    (
        LimitUnit::Requests,
        LimitScope::Month,
        [
            HeaderName::from_static("x-ratelimit-limit-req-month"),
            HeaderName::from_static("x-ratelimit-remaining-req-month"),
        ],
    ),
    (
        LimitUnit::Tokens,
        LimitScope::Minute,
        [
            HeaderName::from_static("x-ratelimit-limit-tokens-minute"),
            HeaderName::from_static("x-ratelimit-remaining-tokens-minute"),
        ],
    ),
    (
        LimitUnit::Tokens,
        LimitScope::Day,
        [
            HeaderName::from_static("x-ratelimit-limit-tokens-day"),
            HeaderName::from_static("x-ratelimit-remaining-tokens-day"),
        ],
    ),
    (
        LimitUnit::Tokens,
        LimitScope::Month,
        [
            HeaderName::from_static("x-ratelimit-limit-tokens-month"),
            HeaderName::from_static("x-ratelimit-remaining-tokens-month"),
        ],
    ),
];

static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// Reads the rate-limit headers of a response: OpenAI-style `x-ratelimit-*` (windows per the
/// preset), Mistral-style `x-ratelimit-*-req-minute` / `-tokens-month`, and
/// `retry-after-ms` before `retry-after`. The names come from static tables: this runs on
/// every response.
pub fn rate_limits(preset: Preset, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
    let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    let number = |name: &HeaderName| text(name).and_then(parse_count);
    let mut snapshot = RateLimitSnapshot::default();
    let (requests_scope, tokens_scope) = preset.header_scopes();
    for (unit, [limit, remaining, reset]) in &OPENAI_HEADERS {
        let scope = match unit {
            LimitUnit::Requests => requests_scope,
            _ => tokens_scope,
        };
        let reading = LimitReading {
            unit: *unit,
            scope,
            limit: number(limit),
            remaining: number(remaining),
            reset: text(reset).and_then(parse_go_duration).map(Reset::After),
        };
        if reading.limit.is_some() || reading.remaining.is_some() || reading.reset.is_some() {
            snapshot.readings.push(reading);
        }
    }
    for (unit, scope, [limit, remaining]) in &MISTRAL_HEADERS {
        let (limit, remaining) = (number(limit), number(remaining));
        if limit.is_some() || remaining.is_some() {
            let (unit, scope) = (*unit, *scope);
            snapshot.readings.push(LimitReading { unit, scope, limit, remaining, reset: None });
        }
    }
    snapshot.retry_after = text(&RETRY_AFTER_MS).and_then(parse_retry_after_ms).or_else(|| {
        text(&reqwest::header::RETRY_AFTER).and_then(|value| parse_retry_after(value, now))
    });
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kind(status: u16, body: &str) -> ErrorKind {
        classify(status, parse_error_body(body.as_bytes()).as_ref())
    }

    #[test]
    fn reference_bodies_classify() {
        let minute = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(kind(429, minute), ErrorKind::RateLimited { scope: LimitScope::Minute });
        let day = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-xxxx on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(kind(429, day), ErrorKind::RateLimited { scope: LimitScope::Day });
        let groq_tpd = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_x` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 97050, Requested 3619. Please try again in 9m38.016s.","type":"tokens","code":"rate_limit_exceeded"}}"#;
        assert_eq!(kind(429, groq_tpd), ErrorKind::RateLimited { scope: LimitScope::Day });
        let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(kind(429, quota), ErrorKind::BillingStopped);
        let old_quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":null}}"#;
        assert_eq!(kind(429, old_quota), ErrorKind::BillingStopped);
        let too_large = r#"{"error":{"message":"Request too large for model `llama` on tokens per minute (TPM): Limit 6000, Requested 12328, please reduce your message size and try again.","type":"tokens","code":"rate_limit_exceeded"}}"#;
        assert_eq!(kind(413, too_large), ErrorKind::RequestTooLarge);
        assert_eq!(kind(429, too_large), ErrorKind::RequestTooLarge);
        let mistral_422 = r#"{"detail":[{"loc":["body","stream_options"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}"#;
        assert_eq!(kind(422, mistral_422), ErrorKind::BadRequest);
        assert_eq!(
            parse_error_body(mistral_422.as_bytes()).map(|e| e.message),
            Some("Extra inputs are not permitted".to_owned())
        );
        let mistral_capacity = r#"{"object":"error","message":"Mistral Small capacity exceeded, currently overloaded","type":"rate_limited","param":null,"code":"1300"}"#;
        assert_eq!(kind(429, mistral_capacity), ErrorKind::Overloaded);
        let mistral_401 = r#"{"message":"Unauthorized","request_id":"c61f"}"#;
        assert_eq!(kind(401, mistral_401), ErrorKind::InvalidKey);
        let mistral_model = r#"{"object":"error","message":"Invalid model: nope","type":"invalid_model","param":null,"code":"1500"}"#;
        assert_eq!(kind(400, mistral_model), ErrorKind::ModelNotFound);
        let openrouter_day = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429}}"#;
        assert_eq!(kind(429, openrouter_day), ErrorKind::RateLimited { scope: LimitScope::Day });
        assert_eq!(
            kind(402, r#"{"error":{"message":"Insufficient credits","code":402}}"#),
            ErrorKind::BillingStopped
        );
        assert_eq!(
            kind(200, r#"{"error":{"message":"Provider returned error","code":502}}"#),
            ErrorKind::ServerError
        );
        assert_eq!(
            kind(403, r#"{"error":{"message":"Input was flagged by moderation","code":403}}"#),
            ErrorKind::ContentFiltered
        );
        assert_eq!(kind(502, "<html>Bad gateway</html>"), ErrorKind::ServerError);
        assert_eq!(kind(200, "<html>"), ErrorKind::MalformedResponse);
    }

    #[test]
    fn headers_read_with_each_presets_windows() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-limit-tokens", "18000"),
            ("x-ratelimit-remaining-tokens", "17997"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("retry-after", "2"),
        ] {
            headers.insert(name, value.parse().expect("header"));
        }
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let groq = rate_limits(Preset::Groq, &headers, now);
        let requests = groq.reading(LimitUnit::Requests).expect("requests");
        assert_eq!(requests.scope, LimitScope::Day);
        assert_eq!(requests.remaining, Some(14_370));
        assert_eq!(requests.reset, Some(Reset::After(Duration::from_millis(179_560))));
        let tokens = groq.reading(LimitUnit::Tokens).expect("tokens");
        assert_eq!(
            (tokens.scope, tokens.reset),
            (LimitScope::Minute, Some(Reset::After(Duration::from_secs(360))))
        );
        assert_eq!(groq.retry_after, Some(Duration::from_secs(2)));
        let openai = rate_limits(Preset::OpenAi, &headers, now);
        assert_eq!(openai.reading(LimitUnit::Requests).map(|r| r.scope), Some(LimitScope::Minute));
        headers.insert("retry-after-ms", "1500".parse().expect("header"));
        let openai = rate_limits(Preset::OpenAi, &headers, now);
        assert_eq!(openai.retry_after, Some(Duration::from_millis(1500)), "milliseconds win");
    }

    #[test]
    fn openrouter_quotes_its_limit_headers_in_the_body() {
        let body = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1791331200000"}}}}"#;
        let error = parse_error_body(body.as_bytes()).expect("an error");
        let (reading, resets_at) = error.quoted_limit().expect("quoted headers");
        assert_eq!(
            (reading.scope, reading.limit, reading.remaining),
            (LimitScope::Day, Some(50), Some(0))
        );
        assert_eq!(resets_at.map(|at| at.timestamp()), Some(1_791_331_200));
        assert_eq!(
            parse_error_body(br#"{"error":{"message":"x"}}"#).and_then(|e| e.quoted_limit()),
            None
        );
    }

    #[test]
    fn mistral_header_names() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit-req-minute", "60".parse().expect("header"));
        headers.insert("x-ratelimit-remaining-req-minute", "59".parse().expect("header"));
        headers.insert("x-ratelimit-limit-tokens-month", "1000000000".parse().expect("header"));
        let snapshot = rate_limits(Preset::Mistral, &headers, DateTime::<Utc>::UNIX_EPOCH);
        let minute = snapshot.reading_in(LimitUnit::Requests, LimitScope::Minute).expect("rpm");
        assert_eq!((minute.limit, minute.remaining), (Some(60), Some(59)));
        let month = snapshot.reading_in(LimitUnit::Tokens, LimitScope::Month).expect("month");
        assert_eq!(month.limit, Some(1_000_000_000));
    }

    #[test]
    fn retry_delay_falls_back_to_the_message() {
        let error =
            WireError { message: "Please try again in 1.5s.".into(), ..WireError::default() };
        let empty = RateLimitSnapshot::default();
        assert_eq!(retry_delay(&empty, Some(&error)), Some(Duration::from_millis(1500)));
        let headed = RateLimitSnapshot { retry_after: Some(Duration::from_secs(3)), ..empty };
        assert_eq!(retry_delay(&headed, Some(&error)), Some(Duration::from_secs(3)));
    }
}
