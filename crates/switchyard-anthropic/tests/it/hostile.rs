//! What a hostile or broken upstream can send, through the real adapter over HTTP against the
//! mock answering byte for byte: huge delays and resets (clamped, never a panic), bodies and
//! stream lines over their limits (a typed `MalformedResponse` that moves on), and the
//! classification gaps of issue 16.

use std::sync::Arc;
use std::time::Duration;

use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{
    ChatRequest, Classify, Clock, ErrorKind, LimitScope, LimitUnit, MAX_HINT, ManualClock,
    NextStep, ProviderError, Reset,
};
use switchyard_mock::conformance::raw;
use switchyard_mock::{Fault, FaultRule, MockUpstream};

use crate::support::{answer, mock};

/// A started mock, an adapter for it on a manual clock (its config changed by `tune`), and
/// the clock.
async fn started(
    tune: impl FnOnce(&mut AnthropicConfig),
) -> (MockUpstream, Anthropic, ManualClock) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).start().await.expect("the mock starts");
    let mut config = AnthropicConfig {
        base_url: mock.base_url(),
        timeout: Duration::from_secs(10),
        ..AnthropicConfig::new("anthropic")
    };
    tune(&mut config);
    let provider = Anthropic::try_new(config, Arc::new(clock.clone())).expect("the adapter builds");
    (mock, provider, clock)
}

/// The error `fault` ends a plain (or streamed) call with.
async fn failed(fault: Fault, stream: bool) -> (ProviderError, ManualClock) {
    let (mock, provider, clock) = started(|_| {}).await;
    mock.inject(FaultRule::once(fault));
    let error = answer(&provider, &ChatRequest::from_user("hi"), stream).await.expect_err("fails");
    (error, clock)
}

fn error_body(error_type: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}})
        .to_string()
}

#[tokio::test]
async fn retry_after_1e14_and_retry_after_ms_past_u64_are_max_hint() {
    let limited = error_body("rate_limit_error", "Rate limited");
    for header in [("retry-after", "1e14"), ("retry-after-ms", "99999999999999999999")] {
        let (error, _) =
            failed(raw(429, "application/json", &[header], limited.clone()), false).await;
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
        assert_eq!(error.retry_after, Some(MAX_HINT), "{header:?}");
        assert_eq!(Classify::retry_after(&error), Some(MAX_HINT), "{header:?}");
    }
    let date = ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT");
    let (error, _) = failed(raw(429, "application/json", &[date], limited), false).await;
    assert_eq!(error.retry_after, Some(MAX_HINT));
}

#[tokio::test]
async fn resets_at_the_end_of_time_are_held_to_max_hint() {
    let headers = [
        ("anthropic-ratelimit-requests-reset", "9999-12-31T23:59:59Z"),
        ("anthropic-ratelimit-tokens-reset", "+262143-12-31T23:59:59Z"),
        ("anthropic-ratelimit-requests-limit", "18446744073709551615"),
        ("anthropic-ratelimit-tokens-remaining", "99999999999999999999999"),
    ];
    let body = error_body("rate_limit_error", "Rate limited");
    let (error, clock) = failed(raw(429, "application/json", &headers, body), false).await;
    let cap = clock.utc() + chrono::Duration::days(31);
    let requests = error.rate_limits.reading(LimitUnit::Requests).expect("requests");
    assert_eq!(requests.reset, Some(Reset::At(cap)));
    assert_eq!(requests.limit, Some(u64::MAX));
    let tokens = error.rate_limits.reading(LimitUnit::Tokens).expect("tokens");
    assert_eq!(tokens.remaining, Some(u64::MAX));
    // chrono may refuse a six-digit year; if it reads it, it is clamped like any other.
    assert!(tokens.reset.is_none_or(|reset| reset == Reset::At(cap)), "{tokens:?}");
}

#[tokio::test]
async fn a_spend_cap_lifted_in_year_9999_comes_back_within_max_hint() {
    let body = error_body(
        "invalid_request_error",
        "You have reached your specified API usage limits. You will regain access on 9999-12-31 at 00:00 UTC.",
    );
    let (error, clock) = failed(raw(400, "application/json", &[], body), false).await;
    assert_eq!(error.kind, ErrorKind::BillingStopped);
    assert_eq!(error.resets_at, Some(clock.utc() + chrono::Duration::days(31)));
}

#[tokio::test]
async fn a_413_request_too_large_moves_on_to_another_model() {
    let body =
        error_body("request_too_large", "Request exceeds the maximum allowed number of bytes.");
    let (error, _) = failed(raw(413, "application/json", &[], body), false).await;
    assert_eq!(error.kind, ErrorKind::RequestTooLarge);
    assert_eq!(error.next_step(), NextStep::NextModel);
    let (error, _) = failed(raw(413, "text/html", &[], "<html>413</html>".to_owned()), false).await;
    assert_eq!(error.kind, ErrorKind::RequestTooLarge, "Cloudflare's page, no JSON");
}

#[tokio::test]
async fn max_tokens_over_the_models_limit_moves_on_to_another_model() {
    let body = error_body(
        "invalid_request_error",
        "max_tokens: 21333 > 4096, which is the maximum allowed number of output tokens for claude-3-haiku-20240307",
    );
    let (error, _) = failed(raw(400, "application/json", &[], body), false).await;
    assert_eq!(error.kind, ErrorKind::ContextTooLong);
    assert_eq!(error.next_step(), NextStep::NextModel);
}
