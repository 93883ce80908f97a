//! Property tests: random bytes and valid-looking frames (real Gemini frames with fields
//! deleted, mistyped, huge or nested too deep) through every decoder of the adapter: the
//! plain answer, the stream chunks (bytes through the bounded SSE reader, then the stream
//! decoder), `google.rpc.Status` error bodies and their classification, retry delays and the
//! `retry-after` header. Each must answer a typed result with sane values, never panic.
//!
//! 18,000 cases in a default run; `SWITCHYARD_FUZZ_CASES=N` runs at least N per property.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use switchyard_core::bounded::sse_events;
use switchyard_core::{
    ErrorKind, LimitScope, MAX_HINT, ProviderId, RateLimitSnapshot, StreamAccumulator,
};
use switchyard_gemini::{
    GeminiError, StreamDecoder, decode_response, error_from_response, rate_limits_from_headers,
};

#[path = "../../../switchyard-core/tests/fuzzing/frames.rs"]
mod frames;
#[path = "../../../switchyard-core/tests/fuzzing/split.rs"]
#[macro_use]
mod split;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_478_400, 0).expect("a date")
}

fn answers() -> Vec<Value> {
    vec![
        json!({"candidates":[{"content":{"parts":[{"text":"Hello","thoughtSignature":"c2ln"},
            {"functionCall":{"id":"call_1","name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":4294967295u64,"candidatesTokenCount":"__huge_number__","totalTokenCount":9,"thoughtsTokenCount":2},
            "modelVersion":"gemini-2.5-flash","responseId":"r1"}),
        json!({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}),
        json!({"error":{"code":429,"message":"Please retry in 1e15s.","status":"RESOURCE_EXHAUSTED"}}),
    ]
}

fn errors() -> Vec<Value> {
    vec![
        json!({"error":{"code":429,"message":"You exceeded your current quota... limit: 0, model: gemini-2.5-pro\nPlease retry in 38.9s.","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"m","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"model":"x"},"quotaValue":"15"}]},
                {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e15s"}]}}),
        json!({"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}),
        json!({"error":{"code":500,"message":"An internal error has occurred: input context too long.","status":"INTERNAL"}}),
    ]
}

/// A decoding failure is one of the adapter's typed errors.
#[track_caller]
fn check_failure(error: &GeminiError) {
    match error {
        GeminiError::Malformed { .. } | GeminiError::NoCandidate => {
            assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        }
        GeminiError::Blocked(_) => assert_eq!(error.kind(), ErrorKind::ContentFiltered),
        GeminiError::InStream { kind, .. } => assert_eq!(error.kind(), *kind),
        GeminiError::Cut => assert_eq!(error.kind(), ErrorKind::Network),
        GeminiError::Refused(_) | GeminiError::Client(_) | GeminiError::BaseUrl { .. } => {
            panic!("a decoder never refuses a request: {error}")
        }
    }
}

/// Feeds `body` cut at `cut` through the bounded SSE reader and one stream decoder, the way
/// the client does, and folds the chunks.
fn stream(body: &[u8], cut: usize, max_line: usize) {
    let mut decoder = StreamDecoder::new();
    let mut accumulator = StreamAccumulator::new();
    let ended = split::read_split(body, cut, max_line, sse_events, |event| {
        assert!(event.data.len() <= max_line);
        decoder
            .push(&event.data)
            .map(|chunk| accumulator.push(&chunk))
            .map_err(|e| check_failure(&e))
            .is_ok()
    });
    if ended && let Err(error) = decoder.finish() {
        check_failure(&error);
    }
    assert!(accumulator.text().len() <= body.len());
}

/// One whole body: an answer no longer than the body, or a typed failure.
fn plain(body: &[u8]) {
    match decode_response(body) {
        Ok(response) => assert!(response.text.len() <= body.len()),
        Err(error) => check_failure(&error),
    }
}

decoder_properties! {
    plain: plain, stream: stream, random_cases: 6000,
    answers: answers(), frames: answers(), n_frames: 1..4,
    join: |chunks: &[String]| split::sse_body(chunks, "\r\n\r\n"),
}

proptest! {
    #![proptest_config(frames::config(2000))]

    #[test]
    fn error_bodies_classify_whatever_they_hold(
        body in split::error_body(errors()),
        status in 100u16..600,
        retry_after in proptest::option::of(frames::header_value()),
    ) {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(&value).ok()) {
            headers.insert("retry-after", value);
        }
        let snapshot: RateLimitSnapshot = rate_limits_from_headers(&headers, now());
        prop_assert!(snapshot.retry_after.is_none_or(|delay| delay <= MAX_HINT));
        let error = error_from_response(&ProviderId::new("gemini"), status, body.as_bytes(), snapshot, now());
        prop_assert_eq!(error.status, Some(status));
        prop_assert!(error.retry_after.is_none_or(|delay| delay <= MAX_HINT));
        match error.kind {
            // A day's quota comes back at the next midnight Pacific, within a day.
            ErrorKind::RateLimited { scope: LimitScope::Day }
            | ErrorKind::QuotaExhausted { scope: LimitScope::Day } => {
                let resets_at = error.resets_at.expect("a per-day quota says when it resets");
                prop_assert!(resets_at > now() && resets_at <= now() + chrono::Duration::days(1));
            }
            _ => prop_assert_eq!(error.resets_at, None),
        }
    }
}
