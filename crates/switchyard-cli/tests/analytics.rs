//! Analytics in the real `switchyard serve` binary: a scripted run against `switchyard-mock`
//! is recorded in the SQLite event log next to the state file, the admin reports return
//! exactly its events (per key, per hour, per error class, per client), they survive a
//! restart (as do the learned scores), and the retention deletes old rows at start.

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_core::{Clock, ManualClock, SystemClock};
use switchyard_mock::{KeyScript, MockUpstream};
use switchyard_store::{Analytics, AnalyticsEvent, EventKind};

use support::Gateway;

const ADMIN: &str = "analytics-admin-token";

fn chat() -> Value {
    json!({"model": "default", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

fn key_row<'a>(usage: &'a Value, key: &str) -> &'a Value {
    usage["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|row| row["key"] == key)
        .unwrap_or_else(|| panic!("no row for {key}: {usage:#}"))
}

/// Two old events written straight into the log before the gateway starts: key K8's ten
/// days ago (past the 7-day retention) and K9's five days ago (within it).
fn old_events(path: &Path) {
    let mut analytics = Analytics::open(path).expect("the log opens");
    let days_ago = |days: u64| SystemClock.utc() - Duration::from_secs(days * 86_400);
    let event = |key: &str, days: u64| AnalyticsEvent {
        at: days_ago(days),
        kind: EventKind::Attempt,
        request_id: format!("old-{key}"),
        client: None,
        route: "default".into(),
        provider: Some("groq".into()),
        key: Some(key.into()),
        model: Some("llama-3.3-70b-versatile".into()),
        success: true,
        error_class: None,
        quota_error: false,
        status: None,
        latency_ms: 1.0,
        prompt_tokens: 1,
        completion_tokens: 1,
        cost: Some(0.0),
        tags: Vec::new(),
    };
    analytics.insert_batch(&[event("K8", 10), event("K9", 5)]).expect("written");
    assert_eq!(analytics.len().expect("counted"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_show_exactly_a_scripted_run_and_survive_a_restart() {
    let mock = MockUpstream::openai()
        .clock(ManualClock::default())
        .keys([
            KeyScript::valid("k1", "sk-mock-k1-0123456789abcdef"),
            KeyScript::invalid("k2", "sk-mock-k2-0123456789abcdef"),
        ])
        .models(["llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let state = tempfile::tempdir().expect("a state directory");
    let state_file = state.path().join("switchyard.db");
    old_events(&state.path().join("switchyard.analytics.db"));
    let config = format!(
        r#"
[server]
admin_token = "${{ADMIN_TOKEN}}"
client_tokens = ["${{BARE_TOKEN}}"]

[state]
path = "{state}"

[analytics]
retention_days = 7

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K2}}", "${{K1}}"]
models = ["llama-3.3-70b-versatile"]
price = {{ cost_per_request = 0.001 }}

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile"]

[[clients]]
name = "ci-bot"
token = "${{CI_TOKEN}}"
"#,
        state = state_file.display(),
        url = mock.base_url(),
    );
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("BARE_TOKEN", "bare-token".to_owned()),
        ("CI_TOKEN", "ci-token".to_owned()),
        ("K1", "sk-mock-k1-0123456789abcdef".to_owned()),
        ("K2", "sk-mock-k2-0123456789abcdef".to_owned()),
    ];
    let mut gateway = Gateway::start(&config, &env).expect("the gateway starts");

    // The retention ran at start: K8's event is gone, K9's stays.
    let old = gateway.admin_json("/admin/analytics/usage?start=2000-01-01", ADMIN).await;
    let old_keys: Vec<&str> =
        old["keys"].as_array().expect("keys").iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(old_keys, ["K9"], "{old:#}");

    // The script: ci-bot's first request tries K2 (revoked upstream) then K1; its second and
    // an anonymous one go straight to K1.
    let client = reqwest::Client::new();
    for token in ["ci-token", "ci-token", "bare-token"] {
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(token)
            .json(&chat())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(mock.totals().served, 3);

    let check = |usage: &Value| {
        let k1 = key_row(usage, "K1");
        assert_eq!(k1["provider"], "groq");
        assert_eq!((k1["requests"].as_u64(), k1["successes"].as_u64()), (Some(3), Some(3)));
        assert_eq!(k1["failures"], 0);
        assert!((k1["cost"].as_f64().expect("cost") - 0.003).abs() < 1e-9, "{k1}");
        assert!(k1["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{k1}");
        let k2 = key_row(usage, "K2");
        assert_eq!((k2["requests"].as_u64(), k2["failures"].as_u64()), (Some(1), Some(1)));
        assert_eq!(k2["quota_errors"], 0);
        assert_eq!(key_row(usage, "K9")["requests"], 1, "the old event within the retention");
        assert_eq!(usage["keys"].as_array().map(Vec::len), Some(3));
        let clients = usage["clients"].as_array().expect("clients");
        assert_eq!(clients.len(), 1, "an anonymous request has no client row: {usage:#}");
        assert_eq!(clients[0]["client"], "ci-bot");
        assert_eq!(
            (clients[0]["requests"].as_u64(), clients[0]["successes"].as_u64()),
            (Some(2), Some(2))
        );
        assert!((clients[0]["cost"].as_f64().expect("cost") - 0.002).abs() < 1e-9, "{usage:#}");
    };
    // A report first commits what the writer holds: no waiting for its batch.
    let usage = gateway.admin_json("/admin/analytics/usage", ADMIN).await;
    check(&usage);
    let only_k2 = gateway.admin_json("/admin/analytics/usage?key=groq/K2", ADMIN).await;
    assert_eq!(only_k2["keys"].as_array().map(Vec::len), Some(1), "{only_k2:#}");

    let errors = gateway.admin_json("/admin/analytics/errors", ADMIN).await;
    assert_eq!(
        errors["errors"],
        json!([{"class": "invalid_key", "count": 1, "keys": ["groq/K2"]}]),
        "{errors:#}"
    );

    let today = &usage["end"].as_str().expect("end")[..10];
    let hourly = gateway.admin_json(&format!("/admin/analytics/hourly?date={today}"), ADMIN).await;
    let per_key = |key: &str| -> u64 {
        hourly["hours"]
            .as_array()
            .expect("hours")
            .iter()
            .filter(|row| row["key"] == key)
            .map(|row| row["requests"].as_u64().expect("count"))
            .sum()
    };
    assert_eq!((per_key("K1"), per_key("K2")), (3, 1), "{hourly:#}");
    assert!(hourly["hours"][0]["hour"].as_str().is_some_and(|h| h.ends_with(":00:00Z")));

    // Bad input gets a clear 400.
    for path in [
        "/admin/analytics/usage?start=yesterday",
        "/admin/analytics/usage?start=2026-11-23&end=2026-11-01",
        "/admin/analytics/hourly?date=23/11/2026",
        "/admin/analytics/errors?from=2026-11-01",
    ] {
        let response = client.get(gateway.url(path)).bearer_auth(ADMIN).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "INVALID_INPUT", "{path}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let analytics_metrics =
        reqwest::get(gateway.url("/metrics")).await.expect("sent").text().await.expect("text");
    assert!(
        analytics_metrics.contains(r#"switchyard_analytics_events{outcome="dropped"} 0"#),
        "{analytics_metrics}"
    );

    // A restart keeps every event: SIGTERM writes what is queued, the new process reads it.
    assert!(gateway.terminate().success());
    let restarted = Gateway::start(&config, &env).expect("the gateway starts again");
    let usage = restarted.admin_json("/admin/analytics/usage", ADMIN).await;
    check(&usage);

    // Learned scores come back from the state file too: before any new request the scorer
    // already knows K1 served three and K2 failed once.
    let scores = restarted.admin_json("/admin/scores", ADMIN).await;
    let row = |key: &str| {
        scores["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|row| row["key"] == key)
            .unwrap_or_else(|| panic!("no score for {key}: {scores:#}"))
            .clone()
    };
    assert_eq!(
        (row("K1")["successes"].as_u64(), row("K1")["failures"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(row("K2")["failures"].as_u64(), Some(1), "{scores:#}");
}
