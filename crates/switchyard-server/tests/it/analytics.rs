//! What analytics keep of a request over real HTTP and real SQLite: the HTTP status the client
//! got, the request's `x-switchyard-tags` (and the usage report filtered by one), and the
//! average latency and cost per provider, key and model in `/admin/stats`.

use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::Value;
use switchyard::{EventSink, QuotaConfig, StrategyKind};
use switchyard_core::{Clock, ManualClock};
use switchyard_mock::{Fault, FaultRule};
use switchyard_server::{EventHub, GatewayConfig, Services};
use switchyard_store::analytics::EventKind;
use switchyard_store::{Analytics, AnalyticsWriter, AnalyticsWriterConfig};

use crate::support::{Running, body, builder, credentials, key, mock, provider, serve_with};

const ADMIN: &str = "admin-token-analytics";

async fn admin_get(running: &Running, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(running.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn chat(running: &Running, tags: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .json(&body("default", false));
    if let Some(tags) = tags {
        request = request.header("x-switchyard-tags", tags);
    }
    request.send().await.expect("sent").status().as_u16()
}

fn attempts_in(usage: &Value) -> u64 {
    usage["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|row| row["requests"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_their_status_and_tags_and_stats_average_latency_and_cost() {
    let clock = ManualClock::default();
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
    let router = credentials(
        builder(&clock, QuotaConfig::default())
            .provider(provider("groq", &upstream, &clock))
            .route("default", StrategyKind::Priority, ["groq/gpt-4o-mini"])
            .event_sink(Arc::clone(&hub) as Arc<dyn EventSink>),
        "groq",
        &["k1", "k2"],
    )
    .build()
    .expect("router builds");
    let services = Services {
        events: Some(Arc::clone(&hub)),
        analytics: Some(Analytics::open(&path).expect("reader opens")),
        ..Services::default()
    };
    let config = GatewayConfig { admin_token: Some(ADMIN.into()), ..GatewayConfig::default() };
    let running = serve_with(router, &clock, config, services).await;

    assert_eq!(chat(&running, Some("team-a, exp")).await, 200);
    assert_eq!(chat(&running, Some("team-b")).await, 200);
    upstream.inject(FaultRule::always(Fault::server_error()));
    assert_eq!(chat(&running, Some("team-a")).await, 502);
    upstream.clear_faults();

    // The report commits what was queued, then filters by tag: the attempts of tagged requests.
    let (status, all) = admin_get(&running, "/admin/analytics/usage").await;
    assert_eq!(status, 200);
    let (_, team_a) = admin_get(&running, "/admin/analytics/usage?tag=team-a").await;
    let (_, team_b) = admin_get(&running, "/admin/analytics/usage?tag=team-b").await;
    let (_, exp) = admin_get(&running, "/admin/analytics/usage?tag=exp").await;
    assert_eq!(attempts_in(&team_b), 1, "{team_b:#}");
    assert_eq!(attempts_in(&exp), 1, "{exp:#}");
    assert_eq!(attempts_in(&team_a) + attempts_in(&team_b), attempts_in(&all), "{all:#}");
    assert!(attempts_in(&team_a) > 2, "the failed request tried more than once: {team_a:#}");
    let (_, none) = admin_get(&running, "/admin/analytics/usage?tag=team").await;
    assert_eq!(attempts_in(&none), 0, "a tag matches whole");
    let (status, refused) = admin_get(&running, "/admin/analytics/usage?tag=a,b").await;
    assert_eq!(status, 400, "{refused:#}");

    let reader = Analytics::open(&path).expect("reader opens");
    let now = clock.utc();
    let events = reader.events(now - TimeDelta::days(1), now + TimeDelta::days(1)).expect("rows");
    let requests: Vec<(Option<u16>, Vec<String>)> = events
        .into_iter()
        .filter(|event| event.kind == EventKind::Request)
        .map(|event| (event.status, event.tags))
        .collect();
    let tags = |list: &[&str]| list.iter().map(|tag| (*tag).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        requests,
        [
            (Some(200), tags(&["team-a", "exp"])),
            (Some(200), tags(&["team-b"])),
            (Some(502), tags(&["team-a"])),
        ]
    );

    let (status, stats) = admin_get(&running, "/admin/stats").await;
    assert_eq!(status, 200);
    let latency_cost = &stats["latency_cost"];
    let k1 = &latency_cost["keys"]["groq/k1"];
    let k2 = &latency_cost["keys"]["groq/k2"];
    let groq = &latency_cost["providers"]["groq"];
    let n = |value: &Value| value.as_u64().expect("a count");
    assert_eq!(n(&groq["attempts"]), attempts_in(&all), "{latency_cost:#}");
    assert_eq!(n(&k1["attempts"]) + n(&k2["attempts"]), n(&groq["attempts"]));
    assert_eq!(latency_cost["models"]["groq/gpt-4o-mini"], *groq, "one model: the same sums");
    // Two requests served, by k1, of a model without a price: their cost is not known.
    assert_eq!(n(&k1["uncosted_requests"]), 2, "{latency_cost:#}");
    assert_eq!(k1["avg_cost_usd"], Value::Null);
    // No time passes on the manual clock: every attempt took 0 ms.
    assert_eq!(k1["avg_latency_ms"].as_f64(), Some(0.0));
}
