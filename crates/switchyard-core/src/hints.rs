//! Every retry hint a failed response carries, wherever the upstream put it, settled into one
//! delay, one window and one reset on the [`ProviderError`].
//!
//! Upstreams say "wait" in many places: the `retry-after-ms` and `retry-after` headers, the
//! reset of a spent `x-ratelimit-*` / `anthropic-ratelimit-*` bucket, Google's
//! `RetryInfo.retryDelay` and `QuotaFailure` in a `google.rpc.Status` body (native, wrapped in
//! `{"error": ...}`, or in the list `[{"error": ...}]` Gemini's OpenAI-compatible endpoint
//! answers), and the message ("Please try again in 1m2.5s", "Please retry in 37.4s", "retry
//! after 20 seconds", "resets at 2026-11-23T10:00:00Z"). The adapters read the headers into the
//! [`RateLimitSnapshot`]; [`StatedHints::from_body`] reads the body whatever the adapter, and
//! [`settle`] combines them by the precedence below. Every delay is clamped to
//! [`MAX_HINT`](crate::MAX_HINT) and every reset to it from now; text that is no duration gives no hint.
//!
//! # Precedence
//! 1. **The delay.** What the body states for this very error (`RetryInfo.retryDelay`, a
//!    delay or reset instant in the message; when several, the longest, as Google rounds
//!    `retryDelay` down to whole seconds) is the most specific hint, but never shorter than
//!    the header: `retry-after-ms`, else `retry-after` (the finer of two ways to write one
//!    hint). With neither, the longest reset among the spent buckets (`remaining: 0`), since
//!    all of them must refill.
//! 2. **The window.** The longest of the window the classification stated (a quota id with
//!    `PerDay` / `PerMinute`, `(RPD)` / `(TPM)` in the message), the one `QuotaFailure`
//!    names, and the windows of the spent buckets (Groq's `x-ratelimit-remaining-requests`,
//!    per day, at 0 is a day). Only when nothing names a window, a delay or spent reset of
//!    an hour or more makes it a day: no per-minute limit asks for an hour, but a window a
//!    provider named is more specific than a guess from a hint's length.
//! 3. **The reset.** An instant the upstream gave (already on the error, or "resets at" in
//!    the message) stands. Otherwise a day or month window resets at Google's next midnight
//!    Pacific for a Google quota, else at the reset of the spent bucket of that window, else
//!    after the delay. A minute window has no reset instant: its delay is its cooldown.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;
use serde_json::Value;

use crate::ratelimit::{
    clamp_reset, parse_count, parse_go_duration, parse_proto_duration, parse_rfc3339,
    parse_try_again_in,
};
use crate::{ErrorKind, LimitReading, LimitScope, LimitUnit, ProviderError, Reset, clamp_hint};

/// A delay at least this long, when no window is named, is taken for a day's.
pub const DAY_HINT: Duration = Duration::from_secs(60 * 60);

/// How much of a message is searched for a hint: upstream messages are a few hundred bytes,
/// and a hostile one must not cost more than this.
const MAX_MESSAGE_BYTES: usize = 4096;

/// At most this many `QuotaFailure` violations become readings.
const MAX_VIOLATIONS: usize = 8;

/// What a body stated about this error, beyond the headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatedHints {
    /// Google's `RetryInfo.retryDelay` (the longest, if several).
    pub retry_info: Option<Duration>,
    /// A delay written in the message.
    pub message: Option<Duration>,
    /// A reset instant written in the message ("resets at <RFC 3339>"), held to
    /// [`MAX_HINT`](crate::MAX_HINT) from now.
    pub resets_at: Option<DateTime<Utc>>,
    /// The window Google's `QuotaFailure` names ([`LimitScope::Unknown`] when none does).
    pub quota_scope: LimitScope,
    /// Whether the body is a Google quota failure, whose days end at midnight Pacific.
    pub google_quota: bool,
    /// Whether the message says the quota's limit is zero (`limit: 0`): no wait helps.
    pub zero_limit: bool,
    /// The violated quotas as readings (unit, window, `quotaValue` as the limit, none
    /// remaining).
    pub readings: Vec<LimitReading>,
}

impl StatedHints {
    /// The hints in an error message alone (a body that is no JSON, an Ollama error string).
    pub fn from_message(message: &str, now: DateTime<Utc>) -> Self {
        let message = head(message);
        let (delay, resets_at) = message_hint(message, now);
        Self { message: delay, resets_at, zero_limit: is_zero_limit(message), ..Self::default() }
    }

    /// The hints in an error body, whatever its shape: `{"error": {...}}`,
    /// `[{"error": {...}}]`, a bare status object, `{"error": "..."}`, or text.
    pub fn from_body(body: &[u8], now: DateTime<Utc>) -> Self {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => Self::from_value(&value, now),
            Err(_) => Self::from_message(&String::from_utf8_lossy(body), now),
        }
    }

    /// The hints in a parsed error body.
    pub fn from_value(value: &Value, now: DateTime<Utc>) -> Self {
        let value = match value {
            Value::Array(items) => items.first().unwrap_or(value),
            _ => value,
        };
        let status = match value.get("error") {
            Some(Value::String(message)) => return Self::from_message(message, now),
            Some(error @ Value::Object(_)) => error,
            _ => value,
        };
        let message = ["message", "detail"]
            .iter()
            .find_map(|field| status.get(*field).and_then(Value::as_str))
            .unwrap_or_default();
        let mut hints = Self::from_message(message, now);
        let details = status.get("details").and_then(Value::as_array).map(Vec::as_slice);
        for detail in details.unwrap_or_default() {
            let delay = detail.get("retryDelay").and_then(Value::as_str);
            if let Some(delay) = delay.and_then(parse_proto_duration) {
                hints.retry_info = hints.retry_info.max(Some(delay));
            }
            let violations = detail.get("violations").and_then(Value::as_array);
            for violation in violations.into_iter().flatten().take(MAX_VIOLATIONS) {
                hints.google_quota = true;
                hints.add_violation(violation);
            }
        }
        hints
    }

    fn add_violation(&mut self, violation: &Value) {
        let text = |field: &str| violation.get(field).and_then(Value::as_str).unwrap_or_default();
        let (id, metric) = (text("quotaId"), text("quotaMetric"));
        let scope = quota_window(id).longer(quota_window(metric));
        self.quota_scope = self.quota_scope.longer(scope);
        let limit = match violation.get("quotaValue") {
            Some(Value::String(value)) => parse_count(value),
            Some(Value::Number(value)) => value.as_u64(),
            _ => None,
        };
        let unit = quota_unit(id).or_else(|| quota_unit(metric));
        let unit = unit.filter(|_| scope != LimitScope::Unknown);
        if let Some(unit) = unit
            && self.readings.iter().all(|r| (r.unit, r.scope) != (unit, scope))
        {
            let reading = LimitReading { unit, scope, limit, remaining: Some(0), reset: None };
            self.readings.push(reading);
        }
    }

    /// The longest delay the body states, counting a reset instant as the time until it.
    pub fn delay(&self, now: DateTime<Utc>) -> Option<Duration> {
        let until_reset = self.resets_at.map(|at| until(at, now));
        [self.retry_info, self.message, until_reset].into_iter().flatten().max()
    }
}

impl LimitScope {
    /// The longer of two windows (`Unknown` < `Minute` < `Day` < `Month`): the longer wait
    /// decides when a key is usable again.
    #[must_use]
    pub fn longer(self, other: Self) -> Self {
        let rank = |scope: Self| match scope {
            Self::Unknown => 0,
            Self::Minute => 1,
            Self::Day => 2,
            Self::Month => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

/// The window a Google quota id or metric names: `PerDay` / `per_day` is a day, `PerMinute`
/// / `per_minute` a minute.
pub fn quota_window(name: &str) -> LimitScope {
    let lower = name.to_ascii_lowercase().replace(['_', '-'], "");
    if lower.contains("perday") {
        LimitScope::Day
    } else if lower.contains("perminute") {
        LimitScope::Minute
    } else {
        LimitScope::Unknown
    }
}

fn quota_unit(name: &str) -> Option<LimitUnit> {
    let lower = name.to_ascii_lowercase().replace(['_', '-'], "");
    if lower.contains("inputtoken") {
        Some(LimitUnit::InputTokens)
    } else if lower.contains("outputtoken") {
        Some(LimitUnit::OutputTokens)
    } else if lower.contains("token") {
        Some(LimitUnit::Tokens)
    } else if lower.contains("request") {
        Some(LimitUnit::Requests)
    } else {
        None
    }
}

/// Whether the message says the quota's limit is zero (`limit: 0, model: ...`), not
/// `limit: 05` or `limit: 0.5`.
pub fn is_zero_limit(message: &str) -> bool {
    message.match_indices("limit: 0").any(|(at, found)| {
        !message[at + found.len()..].starts_with(|c: char| c.is_ascii_digit() || c == '.')
    })
}

/// The next midnight in America/Los_Angeles after `now`: when Google's per-day quotas reset.
pub fn next_pacific_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&Los_Angeles).date_naive();
    let Some(tomorrow) = today.checked_add_days(Days::new(1)) else {
        return DateTime::<Utc>::MAX_UTC;
    };
    // Midnight exists on every Pacific date (the DST shifts happen at 02:00), so this is
    // never ambiguous or skipped; the end of chrono's range is the only way to miss it.
    Los_Angeles
        .from_local_datetime(&tomorrow.and_time(NaiveTime::MIN))
        .earliest()
        .map_or(DateTime::<Utc>::MAX_UTC, |at| at.with_timezone(&Utc))
}

/// The delay of the `retry-after-ms` and `retry-after` headers' values: milliseconds first (the
/// finer of two ways to write one hint, the order the OpenAI and Anthropic SDKs read them in),
/// else seconds or an HTTP date read against `now`.
pub fn header_delay(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    retry_after_ms
        .and_then(crate::ratelimit::parse_retry_after_ms)
        .or_else(|| retry_after.and_then(|value| crate::ratelimit::parse_retry_after(value, now)))
}

/// The first `MAX_MESSAGE_BYTES` of a message, cut on a character boundary.
fn head(message: &str) -> &str {
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// The delay and reset instant in a message, in the usual phrasings: "try again in 1m2.5s",
/// "Please retry in 37.4s", "retry after 20 seconds", "try again after 2 minutes", "resets at
/// 2026-11-23T10:00:00Z" (also "reset at", "resets on"). The first phrasing that reads wins.
pub fn message_hint(
    message: &str,
    now: DateTime<Utc>,
) -> (Option<Duration>, Option<DateTime<Utc>>) {
    let message = head(message);
    let lower = message.to_ascii_lowercase();
    let delay = parse_try_again_in(message).or_else(|| {
        ["retry in ", "retry after ", "try again after ", "wait "]
            .iter()
            .find_map(|marker| after_marker(&lower, marker).and_then(spoken_duration))
    });
    let resets_at = ["resets at ", "reset at ", "resets on ", "reset on "]
        .iter()
        .find_map(|marker| {
            let rest = &message[lower.len() - after_marker(&lower, marker)?.len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            parse_rfc3339(rest[..end].trim_end_matches(['.', ',', ')', ';']))
        })
        .map(|at| clamp_reset(at, now));
    (delay, resets_at)
}

/// What follows the first `marker` in `lower`.
fn after_marker<'a>(lower: &'a str, marker: &str) -> Option<&'a str> {
    lower.find(marker).map(|at| &lower[at + marker.len()..])
}

/// A duration at the start of `text` as people write them: `37.4s`, `1m2.5s`, `20 seconds`,
/// `2 minutes`, `500 ms`, `1 hour`, or a bare number of seconds.
fn spoken_duration(text: &str) -> Option<Duration> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
        .unwrap_or(text.len());
    let token = text[..end].trim_end_matches('.');
    let is_number = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !is_number {
        return parse_go_duration(token);
    }
    let word_start = text[end..].trim_start();
    let word_end = word_start.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(word_start.len());
    let unit = match &word_start[..word_end] {
        "ms" | "millisecond" | "milliseconds" => "ms",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        _ => "s",
    };
    parse_go_duration(&format!("{token}{unit}"))
}

/// The time from `now` until `at`, zero when it has passed, at most [`MAX_HINT`](crate::MAX_HINT).
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    clamp_hint((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Settles a rate-limit or quota error's delay, window and reset from every hint it carries:
/// the headers already in `error.rate_limits`, and what the body `stated`. See the module's
/// precedence. Other kinds come back untouched. The settled delay is written to both
/// `error.retry_after` and `error.rate_limits.retry_after`; the body's violated quotas are
/// added to `error.rate_limits.readings`, spent until the settled reset.
#[must_use]
pub fn settle(mut error: ProviderError, stated: &StatedHints, now: DateTime<Utc>) -> ProviderError {
    let (stated_scope, exhausted) = match error.kind {
        ErrorKind::RateLimited { scope } => (scope, stated.zero_limit),
        ErrorKind::QuotaExhausted { scope } => (scope, true),
        _ => return error,
    };
    let spent = |scope: Option<LimitScope>| {
        error
            .rate_limits
            .readings
            .iter()
            .filter(|r| r.remaining == Some(0) && scope.is_none_or(|scope| r.scope == scope))
            .filter_map(|r| r.reset.map(|reset| (r.scope, until(reset.at(now), now))))
            .max_by_key(|(_, after)| *after)
    };
    let header = error.rate_limits.retry_after.map(clamp_hint);
    let spent_any = spent(None);
    let delay = match (stated.delay(now), header) {
        (Some(body), Some(header)) => Some(body.max(header)),
        (body, header) => body.or(header).or(spent_any.map(|(_, after)| after)),
    };
    let spent_scope = error
        .rate_limits
        .readings
        .iter()
        .filter(|r| r.remaining == Some(0))
        .fold(LimitScope::Unknown, |scope, r| scope.longer(r.scope));
    let mut scope = stated_scope.longer(stated.quota_scope).longer(spent_scope);
    let longest = delay.max(spent_any.map(|(_, after)| after));
    if scope == LimitScope::Unknown && longest.is_some_and(|after| after >= DAY_HINT) {
        scope = LimitScope::Day;
    }
    error.kind = if exhausted {
        ErrorKind::QuotaExhausted { scope }
    } else {
        ErrorKind::RateLimited { scope }
    };
    let computed = match scope {
        LimitScope::Day if stated.google_quota => Some(next_pacific_midnight(now)),
        LimitScope::Day | LimitScope::Month => spent(Some(scope))
            .or(spent_any.filter(|(_, after)| *after >= DAY_HINT))
            .map(|(_, after)| after)
            .or(delay)
            .map(|after| crate::ratelimit::saturating_add(now, after)),
        LimitScope::Minute | LimitScope::Unknown => None,
    };
    let resets_at = error.resets_at.or(stated.resets_at).or(computed);
    error.resets_at = resets_at.map(|at| clamp_reset(at, now));
    error.retry_after = delay.map(clamp_hint);
    error.rate_limits.retry_after = error.retry_after;
    // The violated quotas, spent until the settled reset: a minute's after the delay, a day's
    // or month's at the reset instant (a reading without a reset would hold a whole window).
    for reading in &stated.readings {
        if error.rate_limits.reading_in(reading.unit, reading.scope).is_none() {
            let reset = match reading.scope {
                LimitScope::Minute | LimitScope::Unknown => error.retry_after.map(Reset::After),
                LimitScope::Day | LimitScope::Month => error.resets_at.map(Reset::At),
            };
            error.rate_limits.readings.push(LimitReading { reset, ..*reading });
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_HINT;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc()
    }

    fn secs(secs: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(secs))
    }

    fn limited(scope: LimitScope) -> ProviderError {
        ProviderError::new(ErrorKind::RateLimited { scope }, "p", "limited")
    }

    #[test]
    fn each_phrasing_in_a_message() {
        let delay = |message: &str| message_hint(message, now()).0;
        assert_eq!(delay("Please try again in 1m2.5s. Visit ..."), secs(62.5));
        assert_eq!(delay("Please try again in 6ms."), secs(0.006));
        assert_eq!(delay("Resource exhausted. Please retry in 37.4s."), secs(37.4));
        assert_eq!(delay("Please retry in 38.922534355s."), Some(Duration::new(38, 922_534_355)));
        assert_eq!(delay("Rate limited, retry after 20 seconds"), secs(20.0));
        assert_eq!(delay("Rate limited. Retry after 20s."), secs(20.0));
        assert_eq!(delay("please try again after 2 minutes"), secs(120.0));
        assert_eq!(delay("retry after 1 hour"), secs(3600.0));
        assert_eq!(delay("Try again later."), None);
        assert_eq!(delay("retry after a while"), None);
        let (delay, at) =
            message_hint("Daily limit reached; resets at 2026-11-24T00:00:00Z.", now());
        assert_eq!(
            (delay, at.map(|at| at.to_rfc3339())),
            (None, Some("2026-11-24T00:00:00+00:00".into()))
        );
    }

    #[test]
    fn garbage_in_a_message_is_no_hint_or_at_most_max_hint() {
        for message in ["retry in -5s", "retry in NaNs", "retry after -1 seconds", "try again in s"]
        {
            assert_eq!(message_hint(message, now()).0, None, "{message}");
        }
        for message in ["retry in 1e308s", "retry after 99999999999999999999999 seconds"] {
            assert_eq!(message_hint(message, now()).0, Some(MAX_HINT), "{message}");
        }
        let far = message_hint("resets at +262143-01-01T00:00:00Z", now()).1;
        assert!(far.is_none_or(|at| at <= now() + chrono::Duration::days(31)));
    }

    #[test]
    fn google_bodies_plain_wrapped_and_listed() {
        let status = r#"{"code":429,"message":"Please retry in 37.4s.","status":"RESOURCE_EXHAUSTED","details":[
            {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaValue":"250"}]},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}"#;
        for body in [
            status.to_owned(),
            format!(r#"{{"error":{status}}}"#),
            format!(r#"[{{"error":{status}}}]"#),
        ] {
            let hints = StatedHints::from_body(body.as_bytes(), now());
            assert_eq!(hints.retry_info, secs(37.0), "{body}");
            assert_eq!(hints.message, secs(37.4));
            assert_eq!(hints.delay(now()), secs(37.4), "the longer of the two");
            assert_eq!(hints.quota_scope, LimitScope::Day);
            assert!(hints.google_quota);
            let reading = hints.readings.first().expect("a reading");
            assert_eq!(
                (reading.unit, reading.scope, reading.limit),
                (LimitUnit::Requests, LimitScope::Day, Some(250))
            );
        }
        assert_eq!(quota_window("generate_content_requests_per_minute"), LimitScope::Minute);
        assert_eq!(
            quota_window("GenerateContentInputTokensPerModelPerMinute-FreeTier"),
            LimitScope::Minute
        );
        assert_eq!(
            quota_unit("GenerateContentInputTokensPerModelPerMinute-FreeTier"),
            Some(LimitUnit::InputTokens)
        );
        assert_eq!(StatedHints::from_body(b"retry after 20 seconds", now()).message, secs(20.0));
        assert_eq!(StatedHints::from_body(br#"{"error":"retry in 3s"}"#, now()).message, secs(3.0));
    }

    #[test]
    fn the_body_wins_but_never_below_the_header() {
        let stated = StatedHints { message: secs(37.4), ..StatedHints::default() };
        let mut error = limited(LimitScope::Unknown);
        error.rate_limits.retry_after = secs(2.0);
        assert_eq!(settle(error.clone(), &stated, now()).retry_after, secs(37.4));
        error.rate_limits.retry_after = secs(60.0);
        let settled = settle(error, &stated, now());
        assert_eq!(
            (settled.retry_after, settled.rate_limits.retry_after),
            (secs(60.0), secs(60.0))
        );
        assert_eq!(settled.kind, ErrorKind::RateLimited { scope: LimitScope::Unknown });
    }

    #[test]
    fn a_spent_day_bucket_makes_a_day_until_its_reset() {
        let mut error = limited(LimitScope::Minute);
        error.rate_limits.readings.push(LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Day,
            limit: Some(1000),
            remaining: Some(0),
            reset: Some(Reset::After(Duration::from_secs(600))),
        });
        let stated = StatedHints { message: secs(2.0), ..StatedHints::default() };
        let settled = settle(error.clone(), &stated, now());
        assert_eq!(settled.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
        assert_eq!(settled.retry_after, secs(2.0));
        assert_eq!(settled.resets_at, Some(now() + chrono::Duration::seconds(600)));
        let settled = settle(error, &StatedHints::default(), now());
        assert_eq!(settled.retry_after, secs(600.0), "with no stated delay, the spent reset");
    }

    #[test]
    fn a_reset_hours_away_is_a_day_and_google_days_end_at_pacific_midnight() {
        let mut error = limited(LimitScope::Unknown);
        error.rate_limits.retry_after = secs(5.0 * 3600.0);
        let settled = settle(error, &StatedHints::default(), now());
        assert_eq!(settled.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
        assert_eq!(settled.resets_at, Some(now() + chrono::Duration::hours(5)));
        let google = StatedHints {
            quota_scope: LimitScope::Day,
            google_quota: true,
            retry_info: secs(20.0),
            ..StatedHints::default()
        };
        let settled = settle(limited(LimitScope::Unknown), &google, now());
        assert_eq!(settled.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
        assert_eq!(
            settled.resets_at.map(|at| at.to_rfc3339()).as_deref(),
            Some("2026-11-24T08:00:00+00:00")
        );
        let zero = StatedHints { zero_limit: true, ..google };
        assert_eq!(
            settle(limited(LimitScope::Unknown), &zero, now()).kind,
            ErrorKind::QuotaExhausted { scope: LimitScope::Day }
        );
    }

    #[test]
    fn other_kinds_are_left_alone() {
        let error = ProviderError::new(ErrorKind::ServerError, "p", "retry in 5s");
        let stated = StatedHints::from_message(&error.message, now());
        assert_eq!(settle(error.clone(), &stated, now()), error);
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        let summer = DateTime::parse_from_rfc3339("2026-07-01T20:00:00Z").expect("date").to_utc();
        assert_eq!(next_pacific_midnight(summer).to_rfc3339(), "2026-07-02T07:00:00+00:00");
        assert_eq!(next_pacific_midnight(DateTime::<Utc>::MAX_UTC), DateTime::<Utc>::MAX_UTC);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_body_settles_within_max_hint(text in "\\PC{0,80}", header in any::<u64>()) {
            let stated = StatedHints::from_body(text.as_bytes(), now());
            let mut error = limited(LimitScope::Unknown);
            error.rate_limits.retry_after = Some(Duration::from_secs(header));
            let settled = settle(error, &stated, now());
            prop_assert!(settled.retry_after.is_some_and(|after| after <= MAX_HINT));
            prop_assert!(settled.resets_at.is_none_or(|at| at <= now() + chrono::Duration::days(31)));
        }

        #[test]
        fn any_phrase_reads_within_max_hint(number in any::<f64>(), unit in "(s| seconds| minutes|ms|h| hours|)") {
            for marker in ["retry in", "retry after", "try again in", "try again after"] {
                let message = format!("Please {marker} {number}{unit}.");
                let (delay, _) = message_hint(&message, now());
                prop_assert!(delay.is_none_or(|after| after <= MAX_HINT), "{}", message);
                prop_assert!(number >= 0.0 || delay.is_none(), "{}", message);
            }
        }
    }
}
