//! Anthropic's headers, its error bodies beyond the shared suite, and what the adapter sends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use switchyard_core::ratelimit::parse_rfc3339;
use switchyard_core::{
    Call, ChatRequest, Classify, ErrorKind, LimitScope, LimitUnit, ManualClock, ModelId, NextStep,
    Provider, Reset,
};
use switchyard_mock::{Fault, FaultRule, KeyScript, MockUpstream};

use crate::support::{KEY_ID, MODEL, SECRET, answer, credential, mock, provider};

async fn started(
    builder: switchyard_mock::MockBuilder,
) -> (MockUpstream, switchyard_anthropic::Anthropic) {
    let clock = ManualClock::default();
    let mock = builder.clock(clock.clone()).start().await.expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock));
    (mock, provider)
}

fn sse(events: &[(&str, serde_json::Value)]) -> Fault {
    let body: String =
        events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
    Fault::Raw { status: 200, content_type: "text/event-stream".into(), headers: Vec::new(), body }
}

#[tokio::test]
async fn headers_become_a_per_minute_snapshot_and_a_429_keeps_its_retry_delay() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(switchyard_mock::AnthropicWire)
        .clock(clock.clone())
        .key(KeyScript::valid(KEY_ID, SECRET).requests_per_minute(3).tokens_per_minute(10_000))
        .start()
        .await
        .expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock.clone()));
    let request = ChatRequest::from_user("hello there");
    let (model, credential) = (ModelId::new(MODEL), credential());
    let reply =
        provider.chat(Call::new(&request, &model, Some(&credential))).await.expect("served");
    let requests = reply.rate_limits.reading(LimitUnit::Requests).expect("a requests reading");
    assert_eq!(
        (requests.scope, requests.limit, requests.remaining),
        (LimitScope::Minute, Some(3), Some(2))
    );
    assert_eq!(
        requests.reset,
        Some(Reset::At(parse_rfc3339("2026-01-15T12:01:00Z").expect("date")))
    );
    let tokens = reply.rate_limits.reading(LimitUnit::Tokens).expect("a tokens reading");
    let spent = u64::from(reply.response.usage.total_tokens);
    assert_eq!((tokens.limit, tokens.remaining), (Some(10_000), Some(10_000 - spent)));
    assert_eq!(reply.upstream_request_id, None, "the mock sends no request-id header");

    for _ in 0..2 {
        provider.chat(Call::new(&request, &model, Some(&credential))).await.expect("served");
    }
    clock.advance(Duration::from_secs(15));
    let error =
        provider.chat(Call::new(&request, &model, Some(&credential))).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    assert_eq!(error.status, Some(429));
    assert_eq!(Classify::retry_after(&error), Some(Duration::from_secs(45)));
    assert_eq!(error.next_step(), NextStep::NextKey);
    assert_eq!(
        error.rate_limits.reading(LimitUnit::Requests).and_then(|reading| reading.remaining),
        Some(0)
    );
    assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some(KEY_ID));
    assert_eq!(error.model.as_ref().map(|model| model.as_str()), Some(MODEL));
    assert_eq!(mock.counts(KEY_ID).expect("key").rate_limited, 1);
}

#[tokio::test]
async fn a_spend_cap_stops_billing_until_the_date_in_its_message() {
    let (mock, provider) = started(mock()).await;
    mock.inject(FaultRule::once(Fault::raw_json(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "You have reached your specified API usage limits. You will regain access on 2026-02-01 at 00:00 UTC."},
            "request_id": "req_011CZ"}).to_string(),
    )));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("capped");
    assert_eq!(error.kind, ErrorKind::BillingStopped);
    assert_eq!(error.resets_at, parse_rfc3339("2026-02-01T00:00:00Z"));
    assert_eq!(error.upstream_request_id.as_deref(), Some("req_011CZ"));
    assert_eq!(error.next_step(), NextStep::NextKey);
}

#[tokio::test]
async fn a_key_script_maps_to_invalid_revoked_and_billing_stopped() {
    let (mock, provider) = started(
        MockUpstream::builder(switchyard_mock::AnthropicWire)
            .key(KeyScript::valid(KEY_ID, SECRET).revoked_after(1)),
    )
    .await;
    let request = ChatRequest::from_user("hi");
    answer(&provider, &request, false).await.expect("the first call is served");
    let revoked = answer(&provider, &request, true).await.expect_err("revoked");
    assert_eq!((revoked.kind, revoked.status), (ErrorKind::InvalidKey, Some(401)));
    assert_eq!(revoked.message, "invalid x-api-key");
    drop(mock);

    let (_mock, provider) = started(
        MockUpstream::builder(switchyard_mock::AnthropicWire)
            .key(KeyScript::valid(KEY_ID, SECRET).billing_stopped()),
    )
    .await;
    let stopped = answer(&provider, &request, false).await.expect_err("no credit");
    assert_eq!(stopped.kind, ErrorKind::BillingStopped);
    assert!(stopped.message.contains("credit balance is too low"), "{stopped}");
}

#[tokio::test]
async fn no_key_is_refused_before_any_call() {
    let (mock, provider) = started(mock()).await;
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new(MODEL);
    let error = provider.chat(Call::new(&request, &model, None)).await.expect_err("no key");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
    assert_eq!(mock.n_requests(), 0);
}

#[tokio::test]
async fn a_prompt_over_the_window_and_an_unknown_model() {
    let (_mock, provider) = started(mock().context_window(5).models(["claude-real"])).await;
    let error =
        answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("no model");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::ModelNotFound, "model: claude-mock")
    );
    let (_mock, provider) = started(mock().context_window(5)).await;
    let long = ChatRequest::from_user("a prompt much longer than five tokens of context");
    let error = answer(&provider, &long, false).await.expect_err("too long");
    assert_eq!(error.kind, ErrorKind::ContextTooLong);
    assert!(error.message.starts_with("prompt is too long: "), "{error}");
    assert_eq!(error.next_step(), NextStep::NextModel);
}

#[tokio::test]
async fn an_error_event_after_the_200_ends_the_stream_classified() {
    let (mock, provider) = started(mock()).await;
    mock.inject(FaultRule::once(sse(&[
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "model": MODEL,
            "content": [], "usage": {"input_tokens": 9, "output_tokens": 1}}})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})),
        ("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ])));
    let request = ChatRequest::from_user("hi");
    let (model, credential) = (ModelId::new(MODEL), credential());
    let mut chunks = provider
        .chat_stream(Call::new(&request, &model, Some(&credential)))
        .await
        .expect("the stream starts")
        .chunks;
    let mut text = String::new();
    let error = loop {
        match chunks.next().await.expect("an error item before the end") {
            Ok(chunk) => text.push_str(&chunk.text),
            Err(error) => break error,
        }
    };
    assert_eq!(text, "Hel");
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert!(chunks.next().await.is_none(), "nothing follows the error");
}

#[tokio::test]
async fn an_overload_carries_its_retry_after_and_an_echoed_key_is_redacted() {
    let (mock, provider) = started(mock()).await;
    mock.inject(FaultRule::once(Fault::Raw {
        status: 529,
        content_type: "application/json".into(),
        headers: vec![("retry-after".into(), "7".into()), ("request-id".into(), "req_529".into())],
        body:
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
    }));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("529");
    assert_eq!(
        (error.kind, error.retry_after),
        (ErrorKind::Overloaded, Some(Duration::from_secs(7)))
    );
    assert_eq!(error.upstream_request_id.as_deref(), Some("req_529"));

    mock.inject(FaultRule::once(Fault::raw_json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error",
            "message": format!("invalid x-api-key {SECRET}")}})
        .to_string(),
    )));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("401");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
    for text in [format!("{error}"), format!("{error:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("[key anthropic-1]"), "{text}");
    }
}

#[tokio::test]
async fn the_request_carries_anthropics_headers_and_the_models_are_listed() {
    let (mock, provider) = started(mock().models(["claude-a", "claude-b"])).await;
    answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("model not listed");
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.headers["x-api-key"], "[key anthropic-1]");
    assert_eq!(logged.headers["anthropic-version"], "2023-06-01");
    assert_eq!(logged.path, "/v1/messages");
    let models = provider.list_models(Some(&credential())).await.expect("listed");
    let ids: Vec<&str> = models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["claude-a", "claude-b"]);
    assert!(mock.last_request().expect("logged").path.starts_with("/v1/models?limit="));
}
