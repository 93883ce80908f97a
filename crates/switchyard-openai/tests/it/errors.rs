//! Error bodies, headers and transport failures as the adapter classifies them, from raw
//! answers the mock sends byte for byte.

use std::time::Duration;

use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatRequest, Credential, ErrorKind, LimitScope, LimitUnit, ModelId, Provider,
    ProviderError, Reset,
};
use switchyard_mock::{Fault, FaultRule, Flavor, KeyScript, MockUpstream, OpenAiWire};
use switchyard_openai::{OpenAiProvider, Preset};

use crate::support::{for_mock, provider};

const SECRET: &str = "sk-proj-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

async fn mock() -> MockUpstream {
    MockUpstream::openai()
        .key(KeyScript::valid("openai-1", SECRET))
        .models(["gpt-4o-mini"])
        .start()
        .await
        .expect("starts")
}

fn credential() -> Credential {
    Credential::new("openai-1", SECRET)
}

async fn chat(adapter: &OpenAiProvider) -> Result<switchyard_core::ChatReply, ProviderError> {
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    adapter.chat(Call::new(&request, &model, Some(&credential()))).await
}

fn raw(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Raw {
        status,
        content_type: "application/json".to_owned(),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn a_429_carries_its_headers_go_durations_and_retry_after_ms() {
    let mock = mock().await;
    mock.inject(FaultRule::once(raw(
        429,
        &[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "29000"),
            ("x-ratelimit-reset-tokens", "2m59.56s"),
            ("retry-after", "360"),
            ("retry-after-ms", "1500"),
            ("x-request-id", "req_123"),
        ],
        r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 6m0s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    )));
    let error = chat(&for_mock(Preset::OpenAi, &mock)).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
    assert_eq!(error.status, Some(429));
    // The message's "try again in 6m0s" is the most specific hint; a header never shortens it.
    assert_eq!(error.retry_after, Some(Duration::from_secs(360)), "the message wins");
    let requests = error.rate_limits.reading(LimitUnit::Requests).expect("requests reading");
    assert_eq!(requests.reset, Some(Reset::After(Duration::from_secs(360))));
    assert_eq!((requests.limit, requests.remaining), (Some(500), Some(0)));
    let tokens = error.rate_limits.reading(LimitUnit::Tokens).expect("tokens reading");
    assert_eq!(tokens.reset, Some(Reset::After(Duration::from_millis(179_560))));
    assert_eq!(error.upstream_request_id.as_deref(), Some("req_123"));
    assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some("openai-1"));
    assert_eq!(error.model.as_ref().map(|model| model.as_str()), Some("gpt-4o-mini"));
}

#[tokio::test]
async fn a_daily_limit_without_headers_takes_its_delay_from_the_message() {
    let mock = mock().await;
    mock.inject(FaultRule::once(raw(
        429,
        &[],
        r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-xxxx on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
    )));
    let error = chat(&for_mock(Preset::OpenAi, &mock)).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    assert_eq!(error.retry_after, Some(Duration::from_secs(432)));
    assert!(error.resets_at.is_some(), "a daily limit says when it resets");
}

#[tokio::test]
async fn an_error_echoing_the_key_shows_no_secret() {
    let mock = mock().await;
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {SECRET}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    mock.inject(FaultRule::once(raw(401, &[], &body)));
    let credential = credential();
    let error = chat(&for_mock(Preset::OpenAi, &mock)).await.expect_err("refused");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
    for text in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{error:#?}"),
        format!("{credential}"),
        format!("{credential:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("ABCDEFGHIJKLMNOP"), "{text}");
    }
    assert!(error.message.contains("[key openai-1]"), "{}", error.message);
    assert!(format!("{error}").contains("key openai-1"));
    let logged = mock.last_request().expect("logged");
    assert!(!format!("{:?}", logged.headers).contains(SECRET), "the mock's log hides it too");
}

#[tokio::test]
async fn unreadable_bodies_are_classified_never_a_panic() {
    let mock = mock().await;
    let adapter = for_mock(Preset::OpenAi, &mock);
    let html = Fault::Raw {
        status: 200,
        content_type: "text/html".to_owned(),
        headers: Vec::new(),
        body: "<html>maintenance</html>".to_owned(),
    };
    let cases = [
        (html, ErrorKind::MalformedResponse),
        (raw(200, &[], "{}"), ErrorKind::MalformedResponse),
        (raw(502, &[], "<html>Bad gateway</html>"), ErrorKind::ServerError),
        (raw(429, &[], "slow down"), ErrorKind::RateLimited { scope: LimitScope::Unknown }),
        (raw(503, &[], ""), ErrorKind::Overloaded),
        (raw(408, &[], ""), ErrorKind::Timeout),
    ];
    for (fault, expected) in cases {
        let label = format!("{fault:?}");
        mock.inject(FaultRule::once(fault));
        let error = chat(&adapter).await.expect_err("a failure");
        assert_eq!(error.kind, expected, "{label}: {error}");
    }
}

#[tokio::test]
async fn errors_inside_a_200_are_errors() {
    let mock = mock().await;
    let adapter = for_mock(Preset::OpenRouter, &mock);
    mock.inject(FaultRule::once(raw(
        200,
        &[],
        r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429}}"#,
    )));
    let error = chat(&adapter).await.expect_err("an error in a 200 body");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    assert_eq!(error.status, Some(429));

    let stream_body = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"g1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"error\":{\"message\":\"Provider returned error\",\"code\":502}}\n\n",
    );
    mock.inject(FaultRule::once(Fault::Raw {
        status: 200,
        content_type: "text/event-stream".to_owned(),
        headers: Vec::new(),
        body: stream_body.to_owned(),
    }));
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    let credential = credential();
    let mut stream =
        adapter.chat_stream(Call::new(&request, &model, Some(&credential))).await.expect("starts");
    let first = stream.chunks.next().await.expect("a chunk").expect("text");
    assert_eq!(first.text, "Hel", "comment lines are skipped");
    let error = stream.chunks.next().await.expect("an item").expect_err("the error event");
    assert_eq!(error.kind, ErrorKind::ServerError);
    assert_eq!(error.message, "Provider returned error");
    assert!(stream.chunks.next().await.is_none(), "the stream ends after its error");
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let adapter =
        provider(Preset::Compatible, &format!("http://{addr}/v1"), Duration::from_secs(5));
    let error = chat(&adapter).await.expect_err("nobody listens");
    assert_eq!(error.kind, ErrorKind::Network, "{error}");
    let error = adapter.list_models(None).await.expect_err("nobody listens");
    assert_eq!(error.kind, ErrorKind::Network);
}

#[tokio::test]
async fn models_are_listed_and_a_bad_key_is_refused() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .key(KeyScript::valid("groq-1", "gsk-good"))
        .models(["llama-3.3-70b-versatile", "llama-3.1-8b-instant"])
        .start()
        .await
        .expect("starts");
    let adapter = for_mock(Preset::Groq, &mock);
    let models =
        adapter.list_models(Some(&Credential::new("groq-1", "gsk-good"))).await.expect("a list");
    let ids: Vec<&str> = models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"]);
    let error = adapter
        .list_models(Some(&Credential::new("groq-2", "gsk-wrong")))
        .await
        .expect_err("unknown key");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
    assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some("groq-2"));
    let request = ChatRequest::from_user("hi");
    let credential = Credential::new("groq-1", "gsk-good");
    let missing = ModelId::new("gpt-4o");
    let error = adapter
        .chat(Call::new(&request, &missing, Some(&credential)))
        .await
        .expect_err("no such model");
    assert_eq!(error.kind, ErrorKind::ModelNotFound);
}

#[tokio::test]
async fn groqs_headers_count_requests_per_day_and_tokens_per_minute() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .key(KeyScript::valid("groq-1", "gsk-1").requests_per_day(1000).tokens_per_minute(6000))
        .start()
        .await
        .expect("starts");
    let adapter = for_mock(Preset::Groq, &mock);
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("llama-3.1-8b-instant");
    let reply = adapter
        .chat(Call::new(&request, &model, Some(&Credential::new("groq-1", "gsk-1"))))
        .await
        .expect("served");
    let requests = reply.rate_limits.reading(LimitUnit::Requests).expect("requests");
    assert_eq!(
        (requests.scope, requests.limit, requests.remaining),
        (LimitScope::Day, Some(1000), Some(999))
    );
    let tokens = reply.rate_limits.reading(LimitUnit::Tokens).expect("tokens");
    assert_eq!((tokens.scope, tokens.limit), (LimitScope::Minute, Some(6000)));
    assert_eq!(
        tokens.remaining,
        Some(6000 - u64::from(reply.response.usage.total_tokens)),
        "the mock charges the answer's tokens"
    );
}

#[tokio::test]
async fn groqs_413_for_a_request_larger_than_the_minute_is_too_large() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .key(KeyScript::valid("groq-1", "gsk-1").tokens_per_minute(20))
        .start()
        .await
        .expect("starts");
    let adapter = for_mock(Preset::Groq, &mock);
    let request = ChatRequest::from_user("word ".repeat(40));
    let model = ModelId::new("llama-3.1-8b-instant");
    let error = adapter
        .chat(Call::new(&request, &model, Some(&Credential::new("groq-1", "gsk-1"))))
        .await
        .expect_err("too large");
    assert_eq!(error.kind, ErrorKind::RequestTooLarge);
    assert_eq!(error.status, Some(413));
}

#[tokio::test]
async fn openrouters_daily_counter_quoted_in_the_body_gives_the_reset() {
    let mock = mock().await;
    let clock = switchyard_core::ManualClock::default();
    let reset_ms =
        (switchyard_core::Clock::utc(&clock) + chrono::Duration::hours(3)).timestamp_millis();
    let body = format!(
        r#"{{"error":{{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{{"headers":{{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"{reset_ms}"}}}}}}}}"#
    );
    mock.inject(FaultRule::once(raw(429, &[], &body)));
    let config =
        switchyard_openai::OpenAiConfig::new("openrouter", Preset::OpenRouter).at(mock.base_url());
    let adapter =
        OpenAiProvider::try_new(config, std::sync::Arc::new(clock.clone())).expect("builds");
    let error = chat(&adapter).await.expect_err("limited");
    assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
    assert_eq!(error.resets_at.map(|at| at.timestamp_millis()), Some(reset_ms));
    assert_eq!(error.retry_after, Some(Duration::from_secs(3 * 3600)));
    let reading = error.rate_limits.reading(LimitUnit::Requests).expect("the quoted counter");
    assert_eq!(
        (reading.scope, reading.limit, reading.remaining),
        (LimitScope::Day, Some(50), Some(0))
    );
}

#[tokio::test]
async fn sse_with_crlf_no_space_and_event_names_still_reads() {
    let mock = mock().await;
    let body = concat!(
        ": keep-alive\r\n\r\n",
        "event: message\r\n",
        "data:{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]}\r\n\r\n",
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    );
    mock.inject(FaultRule::once(Fault::Raw {
        status: 200,
        content_type: "text/event-stream".to_owned(),
        headers: Vec::new(),
        body: body.to_owned(),
    }));
    let adapter = for_mock(Preset::Compatible, &mock);
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    let credential = credential();
    let mut stream =
        adapter.chat_stream(Call::new(&request, &model, Some(&credential))).await.expect("starts");
    let mut accumulator = switchyard_core::StreamAccumulator::new();
    while let Some(chunk) = stream.chunks.next().await {
        accumulator.push(&chunk.expect("a chunk"));
    }
    let response = accumulator.finish();
    assert_eq!(response.text, "Hi there");
    assert_eq!(response.usage, switchyard_core::Usage::new(3, 2));
    assert_eq!(response.finish_reason, Some(switchyard_core::FinishReason::Stop));
}

#[tokio::test]
async fn a_stream_ending_without_done_or_finish_is_an_error() {
    let mock = mock().await;
    let body = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";
    mock.inject(FaultRule::once(Fault::Raw {
        status: 200,
        content_type: "text/event-stream".to_owned(),
        headers: Vec::new(),
        body: body.to_owned(),
    }));
    let adapter = for_mock(Preset::OpenAi, &mock);
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("gpt-4o-mini");
    let credential = credential();
    let mut stream =
        adapter.chat_stream(Call::new(&request, &model, Some(&credential))).await.expect("starts");
    assert_eq!(stream.chunks.next().await.expect("a chunk").expect("text").text, "Hi");
    let error = stream.chunks.next().await.expect("an item").expect_err("ended early");
    assert_eq!(error.kind, ErrorKind::Network);
    assert!(stream.chunks.next().await.is_none());
}
