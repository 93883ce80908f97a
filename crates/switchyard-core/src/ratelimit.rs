//! What a provider said about a key's limits, and the parsers for the ways it says it.
//!
//! Providers put rate-limit state in response headers (OpenAI and Groq `x-ratelimit-*` with
//! Go-style durations, Anthropic `anthropic-ratelimit-*` with RFC 3339 times), and retry
//! delays in headers (`retry-after`, `retry-after-ms`), in bodies (Gemini's
//! `RetryInfo.retryDelay`, `"37s"`) or in messages ("Please try again in 6.5s"). Adapters
//! read them with the functions here into one [`RateLimitSnapshot`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest delay or reset an upstream may ask for: 31 days. Every retry hint and reset read
/// from outside is clamped to it before any arithmetic, since `Instant + huge` and
/// `DateTime + huge` panic and a hostile or broken upstream can send `retry-after: 1e14`.
pub const MAX_HINT: Duration = Duration::from_secs(31 * 24 * 60 * 60);

/// `hint`, no longer than [`MAX_HINT`].
pub fn clamp_hint(hint: Duration) -> Duration {
    hint.min(MAX_HINT)
}

/// A reset instant read from outside, no later than [`MAX_HINT`] after `now` (an RFC 3339
/// reset in year 262143 becomes a reset in 31 days). A time in the past is kept as it is.
pub fn clamp_reset(at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    at.min(saturating_add(now, MAX_HINT))
}

/// `at + after`, or the end of chrono's range when that would overflow it.
pub fn saturating_add(at: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|after| at.checked_add_signed(after))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses a count from a header or body (`x-ratelimit-remaining-tokens: 17997`): decimal
/// digits only, read as an integer (never through a float, which loses precision past
/// 2^53). A count past `u64::MAX` saturates to it; anything else is `None`.
pub fn parse_count(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// What a reading counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    /// Requests.
    Requests,
    /// Tokens (input and output together unless the provider splits them).
    Tokens,
    /// Input tokens only (Anthropic).
    InputTokens,
    /// Output tokens only (Anthropic).
    OutputTokens,
}

/// When a limit is next whole again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// After this long from when the response was received (OpenAI, Groq: the time until
    /// the bucket is fully refilled).
    After(Duration),
    /// At this instant (Anthropic).
    At(DateTime<Utc>),
}

impl Reset {
    /// The reset as an instant, given when the response was received: never more than
    /// [`MAX_HINT`] after `received`, whatever the upstream said, and never a panic.
    pub fn at(&self, received: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Self::After(after) => saturating_add(received, clamp_hint(after)),
            Self::At(at) => clamp_reset(at, received),
        }
    }
}

/// One limit as the provider reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitReading {
    /// What is counted.
    pub unit: LimitUnit,
    /// The window the provider counts it over, as the adapter knows its headers to mean.
    pub scope: LimitScope,
    /// The limit.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: Option<u64>,
    /// When it is whole again.
    pub reset: Option<Reset>,
}

/// Everything a response told about the key's limits. Empty when the provider sends no
/// rate-limit headers (Gemini never does).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSnapshot {
    /// One reading per limit reported.
    pub readings: Vec<LimitReading>,
    /// The delay the provider asked for before the next call, if any.
    pub retry_after: Option<Duration>,
}

impl RateLimitSnapshot {
    /// Whether the response said nothing about limits.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty() && self.retry_after.is_none()
    }

    /// The reading for a unit, if one was reported.
    pub fn reading(&self, unit: LimitUnit) -> Option<&LimitReading> {
        self.readings.iter().find(|reading| reading.unit == unit)
    }

    /// The reading for a unit over a given window, if one was reported.
    pub fn reading_in(&self, unit: LimitUnit, scope: LimitScope) -> Option<&LimitReading> {
        self.readings.iter().find(|reading| reading.unit == unit && reading.scope == scope)
    }
}

/// Parses a Go-style duration as OpenAI and Groq write them: `12ms`, `1s`, `6m0s`,
/// `1h2m3.5s`, `2m59.56s`, `250us`, `1µs`, `5ns`. A bare number is read as seconds. Every
/// parser here clamps what it reads to [`MAX_HINT`] (`1e15s` is 31 days) and reads negative
/// or not-a-number values as nothing.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = number_len(rest);
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit_secs, unit_len) = if rest.starts_with("ms") {
            (1e-3, 2)
        } else if rest.starts_with("us") {
            (1e-6, 2)
        } else if rest.starts_with("µs") {
            (1e-6, "µs".len())
        } else if rest.starts_with("ns") {
            (1e-9, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += number * unit_secs;
        rest = &rest[unit_len..];
    }
    seconds_to_duration(total)
}

/// Parses a protobuf `Duration` as Gemini writes `RetryInfo.retryDelay`: decimal seconds
/// followed by `s` (`"37s"`, `"45.837906927s"`).
pub fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    seconds_to_duration(seconds)
}

/// Parses a `retry-after` header: seconds (possibly fractional) or an HTTP date, which is
/// read relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some(clamp_hint((at - now).to_std().unwrap_or(Duration::ZERO)))
}

/// Parses a `retry-after-ms` header: milliseconds, possibly fractional.
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let millis: f64 = value.trim().parse().ok()?;
    seconds_to_duration(millis / 1000.0)
}

/// Finds the delay in an OpenAI or Groq message: "... Please try again in 7m12s. Visit ..."
/// (also "try again in 644ms", "try again in 1.984999999s").
pub fn parse_try_again_in(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("try again in ")? + "try again in ".len();
    let rest = &message[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
        .unwrap_or(rest.len());
    // A sentence's full stop follows the duration: "in 6.5s." must not read as "6.5s.".
    let token = rest[..end].trim_end_matches('.');
    parse_go_duration(token)
}

/// Parses an RFC 3339 timestamp, as Anthropic writes its reset headers.
pub fn parse_rfc3339(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim()).ok().map(|at| at.with_timezone(&Utc))
}

/// The length of the decimal number `text` starts with: digits and points, then an optional
/// exponent (`1e15`, `2.5E+3`). No Go unit starts with `e`, so an exponent is unambiguous.
fn number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mantissa = bytes.iter().take_while(|byte| byte.is_ascii_digit() || **byte == b'.').count();
    if mantissa == 0 || !matches!(bytes.get(mantissa), Some(b'e' | b'E')) {
        return mantissa;
    }
    let mut at = mantissa + 1;
    if matches!(bytes.get(at), Some(b'+' | b'-')) {
        at += 1;
    }
    let exponent = bytes[at.min(bytes.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    if exponent == 0 { mantissa } else { at + exponent }
}

/// Seconds from outside as a delay: negative and NaN are nothing, anything past
/// [`MAX_HINT`] (infinity included) is [`MAX_HINT`].
fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    if seconds.is_nan() || seconds < 0.0 {
        return None;
    }
    if seconds >= MAX_HINT.as_secs_f64() {
        return Some(MAX_HINT);
    }
    Duration::try_from_secs_f64(seconds).ok().map(clamp_hint)
}

/// The window a rate limit or quota counts over; [`LimitScope::Unknown`] by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// A per-minute (or shorter) window: RPM, TPM.
    Minute,
    /// A daily quota: RPD, TPD, Gemini's per-day quota, OpenRouter's free daily counter.
    Day,
    /// A monthly allowance (Mistral's monthly token limit).
    Month,
    /// The provider did not say.
    #[default]
    Unknown,
}

impl std::fmt::Display for LimitScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Minute => "per-minute",
            Self::Day => "per-day",
            Self::Month => "per-month",
            Self::Unknown => "unknown-window",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(millis: u64) -> Option<Duration> {
        Some(Duration::from_millis(millis))
    }

    #[test]
    fn go_durations_as_providers_send_them() {
        assert_eq!(parse_go_duration("12ms"), ms(12));
        assert_eq!(parse_go_duration("1s"), ms(1000));
        assert_eq!(parse_go_duration("6m0s"), ms(360_000));
        assert_eq!(parse_go_duration("1h2m3s"), ms(3_723_000));
        assert_eq!(parse_go_duration("7.66s"), ms(7660));
        assert_eq!(parse_go_duration("2m59.56s"), ms(179_560));
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_go_duration("0.5"), ms(500));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn proto_durations_from_gemini() {
        assert_eq!(parse_proto_duration("37s"), ms(37_000));
        assert_eq!(parse_proto_duration("45.837906927s"), Some(Duration::new(45, 837_906_927)));
        assert_eq!(parse_proto_duration("37"), None);
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_or_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc();
        assert_eq!(parse_retry_after("20", now), ms(20_000));
        assert_eq!(parse_retry_after("1.5", now), ms(1500));
        assert_eq!(parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now), ms(30_000));
        assert_eq!(parse_retry_after("Mon, 23 Nov 2026 09:59:00 GMT", now), ms(0));
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after_ms("1500.5"), Some(Duration::from_micros(1_500_500)));
    }

    #[test]
    fn try_again_in_from_messages() {
        let groq = "Rate limit reached for model `llama-3.3-70b-versatile` in organization \
                    `org_x` on tokens per minute (TPM): Limit 12000, Used 11800, Requested 450. \
                    Please try again in 1.25s. Visit https://console.groq.com/docs/rate-limits";
        assert_eq!(parse_try_again_in(groq), ms(1250));
        let openai = "... on requests per day (RPD): Limit 200, Used 200, Requested 1. Please \
                      try again in 7m12s. Visit https://platform.openai.com/account/rate-limits";
        assert_eq!(parse_try_again_in(openai), ms(432_000));
        assert_eq!(parse_try_again_in("please try again in 644ms"), ms(644));
        assert_eq!(parse_try_again_in("no delay here"), None);
    }

    #[test]
    fn reset_after_is_relative_to_receipt() {
        let received = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc();
        let reset = Reset::After(Duration::from_secs(90));
        assert_eq!(reset.at(received).to_rfc3339(), "2026-11-23T10:01:30+00:00");
    }

    #[test]
    fn hostile_delays_are_clamped_to_max_hint() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc();
        for value in ["1e14", "1e308", "1e999", "inf", "99999999999999999999"] {
            assert_eq!(parse_retry_after(value, now), Some(MAX_HINT), "retry-after: {value}");
        }
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_HINT));
        assert_eq!(parse_retry_after_ms("99999999999999999999"), Some(MAX_HINT));
        for value in ["1e15s", "1e15", "99999999999999999999h", "1E+20ms", "2562047788015215h30m"] {
            assert_eq!(parse_go_duration(value), Some(MAX_HINT), "reset: {value}");
        }
        assert_eq!(parse_proto_duration("1e15s"), Some(MAX_HINT));
        assert_eq!(parse_try_again_in("Please try again in 1e15s."), Some(MAX_HINT));
        for value in ["-1", "NaN", "-inf", "-1e15"] {
            assert_eq!(parse_retry_after(value, now), None, "retry-after: {value}");
            assert_eq!(parse_retry_after_ms(value), None, "retry-after-ms: {value}");
            assert_eq!(parse_go_duration(value), None, "reset: {value}");
        }
    }

    #[test]
    fn resets_never_overflow_and_stay_within_max_hint() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc();
        let cap = now + chrono::Duration::days(31);
        assert_eq!(Reset::After(Duration::MAX).at(now), cap);
        assert_eq!(
            Reset::After(Duration::from_secs(u64::MAX)).at(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(Reset::At(DateTime::<Utc>::MAX_UTC).at(now), cap);
        let far = parse_rfc3339("+262143-12-31T23:59:59Z").map(Reset::At);
        assert!(far.is_none_or(|reset| reset.at(now) == cap));
        assert_eq!(clamp_reset(DateTime::<Utc>::MAX_UTC, now), cap);
        let past = now - chrono::Duration::hours(1);
        assert_eq!(clamp_reset(past, now), past);
        assert_eq!(saturating_add(DateTime::<Utc>::MAX_UTC, MAX_HINT), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn counts_are_exact_integers_that_saturate() {
        assert_eq!(parse_count(" 14370 "), Some(14_370));
        assert_eq!(parse_count("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_count("9007199254740993"), Some(9_007_199_254_740_993));
        assert_eq!(parse_count("99999999999999999999999"), Some(u64::MAX));
        for value in ["1e14", "-1", "", "12.5", "NaN", "0x10"] {
            assert_eq!(parse_count(value), None, "{value}");
        }
    }

    proptest! {
        #[test]
        fn go_duration_of_hms_parts(h in 0u64..48, m in 0u64..60, s in 0u64..60, millis in 0u64..1000) {
            let text = format!("{h}h{m}m{s}.{millis:03}s");
            let expected = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + millis);
            let parsed = parse_go_duration(&text).expect("parses");
            let diff = parsed.abs_diff(expected);
            prop_assert!(diff < Duration::from_micros(1), "{text}: {parsed:?} vs {expected:?}");
        }

        #[test]
        fn retry_after_whole_seconds(secs in 0u32..1_000_000) {
            let now = DateTime::<Utc>::UNIX_EPOCH;
            prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(Duration::from_secs(secs.into())));
        }

        #[test]
        fn text_without_digits_is_no_duration(text in "[a-zA-Z ,.]{0,30}") {
            prop_assert_eq!(parse_go_duration(&text), None);
            prop_assert_eq!(parse_proto_duration(&text), None);
            prop_assert_eq!(parse_try_again_in(&text), None);
        }
    }

    proptest! {
        // Cheap (microseconds a case), so many: part of issue 16's property-test budget.
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_text_parses_to_nothing_or_at_most_max_hint(text in "\\PC{0,40}", secs in any::<f64>()) {
            let now = DateTime::<Utc>::UNIX_EPOCH;
            for parsed in [
                parse_go_duration(&text),
                parse_proto_duration(&text),
                parse_retry_after(&text, now),
                parse_retry_after_ms(&text),
                parse_try_again_in(&text),
                parse_retry_after(&secs.to_string(), now),
                parse_go_duration(&format!("{secs}s")),
            ] {
                prop_assert!(parsed.is_none_or(|delay| delay <= MAX_HINT));
            }
            prop_assert!(parse_rfc3339(&text).is_none_or(|at| Reset::At(at).at(now) <= now + chrono::Duration::days(31)));
        }
    }
}
