//! The admin pin over loopback: behind the token, typed 400s, the pinned key serves first,
//! the pin is listed in `/admin/status` and ends with `DELETE` or on the clock.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::ManualClock;

use crate::support::{Running, body, key, mock, serve_two_keys_with_admin};

const ADMIN: &str = "admin-token";

async fn call(
    running: &Running,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, running.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn served_by(running: &Running, upstream: &switchyard_mock::MockUpstream) -> Vec<u64> {
    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    ["k1", "k2"].map(|id| upstream.counts(id).map_or(0, |counts| counts.requests)).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_sends_requests_to_its_key_until_deleted_or_expired() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let running =
        serve_two_keys_with_admin(&clock, &upstream, ("default", "groq/gpt-4o-mini"), ADMIN).await;
    let path = "/admin/keys/groq/k2/pin";
    let post = reqwest::Method::POST;

    let (code, _) =
        call(&running, post.clone(), path, "wrong", Some(json!({"for_secs": 60}))).await;
    assert_eq!(code, 401);
    for bad in [
        json!({"for_secs": 0}),
        json!({"for_secs": "60"}),
        json!({"for_secs": -1}),
        json!({}),
        json!({"for": 60}),
    ] {
        let (code, answer) = call(&running, post.clone(), path, ADMIN, Some(bad.clone())).await;
        assert_eq!(
            (code, answer["error"]["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{bad}: {answer}"
        );
    }
    let (code, answer) = call(
        &running,
        post.clone(),
        "/admin/keys/groq/nope/pin",
        ADMIN,
        Some(json!({"for_secs": 60})),
    )
    .await;
    assert_eq!(code, 404, "{answer}");

    assert_eq!(served_by(&running, &upstream).await, [1, 0], "priority: k1 first");
    let (code, answer) =
        call(&running, post.clone(), path, ADMIN, Some(json!({"for_secs": 10_000_000}))).await;
    assert_eq!(
        (code, answer["pinned_for_secs"].as_u64()),
        (200, Some(86_400)),
        "clamped: {answer}"
    );
    assert_eq!(served_by(&running, &upstream).await, [1, 1], "the pinned k2 serves");
    let (_, status) = call(&running, reqwest::Method::GET, "/admin/status", ADMIN, None).await;
    assert_eq!(
        status["pins"],
        json!([{"provider": "groq", "key": "k2", "remaining_secs": 86_400}])
    );

    let (code, answer) = call(&running, reqwest::Method::DELETE, path, ADMIN, None).await;
    assert_eq!((code, answer["was_pinned"].as_bool()), (200, Some(true)), "{answer}");
    assert_eq!(served_by(&running, &upstream).await, [2, 1], "k1 again once unpinned");

    call(&running, post.clone(), path, ADMIN, Some(json!({"for_secs": 30}))).await;
    assert_eq!(served_by(&running, &upstream).await, [2, 2]);
    clock.advance(Duration::from_secs(31));
    assert_eq!(served_by(&running, &upstream).await, [3, 2], "the pin ended on the clock");
    let (_, status) = call(&running, reqwest::Method::GET, "/admin/status", ADMIN, None).await;
    assert_eq!(status["pins"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_can_be_pinned_by_its_id_alone() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let running =
        serve_two_keys_with_admin(&clock, &upstream, ("default", "groq/gpt-4o-mini"), ADMIN).await;
    let post = reqwest::Method::POST;

    let (code, answer) =
        call(&running, post.clone(), "/admin/keys/nope/pin", ADMIN, Some(json!({"for_secs": 60})))
            .await;
    assert_eq!((code, answer["error"]["code"].as_str()), (404, Some("UNKNOWN_KEY")), "{answer}");
    let (code, answer) =
        call(&running, post.clone(), "/admin/keys/k2/pin", ADMIN, Some(json!({"for": 60}))).await;
    assert_eq!((code, answer["error"]["code"].as_str()), (400, Some("INVALID_INPUT")), "{answer}");

    assert_eq!(served_by(&running, &upstream).await, [1, 0], "priority: k1 first");
    let (code, answer) =
        call(&running, post.clone(), "/admin/keys/k2/pin", ADMIN, Some(json!({"for_secs": 60})))
            .await;
    assert_eq!(
        (code, answer["provider"].as_str(), answer["key"].as_str()),
        (200, Some("groq"), Some("k2")),
        "{answer}"
    );
    assert_eq!(served_by(&running, &upstream).await, [1, 1], "the pinned k2 serves");

    let (code, answer) =
        call(&running, reqwest::Method::DELETE, "/admin/keys/k2/pin", ADMIN, None).await;
    assert_eq!((code, answer["was_pinned"].as_bool()), (200, Some(true)), "{answer}");
    assert_eq!(served_by(&running, &upstream).await, [2, 1], "k1 again once unpinned");
}
