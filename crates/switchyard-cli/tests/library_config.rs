//! The library's knobs set from `switchyard.toml` and from request headers, seen through the
//! real `switchyard serve` binary over loopback in front of `switchyard-mock` upstreams:
//! health probes reaching the upstream (and started again on a reload), the response cache
//! with its bypass, a client's provider order, and a Gemini provider's day ending at midnight
//! in Los Angeles without a `reset` line.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{GeminiWire, KeyScript, MockUpstream};

use support::{Gateway, Mock, refusal, start_mock, wait_for};

const ORDER: &str = "x-switchyard-provider-order";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

fn requests(mock: &Mock, key: &str) -> u64 {
    mock.upstream.counts(key).expect("a scripted key").requests
}

fn probed_config(mock: &Mock) -> String {
    format!(
        r#"
[probes]
interval_secs = 3600

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
        url = mock.upstream.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_gateway_probes_its_keys_and_a_reload_starts_the_probes_again() {
    let mock = start_mock(&["k1"]).await;
    let config = probed_config(&mock);
    // Each finished round logs a line at debug: the test waits on those, up to 30 s.
    let env = [("K1", mock.secret("k1")), ("RUST_LOG", "info,switchyard::probe=debug".to_owned())];
    let gateway = Gateway::start(&config, &env).expect("starts");
    // No client request: the first round runs at start.
    wait_for(&gateway, "the first probe", || requests(&mock, "k1") >= 1).await;
    assert_eq!(mock.upstream.counts("k1").expect("k1").served, 1, "one one-token probe");
    assert!(gateway.stderr().contains("health probes on"), "{}", gateway.stderr());

    // The new router gets its own probe task, whose first round runs at once.
    gateway.rewrite(&config.replace("interval_secs = 3600", "interval_secs = 1800"));
    gateway.hangup();
    wait_for(&gateway, "the reload", || gateway.stderr().contains("configuration reloaded")).await;
    wait_for(&gateway, "the reloaded router's probe", || requests(&mock, "k1") >= 2).await;
    assert!(gateway.stderr().contains("\"interval_secs\":1800"), "{}", gateway.stderr());
}

fn two_providers(mock: &Mock) -> String {
    format!(
        r#"
[cache]
ttl_secs = 600

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile"]

[[providers]]
name = "backup"
kind = "openai"
base_url = "{url}"
keys = ["${{K2}}"]
models = ["gpt-4o-mini"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile", "backup/gpt-4o-mini"]

[[routes]]
name = "cached"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile", "backup/gpt-4o-mini"]
cache = true
"#,
        url = mock.upstream.base_url()
    )
}

async fn ask(gateway: &Gateway, model: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().post(gateway.url("/v1/chat/completions")).json(&chat(model));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sent")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_provider_order_is_honoured_checked_and_ignored_by_the_cache() {
    let mock = start_mock(&["k1", "k2"]).await;
    let env = [("K1", mock.secret("k1")), ("K2", mock.secret("k2"))];
    let gateway = Gateway::start(&two_providers(&mock), &env).expect("starts");

    // The route's priority says groq; the client's order says backup first.
    let answer = ask(&gateway, "default", &[(ORDER, "backup, groq")]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "x-switchyard-provider"), "backup");
    assert_eq!((requests(&mock, "k1"), requests(&mock, "k2")), (0, 1));
    let answer = ask(&gateway, "default", &[]).await;
    assert_eq!(header(&answer, "x-switchyard-provider"), "groq");
    let answer = ask(&gateway, "default", &[(ORDER, "groq,backup")]).await;
    assert_eq!(header(&answer, "x-switchyard-provider"), "groq");
    assert_eq!((requests(&mock, "k1"), requests(&mock, "k2")), (2, 1));

    // Unknown, repeated and too many providers are refused, naming the header.
    let too_many = ["groq"; 9].join(",");
    for bad in ["groq,openai", "backup,backup", too_many.as_str(), ""] {
        let refused = ask(&gateway, "default", &[(ORDER, bad)]).await;
        let error = refusal(refused, StatusCode::BAD_REQUEST).await;
        let message = error["message"].as_str().expect("a message");
        assert!(message.starts_with(ORDER), "{bad:?}: {message}");
    }
    assert_eq!((requests(&mock, "k1"), requests(&mock, "k2")), (2, 1), "no refused call went up");

    // The cache: a miss served by backup, then the same request under another order and
    // under a pin is a hit; `cache-control: no-cache` goes upstream again.
    let first = ask(&gateway, "cached", &[(ORDER, "backup")]).await;
    assert_eq!((first.status(), header(&first, "x-switchyard-cache")), (StatusCode::OK, "miss"));
    let first: Value = first.json().await.expect("json");
    assert_eq!(requests(&mock, "k2"), 2);
    let again = ask(&gateway, "cached", &[(ORDER, "groq,backup")]).await;
    assert_eq!(header(&again, "x-switchyard-cache"), "hit");
    let pinned = ask(&gateway, "cached", &[("x-switchyard-provider", "groq")]).await;
    assert_eq!(header(&pinned, "x-switchyard-cache"), "hit");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["choices"], first["choices"], "the same answer");
    assert_eq!((requests(&mock, "k1"), requests(&mock, "k2")), (2, 2), "hits go nowhere");
    let bypass = ask(&gateway, "cached", &[("cache-control", "no-cache")]).await;
    assert_eq!(header(&bypass, "x-switchyard-cache"), "miss");
    assert_eq!(requests(&mock, "k1"), 3, "the bypass went upstream (priority: groq)");
    // The uncached route never answers from the cache.
    let plain = ask(&gateway, "default", &[]).await;
    assert_eq!(header(&plain, "x-switchyard-cache"), "miss");
}

const GEMINI_KEY: &str = "AIzaSyMockKeyNumberOne0123456789abcdefgh";
const ADMIN: &str = "admin-secret-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_providers_spent_day_ends_at_the_next_midnight_in_los_angeles() {
    let gemini = MockUpstream::builder(GeminiWire)
        .clock(ManualClock::default())
        .keys([KeyScript::valid("g1", GEMINI_KEY)])
        .models(["gemini-2.0-flash"])
        .start()
        .await
        .expect("gemini mock starts");
    // No `reset` line: the kind's default applies.
    let config = format!(
        r#"
[server]
admin_token = "${{ADMIN_TOKEN}}"

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{url}"
keys = ["${{G1}}"]
models = ["gemini-2.0-flash"]
limits = {{ requests_per_day = 1 }}

[[routes]]
name = "default"
targets = ["gemini/gemini-2.0-flash"]
"#,
        url = gemini.base_url()
    );
    let env = [("ADMIN_TOKEN", ADMIN.to_owned()), ("G1", GEMINI_KEY.to_owned())];
    let gateway = Gateway::start(&config, &env).expect("starts");
    assert_eq!(ask(&gateway, "default", &[]).await.status(), StatusCode::OK);
    let refused = ask(&gateway, "default", &[]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the day is spent");

    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(status["providers"][0]["time_zone"], "America/Los_Angeles", "{status:#}");
    let key = &status["providers"][0]["keys"][0];
    assert_eq!(key["state"], "exhausted", "{status:#}");
    // The expectation is computed from the status's own time, not read off a wall clock.
    let generated = status["generated_at"].as_str().expect("generated_at");
    let generated = chrono::DateTime::parse_from_rfc3339(generated).expect("RFC 3339").to_utc();
    let midnight = switchyard_quota::next_midnight(chrono_tz::America::Los_Angeles, generated);
    assert_eq!(
        key["until_utc"].as_str(),
        Some(midnight.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()),
        "{key:#}"
    );
    let until = key["until"].as_str().expect("until");
    assert!(until.contains("T00:00:00-0"), "midnight in Los Angeles, with its offset: {until}");
    assert!(!gateway.stderr().contains(GEMINI_KEY), "a secret reached the logs");
}
