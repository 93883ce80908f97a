//! `GET /metrics`, read back with a Prometheus text parser after a known run.

use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use switchyard::StrategyKind;
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule};
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig};
use switchyard_server::GatewayConfig;

use crate::support::{body, builder, credentials, key, mock, provider, serve};

/// The value of the one sample of `name` (with or without `_total`) whose labels include
/// all of `labels`; 0 when there is none.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name || sample.metric == format!("{name}_total"))
        .filter(|sample| labels.iter().all(|(label, want)| sample.labels.get(label) == Some(want)))
        .filter_map(|sample| match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            Value::Histogram(_) | Value::Summary(_) => None,
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches {} samples", matching.len());
    matching.first().copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_run_by_route_provider_and_class() {
    let clock = ManualClock::default();
    let broken = mock(&clock, vec![key("a1")]).await;
    broken.inject(FaultRule::always(Fault::server_error()));
    let healthy = mock(&clock, vec![key("b1"), key("b2")]).await;
    let quota = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "second".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![Limit::per_minute(2)])],
        }],
        ..QuotaConfig::default()
    };
    let router =
        credentials(credentials(builder(&clock, quota), "first", &["a1"]), "second", &["b1", "b2"])
            .provider(provider("first", &broken, &clock))
            .provider(provider("second", &healthy, &clock))
            .model(
                "second/gpt-4o-mini",
                switchyard::ModelFacts {
                    price: Some(switchyard::Price {
                        input_per_mtok: 1.0,
                        output_per_mtok: 2.0,
                        per_request: 0.0,
                    }),
                    ..switchyard::ModelFacts::default()
                },
            )
            .route("fallback", StrategyKind::Priority, ["first/gpt-4o-mini", "second/gpt-4o-mini"])
            .route("direct", StrategyKind::Priority, ["second/gpt-4o-mini"])
            .build()
            .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    // The run: 1 fallback, 2 direct (one streamed), 1 unknown route; then the 4 key-minutes
    // of `second` are spent (1 + 2 + 1 more) and the next direct call is refused.
    let mut prompt_tokens = 0;
    let mut completion_tokens = 0;
    let mut expected_cost = 0.0;
    for (model, stream) in
        [("fallback", false), ("direct", false), ("direct", true), ("direct", false)]
    {
        let response = client.post(&url).json(&body(model, stream)).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        if stream {
            let text = response.text().await.expect("body");
            let usage = crate::support::sse_data(&text)
                .iter()
                .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                .find(|chunk| chunk["usage"].is_object())
                .expect("a usage chunk");
            prompt_tokens += usage["usage"]["prompt_tokens"].as_u64().expect("n");
            completion_tokens += usage["usage"]["completion_tokens"].as_u64().expect("n");
            // A stream's cost counts too, by the usage it reported, once it ended.
            expected_cost += (usage["usage"]["prompt_tokens"].as_f64().expect("n")
                + 2.0 * usage["usage"]["completion_tokens"].as_f64().expect("n"))
                / 1e6;
        } else {
            let answer: serde_json::Value = response.json().await.expect("json");
            let usage = &answer["usage"];
            expected_cost += (usage["prompt_tokens"].as_f64().expect("n")
                + 2.0 * usage["completion_tokens"].as_f64().expect("n"))
                / 1e6;
            prompt_tokens += answer["usage"]["prompt_tokens"].as_u64().expect("n");
            completion_tokens += answer["usage"]["completion_tokens"].as_u64().expect("n");
        }
    }
    let refused = client.post(&url).json(&body("direct", false)).send().await.expect("sent");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let unknown = client.post(&url).json(&body("nowhere", false)).send().await.expect("sent");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let response = client.get(server.url("/metrics")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parses");

    let requests = "switchyard_requests";
    assert_eq!(
        value(&scrape, requests, &[("route", "fallback"), ("provider", "second"), ("code", "ok")]),
        1.0
    );
    assert_eq!(
        value(&scrape, requests, &[("route", "direct"), ("provider", "second"), ("code", "ok")]),
        3.0
    );
    assert_eq!(value(&scrape, requests, &[("route", "direct"), ("code", "QUOTA_EXCEEDED")]), 1.0);
    // A name no configuration declares is counted as `other`, never as a label of its own.
    assert_eq!(value(&scrape, requests, &[("route", "other"), ("code", "UNKNOWN_MODEL")]), 1.0);
    assert_eq!(value(&scrape, requests, &[("route", "nowhere")]), 0.0);
    let failed_first = value(
        &scrape,
        "switchyard_attempts",
        &[("route", "fallback"), ("provider", "first"), ("class", "server_error")],
    );
    assert_eq!(failed_first as u64, broken.n_requests(), "one failed attempt per upstream call");
    assert_eq!(
        value(
            &scrape,
            "switchyard_attempts",
            &[("provider", "second"), ("class", "ok"), ("route", "direct")]
        ),
        3.0
    );
    assert_eq!(value(&scrape, "switchyard_fallbacks", &[("route", "fallback")]), 1.0);
    assert_eq!(value(&scrape, "switchyard_fallbacks", &[("route", "direct")]), 0.0);
    let tokens = |kind: &str| {
        value(&scrape, "switchyard_tokens", &[("route", "fallback"), ("kind", kind)])
            + value(&scrape, "switchyard_tokens", &[("route", "direct"), ("kind", kind)])
    };
    assert_eq!(tokens("prompt") as u64, prompt_tokens);
    assert_eq!(tokens("completion") as u64, completion_tokens);
    let cost = value(&scrape, "switchyard_cost_dollars", &[("route", "fallback")])
        + value(&scrape, "switchyard_cost_dollars", &[("route", "direct")]);
    assert!(expected_cost > 0.0);
    assert!((cost - expected_cost).abs() < 1e-12, "{cost} != {expected_cost}");
    // Every served request was timed once.
    let observed: f64 = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == "switchyard_request_duration_seconds")
        .filter_map(|sample| match &sample.value {
            Value::Histogram(buckets) => buckets.iter().map(|bucket| bucket.count).reduce(f64::max),
            _ => None,
        })
        .sum();
    assert_eq!(observed, 4.0, "{text}");
    // Both keys of `second` used their two requests of this minute.
    for key in ["b1", "b2"] {
        let labels = [("provider", "second"), ("key", key)];
        assert!(
            text.lines().any(|line| line.starts_with("switchyard_key_remaining{")
                && line.contains(&format!("key=\"{key}\""))),
            "{key} has a remaining gauge: {text}"
        );
        assert_eq!(value(&scrape, "switchyard_key_remaining", &labels), 0.0, "{key}: {text}");
        assert_eq!(
            value(&scrape, "switchyard_key_state", &[("key", key), ("state", "available")]),
            1.0,
            "{key}: {text}"
        );
    }
}

/// The observations of histogram `name` whose labels include all of `labels`, summed over
/// the series that match.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| labels.iter().all(|(label, want)| sample.labels.get(label) == Some(want)))
        .filter_map(|sample| match &sample.value {
            Value::Histogram(buckets) => buckets.iter().map(|bucket| bucket.count).reduce(f64::max),
            _ => None,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_timed_to_their_first_token_apart_from_whole_durations() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("a1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "p", &["a1"])
        .provider(provider("p", &upstream, &clock))
        .route("r", StrategyKind::Priority, ["p/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");
    for stream in [false, true, false] {
        let response = client.post(&url).json(&body("r", stream)).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        // The whole body: a stream's duration is observed when it ends.
        let text = response.text().await.expect("body");
        assert!(!stream || text.contains("[DONE]"), "{text}");
    }
    let text = client.get(server.url("/metrics")).send().await.expect("sent").text().await;
    let text = text.expect("text");
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parses");
    let target = [("route", "r"), ("provider", "p"), ("model", "gpt-4o-mini")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = target.to_vec();
        labels.push(extra);
        labels
    };
    // Time to first token: the one stream only.
    assert_eq!(observations(&scrape, "switchyard_time_to_first_token_seconds", &target), 1.0);
    assert_eq!(observations(&scrape, "switchyard_time_to_first_token_seconds", &[]), 1.0);
    // Whole durations, by mode.
    let duration = "switchyard_request_duration_seconds";
    assert_eq!(observations(&scrape, duration, &with(("mode", "plain"))), 2.0, "{text}");
    assert_eq!(observations(&scrape, duration, &with(("mode", "stream"))), 1.0, "{text}");
    // The gateway's own time, once per request.
    let overhead = "switchyard_overhead_seconds";
    assert_eq!(observations(&scrape, overhead, &[("route", "r"), ("mode", "plain")]), 2.0);
    assert_eq!(observations(&scrape, overhead, &[("route", "r"), ("mode", "stream")]), 1.0);
    assert_eq!(observations(&scrape, overhead, &[]), 3.0);
}
