//! Windows of any length, sliding or fixed and unaligned, and scripted times: a key revoked
//! at a time, a fault active only for a span. All on a manual clock, over real HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule, KeyScript, MockUpstream, WindowQuota};

async fn post(mock: &MockUpstream, key: &str) -> reqwest::Response {
    let body: Value = json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]});
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("the mock answers")
}

async fn statuses(mock: &MockUpstream, key: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(post(mock, key).await.status().as_u16());
    }
    statuses
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_ten_second_sliding_window_frees_each_call_ten_seconds_later() {
    let clock = ManualClock::default();
    let key = KeyScript::valid("a", "sk-a").window(WindowQuota::requests_sliding(2, secs(10)));
    let mock = MockUpstream::openai().clock(clock.clone()).key(key).start().await.expect("starts");
    assert_eq!(statuses(&mock, "sk-a", 1).await, [200]);
    clock.advance(secs(4));
    let got = statuses(&mock, "sk-a", 2).await;
    assert_eq!(got, [200, 429]);
    let refused = post(&mock, "sk-a").await;
    assert_eq!(refused.headers()["retry-after-ms"], "6000", "the first call leaves at 10 s");
    clock.advance(secs(6));
    assert_eq!(statuses(&mock, "sk-a", 2).await, [200, 429]);
    let served = post(&mock, "sk-a").await;
    assert_eq!(served.headers()["retry-after-ms"], "4000");
}

#[tokio::test]
async fn a_fixed_window_restarts_at_its_own_boundaries() {
    let clock = ManualClock::default();
    // Boundaries at 3 s, 13 s, 23 s ... after the start: not aligned with anything the
    // client knows.
    let window = WindowQuota::requests_fixed(2, secs(10), secs(3));
    let key = KeyScript::valid("a", "sk-a").window(window);
    let mock = MockUpstream::openai().clock(clock.clone()).key(key).start().await.expect("starts");
    assert_eq!(statuses(&mock, "sk-a", 3).await, [200, 200, 429]);
    let refused = post(&mock, "sk-a").await;
    assert_eq!(refused.headers()["retry-after-ms"], "3000");
    clock.advance(secs(3));
    // A new window: two more at once, though the first two are only 3 s old.
    assert_eq!(statuses(&mock, "sk-a", 3).await, [200, 200, 429]);
    clock.advance(secs(9));
    assert_eq!(statuses(&mock, "sk-a", 1).await, [429]);
    clock.advance(secs(1));
    assert_eq!(statuses(&mock, "sk-a", 1).await, [200]);
    let counts = mock.counts("a").expect("scripted");
    assert_eq!((counts.served, counts.rate_limited), (5, 4));
}

#[tokio::test]
async fn the_binding_window_leads_the_headers_and_a_day_window_says_day() {
    let clock = ManualClock::default();
    let key = KeyScript::valid("a", "sk-a")
        .window(WindowQuota::requests_sliding(10, secs(5)))
        .window(WindowQuota::requests_fixed(3, secs(60), Duration::ZERO));
    let day = KeyScript::valid("d", "sk-d")
        .window(WindowQuota::requests_fixed(1, secs(60), Duration::ZERO).as_day());
    let mock =
        MockUpstream::openai().clock(clock.clone()).keys([key, day]).start().await.expect("starts");
    let first = post(&mock, "sk-a").await;
    // 2 of 3 left binds harder than 9 of 10.
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "2");
    assert_eq!(statuses(&mock, "sk-a", 3).await, [200, 200, 429]);
    assert_eq!(statuses(&mock, "sk-d", 1).await, [200]);
    let refused = post(&mock, "sk-d").await;
    let body: Value = refused.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("(RPD)"), "{message}");
}

#[tokio::test]
async fn a_group_window_is_shared_by_its_keys() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(KeyScript::valid("a", "sk-a").in_group("org"))
        .key(KeyScript::valid("b", "sk-b").in_group("org"))
        .group_window("org", WindowQuota::requests_sliding(3, secs(10)))
        .start()
        .await
        .expect("starts");
    assert_eq!(statuses(&mock, "sk-a", 2).await, [200, 200]);
    assert_eq!(statuses(&mock, "sk-b", 2).await, [200, 429]);
    clock.advance(secs(10));
    assert_eq!(statuses(&mock, "sk-b", 1).await, [200]);
}

#[tokio::test]
async fn a_key_revoked_at_a_time_and_a_fault_for_a_span() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(KeyScript::valid("a", "sk-a").revoked_at(secs(20)))
        .key(KeyScript::valid("b", "sk-b"))
        .fault(FaultRule::always(Fault::server_error()).for_key("b").between(secs(5), secs(10)))
        .start()
        .await
        .expect("starts");
    assert_eq!(statuses(&mock, "sk-b", 1).await, [200]);
    clock.advance(secs(5));
    assert_eq!(statuses(&mock, "sk-b", 2).await, [500, 500]);
    clock.advance(secs(5));
    assert_eq!(statuses(&mock, "sk-b", 1).await, [200], "the burst is over");
    clock.advance(secs(9));
    assert_eq!(statuses(&mock, "sk-a", 1).await, [200]);
    clock.advance(secs(1));
    assert_eq!(statuses(&mock, "sk-a", 1).await, [401], "revoked at 20 s");
}
