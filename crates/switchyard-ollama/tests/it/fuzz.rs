//! Property tests: random bytes and valid-looking frames (real `/api/chat` lines with fields
//! deleted, mistyped, huge or nested too deep) through every decoder of the adapter: the
//! plain answer, the NDJSON stream (bytes through the bounded line reader, then the stream
//! decoder) and error bodies with their classification. Each must answer a typed result with
//! sane values, never panic.
//!
//! 16,000 cases in a default run; `SWITCHYARD_FUZZ_CASES=N` runs at least N per property.

use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard_core::bounded::lines;
use switchyard_core::{ErrorKind, MAX_HINT, ProviderId, RateLimitSnapshot, StreamAccumulator};
use switchyard_ollama::{OllamaError, StreamDecoder, decode_response, error_from_response};

#[path = "../../../switchyard-core/tests/fuzzing/frames.rs"]
mod frames;
#[path = "../../../switchyard-core/tests/fuzzing/split.rs"]
#[macro_use]
mod split;

fn answers() -> Vec<Value> {
    vec![
        json!({"model":"llama3.2","created_at":"2026-01-15T12:00:00Z",
            "message":{"role":"assistant","content":"Hello","thinking":"hm",
                "tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris","n":"__huge_number__"}}}]},
            "done":true,"done_reason":"stop","total_duration":18446744073709551615u64,
            "prompt_eval_count":4294967296u64,"eval_count":3}),
        json!({"model":"llama3.2","message":{"role":"assistant","content":"hel"},"done":false}),
        json!({"error":"model 'llama3.2' not found, try pulling it first"}),
    ]
}

/// A decoding failure is one of the adapter's typed errors.
#[track_caller]
fn check_failure(error: &OllamaError) {
    match error {
        OllamaError::Malformed { .. } => assert_eq!(error.kind(), ErrorKind::MalformedResponse),
        OllamaError::InStream { kind, .. } => assert_eq!(error.kind(), *kind),
        OllamaError::Cut => assert_eq!(error.kind(), ErrorKind::Network),
        OllamaError::Refused(_) | OllamaError::Client(_) | OllamaError::BaseUrl { .. } => {
            panic!("a decoder never refuses a request: {error}")
        }
    }
}

/// Feeds `body` cut at `cut` through the bounded line reader and one stream decoder, the way
/// the client does, and folds the chunks.
fn stream(body: &[u8], cut: usize, max_line: usize) {
    let mut decoder = StreamDecoder::new();
    let mut accumulator = StreamAccumulator::new();
    let ended = split::read_split(body, cut, max_line, lines, |line| {
        assert!(line.len() <= max_line);
        let pushed = decoder.push(&line);
        let taken = pushed.map(|chunk| chunk.iter().for_each(|c| accumulator.push(c)));
        // After the done line the client reads no further.
        taken.map_err(|e| check_failure(&e)).is_ok() && !decoder.is_done()
    });
    if (ended || decoder.is_done())
        && let Err(error) = decoder.finish()
    {
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
    plain: plain, stream: stream, random_cases: 5000,
    answers: answers(), frames: answers(), n_frames: 1..4, join: split::ndjson_body,
}

proptest! {
    #![proptest_config(frames::config(2000))]

    #[test]
    fn error_bodies_classify_whatever_they_hold(
        body in split::error_body(answers()),
        status in 100u16..600,
        retry_after in proptest::option::of(frames::header_value()),
    ) {
        let snapshot = RateLimitSnapshot {
            retry_after: retry_after.and_then(|value| {
                switchyard_core::ratelimit::parse_retry_after(&value, chrono::DateTime::UNIX_EPOCH)
            }),
            ..RateLimitSnapshot::default()
        };
        let error = error_from_response(&ProviderId::new("local"), status, body.as_bytes(), snapshot, chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        prop_assert_eq!(error.status, Some(status));
        prop_assert!(error.retry_after.is_none_or(|delay| delay <= MAX_HINT));
        prop_assert!(error.message.chars().count() <= body.chars().count().max(303));
    }
}
