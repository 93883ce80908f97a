//! `POST /admin/keys/reset` over loopback: behind the token, typed refusals, and a key the
//! ledger holds out back in rotation, answered by id and fingerprint, never by secret.

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::KeyScript;

use crate::support::{body, key, mock, secret, serve_two_keys_with_admin};

const ADMIN: &str = "admin-token";

async fn post(running: &crate::support::Running, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(running.url("/admin/keys/reset")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn state_of(status: &Value, key: &str) -> String {
    status["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|provider| provider["keys"].as_array().into_iter().flatten())
        .find(|row| row["id"] == key)
        .and_then(|row| row["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_reset_brings_back_held_out_keys_behind_the_token() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![KeyScript::invalid("k1", secret("k1")), key("k2")]).await;
    let running =
        serve_two_keys_with_admin(&clock, &upstream, ("default", "groq/gpt-4o-mini"), ADMIN).await;

    let served = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(served.status().as_u16(), 200);
    let status = reqwest::Client::new()
        .get(running.url("/admin/status"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert_ne!(state_of(&status, "k1"), "available", "k1 is held out: {status}");

    let (code, answer) = post(&running, "wrong", None).await;
    assert_eq!(code, 401, "{answer}");
    let (code, answer) = post(&running, ADMIN, Some(json!({"provider": "nope"}))).await;
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (404, Some("UNKNOWN_PROVIDER")),
        "{answer}"
    );
    let (code, answer) = post(&running, ADMIN, Some(json!({"provider": 5}))).await;
    assert_eq!((code, answer["error"]["code"].as_str()), (400, Some("INVALID_INPUT")), "{answer}");
    let (code, answer) = post(&running, ADMIN, Some(json!({"providers": "groq"}))).await;
    assert_eq!(code, 400, "an unknown field is refused: {answer}");

    let (code, answer) = post(&running, ADMIN, Some(json!({"provider": "groq"}))).await;
    assert_eq!(code, 200, "{answer}");
    let keys: Vec<(&str, &str)> = answer["reset"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|row| (row["provider"].as_str().unwrap_or(""), row["key"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(keys, [("groq", "k1"), ("groq", "k2")]);
    assert!(answer["reset"][0].get("fingerprint").is_some(), "{answer}");
    assert!(!answer.to_string().contains(&secret("k1")), "no secret in {answer}");

    let (code, answer) = post(&running, ADMIN, None).await;
    assert_eq!((code, answer["reset"].as_array().map(Vec::len)), (200, Some(2)), "{answer}");
    let status = reqwest::Client::new()
        .get(running.url("/admin/status"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(state_of(&status, "k1"), "available", "{status}");
}
