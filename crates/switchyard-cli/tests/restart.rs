//! What an operator did through the admin API outlives the process: the real `switchyard
//! serve` binary, stopped with `kill -9` or SIGTERM and started again on the same `[state]`
//! file, keeps the keys that were disabled (issue 16, item 6).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Gateway, start_mock};

const ADMIN: &str = "admin-secret-token";

const CONFIG: &str = r#"
[server]
admin_token = "${ADMIN_TOKEN}"

[state]
path = "${STATE}"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "${BASE_URL}"
keys = ["${K1}", "${K2}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile"]
"#;

fn state_of(status: &Value, id: &str) -> String {
    let keys = status["providers"]
        .as_array()
        .and_then(|providers| providers.iter().find(|p| p["name"] == "groq"))
        .and_then(|groq| groq["keys"].as_array())
        .unwrap_or_else(|| panic!("groq's keys in {status:#}"));
    let key =
        keys.iter().find(|key| key["id"] == id).unwrap_or_else(|| panic!("key {id} in {status:#}"));
    key["state"].as_str().unwrap_or_else(|| panic!("a state for {id}: {key:#}")).to_owned()
}

async fn admin_post(gateway: &Gateway, path: &str) -> StatusCode {
    reqwest::Client::new()
        .post(gateway.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_keys_survive_kill_9_and_a_restart() {
    let mock = start_mock(&["k1", "k2"]).await;
    let state = tempfile::tempdir().expect("a state directory");
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("BASE_URL", mock.upstream.base_url()),
        ("K1", mock.secret("k1")),
        ("K2", mock.secret("k2")),
        ("STATE", state.path().join("switchyard.db").display().to_string()),
    ];

    let first = Gateway::start(CONFIG, &env).expect("the gateway starts");
    assert_eq!(admin_post(&first, "/admin/keys/K1/disable").await, StatusCode::OK);
    // Saved within a second; then the process dies without a chance to save again.
    support::wait_for(&first, "the admin state saved", || {
        first.stderr().contains("admin state saved")
    })
    .await;
    drop(first); // SIGKILL

    let mut second = Gateway::start(CONFIG, &env).expect("the gateway starts again");
    let status = second.admin_json("/admin/status", ADMIN).await;
    assert_eq!(state_of(&status, "K1"), "disabled", "after kill -9: {status:#}");
    assert_eq!(state_of(&status, "K2"), "available", "{status:#}");
    let served = reqwest::Client::new()
        .post(second.url("/v1/chat/completions"))
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(served.status(), StatusCode::OK);
    let k1_calls = mock.upstream.counts("k1").expect("k1 is scripted").requests;
    assert_eq!(k1_calls, 0, "a disabled key is never called");

    // Enabled again, then a clean stop (which saves): the next start has it back.
    assert_eq!(admin_post(&second, "/admin/keys/K1/enable").await, StatusCode::OK);
    assert!(second.terminate().success(), "a clean exit on SIGTERM");
    let third = Gateway::start(CONFIG, &env).expect("the gateway starts a third time");
    let status = third.admin_json("/admin/status", ADMIN).await;
    assert_eq!(state_of(&status, "K1"), "available", "after SIGTERM: {status:#}");
}
