//! Property tests: random bytes and valid-looking frames (real Messages frames with fields
//! deleted, mistyped, huge or nested too deep) through every decoder of the adapter: the
//! plain answer, the stream events (bytes through the bounded SSE reader, then the stream
//! decoder), error bodies and their classification, and the rate-limit headers. Each must
//! answer a typed result with sane values, never panic.
//!
//! 20,000 cases in a default run; `SWITCHYARD_FUZZ_CASES=N` runs at least N per property.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard_anthropic::{
    AnthropicError, MAX_BLOCKS, StreamDecoder, decode_response, error_from_response,
    rate_limits_from_headers,
};
use switchyard_core::bounded::sse_events;
use switchyard_core::{
    ErrorKind, MAX_HINT, ProviderId, RateLimitSnapshot, Reset, StreamAccumulator,
};

#[path = "../../../switchyard-core/tests/fuzzing/frames.rs"]
mod frames;
#[path = "../../../switchyard-core/tests/fuzzing/split.rs"]
#[macro_use]
mod split;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_478_400, 0).expect("a date")
}

fn cap() -> DateTime<Utc> {
    now() + chrono::Duration::days(31)
}

fn message() -> Value {
    json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-mock",
        "content":[{"type":"text","text":"Hello"},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"toolu_2","name":"answer","input":{"a":"__huge_number__"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":4294967295u64,"output_tokens":3,"cache_read_input_tokens":4294967295u64}})
}

fn answers() -> Vec<Value> {
    vec![
        message(),
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}),
    ]
}

fn events() -> Vec<Value> {
    vec![
        json!({"type":"message_start","message":message()}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":"hi"}}),
        json!({"type":"content_block_start","index":4294967295u64,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}),
        json!({"type":"content_block_stop","index":1}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"__huge_number__"}}),
        json!({"type":"message_stop"}),
        json!({"type":"ping"}),
        json!({"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}),
    ]
}

fn errors() -> Vec<Value> {
    vec![
        json!({"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 9999-12-31 at 00:00 UTC."}}),
        json!({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 21333 > 4096, which is the maximum allowed number of output tokens for claude-3-haiku"}}),
        json!({"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."},"request_id":"req_1"}),
    ]
}

/// A decoding failure is one of the adapter's typed errors, classified as unreadable unless
/// Anthropic reported the error itself.
#[track_caller]
fn check_failure(error: &AnthropicError) {
    match error {
        AnthropicError::Malformed { .. } | AnthropicError::TooManyBlocks { .. } => {
            assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        }
        AnthropicError::InStream { kind, .. } => assert_eq!(error.kind(), *kind),
        AnthropicError::Cut => assert_eq!(error.kind(), ErrorKind::Network),
        AnthropicError::Refused(_) | AnthropicError::Client(_) | AnthropicError::BaseUrl { .. } => {
            panic!("a decoder never refuses a request: {error}")
        }
    }
}

/// Feeds `body` cut at `cut` through the bounded SSE reader and one stream decoder, the way
/// the client does, and folds the chunks.
fn stream(body: &[u8], cut: usize, max_line: usize) {
    let mut decoder = StreamDecoder::new(Some("answer".to_owned()));
    let mut accumulator = StreamAccumulator::new();
    let ended = split::read_split(body, cut, max_line, sse_events, |event| {
        assert!(event.data.len() <= max_line);
        let pushed = decoder.push(&event.data);
        pushed
            .map(|chunk| chunk.iter().for_each(|c| accumulator.push(c)))
            .map_err(|e| check_failure(&e))
            .is_ok()
    });
    if ended && let Err(error) = decoder.finish() {
        check_failure(&error);
    }
    assert!(accumulator.finish().tool_calls.len() <= MAX_BLOCKS);
}

/// One whole body: an answer with no more tool calls than the frames hold, or a typed failure.
fn plain(body: &[u8]) {
    match decode_response(body, Some("answer")) {
        Ok(response) => assert!(response.tool_calls.len() <= 2),
        Err(error) => check_failure(&error),
    }
}

decoder_properties! {
    plain: plain, stream: stream, random_cases: 6000,
    answers: answers(), frames: events(), n_frames: 1..6,
    join: |chunks: &[String]| split::sse_body(chunks, "\n\n"),
}

proptest! {
    #![proptest_config(frames::config(2000))]

    #[test]
    fn error_bodies_classify_whatever_they_hold(
        body in split::error_body(errors()),
        status in 100u16..600,
        retry_after_secs in proptest::option::of(any::<u64>()),
    ) {
        let snapshot = RateLimitSnapshot {
            retry_after: retry_after_secs.map(std::time::Duration::from_secs),
            ..RateLimitSnapshot::default()
        };
        let error = error_from_response(&ProviderId::new("anthropic"), status, body.as_bytes(), snapshot, now());
        prop_assert_eq!(error.status, Some(status));
        prop_assert!(error.retry_after.is_none_or(|delay| delay <= MAX_HINT));
        prop_assert!(error.resets_at.is_none_or(|at| at <= cap()));
        let _ = error.kind.next_step();
    }

    #[test]
    fn rate_limit_headers_are_clamped_and_exact(
        values in proptest::collection::vec((0usize..8, frames::header_value()), 0..8),
    ) {
        const NAMES: [&str; 8] = [
            "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
            "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-output-tokens-reset",
            "retry-after", "retry-after-ms",
        ];
        let mut headers = HeaderMap::new();
        for (name_idx, value) in &values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(NAMES[*name_idx]), value);
            }
        }
        let snapshot = rate_limits_from_headers(&headers, now());
        prop_assert!(snapshot.retry_after.is_none_or(|delay| delay <= MAX_HINT));
        for reading in &snapshot.readings {
            if let Some(Reset::At(at)) = reading.reset {
                prop_assert!(at <= cap());
            }
            for count in [reading.limit, reading.remaining].into_iter().flatten() {
                let exact = headers
                    .values()
                    .any(|value| value.to_str().is_ok_and(|t| t.trim().parse::<u64>() == Ok(count)));
                prop_assert!(exact || count == u64::MAX, "{count} read from {headers:?}");
            }
        }
    }
}
