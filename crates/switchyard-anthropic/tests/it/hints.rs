//! Every retry hint Anthropic gives, through the adapter over loopback HTTP: status, headers
//! and body in, the `ProviderError`'s kind, window, delay and reset out.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{ChatRequest, LimitScope, ManualClock, ProviderError};
use switchyard_mock::FaultRule;

use crate::support::{answer, mock, provider};

#[path = "../../../switchyard-core/tests/support/hints.rs"]
mod shared;
use shared::{assert_hint, now, raw};

/// The error the adapter makes of one answer, on a clock at [`now`].
async fn hinted(headers: &[(&str, &str)], message: &str) -> ProviderError {
    let upstream = mock().start().await.expect("the mock starts");
    let error = serde_json::json!({"type": "rate_limit_error", "message": message});
    let body = serde_json::json!({"type": "error", "error": error}).to_string();
    upstream.inject(FaultRule::once(raw(429, headers, body)));
    let clock = Arc::new(ManualClock::starting_at(now()));
    let adapter = provider(&upstream.base_url(), Duration::from_secs(10), clock);
    answer(&adapter, &ChatRequest::from_user("hi"), false).await.expect_err("refused")
}

const LIMITED: &str = "This request would exceed the rate limit for your organization of 50 \
                       requests per minute. Please try again later.";

#[tokio::test]
async fn retry_after_in_seconds() {
    let error = hinted(&[("retry-after", "20")], LIMITED).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(20)));
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let error = hinted(&[("retry-after", "Mon, 23 Nov 2026 10:00:45 GMT")], LIMITED).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(45)));
}

#[tokio::test]
async fn retry_after_ms_is_the_finer_header() {
    let error = hinted(&[("retry-after-ms", "1250"), ("retry-after", "2")], LIMITED).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_millis(1250)));
}

#[tokio::test]
async fn a_spent_bucket_without_retry_after_waits_for_its_reset() {
    let headers = [
        ("anthropic-ratelimit-input-tokens-remaining", "0"),
        ("anthropic-ratelimit-input-tokens-reset", "2026-11-23T10:00:40Z"),
        ("anthropic-ratelimit-requests-remaining", "12"),
        ("anthropic-ratelimit-requests-reset", "2026-11-23T10:00:05Z"),
    ];
    let error = hinted(&headers, LIMITED).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(40)));
}

#[tokio::test]
async fn a_spent_bucket_hours_away_keeps_its_minute_window() {
    // Anthropic's buckets are per minute: a reset hours away is a long wait in that window,
    // not a guess at a day.
    let headers = [
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "2026-11-23T15:00:00Z"),
    ];
    let error = hinted(&headers, LIMITED).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(5 * 3600)));
    assert_eq!(error.resets_at, None);
}

#[tokio::test]
async fn a_delay_in_the_message_but_never_below_the_header() {
    let error =
        hinted(&[("retry-after", "5")], "Rate limited. Please retry after 20 seconds.").await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(20)));
    let error = hinted(&[("retry-after", "30")], "Rate limited. Please try again in 1m2.5s.").await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs_f64(62.5)));
    let error = hinted(&[("retry-after", "30")], "Rate limited. Please retry in 6ms.").await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn garbage_gives_no_hint() {
    let headers = [
        ("retry-after", "NaN"),
        ("retry-after-ms", "-1"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "not a time"),
    ];
    let error = hinted(&headers, "Rate limited. Retry after -4 seconds.").await;
    assert_hint(&error, LimitScope::Minute, None);
}
