//! Every retry hint Ollama's cloud (or a proxy in front of Ollama) gives, through the adapter
//! over loopback HTTP: status, headers and body in, the `ProviderError`'s kind, window, delay
//! and reset out.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{ChatRequest, LimitScope, ManualClock, ProviderError};
use switchyard_mock::FaultRule;
use switchyard_ollama::{Ollama, OllamaConfig};

use crate::support::{answer, mock};

#[path = "../../../switchyard-core/tests/support/hints.rs"]
mod shared;
use shared::{assert_hint, now, raw};

/// The error the adapter makes of a 429 with `headers` and `message`, on a clock at [`now`].
async fn hinted(headers: &[(&str, &str)], message: &str) -> ProviderError {
    let upstream = mock().start().await.expect("the mock starts");
    let body = serde_json::json!({ "error": message }).to_string();
    upstream.inject(FaultRule::once(raw(429, headers, body)));
    let config = OllamaConfig { base_url: upstream.base_url(), ..OllamaConfig::new("cloud") };
    let adapter = Ollama::try_new(config, Arc::new(ManualClock::starting_at(now())))
        .expect("the adapter builds");
    answer(&adapter, &ChatRequest::from_user("hi"), false).await.expect_err("refused")
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
