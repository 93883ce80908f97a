//! Every retry hint Ollama's cloud (or a proxy in front of Ollama) gives, through the adapter
//! over loopback HTTP: status, headers and body in, the `ProviderError`'s kind, window, delay
//! and reset out.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{ChatRequest, ErrorKind, LimitScope, ManualClock, ProviderError};
use switchyard_mock::{Fault, FaultRule};
use switchyard_ollama::{Ollama, OllamaConfig};

use crate::support::{answer, mock};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc()
}

/// The error the adapter makes of a 429 with `headers` and `message`, on a clock at [`now`].
async fn hinted(headers: &[(&str, &str)], message: &str) -> ProviderError {
    let upstream = mock().start().await.expect("the mock starts");
    let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    let body = serde_json::json!({ "error": message }).to_string();
    let content_type = "application/json".to_owned();
    upstream.inject(FaultRule::once(Fault::Raw { status: 429, content_type, headers, body }));
    let config = OllamaConfig { base_url: upstream.base_url(), ..OllamaConfig::new("cloud") };
    let adapter = Ollama::try_new(config, Arc::new(ManualClock::starting_at(now())))
        .expect("the adapter builds");
    answer(&adapter, &ChatRequest::from_user("hi"), false).await.expect_err("refused")
}

#[track_caller]
fn assert_hint(error: &ProviderError, scope: LimitScope, retry_after: Option<Duration>) {
    assert_eq!(error.kind, ErrorKind::RateLimited { scope }, "{error}");
    assert_eq!(error.retry_after, retry_after, "{error}");
    assert_eq!(error.rate_limits.retry_after, retry_after, "the snapshot carries it too");
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date() {
    let error = hinted(&[("retry-after", "20")], "too many requests").await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_secs(20)));
    let error =
        hinted(&[("retry-after", "Mon, 23 Nov 2026 10:00:30 GMT")], "too many requests").await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn retry_after_ms() {
    let error = hinted(&[("retry-after-ms", "750")], "too many requests").await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_millis(750)));
}

#[tokio::test]
async fn try_again_in_the_message() {
    let error = hinted(&[], "rate limit exceeded, please try again in 1m2.5s").await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_secs_f64(62.5)));
}

#[tokio::test]
async fn retry_after_n_seconds_in_the_message() {
    let error = hinted(&[("retry-after", "3")], "rate limited, retry after 20 seconds").await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_secs(20)));
}

#[tokio::test]
async fn a_usage_limit_that_resets_hours_away_is_a_day() {
    let error =
        hinted(&[], "you have reached your usage limit; it resets at 2026-11-24T00:00:00Z").await;
    assert_hint(&error, LimitScope::Day, Some(Duration::from_secs(14 * 3600)));
    assert_eq!(
        error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
        Some("2026-11-24T00:00:00+00:00")
    );
}

#[tokio::test]
async fn garbage_gives_no_hint() {
    let error = hinted(&[("retry-after", "-7"), ("retry-after-ms", "NaN")], "retry in NaNs").await;
    assert_hint(&error, LimitScope::Unknown, None);
}
