//! The Anthropic format over HTTP: a served call with its headers, a 429 and a wrong key in
//! Anthropic's words.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{AnthropicWire, KeyScript, MockUpstream};

async fn post(mock: &MockUpstream, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-mock", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("the mock answers")
}

#[tokio::test]
async fn served_limited_and_refused_in_anthropics_words() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(AnthropicWire)
        .clock(clock.clone())
        .key(KeyScript::valid("a-1", "sk-ant-mock-1").requests_per_minute(1))
        .start()
        .await
        .expect("starts");
    let served = post(&mock, "sk-ant-mock-1").await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["anthropic-ratelimit-requests-limit"], "1");
    assert_eq!(served.headers()["anthropic-ratelimit-requests-remaining"], "0");
    assert_eq!(served.headers()["anthropic-ratelimit-requests-reset"], "2026-01-15T12:01:00Z");
    let body: Value = served.json().await.expect("json");
    assert_eq!(body["content"][0], json!({"type": "text", "text": "You said: hello there"}));
    assert_eq!(body["stop_reason"], "end_turn");

    clock.advance(Duration::from_secs(15));
    let limited = post(&mock, "sk-ant-mock-1").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "45");
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let refused = post(&mock, "sk-ant-wrong").await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body["error"],
        json!({"type": "authentication_error", "message": "invalid x-api-key"})
    );
}
