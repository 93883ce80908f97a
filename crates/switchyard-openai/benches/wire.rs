//! The OpenAI adapter's share of one request's CPU: the body written from a `ChatRequest`, and
//! an answer read back into a `ChatResponse`. Each is measured against the `serde_json::Value`
//! round trip it replaced (a `Value` built, then written; a `Value` parsed, before any field
//! is looked up, so the baseline is a lower bound of the old cost).
#![allow(missing_docs, reason = "a bench binary, not an API")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard_core::{ChatRequest, Message};
use switchyard_openai::{Preset, decode_response, encode_request, encode_request_body};

fn request() -> ChatRequest {
    let mut request =
        ChatRequest::from_user("Summarise the routing rules of a switchyard in one line.");
    request.messages.insert(0, Message::system("You are terse."));
    request.messages.push(Message::assistant("Trains go where the points send them."));
    request.messages.push(Message::user("And when a line is closed?"));
    request.max_tokens = Some(256);
    request.temperature = Some(0.2);
    request
}

fn answer() -> Vec<u8> {
    json!({"id": "chatcmpl-123", "object": "chat.completion", "created": 1_741_570_283,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Closed lines are skipped: the next open route takes the train.",
            "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 48, "completion_tokens": 14, "total_tokens": 62,
            "prompt_tokens_details": {"cached_tokens": 0}}})
    .to_string()
    .into_bytes()
}

fn encode(c: &mut Criterion) {
    let request = request();
    c.bench_function("openai encode: typed, borrowing", |b| {
        b.iter(|| encode_request_body(black_box(&request), "gpt-4o-mini", Preset::OpenAi, false));
    });
    c.bench_function("openai encode: through a Value (baseline)", |b| {
        b.iter(|| {
            let value = encode_request(black_box(&request), "gpt-4o-mini", Preset::OpenAi, false);
            serde_json::to_vec(&value).expect("JSON")
        });
    });
}

fn decode(c: &mut Criterion) {
    let body = answer();
    c.bench_function("openai decode: typed, borrowing", |b| {
        b.iter(|| decode_response(black_box(&body)).expect("an answer"));
    });
    c.bench_function("openai decode: parse to a Value only (baseline, lower bound)", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).expect("JSON"));
    });
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
