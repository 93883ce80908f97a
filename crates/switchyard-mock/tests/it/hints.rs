//! Retry hints as each provider really gives them: Gemini's OpenAI-compatible surface (the
//! delay only in a list-shaped body), keys whose headers say nothing usable, keys that give no
//! hint at all. Real HTTP, a manual clock.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{Flavor, HintStyle, KeyScript, MockUpstream, OpenAiWire};

async fn post(mock: &MockUpstream, key: &str) -> reqwest::Response {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("the mock answers")
}

/// A mock of `flavor` with one key `k` (secret `sk-k`) of one request a minute and a day limit
/// it never reaches, whose headers follow `hints`; the minute is spent 22.6 s before the
/// returned 429, so its delay is 37.4 s.
/// Also returns the names of the served answer's headers.
async fn refused_after_one(flavor: Flavor, hints: HintStyle) -> (reqwest::Response, Vec<String>) {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OpenAiWire::new(flavor))
        .clock(clock.clone())
        .key(
            KeyScript::valid("k", "sk-k")
                .requests_per_minute(1)
                .requests_per_day(1000)
                .hints(hints),
        )
        .start()
        .await
        .expect("starts");
    let served = post(&mock, "sk-k").await;
    assert_eq!(served.status(), 200);
    let served_headers = header_names(&served);
    let served_body: Value = served.json().await.expect("an answer");
    assert_eq!(served_body["choices"][0]["message"]["content"], "You said: hi");
    clock.advance(Duration::from_millis(22_600));
    let refused = post(&mock, "sk-k").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(mock.counts("k").expect("scripted").rate_limited, 1);
    (refused, served_headers)
}

fn header_names(response: &reqwest::Response) -> Vec<String> {
    response.headers().keys().map(|name| name.as_str().to_owned()).collect()
}

fn no_limit_header(names: &[String]) -> bool {
    !names.iter().any(|name| name.starts_with("x-ratelimit-"))
}

#[tokio::test]
async fn gemini_openai_compatible_errors_are_a_list_with_the_delay_only_in_the_body() {
    let (refused, served) = refused_after_one(Flavor::GeminiOpenAi, HintStyle::AsFormat).await;
    let names = header_names(&refused);
    assert!(no_limit_header(&names), "{names:?}");
    assert!(!names.iter().any(|name| name.starts_with("retry-after")), "{names:?}");
    assert!(no_limit_header(&served), "{served:?}");
    let body: Value = refused.json().await.expect("json");
    let list = body.as_array().expect("a list-shaped error");
    assert_eq!(list.len(), 1);
    let error = &list[0]["error"];
    assert_eq!(error["code"], 429);
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let message = error["message"].as_str().expect("message");
    assert!(message.ends_with("Please retry in 37.4s."), "{message}");
    let details = error["details"].as_array().expect("details");
    let of_type = |kind: &str| {
        details
            .iter()
            .find(|detail| detail["@type"] == format!("type.googleapis.com/google.rpc.{kind}"))
            .unwrap_or_else(|| panic!("no {kind} in {details:?}"))
    };
    assert_eq!(
        of_type("QuotaFailure")["violations"][0]["quotaId"],
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    );
    // Protobuf Duration in whole seconds, as the observed bodies carry it next to a message
    // with the fraction.
    assert_eq!(of_type("RetryInfo")["retryDelay"], "37s");
}

#[tokio::test]
async fn gemini_openai_compatible_lives_under_v1beta_openai() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::GeminiOpenAi))
        .key(KeyScript::valid("k", "sk-k"))
        .start()
        .await
        .expect("starts");
    assert!(mock.base_url().ends_with("/v1beta/openai"), "{}", mock.base_url());
    let wrong = post(&mock, "sk-wrong").await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body[0]["error"]["details"][0]["reason"], "API_KEY_INVALID");
}

#[tokio::test]
async fn retry_after_only_keeps_retry_after_and_drops_every_rate_limit_header() {
    let (refused, served) = refused_after_one(Flavor::OpenAi, HintStyle::RetryAfterOnly).await;
    assert!(no_limit_header(&served), "{served:?}");
    assert!(no_limit_header(&header_names(&refused)), "{:?}", header_names(&refused));
    assert_eq!(refused.headers()["retry-after"], "38");
    assert_eq!(refused.headers()["retry-after-ms"], "37400");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn groq_sends_retry_after_and_only_the_days_request_headers() {
    let (refused, _) = refused_after_one(Flavor::Groq, HintStyle::AsFormat).await;
    assert_eq!(refused.headers()["retry-after"], "38");
    assert!(refused.headers().get("retry-after-ms").is_none());
    // Groq's request headers count the day, so they say nothing of the minute that refused.
    assert_eq!(refused.headers()["x-ratelimit-limit-requests"], "1000");
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "999");
    let body: Value = refused.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("Please try again in 37.4s."), "{message}");
}

#[tokio::test]
async fn no_headers_with_openrouters_words_gives_no_hint_at_all() {
    let (refused, served) = refused_after_one(Flavor::OpenRouter, HintStyle::NoHeaders).await;
    assert!(no_limit_header(&served), "{served:?}");
    let names = header_names(&refused);
    assert!(no_limit_header(&names), "{names:?}");
    assert!(!names.iter().any(|name| name.starts_with("retry-after")), "{names:?}");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body,
        json!({"error": {"message": "Rate limit exceeded: free-models-per-min.", "code": 429}})
    );
}
