//! The OpenAI format's answers, quotas on a manual clock, faults and the log.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{
    Failure, Fault, FaultRule, Flavor, KeyScript, MockUpstream, OpenAiWire, Outcome, Window,
};

async fn post(mock: &MockUpstream, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("the mock answers")
}

/// Waits until `ready` holds, yielding to the mock's server; fails after 20 s of real time so
/// a bug shows as a failure, not a hang. Never used to let time pass: time is the manual clock's.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !ready() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting until {what}");
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-mock", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn a_served_call_carries_limit_headers_and_is_logged_without_its_key() {
    let mock = MockUpstream::openai()
        .clock(ManualClock::default())
        .key(KeyScript::valid("key-a", "sk-mock-secret-a").requests_per_minute(3))
        .start()
        .await
        .expect("starts");
    let response = post(&mock, "sk-mock-secret-a", &chat("hello there")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "2");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "1m0s");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "You said: hello there");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.key.as_ref().map(|key| key.as_str()), Some("key-a"));
    assert_eq!(logged.model.as_deref(), Some("gpt-mock"));
    assert_eq!(logged.headers["authorization"], "Bearer [key key-a]");
    assert!(matches!(logged.outcome, Outcome::Served { .. }));
    assert_eq!(mock.counts("key-a").expect("scripted").served, 1);
}

#[tokio::test]
async fn a_spent_minute_answers_openais_429_and_reopens_when_the_clock_moves() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(KeyScript::valid("key-a", "sk-a").requests_per_minute(2))
        .start()
        .await
        .expect("starts");
    for _ in 0..2 {
        assert_eq!(post(&mock, "sk-a", &chat("hi")).await.status(), 200);
        clock.advance(Duration::from_secs(10));
    }
    let refused = post(&mock, "sk-a", &chat("hi")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "40");
    assert_eq!(refused.headers()["retry-after-ms"], "40000");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("(RPM): Limit 2, Used 2, Requested 1"), "{message}");
    assert!(message.contains("Please try again in 40s."), "{message}");
    clock.advance(Duration::from_secs(40));
    assert_eq!(post(&mock, "sk-a", &chat("hi")).await.status(), 200);
    let counts = mock.counts("key-a").expect("scripted");
    assert_eq!((counts.requests, counts.served, counts.rate_limited), (4, 3, 1));
}

#[tokio::test]
async fn a_day_quota_resets_at_midnight_in_the_configured_zone() {
    // The manual clock starts at 12:00 UTC, 04:00 in Los Angeles.
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(clock.clone())
        .time_zone(chrono_tz::America::Los_Angeles)
        .key(KeyScript::valid("groq-1", "gsk-1").requests_per_day(1))
        .start()
        .await
        .expect("starts");
    let served = post(&mock, "gsk-1", &chat("hi")).await;
    assert_eq!(served.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(served.headers()["x-ratelimit-reset-requests"], "20h0m0s");
    let refused = post(&mock, "gsk-1", &chat("hi")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("requests per day (RPD)"), "{message}");
    clock.advance(Duration::from_secs(20 * 3600));
    assert_eq!(post(&mock, "gsk-1", &chat("hi")).await.status(), 200);
    let log = mock.log();
    assert!(matches!(
        log[1].outcome,
        Outcome::Refused(Failure::RateLimited { window: Window::Day, .. })
    ));
}

#[tokio::test]
async fn invalid_unknown_and_revoked_keys_get_401() {
    let mock = MockUpstream::openai()
        .key(KeyScript::invalid("bad", "sk-bad-0000000000001234"))
        .key(KeyScript::valid("soon", "sk-soon").revoked_after(1))
        .start()
        .await
        .expect("starts");
    let bad = post(&mock, "sk-bad-0000000000001234", &chat("hi")).await;
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("sk-********1234") && !message.contains("0000001234"), "{message}");
    assert_eq!(post(&mock, "sk-unknown", &chat("hi")).await.status(), 401);
    assert_eq!(post(&mock, "sk-soon", &chat("hi")).await.status(), 200);
    assert_eq!(post(&mock, "sk-soon", &chat("hi")).await.status(), 401);
    assert_eq!(mock.unknown_key_counts().refused, 1);
    assert_eq!(mock.totals().requests, 4);
}

#[tokio::test]
async fn a_stream_ends_with_done_and_a_cut_stream_breaks_the_body() {
    let mock = MockUpstream::openai().accept_unknown_keys().start().await.expect("starts");
    let mut body = chat("one two three");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = post(&mock, "any", &body).await.text().await.expect("body");
    let frames: Vec<&str> = text.split("\n\n").filter(|frame| !frame.is_empty()).collect();
    assert_eq!(frames.last(), Some(&"data: [DONE]"));
    let usage_frame = frames[frames.len() - 2].strip_prefix("data: ").expect("data");
    let usage: Value = serde_json::from_str(usage_frame).expect("json");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);

    mock.inject(FaultRule::once(Fault::CutStream { after_frames: 2 }));
    let cut = post(&mock, "any", &body).await;
    assert_eq!(cut.status(), 200);
    assert!(cut.text().await.is_err(), "a cut body must not read as complete");
}

#[tokio::test]
async fn a_reset_fault_drops_the_connection_and_rules_can_target_one_key() {
    let mock = MockUpstream::openai()
        .key(KeyScript::valid("a", "sk-a"))
        .key(KeyScript::valid("b", "sk-b"))
        .start()
        .await
        .expect("starts");
    mock.inject(FaultRule::times(Fault::Reset, 2).for_key("a"));
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let reset = client.post(&url).bearer_auth("sk-a").json(&chat("hi")).send().await;
    assert!(reset.is_err(), "{reset:?}");
    assert_eq!(post(&mock, "sk-b", &chat("hi")).await.status(), 200);
    mock.inject(FaultRule::once(Fault::server_error()));
    assert_eq!(post(&mock, "sk-b", &chat("hi")).await.status(), 500);
    assert_eq!(mock.counts("a").expect("a").faulted, 1);
    assert_eq!(mock.counts("b").expect("b").faulted, 1);
}

#[tokio::test]
async fn latency_is_slept_on_the_mocks_clock() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .accept_unknown_keys()
        .latency(switchyard_mock::Latency::Fixed(Duration::from_secs(5)))
        .start()
        .await
        .expect("starts");
    let call = tokio::spawn({
        let url = format!("{}/chat/completions", mock.base_url());
        async move { reqwest::Client::new().post(url).bearer_auth("any").json(&chat("hi")).send().await }
    });
    // The call is logged when it is decided, then sleeps on the clock.
    wait_until("the call sleeps its latency", || mock.n_requests() > 0 && clock.sleepers() > 0)
        .await;
    clock.advance(Duration::from_secs(4));
    tokio::task::yield_now().await;
    assert!(!call.is_finished(), "answered before its latency passed");
    clock.advance(Duration::from_secs(1));
    let response = call.await.expect("task").expect("answered");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn mistral_refuses_stream_options_with_its_422() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Mistral))
        .accept_unknown_keys()
        .start()
        .await
        .expect("starts");
    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let refused = post(&mock, "any", &body).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["detail"][0]["msg"], "stream_options: Extra inputs are not permitted");
}

#[tokio::test]
async fn keys_of_one_group_run_out_together() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .group(
            "org-1",
            switchyard_mock::Quotas { requests_per_minute: Some(3), ..Default::default() },
        )
        .key(KeyScript::valid("a", "sk-a").in_group("org-1"))
        .key(KeyScript::valid("b", "sk-b").in_group("org-1").requests_per_minute(1))
        .key(KeyScript::valid("c", "sk-c"))
        .start()
        .await
        .expect("starts");
    assert_eq!(post(&mock, "sk-a", &chat("hi")).await.status(), 200);
    assert_eq!(post(&mock, "sk-b", &chat("hi")).await.status(), 200);
    assert_eq!(post(&mock, "sk-b", &chat("hi")).await.status(), 429, "b's own limit");
    assert_eq!(post(&mock, "sk-a", &chat("hi")).await.status(), 200);
    let refused = post(&mock, "sk-a", &chat("hi")).await;
    assert_eq!(refused.status(), 429, "the group's three are spent");
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(post(&mock, "sk-c", &chat("hi")).await.status(), 200, "outside the group");
    clock.advance(Duration::from_secs(60));
    assert_eq!(post(&mock, "sk-a", &chat("hi")).await.status(), 200);
}

#[tokio::test]
async fn a_slow_fault_serves_late_on_the_clock() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .accept_unknown_keys()
        .fault(FaultRule::once(Fault::Slow(Duration::from_secs(30))))
        .start()
        .await
        .expect("starts");
    let url = format!("{}/chat/completions", mock.base_url());
    let call = tokio::spawn(async move {
        reqwest::Client::new().post(url).bearer_auth("any").json(&chat("hi")).send().await
    });
    wait_until("the slow fault sleeps", || clock.sleepers() > 0).await;
    assert!(!call.is_finished());
    clock.advance(Duration::from_secs(30));
    assert_eq!(call.await.expect("task").expect("answered").status(), 200);
    assert!(matches!(mock.last_request().expect("logged").outcome, Outcome::Served { .. }));
    assert_eq!(post(&mock, "any", &chat("hi")).await.status(), 200, "only once");
}

#[tokio::test]
async fn without_a_log_the_counters_stay_exact() {
    let mock = MockUpstream::openai()
        .log_limit(0)
        .key(KeyScript::valid("a", "sk-a").requests_per_minute(2))
        .start()
        .await
        .expect("starts");
    for _ in 0..3 {
        post(&mock, "sk-a", &chat("hi")).await;
    }
    assert!(mock.log().is_empty());
    let counts = mock.counts("a").expect("a");
    assert_eq!((counts.requests, counts.served, counts.rate_limited), (3, 2, 1));
    assert_eq!(counts.completion_tokens, 2 * 3, "\"You said: hi\" is three words");
}
