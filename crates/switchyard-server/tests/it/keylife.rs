//! Key lifecycle, audit and feedback by candidate over the real server and a real SQLite
//! state file: uses are saved in batches (none per request), the audit log names keys by id
//! and fingerprint, a key past its rotation deadline raises one alert, and feedback naming
//! a provider, model and key reaches the scorer or is refused naming what is unknown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::TimeDelta;
use serde_json::{Value, json};
use switchyard::{EventSink, KeyId, ProviderId, QuotaConfig, StrategyKind};
use switchyard_core::{Clock, Fingerprint, ManualClock};
use switchyard_server::{AlertConfig, EventHub, GatewayConfig, LifecycleConfig, Services};
use switchyard_store::SqliteStore;

use crate::support::{
    Running, body, builder, credentials, key, mock, provider, secret, serve_with, wait_until,
};

const ADMIN: &str = "admin-token";

fn fingerprint(id: &str) -> String {
    Fingerprint::of(&secret(id)).to_string()
}

/// Keys k1 and k2 of groq behind the admin token, with the hub and the lifecycle keeper on
/// `state`.
async fn gateway(
    clock: &ManualClock,
    upstream: &switchyard_mock::MockUpstream,
    lifecycle: Option<LifecycleConfig>,
    alerts: Option<AlertConfig>,
) -> Running {
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
    let router = credentials(
        builder(clock, QuotaConfig::default())
            .provider(provider("groq", upstream, clock))
            .route("default", StrategyKind::Priority, ["groq/gpt-4o-mini"])
            .event_sink(Arc::clone(&hub) as Arc<dyn EventSink>),
        "groq",
        &["k1", "k2"],
    )
    .build()
    .expect("router builds");
    let mut fingerprints = BTreeMap::new();
    for id in ["k1", "k2"] {
        fingerprints.insert((ProviderId::from("groq"), KeyId::from(id)), fingerprint(id));
    }
    let config =
        GatewayConfig { admin_token: Some(ADMIN.into()), fingerprints, ..GatewayConfig::default() };
    let services = Services { events: Some(hub), lifecycle, alerts, ..Services::default() };
    serve_with(router, clock, config, services).await
}

async fn admin(
    running: &Running,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, running.url(path)).bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn chat(running: &Running) {
    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
}

fn last_used(path: &std::path::Path, id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let store = SqliteStore::open(path).expect("state opens");
    let rows = store.key_lifecycle().expect("lifecycle reads");
    rows.into_iter().find(|row| row.key.as_str() == id).and_then(|row| row.last_used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_are_saved_in_batches_never_per_request() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut lifecycle = LifecycleConfig::new(SqliteStore::open(&path).expect("opens"));
    lifecycle.flush_every = Duration::from_secs(30);
    let running = gateway(&clock, &upstream, Some(lifecycle), None).await;

    for _ in 0..3 {
        chat(&running).await;
    }
    assert_eq!(last_used(&path, "k1"), None, "a request never writes the state file");

    // The background save runs on the gateway's clock.
    clock.advance(Duration::from_secs(31));
    let expected = clock.utc();
    wait_until("the background save wrote k1's last use", || last_used(&path, "k1").is_some())
        .await;
    let store = SqliteStore::open(&path).expect("opens");
    let rows = store.key_lifecycle().expect("reads");
    let k1 = rows.iter().find(|row| row.key.as_str() == "k1").expect("k1 registered");
    let k2 = rows.iter().find(|row| row.key.as_str() == "k2").expect("k2 registered");
    assert!(k1.last_used.is_some_and(|at| at <= expected), "{k1:?}");
    assert_eq!(k1.fingerprint, fingerprint("k1"));
    assert_eq!(k2.last_used, None, "the priority route never used k2");

    // A later request is saved by an explicit flush (as at shutdown), with its later time.
    clock.advance(Duration::from_secs(5));
    chat(&running).await;
    running.gateway.flush_key_lifecycle().expect("flush");
    assert_eq!(last_used(&path, "k1"), Some(clock.utc()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_admin_actions_by_id_and_fingerprint() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let lifecycle = LifecycleConfig::new(SqliteStore::open(&path).expect("opens"));
    let running = gateway(&clock, &upstream, Some(lifecycle), None).await;
    let post = reqwest::Method::POST;

    assert_eq!(admin(&running, post.clone(), "/admin/keys/k1/disable", None).await.0, 200);
    clock.advance(Duration::from_secs(10));
    assert_eq!(admin(&running, post.clone(), "/admin/keys/k1/enable", None).await.0, 200);
    let pin = json!({ "for_secs": 600 });
    assert_eq!(admin(&running, post.clone(), "/admin/keys/groq/k2/pin", Some(pin)).await.0, 200);

    let (status, log) = admin(&running, reqwest::Method::GET, "/admin/audit", None).await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["disable", "enable", "pin"]);
    assert_eq!(entries[0]["key"], "k1");
    assert_eq!(entries[0]["fingerprint"], fingerprint("k1"));
    assert_eq!(entries[2]["detail"], "for 600 s");
    assert!(!log.to_string().contains(&secret("k1")), "a secret in the audit log");

    let since = (clock.utc() - TimeDelta::seconds(5)).to_rfc3339();
    let url = format!("/admin/audit?since={}&limit=1", since.replace('+', "%2B"));
    let (status, log) = admin(&running, reqwest::Method::GET, &url, None).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["pin"], "the newest one since five seconds ago");

    let (_, log) = admin(&running, reqwest::Method::GET, "/admin/audit?limit=999999", None).await;
    assert_eq!(log["limit"], 1000, "the limit is clamped");
    let (status, error) =
        admin(&running, reqwest::Method::GET, "/admin/audit?limit=lots", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));
    let (status, error) = admin(&running, reqwest::Method::GET, "/admin/audit?user=x", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));

    // The entries are in the state file for good.
    let store = SqliteStore::open(&path).expect("opens");
    assert_eq!(store.audit(None, 100).expect("reads").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_state_file_the_audit_log_is_a_typed_404() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let running = gateway(&clock, &upstream, None, None).await;
    let (status, error) = admin(&running, reqwest::Method::GET, "/admin/audit", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("AUDIT_DISABLED")));
}

/// What the webhook receiver got.
async fn receive(
    State(inbox): State<Arc<Mutex<Vec<Value>>>>,
    Json(alert): Json<Value>,
) -> axum::http::StatusCode {
    inbox.lock().expect("inbox").push(alert);
    axum::http::StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_rotation_deadline_raises_one_alert_and_a_reload_sets_the_deadline() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&inbox));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut lifecycle = LifecycleConfig::new(SqliteStore::open(&path).expect("opens"));
    // k1 came from a vault that says it was added 31 days ago; k2 is new today.
    lifecycle
        .created
        .insert((ProviderId::from("groq"), KeyId::from("k1")), clock.utc() - TimeDelta::days(31));
    let running = gateway(&clock, &upstream, Some(lifecycle), Some(AlertConfig::new(hook))).await;
    // No deadline configured at start: nothing is due.
    running.gateway.flush_key_lifecycle().expect("flush");
    let alerted = || {
        let store = SqliteStore::open(&path).expect("opens");
        let rows = store.key_lifecycle().expect("reads");
        rows.iter().filter(|row| row.rotation_alerted.is_some()).count()
    };
    assert_eq!(alerted(), 0, "no rotate_after_days, no alert");
    // A reload brings `rotate_after_days = 30`: the next save takes it.
    let mut fingerprints = BTreeMap::new();
    for id in ["k1", "k2"] {
        fingerprints.insert((ProviderId::from("groq"), KeyId::from(id)), fingerprint(id));
    }
    let mut reloaded = GatewayConfig { fingerprints, ..GatewayConfig::default() };
    reloaded.rotate_after.insert(ProviderId::from("groq"), Duration::from_secs(30 * 86_400));
    running.gateway.reload((*running.gateway.router()).clone(), reloaded);
    running.gateway.flush_key_lifecycle().expect("flush");
    running.gateway.flush_key_lifecycle().expect("flush again");
    let rotation = |inbox: &Mutex<Vec<Value>>| -> Vec<Value> {
        let inbox = inbox.lock().expect("inbox");
        inbox.iter().filter(|alert| alert["kind"] == "key_rotation_due").cloned().collect()
    };
    wait_until("the rotation alert arrived", || !rotation(&inbox).is_empty()).await;
    let alerts = rotation(&inbox);
    assert_eq!(alerts.len(), 1, "once per key: {alerts:?}");
    assert_eq!(alerts[0]["key"], "k1");
    assert_eq!(alerts[0]["age_days"], 31);
    assert_eq!(alerts[0]["fingerprint"], fingerprint("k1"));
    assert_eq!(alerts[0]["severity"], "warning", "every alert has a severity");

    // k2 turns 30 days old: its own alert, once; k1 is not told again.
    clock.advance(Duration::from_secs(30 * 86_400));
    running.gateway.flush_key_lifecycle().expect("flush");
    wait_until("k2's rotation alert arrived", || rotation(&inbox).len() == 2).await;
    running.gateway.flush_key_lifecycle().expect("flush");
    let keys: Vec<Value> = rotation(&inbox).iter().map(|alert| alert["key"].clone()).collect();
    assert_eq!(keys, [json!("k1"), json!("k2")]);
    assert_eq!(alerted(), 2, "both keys are marked alerted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_by_provider_model_and_key_reaches_the_scorer() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let running = gateway(&clock, &upstream, None, None).await;
    let post = reqwest::Method::POST;
    let quality_of = |scores: &Value, key: &str| -> Value {
        scores["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|row| row["key"] == key)
            .map_or(Value::Null, |row| row["quality"].clone())
    };

    let one = json!({ "provider": "groq", "model": "gpt-4o-mini", "key": "k2", "quality": 0.1 });
    let (status, answer) = admin(&running, post.clone(), "/admin/feedback", Some(one)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["applied"],
        json!([{ "provider": "groq", "key": "k2", "model": "gpt-4o-mini" }])
    );
    let (_, scores) = admin(&running, reqwest::Method::GET, "/admin/scores", None).await;
    let k2 = quality_of(&scores, "k2").as_f64().expect("k2 has a quality");
    assert!(k2 < 0.5, "a low mark lowers k2's quality: {scores}");

    // Without a key, every key of the provider serving that model.
    let all = json!({ "provider": "groq", "model": "gpt-4o-mini", "quality": 0.9 });
    let (status, answer) = admin(&running, post.clone(), "/admin/feedback", Some(all)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"].as_array().map(Vec::len), Some(2));

    for (body, code, named) in [
        (
            json!({ "provider": "nope", "model": "gpt-4o-mini", "quality": 0.5 }),
            "UNKNOWN_PROVIDER",
            "nope",
        ),
        (json!({ "provider": "groq", "model": "gpt-9", "quality": 0.5 }), "UNKNOWN_MODEL", "gpt-9"),
        (
            json!({ "provider": "groq", "model": "gpt-4o-mini", "key": "k9", "quality": 0.5 }),
            "UNKNOWN_KEY",
            "k9",
        ),
    ] {
        let (status, error) = admin(&running, post.clone(), "/admin/feedback", Some(body)).await;
        assert_eq!((status, error["error"]["code"].as_str()), (404, Some(code)), "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains(named)), "{error}");
    }
    let both =
        json!({ "request_id": "r1", "provider": "groq", "model": "gpt-4o-mini", "quality": 0.5 });
    let (status, error) = admin(&running, post.clone(), "/admin/feedback", Some(both)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));
    let out = json!({ "provider": "groq", "model": "gpt-4o-mini", "quality": 1.5 });
    let (status, error) = admin(&running, post, "/admin/feedback", Some(out)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_QUALITY")));
}
