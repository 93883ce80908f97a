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

fn raw(status: u16, content_type: &str, headers: &[(&str, &str)], body: String) -> Fault {
    Fault::Raw {
        status,
        content_type: content_type.to_owned(),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body,
    }
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
async fn a_50_mb_answer_is_refused_at_the_limit_and_moves_on() {
    let body = format!(
        r#"{{"id":"msg","content":[{{"type":"text","text":"{}"}}]}}"#,
        "a".repeat(50 << 20)
    );
    let (error, _) = failed(raw(200, "application/json", &[], body), false).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the body from anthropic is over the limit of 8388608 bytes");
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let (_mock, small, _) = started(|config| config.max_body_bytes = 64).await;
    let error = answer(&small, &ChatRequest::from_user("hi"), false).await.expect_err("too large");
    assert_eq!(error.message, "the body from anthropic is over the limit of 64 bytes");
    let (_mock, narrow, _) = started(|config| config.max_line_bytes = 16).await;
    let error = answer(&narrow, &ChatRequest::from_user("hi"), true).await.expect_err("too long");
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from anthropic is over the limit of 16 bytes");
}

#[tokio::test]
async fn a_50_mb_error_body_is_cut_and_still_classified() {
    let (error, _) = failed(raw(529, "text/html", &[], "x".repeat(50 << 20)), false).await;
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert!(error.message.len() < 1024, "a snippet, not the body: {} bytes", error.message.len());
}

#[tokio::test]
async fn a_2_mib_stream_line_without_a_newline_is_refused() {
    let body = format!("event: message_start\ndata: {}", "y".repeat(2 << 20));
    let (error, _) = failed(raw(200, "text/event-stream", &[], body), true).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from anthropic is over the limit of 1048576 bytes");
}

#[tokio::test]
async fn garbage_instead_of_events_is_malformed() {
    for seed in [1, 2, 3] {
        let body = format!("data: {{{}\n\n", garbage(seed, 4096));
        let (error, _) = failed(raw(200, "text/event-stream", &[], body), true).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
    }
}

#[tokio::test]
async fn a_stream_cut_mid_token_is_a_network_failure() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-mock\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del",
    );
    let (error, _) = failed(raw(200, "text/event-stream", &[], body.to_owned()), true).await;
    assert_moves_on(&error, ErrorKind::Network);
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
