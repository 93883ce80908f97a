//! The admin API of the real `switchyard serve` binary, over HTTP on loopback, in front of
//! `switchyard-mock` upstreams: the status of a spent key (its reset in the provider's own
//! zone) and of a revoked one, the admin token, a manual reset, disable and enable.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{
    Failure, Fault, FaultRule, GeminiWire, KeyScript, MockUpstream, Unit, Window,
};

use support::{Gateway, start_mock};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

const GEMINI_G1: &str = "AIzaSyMockKeyNumberOne0123456789abcdefgh";
const GEMINI_G2: &str = "AIzaSyMockKeyNumberTwo0123456789abcdefgh";
const ADMIN: &str = "admin-secret-token";

async fn gemini_mock() -> MockUpstream {
    MockUpstream::builder(GeminiWire)
        .clock(ManualClock::default())
        .keys([KeyScript::valid("g1", GEMINI_G1), KeyScript::invalid("g2", GEMINI_G2)])
        .models(["gemini-2.0-flash"])
        .start()
        .await
        .expect("gemini mock starts")
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>) -> reqwest::Response {
    let request = client.post(url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("sent")
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (the days-from-civil algorithm).
fn unix_seconds(text: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect("digits") };
    assert!(text.len() == 20 && text.ends_with('Z'), "{text} is not a whole-second UTC time");
    let (mut year, month, day) = (field(0..4), field(5..7), field(8..10));
    if month <= 2 {
        year -= 1;
    }
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + field(17..19)
}

fn key<'a>(status: &'a Value, provider: &str, id: &str) -> &'a Value {
    let provider = status["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["name"] == provider)
        .unwrap_or_else(|| panic!("provider {provider} in {status:#}"));
    provider["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} in {status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_spent_key_in_its_zone_and_a_revoked_one_and_a_reset_brings_one_back() {
    let gemini = gemini_mock().await;
    let groq = start_mock(&["q1"]).await;
    let config = format!(
        r#"
[server]
admin_token = "${{ADMIN_TOKEN}}"

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{gemini}"
keys = ["${{G1}}", "${{G2}}"]
models = ["gemini-2.0-flash"]
limits = {{ requests_per_day = 1 }}
reset = "00:00 America/Los_Angeles"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{groq}"
keys = ["${{Q1}}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["gemini/gemini-2.0-flash"]

[[routes]]
name = "fast"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
        gemini = gemini.base_url(),
        groq = groq.upstream.base_url(),
    );
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("G1", GEMINI_G1.to_owned()),
        ("G2", GEMINI_G2.to_owned()),
        ("Q1", groq.secret("q1")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();

    // The admin token is required, and compared exactly.
    for token in [None, Some("admin-secret-toke"), Some("wrong")] {
        let mut request = client.get(gateway.url("/admin/status"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "ADMIN_UNAUTHORIZED");
    }

    let fresh = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(fresh["health"], "healthy", "{fresh:#}");
    assert_eq!(key(&fresh, "gemini", "G1")["state"], "available");
    assert_eq!(fresh["providers"][0]["time_zone"], "America/Los_Angeles");

    // One request spends G1's day; the next tries G2, which the upstream refuses as invalid.
    let first = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    let first = first.await.expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    let second = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    let second = second.await.expect("sent");
    assert!(second.status().is_client_error() || second.status().is_server_error());

    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(unix_seconds("2026-11-24T08:00:00Z"), 1_795_507_200);
    let generated = unix_seconds(status["generated_at"].as_str().expect("generated_at"));
    let spent = key(&status, "gemini", "G1");
    assert_eq!(spent["state"], "exhausted", "{status:#}");
    assert_eq!(spent["fingerprint"].as_str().map(str::len), Some(8), "{spent}");
    // Its day ends at the next midnight in Los Angeles, written with that zone's offset
    // (-08:00 in winter, -07:00 in summer), the same instant in UTC beside it.
    let until = spent["until"].as_str().expect("until");
    let until_utc = spent["until_utc"].as_str().expect("until_utc");
    let (local, offset) = until.split_at(until.len() - 6);
    assert!(local.ends_with("T00:00:00"), "{until}");
    let hours = match offset {
        "-08:00" => 8,
        "-07:00" => 7,
        other => panic!("{other} is not a Los Angeles offset ({until})"),
    };
    assert_eq!(until_utc, format!("{}T{hours:02}:00:00Z", &until_utc[..10]), "{until_utc}");
    let reset = unix_seconds(until_utc);
    assert!(
        reset > generated && reset - generated <= 25 * 3600,
        "{until_utc} is the next midnight"
    );
    let limit = &spent["models"][0]["limits"][0];
    assert_eq!((limit["used"].as_u64(), limit["limit"].as_u64()), (Some(1), Some(1)), "{limit}");
    assert_eq!(limit["remaining"], 0);
    let revoked = key(&status, "gemini", "G2");
    assert_eq!(revoked["state"], "invalid", "{status:#}");
    assert!(revoked["reason"].is_string(), "{revoked}");
    assert_eq!(status["providers"][0]["status"], "QUOTA_EXCEEDED", "{status:#}");
    assert_eq!(status["health"], "down", "route default cannot serve: {status:#}");
    let kinds: Vec<&str> = status["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"provider_down") && kinds.contains(&"no_route"), "{kinds:?}");
    let route =
        status["routes"].as_array().expect("routes").iter().find(|r| r["name"] == "default");
    assert_eq!(route.map(|r| r["can_serve"].clone()), Some(json!(false)));

    // A 429 for the day puts Q1 out; a manual reset brings it back.
    groq.upstream.inject(FaultRule::once(Fault::Fail(Failure::RateLimited {
        window: Window::Day,
        unit: Unit::Requests,
        limit: 100,
        used: 100,
        requested: 1,
        retry_after: Duration::from_secs(6 * 3600),
    })));
    let refused = client.post(gateway.url("/v1/chat/completions")).json(&chat("fast")).send();
    assert_eq!(refused.await.expect("sent").status(), StatusCode::TOO_MANY_REQUESTS);
    let out = gateway.admin_json("/admin/status", ADMIN).await;
    let q1 = key(&out, "groq", "Q1");
    assert!(matches!(q1["state"].as_str(), Some("exhausted" | "cooling")), "{q1}");
    let still = client.post(gateway.url("/v1/chat/completions")).json(&chat("fast")).send();
    assert_eq!(still.await.expect("sent").status(), StatusCode::TOO_MANY_REQUESTS, "no call yet");
    let served_before = groq.upstream.totals().served;

    let reset = post(&client, gateway.url("/admin/keys/Q1/reset"), Some(ADMIN)).await;
    assert_eq!(reset.status(), StatusCode::OK);
    let body: Value = reset.json().await.expect("json");
    assert_eq!(body, json!({"provider": "groq", "key": "Q1", "state": "available"}));
    let back = client.post(gateway.url("/v1/chat/completions")).json(&chat("fast")).send();
    let back = back.await.expect("sent");
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(groq.upstream.totals().served, served_before + 1);

    // Disable takes the key out of rotation; enable puts it back. Unknown keys are 404.
    let disabled = post(&client, gateway.url("/admin/keys/groq/Q1/disable"), Some(ADMIN)).await;
    let disabled: Value = disabled.json().await.expect("json");
    assert_eq!(disabled["state"], "disabled");
    let refused = client.post(gateway.url("/v1/chat/completions")).json(&chat("fast")).send();
    assert!(!refused.await.expect("sent").status().is_success());
    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(status["providers"][1]["status"], "DISABLED", "{status:#}");
    let enabled = post(&client, gateway.url("/admin/keys/Q1/enable"), Some(ADMIN)).await;
    assert_eq!(enabled.json::<Value>().await.expect("json")["state"], "available");
    let served = client.post(gateway.url("/v1/chat/completions")).json(&chat("fast")).send();
    assert_eq!(served.await.expect("sent").status(), StatusCode::OK);
    let unknown = post(&client, gateway.url("/admin/keys/nope/reset"), Some(ADMIN)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.json::<Value>().await.expect("json")["error"]["code"], "UNKNOWN_KEY");

    // The stats endpoint is the router's own.
    let stats = gateway.admin_json("/admin/stats", ADMIN).await;
    assert!(stats["total_calls"].as_u64().is_some_and(|n| n >= 4), "{stats:#}");

    let logs = gateway.stderr();
    for secret in [GEMINI_G1, GEMINI_G2, ADMIN] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_is_not_there() {
    let mock = start_mock(&["k1"]).await;
    let config = format!(
        r#"
[[providers]]
name = "groq"
kind = "openai"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
        url = mock.upstream.base_url()
    );
    let gateway = Gateway::start(&config, &[("K1", mock.secret("k1"))]).expect("starts");
    let client = reqwest::Client::new();
    for path in ["/admin/status", "/admin/stats", "/admin/analytics/usage"] {
        let response =
            client.get(gateway.url(path)).bearer_auth("anything").send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "ADMIN_DISABLED", "{path}");
    }
    let reset = post(&client, gateway.url("/admin/keys/K1/reset"), None).await;
    assert_eq!(reset.status(), StatusCode::NOT_FOUND);
}

/// A webhook receiver on a raw socket (the CLI's tests have no HTTP server crate): answers
/// every POST with 204 and hands its JSON body over.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0_u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let length: usize = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let alert: Value = serde_json::from_str(&body[..length]).expect("json alert");
                    let _ = sender.send(alert);
                    let reply = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
                    let _ = socket.write_all(reply).await;
                    return;
                }
            });
        }
    });
    (format!("http://{addr}/alerts"), receiver)
}

async fn next_alert(alerts: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    // Real time: the alert crosses two processes.
    tokio::time::timeout(Duration::from_secs(20), alerts.recv())
        .await
        .expect("an alert in time")
        .expect("the receiver runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_and_a_reload_swaps_the_configuration() {
    let mock = start_mock(&["k1", "k2"]).await;
    let (webhook, mut alerts) = webhook_receiver().await;
    let config = |route: &str| {
        format!(
            r#"
[server]
admin_token = "${{ADMIN_TOKEN}}"

[alerts]
webhook_url = "{webhook}"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}", "${{K2}}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "{route}"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
            url = mock.upstream.base_url()
        )
    };
    let env =
        [("ADMIN_TOKEN", ADMIN.to_owned()), ("K1", mock.secret("k1")), ("K2", mock.secret("k2"))];
    let gateway = Gateway::start(&config("default"), &env).expect("the gateway starts");
    let client = reqwest::Client::new();

    // Both keys taken out of rotation: the provider is down, once; back, once.
    for key in ["K1", "K2"] {
        let response =
            post(&client, gateway.url(&format!("/admin/keys/{key}/disable")), Some(ADMIN));
        assert_eq!(response.await.status(), StatusCode::OK);
    }
    let down = next_alert(&mut alerts).await;
    assert_eq!(down["kind"], "provider_down", "{down:#}");
    assert_eq!(down["provider"], "groq");
    assert_eq!(down["status"], "DISABLED");
    let enabled = post(&client, gateway.url("/admin/keys/K1/enable"), Some(ADMIN)).await;
    assert_eq!(enabled.status(), StatusCode::OK);
    let back = next_alert(&mut alerts).await;
    assert_eq!(back["kind"], "provider_recovered", "{back:#}");
    assert_eq!(back["status"], "PARTIAL_QUOTA");
    let served = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    assert_eq!(served.await.expect("sent").status(), StatusCode::OK);

    // A reload reads the file again: a broken file is refused and the old router serves.
    gateway.rewrite("[[providers]]\nname = 5\n");
    let refused = post(&client, gateway.url("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: Value = refused.json().await.expect("json");
    assert_eq!(error["error"]["code"], "RELOAD_FAILED");
    assert!(
        error["error"]["message"].as_str().is_some_and(|m| m.contains("switchyard.toml:2")),
        "{error}"
    );
    let served = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    assert_eq!(served.await.expect("sent").status(), StatusCode::OK);
    gateway.rewrite(&config("renamed"));
    let reloaded = post(&client, gateway.url("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(reloaded.status(), StatusCode::OK);
    let body: Value = reloaded.json().await.expect("json");
    assert_eq!(body, json!({"reloaded": true, "routes": 1, "keys": 2}));
    let renamed = client.post(gateway.url("/v1/chat/completions")).json(&chat("renamed")).send();
    assert_eq!(renamed.await.expect("sent").status(), StatusCode::OK);
    assert!(!gateway.stderr().contains(&webhook), "the webhook URL may hold a secret");
}

/// Keys an operator disabled stay disabled through a reload (`POST /admin/reload` and
/// SIGHUP); a key an operator reset stays available, though the state file the new router
/// loads held it as exhausted a moment before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_survive_a_reload() {
    let mock = start_mock(&["k1", "k2"]).await;
    let config = r#"
[server]
admin_token = "${ADMIN_TOKEN}"

[state]
path = "state/switchyard.db"

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
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("BASE_URL", mock.upstream.base_url()),
        ("K1", mock.secret("k1")),
        ("K2", mock.secret("k2")),
    ];
    let gateway = Gateway::start(config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    let state_of = |status: &Value, id: &str| key(status, "groq", id)["state"].clone();

    let disabled = post(&client, gateway.url("/admin/keys/K1/disable"), Some(ADMIN)).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let reloaded = post(&client, gateway.url("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(reloaded.status(), StatusCode::OK);
    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(state_of(&status, "K1"), "disabled", "after an admin reload: {status:#}");
    assert_eq!(state_of(&status, "K2"), "available", "{status:#}");
    gateway.hangup();
    support::wait_for(&gateway, "the SIGHUP reload", || {
        // Not the admin reload's line above ("configuration reloaded by an admin"): waiting on
        // that one let the next requests race the SIGHUP reload.
        gateway.stderr().lines().any(|line| {
            line.contains("configuration reloaded") && !line.contains("configuration reloaded by")
        })
    })
    .await;
    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(state_of(&status, "K1"), "disabled", "after SIGHUP: {status:#}");
    // Requests go to K2 only while K1 is disabled.
    let served = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    let served = served.await.expect("sent");
    assert_eq!(served.status(), StatusCode::OK);
    let k2 = key(&status, "groq", "K2")["fingerprint"].as_str().expect("a fingerprint").to_owned();
    assert_eq!(served.headers()["x-switchyard-key"], k2.as_str());

    // K2's day is spent (the upstream says so for six hours), then an operator resets it.
    mock.upstream.inject(FaultRule::once(Fault::Fail(Failure::RateLimited {
        window: Window::Day,
        unit: Unit::Requests,
        limit: 100,
        used: 100,
        requested: 1,
        retry_after: Duration::from_secs(6 * 3600),
    })));
    let refused = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    assert_eq!(refused.await.expect("sent").status(), StatusCode::TOO_MANY_REQUESTS);
    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert!(
        matches!(state_of(&status, "K2").as_str(), Some("exhausted" | "cooling")),
        "{status:#}"
    );
    let reset = post(&client, gateway.url("/admin/keys/K2/reset"), Some(ADMIN)).await;
    assert_eq!(reset.status(), StatusCode::OK);
    let reloaded = post(&client, gateway.url("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(reloaded.status(), StatusCode::OK);
    let status = gateway.admin_json("/admin/status", ADMIN).await;
    assert_eq!(state_of(&status, "K2"), "available", "the reset stands after a reload: {status:#}");
    assert_eq!(state_of(&status, "K1"), "disabled", "{status:#}");
    let served = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    assert_eq!(served.await.expect("sent").status(), StatusCode::OK);
}

/// A secret pasted where a number belongs: the reload is refused with the file, line and
/// field, and neither the answer nor the log quotes the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_never_quotes_a_value() {
    const PASTED: &str = "sk-proj-pasted0123456789abcdefSECRET";
    let mock = start_mock(&["k1"]).await;
    let config = |limit: &str| {
        format!(
            r#"[server]
admin_token = "${{ADMIN_TOKEN}}"
body_limit_bytes = {limit}

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
    };
    let env = [("ADMIN_TOKEN", ADMIN.to_owned()), ("K1", mock.secret("k1"))];
    let gateway = Gateway::start(&config("65536"), &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    gateway.rewrite(&config(&format!("\"{PASTED}\"")));
    let refused = post(&client, gateway.url("/admin/reload"), Some(ADMIN)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.expect("text");
    assert!(
        text.contains("switchyard.toml:3:20: body_limit_bytes: invalid type: string"),
        "{text}"
    );
    assert!(!text.contains("pasted"), "the reload's answer quotes the value: {text}");
    gateway.hangup();
    support::wait_for(&gateway, "the refused SIGHUP reload", || {
        gateway.stderr().contains("configuration refused")
    })
    .await;
    assert!(!gateway.stderr().contains("pasted"), "the log quotes the value");
}
