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

fn raw(status: u16, content_type: &str, headers: &[(&str, &str)], body: String) -> Fault {
    Fault::Raw {
        status,
        content_type: content_type.to_owned(),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body,
    }
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

#[track_caller]
fn assert_moves_on(error: &ProviderError, kind: ErrorKind) {
    assert_eq!(error.kind, kind, "{error}");
    assert_ne!(error.next_step(), NextStep::Stop, "{error}");
}

/// Deterministic junk: `len` characters of every kind, newlines and controls included.
fn garbage(seed: u64, len: usize) -> String {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let code = u32::try_from(state % 0x800).expect("invariant: below 0x800");
            char::from_u32(code).unwrap_or('\u{fffd}')
        })
        .collect()
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
async fn a_50_mb_answer_is_refused_at_the_limit_and_moves_on() {
    let body = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{}"}}]}}}}]}}"#,
        "a".repeat(50 << 20)
    );
    let error = failed(raw(200, "application/json", &[], body), false).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the body from gemini is over the limit of 8388608 bytes");
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let (_mock, small) = started(|config| config.max_body_bytes = 64).await;
    let error = answer(&small, &ChatRequest::from_user("hi"), false).await.expect_err("too large");
    assert_eq!(error.message, "the body from gemini is over the limit of 64 bytes");
    let (_mock, narrow) = started(|config| config.max_line_bytes = 16).await;
    let error = answer(&narrow, &ChatRequest::from_user("hi"), true).await.expect_err("too long");
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from gemini is over the limit of 16 bytes");
}

#[tokio::test]
async fn a_50_mb_error_body_is_cut_and_still_classified() {
    let error = failed(raw(503, "text/html", &[], "x".repeat(50 << 20)), false).await;
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert!(error.message.len() < 1024, "a snippet, not the body: {} bytes", error.message.len());
}

#[tokio::test]
async fn a_2_mib_stream_line_without_a_newline_is_refused() {
    let body = format!("data: {}", "y".repeat(2 << 20));
    let error = failed(raw(200, "text/event-stream", &[], body), true).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from gemini is over the limit of 1048576 bytes");
}

#[tokio::test]
async fn garbage_instead_of_events_is_malformed() {
    for seed in [1, 2, 3] {
        let body = format!("data: {{{}\r\n\r\n", garbage(seed, 4096));
        let error = failed(raw(200, "text/event-stream", &[], body), true).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
    }
}

#[tokio::test]
async fn a_stream_cut_mid_token_is_a_network_failure() {
    let body = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hel\"}],\"role\":\"model\"}}]}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo wo",
    );
    let error = failed(raw(200, "text/event-stream", &[], body.to_owned()), true).await;
    assert_moves_on(&error, ErrorKind::Network);
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
