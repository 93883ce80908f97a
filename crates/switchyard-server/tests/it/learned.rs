//! A limit nobody declared, learned from a 429, is shown by `/admin/status` as learned, with
//! its window and evidence; declared limits carry no `learned`.

use std::time::Duration;

use serde_json::Value;
use switchyard_core::ManualClock;
use switchyard_mock::{Failure, Fault, FaultRule, Unit, Window};

use crate::support::{body, key, mock, serve_two_keys_with_admin};

const ADMIN: &str = "admin-token";

#[tokio::test]
async fn admin_status_shows_a_learned_limit_with_its_evidence() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let running = serve_two_keys_with_admin(
        &clock,
        &upstream,
        ("fast", "groq/llama-3.3-70b-versatile"),
        ADMIN,
    )
    .await;
    let client = reqwest::Client::new();
    let chat =
        || client.post(running.url("/v1/chat/completions")).json(&body("fast", false)).send();
    for _ in 0..3 {
        assert_eq!(chat().await.expect("sent").status(), 200);
    }
    // k1's fourth call is refused with a 5 s delay and no rate-limit headers: k2 serves it.
    upstream.inject(
        FaultRule::times(
            Fault::Fail(Failure::RateLimited {
                window: Window::Minute,
                unit: Unit::Requests,
                limit: 3,
                used: 3,
                requested: 1,
                retry_after: Duration::from_secs(5),
            }),
            1,
        )
        .for_key("k1"),
    );
    let response = chat().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-attempts"], "2");

    let view: Value = client
        .get(running.url("/admin/status"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let limits: Vec<&Value> = view["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .flat_map(|provider| provider["keys"].as_array().expect("keys"))
        .filter(|key| key["id"] == "k1")
        .flat_map(|key| key["models"].as_array().expect("models"))
        .flat_map(|model| model["limits"].as_array().expect("limits"))
        .collect();
    assert_eq!(limits.len(), 1, "{view:#}");
    let limit = limits[0];
    assert_eq!(limit["name"], "requests/learned-sliding-5000ms");
    assert_eq!((limit["used"].as_u64(), limit["limit"].as_u64()), (Some(3), Some(3)));
    let learned = &limit["learned"];
    assert_eq!(learned["scope"], "minute");
    assert_eq!(learned["window"], "sliding");
    assert_eq!(learned["window_ms"], 5_000);
    assert_eq!(learned["from_accepted"], 3);
    assert_eq!(learned["source"], "429");
    assert_eq!(learned["hint"], "retry after 5.0s");
    let k1 = view["providers"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["id"] == "k1")
        .expect("k1 shown");
    assert_eq!(k1["state"], "cooling", "{view:#}");
}
