//! Property tests: random bytes and valid-looking frames (real OpenAI-family frames with
//! fields deleted, mistyped, huge or nested too deep) through every decoder of the adapter:
//! the plain answer, the stream event (bytes through the bounded SSE reader, then the chunk
//! decoder), the model listing, error bodies and their classification, and the rate-limit
//! headers. Each must answer a typed result with sane values, never panic.
//!
//! 22,000 cases in a default run; `SWITCHYARD_FUZZ_CASES=N` runs at least N per property.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard_core::bounded::sse_events;
use switchyard_core::{ErrorKind, MAX_HINT, RateLimitSnapshot, Reset};
use switchyard_openai::{
    DecodeError, Preset, WireError, classify, classify_preset, decode_chunk, decode_models,
    decode_response, parse_error_body, rate_limits,
};

#[path = "../../../switchyard-core/tests/fuzzing/frames.rs"]
mod frames;
#[path = "../../../switchyard-core/tests/fuzzing/split.rs"]
#[macro_use]
mod split;

const PRESETS: [Preset; 5] =
    [Preset::OpenAi, Preset::Groq, Preset::Mistral, Preset::OpenRouter, Preset::Compatible];

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_478_400, 0).expect("a date")
}

fn answers() -> Vec<Value> {
    vec![
        json!({"id":"chatcmpl-1","object":"chat.completion","created":1741570283,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,
            "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11},
            "system_fingerprint":"fp"}),
        json!({"choices":[{"message":{"content":[{"type":"text","text":"a"}],"refusal":"no"},"finish_reason":"length"}]}),
        json!({"error":{"code":502,"message":"Provider returned error","metadata":{"headers":{"X-RateLimit-Reset":"__huge_number__"}}}}),
    ]
}

fn chunks() -> Vec<Value> {
    vec![
        json!({"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hel",
            "tool_calls":[{"index":4294967295u64,"id":"t","function":{"name":"f","arguments":"{"}}]},
            "finish_reason":null}],"usage":{"prompt_tokens":"__huge_number__","completion_tokens":1}}),
        json!({"choices":[],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"error":"over capacity"}}),
        json!({"choices":[{"delta":{},"finish_reason":"error"}]}),
    ]
}

fn errors() -> Vec<Value> {
    vec![
        json!({"error":{"message":"Rate limit reached on requests per day (RPD). Please try again in 1e15s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}),
        json!({"error":{"message":"Rate limit exceeded: free-models-per-day","code":429,"metadata":{"limit_source":"openrouter_in_flight_budget","reasons":["x"],
            "headers":{"X-RateLimit-Limit":"99999999999999999999999","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"8210266876799000"}}}}),
        json!({"detail":[{"loc":["body","x"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}),
        json!({"object":"error","message":"capacity exceeded","type":"rate_limited","code":"1300"}),
    ]
}

fn listings() -> Vec<Value> {
    vec![
        json!({"object":"list","data":[{"id":"m","owned_by":"o","context_window":131072,"context_length":"__huge_number__"}]}),
    ]
}

/// A decoded answer is sane: its text came from the body, so it is no longer than it.
#[track_caller]
fn check_answer(body: &[u8], decoded: Result<switchyard_core::ChatResponse, DecodeError>) {
    match decoded {
        Ok(response) => assert!(response.text.len() <= body.len()),
        Err(DecodeError::Malformed(message)) => assert!(message.len() < 200, "{message}"),
        Err(DecodeError::Upstream(wire)) => check_wire(&wire),
    }
}

/// An error report classifies under every status and preset; what it quotes stays in range.
#[track_caller]
fn check_wire(wire: &WireError) {
    let snapshot = RateLimitSnapshot::default();
    for status in [200, 400, 402, 403, 422, 429, 500, 503] {
        let kind = classify(status, Some(wire));
        let _ = kind.next_step();
        for preset in PRESETS {
            let _ = classify_preset(preset, status, Some(wire), &snapshot).next_step();
        }
    }
    if let Some((reading, resets_at)) = wire.quoted_limit() {
        if let Some(reset) = reading.reset {
            assert!(reset.at(now()) <= now() + chrono::Duration::days(31));
        }
        assert_eq!(resets_at.is_some(), reading.reset.is_some());
    }
}

/// Feeds `body` cut at `cut` through the bounded SSE reader and the chunk decoder, the way
/// the client does.
fn stream(body: &[u8], cut: usize, max_line: usize) {
    split::read_split(body, cut, max_line, sse_events, |event| {
        assert!(event.data.len() <= max_line);
        match decode_chunk(event.data.trim()) {
            Ok(chunk) => assert!(chunk.text.len() <= event.data.len()),
            Err(DecodeError::Malformed(_)) => {}
            Err(DecodeError::Upstream(wire)) => check_wire(&wire),
        }
        true
    });
}

/// One whole body, read as an answer and as a model listing.
fn plain(body: &[u8]) {
    check_answer(body, decode_response(body));
    if let Err(DecodeError::Upstream(wire)) = decode_models(body) {
        check_wire(&wire);
    }
}

decoder_properties! {
    plain: plain, stream: stream, random_cases: 6000,
    answers: answers(), frames: chunks(), n_frames: 1..3,
    join: |chunks: &[String]| split::sse_body(chunks, "\n\n"),
}

proptest! {
    #![proptest_config(frames::config(2000))]

    #[test]
    fn model_listings_from_mutated_frames(body in frames::frame(listings())) {
        if let Ok(models) = decode_models(body.as_bytes()) {
            prop_assert!(models.len() <= 1);
        }
    }

    #[test]
    fn error_bodies_classify_whatever_they_hold(
        body in split::error_body(errors()),
        status in 100u16..600,
    ) {
        let wire = parse_error_body(body.as_bytes());
        if let Some(wire) = &wire {
            check_wire(wire);
        }
        // A non-2xx answer is always classified by what it says or its status, never as
        // an unreadable answer.
        let kind = classify(status, wire.as_ref());
        if !(200..300).contains(&status) {
            prop_assert_ne!(kind, ErrorKind::MalformedResponse);
        }
    }

    #[test]
    fn rate_limit_headers_are_clamped_and_exact(
        values in proptest::collection::vec((0usize..12, frames::header_value()), 0..8),
    ) {
        const NAMES: [&str; 12] = [
            "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "retry-after",
            "retry-after-ms", "x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute",
            "x-ratelimit-limit-tokens-month", "x-ratelimit-remaining-tokens-day",
        ];
        let mut headers = HeaderMap::new();
        for (name_idx, value) in &values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(NAMES[*name_idx]), value);
            }
        }
        for preset in PRESETS {
            let snapshot = rate_limits(preset, &headers, now());
            prop_assert!(snapshot.retry_after.is_none_or(|delay| delay <= MAX_HINT));
            for reading in &snapshot.readings {
                if let Some(Reset::After(after)) = reading.reset {
                    prop_assert!(after <= MAX_HINT);
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
}
