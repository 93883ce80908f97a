//! The Gemini format over HTTP: a served call, per-minute and per-day 429s told apart by
//! their quota ids, and a wrong key as Gemini's 400 `API_KEY_INVALID`.

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{GeminiWire, KeyScript, MockUpstream};

async fn post(mock: &MockUpstream, key: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1beta/models/{model}:generateContent", mock.base_url()))
        .header("x-goog-api-key", key)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}))
        .send()
        .await
        .expect("the mock answers")
}

fn quota_id(body: &Value) -> &str {
    body["error"]["details"][0]["violations"][0]["quotaId"].as_str().expect("a quota id")
}

#[tokio::test]
async fn served_limited_per_minute_and_per_day_and_refused_in_geminis_words() {
    let mock = MockUpstream::builder(GeminiWire)
        .clock(ManualClock::default())
        .key(KeyScript::valid("g-minute", "AIza-minute").requests_per_minute(1))
        .key(KeyScript::valid("g-day", "AIza-day").requests_per_day(1))
        .start()
        .await
        .expect("starts");
    let served = post(&mock, "AIza-minute", "gemini-mock").await;
    assert_eq!(served.status(), 200);
    assert!(served.headers().get("x-ratelimit-limit-requests").is_none());
    let body: Value = served.json().await.expect("json");
    assert_eq!(body["candidates"][0]["content"]["parts"][0]["text"], "You said: hello there");
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");

    let minute: Value = post(&mock, "AIza-minute", "gemini-mock").await.json().await.expect("json");
    assert_eq!(minute["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(quota_id(&minute), "GenerateRequestsPerMinutePerProjectPerModel-FreeTier");

    assert_eq!(post(&mock, "AIza-day", "gemini-mock").await.status(), 200);
    let day = post(&mock, "AIza-day", "gemini-mock").await;
    assert_eq!(day.status(), 429);
    let day: Value = day.json().await.expect("json");
    assert_eq!(quota_id(&day), "GenerateRequestsPerDayPerProjectPerModel-FreeTier");

    let refused = post(&mock, "AIza-wrong", "gemini-mock").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["details"][0]["reason"], "API_KEY_INVALID");
}
