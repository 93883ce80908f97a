//! What a hostile or broken upstream can send, through the real adapter over HTTP against the
//! mock answering byte for byte: huge retry delays (clamped, never a panic), bodies and stream
//! lines over their limits (a typed `MalformedResponse` that moves on), and the
//! classification gaps of issue 16.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{
    ChatRequest, Classify, ErrorKind, LimitScope, MAX_HINT, ManualClock, NextStep, ProviderError,
};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::conformance::raw;
use switchyard_mock::{Fault, FaultRule, MockUpstream};

use crate::support::{answer, mock};

/// A started mock and an adapter for it on a manual clock, its config changed by `tune`.
async fn started(tune: impl FnOnce(&mut GeminiConfig)) -> (MockUpstream, Gemini) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).start().await.expect("the mock starts");
    let mut config = GeminiConfig {
        base_url: mock.base_url(),
        timeout: Duration::from_secs(10),
        ..GeminiConfig::new("gemini")
    };
    tune(&mut config);
    let provider = Gemini::try_new(config, Arc::new(clock)).expect("the adapter builds");
    (mock, provider)
}

/// The error `fault` ends a plain (or streamed) call with.
async fn failed(fault: Fault, stream: bool) -> ProviderError {
    let (mock, provider) = started(|_| {}).await;
    mock.inject(FaultRule::once(fault));
    answer(&provider, &ChatRequest::from_user("hi"), stream).await.expect_err("fails")
}

fn quota_429(message: &str, retry_delay: Option<&str>) -> String {
    let mut details = vec![json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]})];
    if let Some(delay) = retry_delay {
        details.push(
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        );
    }
    json!({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}})
        .to_string()
}

#[tokio::test]
async fn retry_info_of_1e15_seconds_is_max_hint() {
    for delay in ["1e15s", "99999999999999999999999s", "1e999s"] {
        let body = quota_429("You exceeded your current quota", Some(delay));
        let error = failed(raw(429, "application/json", &[], body), false).await;
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
        assert_eq!(error.retry_after, Some(MAX_HINT), "retryDelay {delay}");
    }
    let negative = quota_429("You exceeded your current quota", Some("-5s"));
    let error = failed(raw(429, "application/json", &[], negative), false).await;
    assert_eq!(error.retry_after, None);
}

#[tokio::test]
async fn a_message_asking_to_retry_in_1e15_seconds_is_max_hint() {
    let body = quota_429("You exceeded your current quota. Please retry in 1e15s.", None);
    let error = failed(raw(429, "application/json", &[], body), true).await;
    assert_eq!(error.retry_after, Some(MAX_HINT));
}

#[tokio::test]
async fn a_proxys_retry_after_of_1e14_is_max_hint() {
    let body = quota_429("You exceeded your current quota", None);
    for value in ["1e14", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let error =
            failed(raw(429, "application/json", &[("retry-after", value)], body.clone()), false)
                .await;
        assert_eq!(Classify::retry_after(&error), Some(MAX_HINT), "retry-after: {value}");
    }
}

#[tokio::test]
async fn input_context_too_long_is_not_a_server_error() {
    // Gemini's error table: 500 INTERNAL "includes input context too long".
    let body = json!({"error": {"code": 500, "status": "INTERNAL",
        "message": "An internal error has occurred: input context too long. Please reduce the input and try again."}})
    .to_string();
    let error = failed(raw(500, "application/json", &[], body), false).await;
    assert_eq!(error.kind, ErrorKind::ContextTooLong);
    assert_eq!(error.next_step(), NextStep::NextModel);
    let plain = json!({"error": {"code": 500, "status": "INTERNAL", "message": "An internal error has occurred."}})
        .to_string();
    let error = failed(raw(500, "application/json", &[], plain), false).await;
    assert_eq!(error.kind, ErrorKind::ServerError);
}
