//! What a hostile or broken upstream can send, through the real adapter over HTTP against the
//! mock answering byte for byte: huge delays, resets and counts (clamped, never a panic),
//! bodies and stream lines over their limits (a typed `MalformedResponse` that moves on), and
//! the classification gaps of issue 16.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatReply, ChatRequest, Classify, Credential, ErrorKind, LimitScope, LimitUnit, MAX_HINT,
    ManualClock, ModelId, NextStep, Provider, ProviderError, Reset,
};
use switchyard_mock::conformance::raw;
use switchyard_mock::{FaultRule, KeyScript, MockUpstream};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};

const SECRET: &str = "sk-proj-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

async fn mock() -> MockUpstream {
    MockUpstream::openai()
        .key(KeyScript::valid("openai-1", SECRET))
        .models(["gpt-4o-mini"])
        .start()
        .await
        .expect("starts")
}

/// An adapter of `preset` for `mock` on `clock`, its config changed by `tune`.
fn adapter(
    preset: Preset,
    mock: &MockUpstream,
    clock: &ManualClock,
    tune: impl FnOnce(&mut OpenAiConfig),
) -> OpenAiProvider {
    let mut config = OpenAiConfig::new(preset.as_str(), preset).at(mock.base_url());
    tune(&mut config);
    OpenAiProvider::try_new(config, Arc::new(clock.clone())).expect("the adapter builds")
}

async fn chat(adapter: &OpenAiProvider) -> Result<ChatReply, ProviderError> {
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    let credential = Credential::new("openai-1", SECRET);
    adapter.chat(Call::new(&request, &model, Some(&credential))).await
}

/// The streamed texts before the first error, and that error.
async fn stream(adapter: &OpenAiProvider) -> (String, Option<ProviderError>) {
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    let credential = Credential::new("openai-1", SECRET);
    let mut chunks = match adapter.chat_stream(Call::new(&request, &model, Some(&credential))).await
    {
        Ok(stream) => stream.chunks,
        Err(error) => return (String::new(), Some(error)),
    };
    let mut text = String::new();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => text.push_str(&chunk.text),
            Err(error) => return (text, Some(error)),
        }
    }
    (text, None)
}

/// A 429 with `headers`, through the adapter.
async fn limited_with(headers: &[(&str, &str)]) -> ProviderError {
    let mock = mock().await;
    mock.inject(FaultRule::once(raw(429, "application/json", headers, RATE_LIMITED.to_owned())));
    chat(&adapter(Preset::OpenAi, &mock, &ManualClock::default(), |_| {}))
        .await
        .expect_err("rate limited")
}

#[track_caller]
fn assert_moves_on(error: &ProviderError, kind: ErrorKind) {
    assert_eq!(error.kind, kind, "{error}");
    assert_ne!(error.next_step(), NextStep::Stop, "{error}");
}

#[tokio::test]
async fn retry_after_1e14_is_max_hint() {
    let error = limited_with(&[("retry-after", "1e14")]).await;
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    assert_eq!(error.retry_after, Some(MAX_HINT));
    assert_eq!(Classify::retry_after(&error), Some(MAX_HINT));
}

#[tokio::test]
async fn retry_after_ms_past_u64_is_max_hint() {
    let error = limited_with(&[("retry-after-ms", "99999999999999999999")]).await;
    assert_eq!(error.retry_after, Some(MAX_HINT));
}

#[tokio::test]
async fn retry_after_as_a_date_in_year_9999_is_max_hint() {
    let error = limited_with(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]).await;
    assert_eq!(error.retry_after, Some(MAX_HINT));
}

#[tokio::test]
async fn negative_and_nan_delays_are_no_delay() {
    for value in ["-5", "NaN", "-inf"] {
        let error = limited_with(&[("retry-after", value)]).await;
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute }, "{value}");
        assert_eq!(error.retry_after, None, "retry-after: {value}");
    }
}

#[tokio::test]
async fn reset_headers_of_1e15_seconds_are_max_hint() {
    let error = limited_with(&[
        ("x-ratelimit-reset-requests", "1e15s"),
        ("x-ratelimit-reset-tokens", "1e15"),
        ("x-ratelimit-limit-requests", "10"),
    ])
    .await;
    let clock = ManualClock::default();
    for unit in [LimitUnit::Requests, LimitUnit::Tokens] {
        let reading = error.rate_limits.reading(unit).expect("a reading");
        assert_eq!(reading.reset, Some(Reset::After(MAX_HINT)), "{unit:?}");
        let at = reading.reset.expect("a reset").at(switchyard_core::Clock::utc(&clock));
        assert_eq!(at, switchyard_core::Clock::utc(&clock) + chrono::Duration::days(31));
    }
}

#[tokio::test]
async fn a_message_asking_to_wait_1e15_seconds_is_max_hint() {
    let mock = mock().await;
    let body = r#"{"error":{"message":"Rate limit reached on requests per day (RPD). Please try again in 1e15s.","type":"requests","code":"rate_limit_exceeded"}}"#;
    mock.inject(FaultRule::once(raw(429, "application/json", &[], body.to_owned())));
    let clock = ManualClock::default();
    let error = chat(&adapter(Preset::OpenAi, &mock, &clock, |_| {})).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    assert_eq!(error.retry_after, Some(MAX_HINT));
    let now = switchyard_core::Clock::utc(&clock);
    assert_eq!(error.resets_at, Some(now + chrono::Duration::days(31)));
}

#[tokio::test]
async fn an_openrouter_reset_quoted_in_year_262143_is_held_to_max_hint() {
    let mock = mock().await;
    let body = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"8210266876799000"}}}}"#;
    mock.inject(FaultRule::once(raw(429, "application/json", &[], body.to_owned())));
    let clock = ManualClock::default();
    let error =
        chat(&adapter(Preset::OpenRouter, &mock, &clock, |_| {})).await.expect_err("limited");
    let now = switchyard_core::Clock::utc(&clock);
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    assert_eq!(error.resets_at, Some(now + chrono::Duration::days(31)));
    assert_eq!(error.retry_after, Some(MAX_HINT));
    let quoted = error.rate_limits.reading(LimitUnit::Requests).expect("the quoted counter");
    assert_eq!(quoted.reset, Some(Reset::At(now + chrono::Duration::days(31))));
}

#[tokio::test]
async fn huge_counts_stay_exact_integers() {
    let error = limited_with(&[
        ("x-ratelimit-limit-requests", "9007199254740993"),
        ("x-ratelimit-remaining-requests", "99999999999999999999999"),
        ("x-ratelimit-limit-tokens", "18446744073709551615"),
        ("x-ratelimit-remaining-tokens", "1e14"),
    ])
    .await;
    let requests = error.rate_limits.reading(LimitUnit::Requests).expect("requests");
    assert_eq!((requests.limit, requests.remaining), (Some(9_007_199_254_740_993), Some(u64::MAX)));
    let tokens = error.rate_limits.reading(LimitUnit::Tokens).expect("tokens");
    assert_eq!((tokens.limit, tokens.remaining), (Some(u64::MAX), None));
}

#[tokio::test]
async fn many_short_data_lines_make_an_event_over_the_limit() {
    let mock = mock().await;
    let body = "data: 0123456789abcdef\n".repeat(100);
    mock.inject(FaultRule::once(raw(200, "text/event-stream", &[], body)));
    let small = adapter(Preset::OpenAi, &mock, &ManualClock::default(), |config| {
        config.max_line_bytes = 1000;
    });
    let (_, error) = stream(&small).await;
    let error = error.expect("an error");
    assert_moves_on(&error, ErrorKind::MalformedResponse);
    assert_eq!(error.message, "the stream event from openai is over the limit of 1000 bytes");
}

/// One answer of `status` with `headers` and `body` through an adapter of `preset`.
async fn classified(
    preset: Preset,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> ProviderError {
    let mock = mock().await;
    mock.inject(FaultRule::once(raw(status, "application/json", headers, body.to_owned())));
    chat(&adapter(preset, &mock, &ManualClock::default(), |_| {})).await.expect_err("a failure")
}

#[tokio::test]
async fn groq_422_is_a_server_error_tried_again() {
    // Groq: "422 Unprocessable Entity: semantic errors or model hallucinations; may retry".
    let body = r#"{"error":{"message":"The model produced an invalid tool call.","type":"invalid_request_error"}}"#;
    let error = classified(Preset::Groq, 422, &[], body).await;
    assert_eq!(error.kind, ErrorKind::ServerError);
    assert_eq!(error.next_step(), NextStep::RetrySame);
    let mistral = r#"{"detail":[{"loc":["body","stream_options"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}"#;
    assert_eq!(classified(Preset::Mistral, 422, &[], mistral).await.kind, ErrorKind::BadRequest);
}

#[tokio::test]
async fn openrouter_402_with_retry_after_is_a_wait_not_an_empty_account() {
    let body = r#"{"error":{"code":402,"message":"Request exceeds the in-flight budget for this key","metadata":{"limit_source":"openrouter_in_flight_budget"}}}"#;
    let error = classified(Preset::OpenRouter, 402, &[("retry-after", "3")], body).await;
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
    let no_header = classified(Preset::OpenRouter, 402, &[], body).await;
    assert_eq!(no_header.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    let credits = r#"{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/credits"}}"#;
    let error = classified(Preset::OpenRouter, 402, &[], credits).await;
    assert_eq!(error.kind, ErrorKind::BillingStopped, "a 402 without Retry-After");
}

#[tokio::test]
async fn openrouter_403_blocks_are_not_an_invalid_key() {
    let moderation = r#"{"error":{"code":403,"message":"openai/gpt-4o requires moderation on OpenRouter. Your input was flagged for \"harassment\".","metadata":{"reasons":["harassment"],"flagged_input":"...","provider_name":"OpenAI","model_slug":"openai/gpt-4o"}}}"#;
    let error = classified(Preset::OpenRouter, 403, &[], moderation).await;
    assert_eq!(error.kind, ErrorKind::ContentFiltered);
    assert_eq!(error.next_step(), NextStep::NextProvider);
    let terse = r#"{"error":{"code":403,"message":"Blocked","metadata":{"reasons":["violence"]}}}"#;
    assert_eq!(
        classified(Preset::OpenRouter, 403, &[], terse).await.kind,
        ErrorKind::ContentFiltered
    );
    let guardrail = r#"{"error":{"code":403,"message":"Request blocked by a guardrail of this key: model not allowed"}}"#;
    let error = classified(Preset::OpenRouter, 403, &[], guardrail).await;
    assert_eq!(error.kind, ErrorKind::PermissionDenied);
    assert_ne!(error.kind, ErrorKind::InvalidKey);
}
