//! `switchyard serve` as users run it: the real binary started with a `switchyard.toml` that
//! points at `switchyard-mock` upstreams this test starts, driven over HTTP on loopback.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Gateway, refusal, start_mock, wait_for};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_route_and_falls_back_across_providers() {
    let broken = start_mock(&["b1"]).await;
    broken
        .upstream
        .inject(switchyard_mock::FaultRule::always(switchyard_mock::Fault::server_error()));
    let healthy = start_mock(&["h1", "h2"]).await;
    let config = format!(
        r#"
[server]
client_tokens = ["${{APP_TOKEN}}"]

[[providers]]
name = "broken"
kind = "openai"
base_url = "{broken}"
keys = ["${{BROKEN_KEY}}"]
models = ["gpt-4o-mini"]

[[providers]]
name = "healthy"
kind = "openai"
preset = "groq"
base_url = "{healthy}"
keys_env = "HEALTHY_KEY*"
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["broken/gpt-4o-mini", "healthy/llama-3.3-70b-versatile"]
"#,
        broken = broken.upstream.base_url(),
        healthy = healthy.upstream.base_url(),
    );
    let env = [
        ("APP_TOKEN", "app-secret".to_owned()),
        ("BROKEN_KEY", broken.secret("b1")),
        ("HEALTHY_KEY_1", healthy.secret("h1")),
        ("HEALTHY_KEY_2", healthy.secret("h2")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();

    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("default"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the client token is required");

    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth("app-secret")
        .json(&chat("default"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-provider"], "healthy");
    assert_eq!(response.headers()["x-switchyard-model"], "llama-3.3-70b-versatile");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert!(broken.upstream.n_requests() >= 1, "the first provider was tried");
    assert_eq!(healthy.upstream.totals().served, 1);

    let models: Value = client
        .get(gateway.url("/v1/models"))
        .bearer_auth("app-secret")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["id"], "default");
    // Logs are JSON lines and never carry a key.
    let logs = gateway.stderr();
    assert!(logs.lines().any(|line| serde_json::from_str::<Value>(line).is_ok()), "{logs}");
    for secret in [broken.secret("b1"), healthy.secret("h1"), "app-secret".to_owned()] {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_limits_answer_429_once_every_key_is_spent() {
    let mock = start_mock(&["k1", "k2"]).await;
    let config = format!(
        r#"
[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}", "${{K2}}", "${{K3:-}}"]
models = ["llama-3.3-70b-versatile"]
limits = {{ requests_per_minute = 1, requests_per_day = 100 }}

[[routes]]
name = "fast"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
        url = mock.upstream.base_url()
    );
    let env = [("K1", mock.secret("k1")), ("K2", mock.secret("k2"))];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat("fast"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("fast"))
        .send()
        .await
        .expect("sent");
    assert!(response.headers().contains_key("retry-after"));
    let error = refusal(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error["code"], "QUOTA_EXCEEDED");
    assert_eq!(mock.upstream.n_requests(), 2);
    // The empty third key was dropped with a warning naming it.
    let logs = gateway.stderr();
    assert!(logs.contains("key K3 is empty and was dropped"), "{logs}");
}

#[test]
fn a_bad_config_is_refused_with_file_line_and_field() {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\n\n[[providers]]\nname = \"groq\"\nkind = \"openai\"\nkeys = [\"${GROQ_KEY_THAT_IS_UNSET}\"]\nmodels = [\"m\"]\n\n[[routes]]\nname = \"r\"\ntargets = [\"groq/m\"]\n";
    let failure = Gateway::start(config, &[]).expect_err("an unset variable is refused");
    assert!(failure.contains("switchyard.toml:7: keys: "), "{failure}");
    assert!(failure.contains("GROQ_KEY_THAT_IS_UNSET is not set"), "{failure}");

    let config = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\nmodels = [\"m\"]\nlimits = { requests_per_minute = \"thirty\" }\n";
    let failure = Gateway::start(config, &[]).expect_err("a string limit is refused");
    assert!(failure.contains("switchyard.toml:5:"), "{failure}");
    assert!(failure.contains("limits: "), "{failure}");
    assert!(failure.contains("expected u64") || failure.contains("integer"), "{failure}");

    let config = "[[providers]]\nname = \"x\"\nkind = \"cohere\"\n\n[[routes]]\nname = \"r\"\ntargets = [\"x/m\"]\n";
    let failure = Gateway::start(config, &[]).expect_err("an unknown kind is refused");
    assert!(
        failure.contains("switchyard.toml:3: kind: unknown kind; expected one of"),
        "{failure}"
    );
    assert!(!failure.contains("cohere"), "the value is not quoted: {failure}");
}

/// Closed by default: a client token whose variable is unset stops the start, naming the
/// file and line; it never opens the gateway.
#[test]
fn an_empty_client_token_stops_the_start() {
    let config = "[server]\nclient_tokens = [\"${SWITCHYARD_CLIENT_TOKEN:-}\"]\n\n[[providers]]\nname = \"x\"\nkind = \"openai\"\nkeys = [\"sk-x\"]\nmodels = [\"m\"]\n\n[[routes]]\nname = \"r\"\ntargets = [\"x/m\"]\n";
    let failure = Gateway::start(config, &[]).expect_err("an empty token is refused");
    assert!(
        failure.contains("switchyard.toml:2: client_tokens: a client token is empty or blank"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_bad_reload_keeps_the_old_config_serving() {
    let mock = start_mock(&["k1"]).await;
    let config = |routes: &str| {
        format!(
            "[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"{}\"\nkeys = [\"${{K1}}\"]\nmodels = [\"gpt-4o-mini\"]\n\n{routes}",
            mock.upstream.base_url()
        )
    };
    let env = [("K1", mock.secret("k1"))];
    let gateway = Gateway::start(
        &config("[[routes]]\nname = \"first\"\ntargets = [\"up/gpt-4o-mini\"]\n"),
        &env,
    )
    .expect("the gateway starts");
    let client = reqwest::Client::new();
    let status = |model: &'static str| {
        let request = client.post(gateway.url("/v1/chat/completions")).json(&chat(model));
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(status("first").await, StatusCode::OK);
    assert_eq!(status("second").await, StatusCode::NOT_FOUND);

    gateway.rewrite(&config(
        "[[routes]]\nname = \"first\"\ntargets = [\"up/gpt-4o-mini\"]\n\n[[routes]]\nname = \"second\"\ntargets = [\"up/gpt-4o-mini\"]\n",
    ));
    gateway.hangup();
    wait_for(&gateway, "the reload", || gateway.stderr().contains("configuration reloaded")).await;
    assert_eq!(status("second").await, StatusCode::OK);

    // Client tokens are reloaded too.
    gateway.rewrite(&format!(
        "[server]\nclient_tokens = [\"reloaded-token\"]\n\n{}",
        config("[[routes]]\nname = \"first\"\ntargets = [\"up/gpt-4o-mini\"]\n\n[[routes]]\nname = \"second\"\ntargets = [\"up/gpt-4o-mini\"]\n")
    ));
    gateway.hangup();
    wait_for(&gateway, "the second reload", || {
        gateway.stderr().matches("configuration reloaded").count() == 2
    })
    .await;
    assert_eq!(status("second").await, StatusCode::UNAUTHORIZED);
    let with_token = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth("reloaded-token")
        .json(&chat("second"))
        .send()
        .await
        .expect("sent");
    assert_eq!(with_token.status(), StatusCode::OK);
    gateway.rewrite(&config(
        "[[routes]]\nname = \"first\"\ntargets = [\"up/gpt-4o-mini\"]\n\n[[routes]]\nname = \"second\"\ntargets = [\"up/gpt-4o-mini\"]\n",
    ));
    gateway.hangup();
    wait_for(&gateway, "the third reload", || {
        gateway.stderr().matches("configuration reloaded").count() == 3
    })
    .await;

    gateway.rewrite(&config("[[routes]]\nname = \"first\"\ntargets = [\"nowhere/gpt-4o-mini\"]\n"));
    gateway.hangup();
    wait_for(&gateway, "the refusal", || gateway.stderr().contains("configuration refused")).await;
    let logs = gateway.stderr();
    assert!(logs.contains("names no configured provider"), "{logs}");
    assert_eq!(status("first").await, StatusCode::OK, "the running configuration stays");
    assert_eq!(status("second").await, StatusCode::OK);
    assert_eq!(mock.upstream.totals().served, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_answers_429_budget_exceeded() {
    let mock = start_mock(&["k1"]).await;
    let config = format!(
        r#"
[[providers]]
name = "paid"
kind = "openai"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["gpt-4o-mini"]
# Five cents a token: one short answer (about 15 tokens) costs most of the day's dollar.
price = {{ input_per_mtok = 50000.0, output_per_mtok = 50000.0 }}

[[routes]]
name = "default"
targets = ["paid/gpt-4o-mini"]
budget_per_day = 1.0
"#,
        url = mock.upstream.base_url()
    );
    let gateway = Gateway::start(&config, &[("K1", mock.secret("k1"))]).expect("starts");
    let client = reqwest::Client::new();
    let call = || client.post(gateway.url("/v1/chat/completions")).json(&chat("default"));
    assert_eq!(call().send().await.expect("sent").status(), StatusCode::OK);
    let response = call().send().await.expect("sent");
    assert!(response.headers().contains_key("retry-after"), "the budget day's end");
    let error = refusal(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error["code"], "BUDGET_EXCEEDED", "{error}");
    assert_eq!(mock.upstream.n_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_limits_replace_the_providers_for_that_model() {
    let mock = start_mock(&["k1"]).await;
    let config = format!(
        r#"
[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile", "gpt-4o-mini"]
limits = {{ requests_per_minute = 100 }}

[providers.per_model."llama-3.3-70b-versatile"]
limits = {{ requests_per_minute = 1 }}

[[routes]]
name = "big"
targets = ["groq/llama-3.3-70b-versatile"]

[[routes]]
name = "small"
targets = ["groq/gpt-4o-mini"]
"#,
        url = mock.upstream.base_url()
    );
    let gateway = Gateway::start(&config, &[("K1", mock.secret("k1"))]).expect("starts");
    let client = reqwest::Client::new();
    let status = |model: &'static str| {
        let request = client.post(gateway.url("/v1/chat/completions")).json(&chat(model));
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(status("big").await, StatusCode::OK);
    assert_eq!(status("big").await, StatusCode::TOO_MANY_REQUESTS, "one a minute for this model");
    for _ in 0..3 {
        assert_eq!(status("small").await, StatusCode::OK, "the provider's limit for others");
    }
    assert_eq!(mock.upstream.n_requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_a_keys_quota() {
    let redis_url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("SWITCHYARD_TEST_REDIS_URL is not set: run the tests with `cargo xtask test`, which starts a redis-server")
    });
    let mock = start_mock(&["k1"]).await;
    // A prefix of its own, so runs and other tests on the same server do not meet.
    let prefix = format!("gateway-test-{}-{}", std::process::id(), mock.upstream.addr().port());
    let config = format!(
        r#"
[server]
admin_token = "redis-admin"

[state]
redis_url = "${{REDIS_URL}}"
redis_prefix = "{prefix}"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile"]
limits = {{ requests_per_minute = 2 }}

[[routes]]
name = "default"
targets = ["groq/llama-3.3-70b-versatile"]
"#,
        url = mock.upstream.base_url()
    );
    let env = [("K1", mock.secret("k1")), ("REDIS_URL", redis_url)];
    let first = Gateway::start(&config, &env).expect("the first gateway starts");
    let second = Gateway::start(&config, &env).expect("the second gateway starts");
    let client = reqwest::Client::new();
    let status = |gateway: &Gateway| {
        let request = client.post(gateway.url("/v1/chat/completions")).json(&chat("default"));
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(status(&first).await, StatusCode::OK);
    assert_eq!(status(&second).await, StatusCode::OK);
    // The key's two requests of this minute are spent, whichever gateway spent them.
    assert_eq!(status(&first).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&second).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(mock.upstream.n_requests(), 2);
    // Each gateway's admin status shows the shared count from Redis.
    for gateway in [&first, &second] {
        let view: Value = client
            .get(gateway.url("/admin/status"))
            .bearer_auth("redis-admin")
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let key = &view["providers"][0]["keys"][0];
        assert_eq!(key["id"], "K1", "{view:#}");
        assert_eq!(key["state"], "cooling", "a spent minute: {view:#}");
        let limit = &key["models"][0]["limits"][0];
        assert_eq!(
            (limit["used"].as_u64(), limit["limit"].as_u64()),
            (Some(2), Some(2)),
            "{view:#}"
        );
        assert_eq!(view["health"], "down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_the_vault_and_are_read_again_on_reload() {
    use switchyard_vault::{NewKey, Passphrase, Vault, VaultConfig};

    let mock = start_mock(&["v1", "v2"]).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vault_path = dir.path().join("keys.vault");
    let passphrase = || Passphrase::try_new(b"correct horse battery").expect("passphrase");
    let mut vault =
        Vault::create(&vault_path, passphrase(), VaultConfig::default()).expect("vault created");
    vault.add(NewKey::new("up", mock.secret("v1"))).expect("key added");
    let config = format!(
        "[server]\nadmin_token = \"vault-admin\"\n\n[vault]\npath = {:?}\n\n[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"gpt-4o-mini\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"up/gpt-4o-mini\"]\n",
        vault_path.display().to_string(),
        mock.upstream.base_url()
    );
    let env = [("SWITCHYARD_VAULT_PASSPHRASE", "correct horse battery".to_owned())];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    let call = || client.post(gateway.url("/v1/chat/completions")).json(&chat("default"));
    // Before any call, the admin status knows the vault key's fingerprint (never its secret).
    let view = client.get(gateway.url("/admin/status")).bearer_auth("vault-admin").send();
    let view: Value = view.await.expect("sent").json().await.expect("json");
    let listed = view["providers"][0]["keys"][0]["fingerprint"].as_str().expect("fp").to_owned();
    assert_eq!(listed.len(), 8, "{view:#}");
    assert!(!view.to_string().contains(&mock.secret("v1")));
    let response = call().send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-key"], listed.as_str());
    assert_eq!(mock.upstream.counts("v1").expect("v1").served, 1);

    // A key added to the vault is served after SIGHUP; the old key is disabled there.
    let mut vault = Vault::open(&vault_path, passphrase(), VaultConfig::default()).expect("opens");
    let first = vault.keys().next().expect("the first key is listed").id.clone();
    vault.add(NewKey::new("up", mock.secret("v2"))).expect("key added");
    assert!(vault.disable(&first).expect("v1 disabled"), "it was enabled");
    drop(vault);
    gateway.hangup();
    wait_for(&gateway, "the reload", || gateway.stderr().contains("configuration reloaded")).await;
    assert_eq!(call().send().await.expect("sent").status(), StatusCode::OK);
    assert_eq!(mock.upstream.counts("v2").expect("v2").served, 1);
    assert_eq!(mock.upstream.counts("v1").expect("v1").served, 1);
    assert!(!gateway.stderr().contains(&mock.secret("v2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_dotenv_serve_and_sigterm_stops_cleanly() {
    let mock = start_mock(&["d1"]).await;
    let config = format!(
        "[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"{}\"\nkeys = [\"${{DOTENV_KEY}}\"]\nmodels = [\"gpt-4o-mini\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"up/gpt-4o-mini\"]\n",
        mock.upstream.base_url()
    );
    let dotenv = format!("# keys for the test\nDOTENV_KEY={}\n", mock.secret("d1"));
    let mut gateway =
        Gateway::start_with_dotenv(&config, &[], Some(&dotenv)).expect("the gateway starts");
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("default"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.upstream.counts("d1").expect("d1").served, 1);
    let status = gateway.terminate();
    assert!(status.success(), "{status:?}");
    // The log reader may still be copying the last lines of the exited process.
    wait_for(&gateway, "the shutdown log", || {
        gateway.stderr().contains("draining requests in flight")
    })
    .await;
}

/// `[server]`'s connection limits reach the listener of the real binary: an idle connection
/// is closed after `idle_timeout_secs`; without a token, a request naming another host is
/// refused while one naming the gateway is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_closes_idle_connections_and_checks_host_without_tokens() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mock = start_mock(&["k1"]).await;
    let config = format!(
        r#"
[server]
idle_timeout_secs = 0.5
header_read_timeout_secs = 600

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
    );
    let gateway = Gateway::start(&config, &[("K1", mock.secret("k1"))]).expect("starts");
    let addr = gateway.url("").trim_start_matches("http://").to_owned();

    // Header reads may take ten minutes: only the idle timeout can close this one in time.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 64];
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "gave up waiting for the binary to close an idle connection");

    let body = chat("default").to_string();
    let ask = |host: String| {
        let body = body.clone();
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connects");
            let request = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.expect("writes");
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
                .await
                .expect("answered in time")
                .expect("reads");
            String::from_utf8_lossy(&answer).to_string()
        }
    };
    let refused = ask("attacker.example".to_owned()).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("HOST_NOT_ALLOWED"), "{refused}");
    let served = ask(addr.replace("127.0.0.1", "localhost")).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert_eq!(mock.upstream.n_requests(), 1, "the refused request never reached an upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_log_names_a_failed_key_and_why_and_drops_per_request_lines() {
    let broken = start_mock(&["b1"]).await;
    broken
        .upstream
        .inject(switchyard_mock::FaultRule::always(switchyard_mock::Fault::server_error()));
    let healthy = start_mock(&["h1"]).await;
    let config = format!(
        r#"
[[providers]]
name = "broken"
kind = "openai"
base_url = "{broken}"
keys = ["${{BROKEN_KEY}}"]
models = ["gpt-4o-mini"]

[[providers]]
name = "healthy"
kind = "openai"
base_url = "{healthy}"
keys = ["${{HEALTHY_KEY}}"]
models = ["gpt-4o-mini"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["broken/gpt-4o-mini", "healthy/gpt-4o-mini"]
"#,
        broken = broken.upstream.base_url(),
        healthy = healthy.upstream.base_url(),
    );
    let env = [
        ("RUST_LOG", String::new()),
        ("BROKEN_KEY", broken.secret("b1")),
        ("HEALTHY_KEY", healthy.secret("h1")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    let response = client.post(gateway.url("/v1/chat/completions")).json(&chat("default")).send();
    let response = response.await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-provider"], "healthy");

    let lines = |logs: &str, message: &str| -> Vec<Value> {
        logs.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    };
    wait_for(&gateway, "the failed attempt's log line", || {
        !lines(&gateway.stderr(), "attempt failed").is_empty()
    })
    .await;
    let logs = gateway.stderr();
    let failed = lines(&logs, "attempt failed");
    // A server error is retried once on the same key before the cascade moves on.
    assert!(failed.iter().all(|line| line["level"] == "WARN"), "{logs}");
    let said = failed[0]["fields"].to_string();
    assert!(said.contains("BROKEN_KEY") && said.contains("HTTP 500"), "which key and why: {said}");
    assert!(!logs.contains(&broken.secret("b1")), "no secret in the log: {logs}");
    // The per-attempt and per-request info lines cost CPU on every request: off by default.
    assert!(lines(&logs, "request").is_empty(), "{logs}");
    assert!(
        lines(&logs, "attempt").iter().all(|line| line["level"] != "INFO"),
        "no info line per attempt: {logs}"
    );
}
