//! The admin API and client limits in process, on a manual clock: a client's minute slides
//! with the clock, feedback and score imports reach the scorer, a reload swaps the router or
//! keeps the old one, a key failing most of its attempts raises an alert, and analytics rows
//! land in a real SQLite file at the clock's hour.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::{EventSink, QuotaConfig, Router, StrategyKind};
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule};
use switchyard_server::{ClientConfig, EventHub, GatewayConfig, Reloader, Services};
use switchyard_store::{Analytics, AnalyticsWriter, AnalyticsWriterConfig};

use crate::support::{Running, body, builder, credentials, key, mock, provider, serve_with};

const ADMIN: &str = "admin-token";

fn config() -> GatewayConfig {
    GatewayConfig { admin_token: Some(ADMIN.into()), ..GatewayConfig::default() }
}

async fn router_on(
    clock: &ManualClock,
    upstream: &switchyard_mock::MockUpstream,
    hub: Option<&Arc<EventHub>>,
) -> Router {
    let mut builder = builder(clock, QuotaConfig::default())
        .provider(provider("groq", upstream, clock))
        .route("default", StrategyKind::Priority, ["groq/gpt-4o-mini"])
        .route("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]);
    if let Some(hub) = hub {
        builder = builder.event_sink(Arc::clone(hub) as Arc<dyn EventSink>);
    }
    credentials(builder, "groq", &["k1", "k2"]).build().expect("router builds")
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

async fn chat(running: &Running, token: Option<&str>, route: &str) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().post(running.url("/v1/chat/completions")).json(&body(route, false));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_minute_slides_with_the_clock_and_never_holds_back_another() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let router = router_on(&clock, &upstream, None).await;
    let client = |name: &str, token: &str, rpm: Option<u32>| {
        Arc::new(ClientConfig {
            name: name.into(),
            token: token.into(),
            routes: None,
            requests_per_minute: rpm,
            daily_budget: None,
        })
    };
    let config = GatewayConfig {
        clients: vec![client("one", "tok-one", Some(1)), client("other", "tok-other", None)],
        ..config()
    };
    let running = serve_with(router, &clock, config, Services::default()).await;
    assert_eq!(chat(&running, Some("tok-one"), "default").await.status(), 200);
    clock.advance(Duration::from_secs(45));
    let limited = chat(&running, Some("tok-one"), "default").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        limited.headers()["retry-after"],
        "15",
        "the first request leaves the minute in 15 s"
    );
    let error: Value = limited.json().await.expect("json");
    assert_eq!(error["error"]["code"], "CLIENT_RATE_LIMITED");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert_eq!(chat(&running, Some("tok-other"), "default").await.status(), 200);
    clock.advance(Duration::from_secs(15));
    assert_eq!(chat(&running, Some("tok-one"), "default").await.status(), 200, "the minute slid");
    assert_eq!(chat(&running, None, "default").await.status(), 401, "a token is needed");
    let (status, error) = admin(&running, reqwest::Method::GET, "/admin/nothing/here", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("UNKNOWN_ADMIN_ROUTE")));
    let anonymous = reqwest::get(running.url("/admin/nothing")).await.expect("sent");
    assert_eq!(anonymous.status(), 401, "unknown admin paths need the token too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_and_imported_tests_reach_the_scorer() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let router = router_on(&clock, &upstream, None).await;
    let running = serve_with(router, &clock, config(), Services::default()).await;
    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .header("x-request-id", "req-feedback-1")
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    let post = reqwest::Method::POST;
    let (status, served) = admin(
        &running,
        post.clone(),
        "/admin/feedback",
        Some(json!({"request_id": "req-feedback-1", "quality": 0.25})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(served, json!({"provider": "groq", "key": "k1", "model": "gpt-4o-mini"}));
    let (status, error) = admin(
        &running,
        post.clone(),
        "/admin/feedback",
        Some(json!({"request_id": "nope", "quality": 0.5})),
    )
    .await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("UNKNOWN_REQUEST")));
    let (status, error) = admin(
        &running,
        post.clone(),
        "/admin/feedback",
        Some(json!({"request_id": "req-feedback-1", "quality": 1.5})),
    )
    .await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_QUALITY")));

    let results = json!({"generated_at": "2026-11-23T20:00:00Z", "results": [
        {"provider": "groq", "key": "k2", "fingerprint": "00000000", "model": "llama-3.3-70b-versatile",
         "ok": true, "latency_ms": 120.0, "error_class": null, "status": 200, "rate_limit": null},
        {"provider": "groq", "key": "k2", "fingerprint": "00000000", "model": "llama-3.3-70b-versatile",
         "ok": false, "latency_ms": 30.0, "error_class": "server_error", "status": 500, "rate_limit": null},
        {"provider": "groq", "key": "k2", "fingerprint": "00000000", "model": "gpt-4o-mini",
         "ok": true, "latency_ms": 80.0, "error_class": null, "status": 200, "rate_limit": null},
        {"provider": "mistral", "key": "m1", "fingerprint": "00000000", "model": "small",
         "ok": true, "latency_ms": 50.0, "error_class": null, "status": 200, "rate_limit": null}
    ]});
    let (status, answer) =
        admin(&running, post.clone(), "/admin/scores/import", Some(results)).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"imported": 3, "unknown": 1}));
    let (status, scores) = admin(&running, reqwest::Method::GET, "/admin/scores", None).await;
    assert_eq!(status, 200);
    let row = |key: &str, model: &str| -> Value {
        scores["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|row| row["key"] == key && row["model"] == model)
            .cloned()
            .unwrap_or_else(|| panic!("{key}/{model} in {scores:#}"))
    };
    let tested = row("k2", "llama-3.3-70b-versatile");
    assert_eq!((tested["successes"].as_u64(), tested["failures"].as_u64()), (Some(1), Some(1)));
    assert_eq!(tested["avg_latency_ms"], 120.0);
    let served = row("k1", "gpt-4o-mini");
    assert_eq!(served["successes"], 1, "the served request, untouched by the import");
    assert!(served["quality"].as_f64().is_some_and(|q| q < 0.9), "feedback lowered it: {served}");
    let (status, error) =
        admin(&running, post, "/admin/scores/import", Some(json!({"results": "no"}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));
}

struct SwapTo {
    next: std::sync::Mutex<Vec<Result<(Router, GatewayConfig), String>>>,
}

impl Reloader for SwapTo {
    fn reload(&self) -> Result<(Router, GatewayConfig), String> {
        self.next.lock().expect("lock").pop().expect("a prepared answer")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_router_or_keeps_the_old_one() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let router = router_on(&clock, &upstream, None).await;
    let only_fast = credentials(
        builder(&clock, QuotaConfig::default())
            .provider(provider("groq", &upstream, &clock))
            .route("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]),
        "groq",
        &["k1"],
    )
    .build()
    .expect("router builds");
    // Popped last first: the refusal, then the new router.
    let reloader = SwapTo {
        next: std::sync::Mutex::new(vec![
            Ok((only_fast, config())),
            Err("switchyard.toml:3: kind: unknown kind \"opneai\"".into()),
        ]),
    };
    let services = Services { reloader: Some(Arc::new(reloader)), ..Services::default() };
    let running = serve_with(router, &clock, config(), services).await;
    let post = reqwest::Method::POST;
    let (status, error) = admin(&running, post.clone(), "/admin/reload", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("RELOAD_FAILED")));
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("unknown kind")));
    assert_eq!(chat(&running, None, "default").await.status(), 200, "the old router serves");
    let (status, answer) = admin(&running, post, "/admin/reload", None).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"reloaded": true, "routes": 1, "keys": 1}));
    assert_eq!(
        chat(&running, None, "default").await.status(),
        404,
        "the new router has no default"
    );
    assert_eq!(chat(&running, None, "fast").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_failing_most_of_its_last_attempts_raises_an_alert_and_analytics_keep_its_hours() {
    let start = "2026-11-23T13:59:30Z".parse().expect("a time");
    let clock = ManualClock::starting_at(start);
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("analytics.db");
    let writer = AnalyticsWriter::start(
        Analytics::open(&path).expect("log opens"),
        Arc::new(clock.clone()),
        AnalyticsWriterConfig::default(),
    )
    .expect("writer starts");
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), Some(writer)));
    let router = router_on(&clock, &upstream, Some(&hub)).await;
    let services = Services {
        events: Some(Arc::clone(&hub)),
        analytics: Some(Analytics::open(&path).expect("reader opens")),
        ..Services::default()
    };
    let running = serve_with(router, &clock, config(), services).await;
    // Each request: k1 fails once with a 500, is retried and serves. Half its attempts fail.
    for round in 0..12 {
        if round == 6 {
            // The second half of the run falls in the next hour.
            clock.advance(Duration::from_secs(60));
        }
        upstream.inject(FaultRule::once(Fault::server_error()).for_key("k1"));
        let response = chat(&running, None, "default").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-switchyard-attempts"], "2");
    }
    let (status, view) = admin(&running, reqwest::Method::GET, "/admin/status", None).await;
    assert_eq!(status, 200);
    let alerts = view["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{view:#}");
    assert_eq!(alerts[0]["kind"], "key_low_success");
    assert_eq!(alerts[0]["key"], "k1");
    assert_eq!(alerts[0]["message"], "key k1 of groq succeeded in 10 of its last 20 attempts");
    assert_eq!(view["health"], "degraded", "{view:#}");

    let (status, hourly) =
        admin(&running, reqwest::Method::GET, "/admin/analytics/hourly?date=2026-11-23", None)
            .await;
    assert_eq!(status, 200);
    let rows: Vec<(&str, &str, u64, u64)> = hourly["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .map(|row| {
            (
                row["hour"].as_str().expect("hour"),
                row["key"].as_str().expect("key"),
                row["requests"].as_u64().expect("count"),
                row["failures"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("2026-11-23T13:00:00Z", "k1", 12, 6), ("2026-11-23T14:00:00Z", "k1", 12, 6)],
        "{hourly:#}"
    );
    let (_, errors) =
        admin(&running, reqwest::Method::GET, "/admin/analytics/errors?start=2026-11-23", None)
            .await;
    assert_eq!(
        errors["errors"],
        json!([{"class": "server_error", "count": 12, "keys": ["groq/k1"]}])
    );
    let (_, usage) = admin(&running, reqwest::Method::GET, "/admin/analytics/usage", None).await;
    assert_eq!(usage["keys"][0]["requests"], 24, "{usage:#}");
    assert_eq!(usage["clients"], json!([]), "no named client sent anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_a_request_id_in_flight_are_each_attributed() {
    let clock = ManualClock::default();
    // Chunks a second apart on the manual clock: a stream stays open until the clock moves.
    let upstream = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .models(["gpt-4o-mini", "llama-3.3-70b-versatile"])
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("analytics.db");
    let writer = AnalyticsWriter::start(
        Analytics::open(&path).expect("log opens"),
        Arc::new(clock.clone()),
        AnalyticsWriterConfig::default(),
    )
    .expect("writer starts");
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), Some(writer)));
    let router = router_on(&clock, &upstream, Some(&hub)).await;
    let client = |name: &str, token: &str| {
        Arc::new(ClientConfig {
            name: name.into(),
            token: token.into(),
            routes: None,
            requests_per_minute: None,
            daily_budget: None,
        })
    };
    let config =
        GatewayConfig { clients: vec![client("a", "tok-a"), client("b", "tok-b")], ..config() };
    let services = Services {
        events: Some(Arc::clone(&hub)),
        analytics: Some(Analytics::open(&path).expect("reader opens")),
        ..Services::default()
    };
    let running = serve_with(router, &clock, config, services).await;
    let http = reqwest::Client::new();
    let send = |token: &'static str, stream: bool| {
        http.post(running.url("/v1/chat/completions"))
            .bearer_auth(token)
            .header("x-request-id", "shared-id")
            .json(&body("default", stream))
            .send()
    };
    // Identity travels with each request, not in a map keyed by its id: the id is kept as
    // given, whoever else uses it at the same time.
    let streaming = send("tok-a", true).await.expect("sent");
    assert_eq!(streaming.headers()["x-request-id"], "shared-id");
    let same_client = send("tok-a", false).await.expect("sent");
    assert_eq!(same_client.headers()["x-request-id"], "shared-id");
    let other = send("tok-b", false).await.expect("sent");
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["x-request-id"], "shared-id");
    // The stream ends once the clock moves.
    let finished = tokio::spawn(async move { streaming.text().await.expect("the stream") });
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while !finished.is_finished() {
            // Each chunk waits a second on the mock's clock.
            if clock.sleepers() > 0 {
                clock.advance(Duration::from_secs(1));
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended");
    let text = finished.await.expect("joins");
    assert!(text.contains("[DONE]"), "{text}");
    let (status, usage) =
        admin(&running, reqwest::Method::GET, "/admin/analytics/usage", None).await;
    assert_eq!(status, 200, "{usage:#}");
    let clients: Vec<(String, u64, u64)> = usage["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|row| {
            let count = |field: &str| row[field].as_u64().expect("a count");
            (
                row["client"].as_str().expect("a name").to_owned(),
                count("requests"),
                count("successes"),
            )
        })
        .collect();
    assert_eq!(clients, [("a".to_owned(), 2, 2), ("b".to_owned(), 1, 1)], "{usage:#}");
}
