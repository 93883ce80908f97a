//! What a hostile or broken upstream can send, through the real adapter over HTTP against the
//! mock answering byte for byte: a huge retry delay (clamped, never a panic), and bodies and
//! NDJSON lines over their limits (a typed `MalformedResponse` that moves on).

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{
    ChatRequest, Classify, ErrorKind, LimitScope, MAX_HINT, ManualClock, NextStep, ProviderError,
};
use switchyard_mock::{Fault, FaultRule, MockUpstream};
use switchyard_ollama::{Ollama, OllamaConfig};

use crate::support::{answer, mock};

/// A started mock and an adapter for it on a manual clock, its config changed by `tune`.
async fn started(tune: impl FnOnce(&mut OllamaConfig)) -> (MockUpstream, Ollama) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).start().await.expect("the mock starts");
    let mut config = OllamaConfig {
        base_url: mock.base_url(),
        timeout: Duration::from_secs(10),
        ..OllamaConfig::new("local")
    };
    tune(&mut config);
    let provider = Ollama::try_new(config, Arc::new(clock)).expect("the adapter builds");
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
async fn a_cloud_429_asking_for_1e14_seconds_is_max_hint() {
    let body = r#"{"error":"rate limit exceeded"}"#.to_owned();
    for value in ["1e14", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let error =
            failed(raw(429, "application/json", &[("retry-after", value)], body.clone()), false)
                .await;
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Unknown });
        assert_eq!(error.retry_after, Some(MAX_HINT), "retry-after: {value}");
        assert_eq!(Classify::retry_after(&error), Some(MAX_HINT));
    }
    let error = failed(raw(429, "application/json", &[("retry-after", "NaN")], body), true).await;
    assert_eq!(error.retry_after, None);
}

#[tokio::test]
async fn a_50_mb_answer_is_refused_at_the_limit_and_moves_on() {
    let body = format!(
        r#"{{"model":"llama3.2","message":{{"role":"assistant","content":"{}"}},"done":true}}"#,
        "a".repeat(50 << 20)
    );
    let error = failed(raw(200, "application/json", &[], body), false).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the body from local is over the limit of 8388608 bytes");
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let (_mock, small) = started(|config| config.max_body_bytes = 64).await;
    let error = answer(&small, &ChatRequest::from_user("hi"), false).await.expect_err("too large");
    assert_eq!(error.message, "the body from local is over the limit of 64 bytes");
    let (_mock, narrow) = started(|config| config.max_line_bytes = 16).await;
    let error = answer(&narrow, &ChatRequest::from_user("hi"), true).await.expect_err("too long");
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from local is over the limit of 16 bytes");
}

#[tokio::test]
async fn a_50_mb_error_body_is_cut_and_still_classified() {
    let error = failed(raw(500, "text/plain", &[], "x".repeat(50 << 20)), false).await;
    assert_eq!(error.kind, ErrorKind::ServerError);
    assert!(error.message.len() < 1024, "a snippet, not the body: {} bytes", error.message.len());
}

#[tokio::test]
async fn a_2_mib_line_without_a_newline_is_refused() {
    let body = format!(r#"{{"model":"llama3.2","message":{{"content":"{}"#, "y".repeat(2 << 20));
    let error = failed(raw(200, "application/x-ndjson", &[], body), true).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream line from local is over the limit of 1048576 bytes");
}

#[tokio::test]
async fn garbage_instead_of_lines_is_malformed() {
    for seed in [1, 2, 3] {
        let body = format!("{{{}\n", garbage(seed, 4096));
        let error = failed(raw(200, "application/x-ndjson", &[], body), true).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
    }
}

#[tokio::test]
async fn a_stream_cut_mid_token_is_malformed_and_moves_on() {
    let body = concat!(
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"hel\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"lo wo",
    );
    let error = failed(raw(200, "application/x-ndjson", &[], body.to_owned()), true).await;
    assert_moves_on(&error, ErrorKind::MalformedResponse);
}
