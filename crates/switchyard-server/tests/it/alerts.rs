//! Alert webhooks: a receiver (a small axum server on loopback) gets one alert when every key
//! of a provider is down and one when the provider recovers, a refused post is retried on
//! the manual clock, and a key turning invalid is told once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use switchyard::{AttemptEvent, EventSink, QuotaConfig, RouterEvent};
use switchyard_core::{Candidate, ErrorKind, Fingerprint, ManualClock};
use switchyard_mock::{Failure, Fault, FaultRule, KeyScript, Unit, Window};
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota};
use switchyard_server::{AlertConfig, EventHub, GatewayConfig, Services};

use crate::support::{
    body, builder, credentials, key, mock, provider, secret, serve_with, wait_until,
};

/// What the receiver got, and how many posts it should refuse first.
#[derive(Default)]
struct Inbox {
    posts: Vec<Value>,
    refuse_first: usize,
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, Json(alert): Json<Value>) -> StatusCode {
    let mut inbox = inbox.lock().expect("inbox");
    inbox.posts.push(alert);
    if inbox.posts.len() <= inbox.refuse_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A webhook receiver on 127.0.0.1:0 that refuses its first `refuse_first` posts.
async fn receiver(refuse_first: usize) -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox { posts: Vec::new(), refuse_first }));
    let app = axum::Router::new()
        .route("/hook/secret-path", axum::routing::post(receive))
        .with_state(Arc::clone(&inbox));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook/secret-path"), inbox)
}

fn kinds(inbox: &Mutex<Inbox>) -> Vec<String> {
    let inbox = inbox.lock().expect("inbox");
    inbox.posts.iter().map(|post| post["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

fn rate_limited_for_a_minute() -> Fault {
    Fault::Fail(Failure::RateLimited {
        window: Window::Minute,
        unit: Unit::Requests,
        limit: 10,
        used: 10,
        requested: 1,
        retry_after: Duration::from_secs(60),
    })
}

fn alerts(url: String) -> AlertConfig {
    AlertConfig {
        backoff: Duration::from_secs(1),
        recheck: Duration::from_secs(30),
        ..AlertConfig::new(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_when_a_provider_goes_down_and_one_when_it_recovers() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
    let router = credentials(
        builder(&clock, QuotaConfig::default())
            .provider(provider("groq", &upstream, &clock))
            .route("default", switchyard::StrategyKind::Priority, ["groq/gpt-4o-mini"])
            .event_sink(Arc::clone(&hub) as Arc<dyn EventSink>),
        "groq",
        &["k1", "k2"],
    )
    .build()
    .expect("router builds");
    // The first post is refused: the sender retries it after its backoff, on the clock.
    let (url, inbox) = receiver(1).await;
    let services = Services {
        events: Some(Arc::clone(&hub)),
        alerts: Some(alerts(url)),
        ..Services::default()
    };
    let running = serve_with(router, &clock, GatewayConfig::default(), services).await;
    let client = reqwest::Client::new();
    let chat = || client.post(running.url("/v1/chat/completions")).json(&body("default", false));

    assert_eq!(chat().send().await.expect("sent").status(), 200);
    // Every key answers 429 for a minute: the provider is down.
    upstream.inject(FaultRule::always(rate_limited_for_a_minute()));
    assert_eq!(chat().send().await.expect("sent").status(), 429);
    wait_until("the first post", || inbox.lock().expect("inbox").posts.len() == 1).await;
    // The refused post waits a second on the manual clock (the watcher sleeps too).
    wait_until("the sender sleeps", || clock.sleepers() >= 2).await;
    clock.advance(Duration::from_secs(1));
    wait_until("the retry", || inbox.lock().expect("inbox").posts.len() == 2).await;
    assert_eq!(kinds(&inbox), ["provider_down", "provider_down"], "one alert, posted twice");
    let down = inbox.lock().expect("inbox").posts[1].clone();
    assert_eq!(down["provider"], "groq");
    assert_eq!(down["status"], "QUOTA_EXCEEDED");
    assert_eq!(down["keys"].as_array().map(Vec::len), Some(2), "{down:#}");
    assert_eq!(down["message"], "all 2 keys of groq are down (2 cooling)");

    // More refused requests change nothing: at most one alert per change.
    for _ in 0..3 {
        assert_eq!(chat().send().await.expect("sent").status(), 429);
    }
    upstream.clear_faults();
    // The keys come back when their cooldown ends: the watcher looks again by then.
    clock.advance(Duration::from_secs(61));
    wait_until("the recovery", || kinds(&inbox).len() == 3).await;
    assert_eq!(kinds(&inbox)[2], "provider_recovered");
    assert_eq!(chat().send().await.expect("sent").status(), 200);

    let metrics = client.get(running.url("/metrics")).send().await.expect("sent");
    let text = metrics.text().await.expect("text");
    assert!(text.contains(r#"switchyard_alerts{outcome="sent"} 2"#), "{text}");
    assert!(text.contains(r#"switchyard_alerts{outcome="dropped"} 0"#), "{text}");
    assert_eq!(kinds(&inbox).len(), 3, "nothing else was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_turning_invalid_is_told_once() {
    let clock = ManualClock::default();
    let revoked = KeyScript::valid("k1", secret("k1")).revoked_after(1);
    let upstream = mock(&clock, vec![revoked, key("k2")]).await;
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
    let router = credentials(
        builder(&clock, QuotaConfig::default())
            .provider(provider("groq", &upstream, &clock))
            .route("default", switchyard::StrategyKind::Priority, ["groq/gpt-4o-mini"])
            .event_sink(Arc::clone(&hub) as Arc<dyn EventSink>),
        "groq",
        &["k1", "k2"],
    )
    .build()
    .expect("router builds");
    let (url, inbox) = receiver(0).await;
    let services = Services {
        events: Some(Arc::clone(&hub)),
        alerts: Some(alerts(url)),
        ..Services::default()
    };
    let running = serve_with(router, &clock, GatewayConfig::default(), services).await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let response = client
            .post(running.url("/v1/chat/completions"))
            .json(&body("default", false))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "k2 serves once k1 is revoked");
    }
    wait_until("the alert", || !kinds(&inbox).is_empty()).await;
    // Later rounds of the watcher (a success on a provider with a standing alert asks for
    // one, and so does the clock) add nothing.
    let checks = alert_checks(&running).await;
    for _ in 0..2 {
        let response = client
            .post(running.url("/v1/chat/completions"))
            .json(&body("default", false))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
    }
    clock.advance(Duration::from_secs(31));
    // Bounded in real time, not in attempts: the watcher runs on another task that a busy
    // machine may schedule late.
    let mut rounds = 0;
    let ran_again = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            rounds = alert_checks(&running).await;
            if rounds >= checks + 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(ran_again.is_ok(), "the watcher ran again ({checks} then {rounds})");
    let posts = inbox.lock().expect("inbox").posts.clone();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0]["kind"], "key_invalid");
    assert_eq!(posts[0]["key"], "k1");
    assert_eq!(posts[0]["status"], "PARTIAL_INVALID");
}

/// Waits until the watcher has run `rounds` rounds; bounded in real time, since it runs on a
/// task a busy machine may schedule late.
async fn rounds_reach(running: &crate::support::Running, rounds: u64) {
    let mut seen = 0;
    let reached = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            seen = alert_checks(running).await;
            if seen >= rounds {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(reached.is_ok(), "the watcher ran {seen} rounds, not {rounds}");
}

/// The watcher's rounds so far, from `/metrics`.
async fn alert_checks(running: &crate::support::Running) -> u64 {
    let text =
        reqwest::get(running.url("/metrics")).await.expect("sent").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("switchyard_alert_checks "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the alert_checks gauge")
}

/// A router over `groq` (`k1`, `k2`) reporting to `hub`, behind a gateway sending alerts to a
/// fresh receiver.
async fn watched_gateway(
    clock: &ManualClock,
    upstream: &switchyard_mock::MockUpstream,
    hub: &Arc<EventHub>,
    quota: QuotaConfig,
) -> (crate::support::Running, Arc<Mutex<Inbox>>) {
    let router = credentials(
        builder(clock, quota)
            .provider(provider("groq", upstream, clock))
            .route("default", switchyard::StrategyKind::Priority, ["groq/gpt-4o-mini"])
            .event_sink(Arc::clone(hub) as Arc<dyn EventSink>),
        "groq",
        &["k1", "k2"],
    )
    .build()
    .expect("router builds");
    let (url, inbox) = receiver(0).await;
    let services = Services {
        events: Some(Arc::clone(hub)),
        alerts: Some(alerts(url)),
        ..Services::default()
    };
    (serve_with(router, clock, GatewayConfig::default(), services).await, inbox)
}

fn attempt(key: &str, latency: Duration, error: Option<ErrorKind>) -> RouterEvent {
    RouterEvent::Attempt(AttemptEvent {
        request_id: "req-1".into(),
        route: "default".into(),
        client: None,
        candidate: Candidate::new("groq", key, "gpt-4o-mini"),
        fingerprint: Fingerprint::of(&secret(key)),
        attempt: 1,
        latency,
        usage: None,
        cost: None,
        error,
        status: error.map(|_| 500),
        upstream_request_id: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_key_and_a_slow_provider_are_told_once_each_with_a_severity() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
    let (running, inbox) = watched_gateway(&clock, &upstream, &hub, QuotaConfig::default()).await;
    wait_until("the watcher's first round", || clock.sleepers() >= 1).await;
    // The router's events as the hub gets them: k2 answers, slowly (p95 over 30 s); k1 fails
    // nine times in ten, and its failures ask the watcher to look.
    for n in 0..20 {
        hub.record(&attempt("k2", Duration::from_secs(35 + n % 10), None));
    }
    hub.record(&attempt("k1", Duration::from_millis(300), None));
    for _ in 0..9 {
        hub.record(&attempt("k1", Duration::from_millis(300), Some(ErrorKind::ServerError)));
    }
    wait_until("two alerts", || kinds(&inbox).len() >= 2).await;
    let posts = inbox.lock().expect("inbox").posts.clone();
    let low = posts.iter().find(|post| post["kind"] == "key_low_success").expect("low success");
    assert_eq!(low["severity"], "warning");
    assert_eq!(low["key"], "k1");
    assert_eq!((low["attempts"].as_u64(), low["successes"].as_u64()), (Some(10), Some(1)));
    let slow = posts.iter().find(|post| post["kind"] == "latency_high").expect("latency");
    assert_eq!(slow["severity"], "warning");
    // The provider's successes: k2's twenty (35 s to 44 s) and k1's one (0.3 s).
    assert_eq!(slow["p95_ms"], 44_000, "the nearest rank, 20th of 21");
    assert_eq!(slow["samples"], 21);

    // More failures and another round of the clock raise nothing new.
    let checks = alert_checks(&running).await;
    hub.record(&attempt("k1", Duration::from_millis(300), Some(ErrorKind::ServerError)));
    rounds_reach(&running, checks + 1).await;
    // The clock's round: once the watcher sleeps again, so the advance wakes it.
    wait_until("the watcher sleeps", || clock.sleepers() >= 1).await;
    clock.advance(Duration::from_secs(31));
    rounds_reach(&running, checks + 2).await;
    assert_eq!(kinds(&inbox).len(), 2, "{:#?}", inbox.lock().expect("inbox").posts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_day_is_spent_is_told_with_its_until() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
    let quota = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "groq".into(),
            day: DayBoundary::Midnight(chrono_tz::UTC),
            models: vec![ModelQuota::every_model(vec![Limit::requests_per_day(1, chrono_tz::UTC)])],
        }],
        ..QuotaConfig::default()
    };
    let (running, inbox) = watched_gateway(&clock, &upstream, &hub, quota).await;
    let client = reqwest::Client::new();
    let response = client.post(running.url("/v1/chat/completions")).json(&body("default", false));
    assert_eq!(response.send().await.expect("sent").status(), 200);
    // A success asks for no check: the watcher sees the spent day on its next round.
    wait_until("the watcher sleeps", || clock.sleepers() >= 1).await;
    clock.advance(Duration::from_secs(31));
    wait_until("the alert", || !kinds(&inbox).is_empty()).await;
    let posts = inbox.lock().expect("inbox").posts.clone();
    assert_eq!(kinds(&inbox), ["key_exhausted"], "{posts:#?}");
    assert_eq!(posts[0]["severity"], "warning");
    assert_eq!(posts[0]["key"], "k1");
    let until = posts[0]["until"].as_str().expect("an until");
    assert!(!until.is_empty(), "{posts:#?}");
}

/// `/admin/status` judges a key's success by the `[alerts]` thresholds, as the webhook does:
/// nine successes in ten pass the default 80 % but not a configured 95 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_judges_low_success_by_the_configured_threshold() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let status_alerts = |strict: bool| {
        let (clock, upstream) = (clock.clone(), &upstream);
        async move {
            let hub = Arc::new(EventHub::new(Arc::new(clock.clone()), None));
            let router = credentials(
                builder(&clock, QuotaConfig::default())
                    .provider(provider("groq", upstream, &clock))
                    .route("default", switchyard::StrategyKind::Priority, ["groq/gpt-4o-mini"])
                    .event_sink(Arc::clone(&hub) as Arc<dyn EventSink>),
                "groq",
                &["k1", "k2"],
            )
            .build()
            .expect("router builds");
            let (url, _inbox) = receiver(0).await;
            let alerts =
                AlertConfig { low_success_rate: 0.95, low_success_min_attempts: 5, ..alerts(url) };
            let services = Services {
                events: Some(Arc::clone(&hub)),
                alerts: strict.then_some(alerts),
                ..Services::default()
            };
            let config =
                GatewayConfig { admin_token: Some("admin".into()), ..GatewayConfig::default() };
            let running = serve_with(router, &clock, config, services).await;
            hub.record(&attempt("k1", Duration::from_millis(300), Some(ErrorKind::ServerError)));
            for _ in 0..9 {
                hub.record(&attempt("k1", Duration::from_millis(300), None));
            }
            let view: Value = reqwest::Client::new()
                .get(running.url("/admin/status"))
                .bearer_auth("admin")
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("json");
            let kinds: Vec<String> = view["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .map(|alert| format!("{}:{}", alert["kind"].as_str().unwrap_or(""), alert["key"]))
                .collect();
            kinds
        }
    };
    assert_eq!(status_alerts(false).await, Vec::<String>::new(), "90% passes the default 80%");
    assert_eq!(status_alerts(true).await, ["key_low_success:\"k1\""], "but not a configured 95%");
}
