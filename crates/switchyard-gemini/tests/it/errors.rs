//! Gemini's quota windows, its bodies beyond the shared suite, and what the adapter sends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use switchyard_core::ratelimit::parse_rfc3339;
use switchyard_core::{
    Call, ChatRequest, Classify, ErrorKind, FinishReason, LimitScope, ManualClock, ModelId,
    NextStep, Provider,
};
use switchyard_gemini::Gemini;
use switchyard_mock::{Fault, FaultRule, GeminiWire, KeyScript, MockBuilder, MockUpstream};

use crate::support::{KEY_ID, MODEL, SECRET, answer, credential, mock, provider};

async fn started(builder: MockBuilder) -> (MockUpstream, Gemini, ManualClock) {
    let clock = ManualClock::default();
    let mock = builder.clock(clock.clone()).start().await.expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock.clone()));
    (mock, provider, clock)
}

fn keyed(key: KeyScript) -> MockBuilder {
    MockUpstream::builder(GeminiWire).key(key)
}

fn sse(chunks: &[serde_json::Value]) -> Fault {
    let body: String = chunks.iter().map(|chunk| format!("data: {chunk}\r\n\r\n")).collect();
    Fault::Raw { status: 200, content_type: "text/event-stream".into(), headers: Vec::new(), body }
}

#[tokio::test]
async fn a_spent_minute_cools_down_for_the_retry_delay() {
    let (_mock, provider, clock) =
        started(keyed(KeyScript::valid(KEY_ID, SECRET).requests_per_minute(2))).await;
    let request = ChatRequest::from_user("hi");
    for _ in 0..2 {
        let reply = answer(&provider, &request, false).await.expect("served");
        assert_eq!(reply.text, "You said: hi");
    }
    clock.advance(Duration::from_secs(10));
    let error = answer(&provider, &request, false).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    assert_eq!(Classify::retry_after(&error), Some(Duration::from_secs(50)));
    assert_eq!(error.resets_at, None);
    assert_eq!(error.next_step(), NextStep::NextKey);
    assert!(error.message.contains("Quota exceeded for metric"), "{error}");
}

#[tokio::test]
async fn a_spent_day_is_exhausted_until_pacific_midnight() {
    let (_mock, provider, _clock) =
        started(keyed(KeyScript::valid(KEY_ID, SECRET).requests_per_day(1))).await;
    let request = ChatRequest::from_user("hi");
    answer(&provider, &request, false).await.expect("served");
    let error = answer(&provider, &request, true).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    // The clocks start at 12:00 UTC on 15 January, 04:00 in Los Angeles.
    assert_eq!(error.resets_at, parse_rfc3339("2026-01-16T08:00:00Z"));
    assert!(error.retry_after.is_some());
}

#[tokio::test]
async fn limit_zero_means_this_key_has_no_quota_for_the_model() {
    let (mock, provider, _clock) =
        started(keyed(KeyScript::valid(KEY_ID, SECRET).requests_per_day(0))).await;
    let error =
        answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("no quota");
    assert_eq!(error.kind, ErrorKind::QuotaExhausted { scope: LimitScope::Day });
    // Issue 16: a per-day quota, even one of zero, is tried again when Gemini's day turns
    // (a tier may change in between); waiting less never helps. See: issue 16, item 8.
    assert_eq!(error.resets_at, parse_rfc3339("2026-01-16T08:00:00Z"));
    assert!(error.message.contains("limit: 0"), "{error}");
    assert_eq!(mock.counts(KEY_ID).expect("key").rate_limited, 1);
}

#[tokio::test]
async fn a_blocked_prompt_is_content_filtered_plain_and_streamed() {
    let (mock, provider, _clock) = started(mock()).await;
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": MODEL});
    mock.inject(FaultRule::once(Fault::raw_json(200, blocked.to_string())));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("blocked");
    assert_eq!(error.kind, ErrorKind::ContentFiltered);
    assert_eq!(error.next_step(), NextStep::NextProvider);
    mock.inject(FaultRule::once(sse(&[blocked])));
    let error = answer(&provider, &ChatRequest::from_user("hi"), true).await.expect_err("blocked");
    assert_eq!(error.kind, ErrorKind::ContentFiltered);

    let stopped = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "I can"}]}, "finishReason": "SAFETY"}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 10}});
    mock.inject(FaultRule::once(Fault::raw_json(200, stopped.to_string())));
    let response =
        answer(&provider, &ChatRequest::from_user("hi"), false).await.expect("an answer");
    assert_eq!(
        (response.text.as_str(), response.finish_reason),
        ("I can", Some(FinishReason::ContentFilter))
    );
}

#[tokio::test]
async fn an_error_chunk_after_the_200_ends_the_stream_classified() {
    let (mock, provider, _clock) = started(mock()).await;
    mock.inject(FaultRule::once(sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
    ])));
    let request = ChatRequest::from_user("hi");
    let (model, credential) = (ModelId::new(MODEL), credential());
    let mut chunks = provider
        .chat_stream(Call::new(&request, &model, Some(&credential)))
        .await
        .expect("starts")
        .chunks;
    let first = chunks.next().await.expect("a chunk").expect("text");
    assert_eq!(first.text, "Hel");
    let error = chunks.next().await.expect("an item").expect_err("the error chunk");
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert!(chunks.next().await.is_none());
}

#[tokio::test]
async fn a_bearer_misuse_401_and_an_echoed_key() {
    let (mock, provider, _clock) = started(mock()).await;
    mock.inject(FaultRule::once(Fault::raw_json(
        401,
        json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED"}]}}).to_string(),
    )));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("401");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
    mock.inject(FaultRule::once(Fault::raw_json(
        400,
        json!({"error": {"code": 400, "message": format!("API key not valid: {SECRET}"), "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}).to_string(),
    )));
    let error = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect_err("400");
    assert_eq!((error.kind, error.status), (ErrorKind::InvalidKey, Some(400)));
    for text in [format!("{error}"), format!("{error:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("[key gemini-1]"), "{text}");
    }
}

#[tokio::test]
async fn the_key_travels_in_a_header_and_chat_models_are_listed() {
    let (mock, provider, _clock) =
        started(mock().models(["gemini-2.5-flash", "gemini-2.5-pro"])).await;
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gemini-2.5-flash");
    let credential = credential();
    let mut chunks = provider
        .chat_stream(Call::new(&request, &model, Some(&credential)))
        .await
        .expect("starts")
        .chunks;
    while let Some(chunk) = chunks.next().await {
        chunk.expect("a chunk");
    }
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(logged.headers["x-goog-api-key"], "[key gemini-1]");
    assert!(logged.headers.get("authorization").is_none());
    let models = provider.list_models(Some(&credential)).await.expect("listed");
    let ids: Vec<&str> = models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["gemini-2.5-flash", "gemini-2.5-pro"], "the embedding model is left out");
    assert_eq!(models[0].context_window, Some(1_048_576));
    let unlisted = answer(&provider, &request, false).await.expect_err("gemini-mock is not served");
    assert_eq!(unlisted.kind, ErrorKind::ModelNotFound);
}
