//! Client tokens with scopes in the real `switchyard serve` binary: a client limited to one
//! route, a client over its daily budget or its requests a minute, each refused with its own
//! code while the others are served; a bare `client_tokens` token still serves every route.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Gateway, start_mock};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8})
}

async fn ask(gateway: &Gateway, token: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&chat(model))
        .send()
        .await
        .expect("sent")
}

async fn code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("json");
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_held_to_their_routes_budgets_and_rates_one_by_one() {
    let mock = start_mock(&["k1"]).await;
    let config = format!(
        r#"
[server]
client_tokens = ["${{BARE_TOKEN}}"]

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{K1}}"]
models = ["llama-3.3-70b-versatile", "gpt-4o-mini"]
price = {{ cost_per_request = 0.01 }}

[[routes]]
name = "default"
targets = ["groq/llama-3.3-70b-versatile"]

[[routes]]
name = "fast"
targets = ["groq/gpt-4o-mini"]

[[clients]]
name = "ci-bot"
token = "${{CI_TOKEN}}"
routes = ["fast"]

[[clients]]
name = "thrifty"
token = "${{THRIFTY_TOKEN}}"
daily_budget = 0.015

[[clients]]
name = "steady"
token = "${{STEADY_TOKEN}}"
requests_per_minute = 2
"#,
        url = mock.upstream.base_url()
    );
    let env = [
        ("K1", mock.secret("k1")),
        ("BARE_TOKEN", "bare-token-1".to_owned()),
        ("CI_TOKEN", "ci-token-2".to_owned()),
        ("THRIFTY_TOKEN", "thrifty-token-3".to_owned()),
        ("STEADY_TOKEN", "steady-token-4".to_owned()),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");

    // ci-bot may use `fast` only.
    assert_eq!(ask(&gateway, "ci-token-2", "fast").await.status(), StatusCode::OK);
    let refused = ask(&gateway, "ci-token-2", "default").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(refused).await, "ROUTE_NOT_ALLOWED");
    let direct = ask(&gateway, "ci-token-2", "groq/llama-3.3-70b-versatile").await;
    assert_eq!(direct.status(), StatusCode::FORBIDDEN, "a direct target is a route too");
    let models: Value = reqwest::Client::new()
        .get(gateway.url("/v1/models"))
        .bearer_auth("ci-token-2")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> =
        models["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["fast"], "a client sees its own routes");

    // thrifty spends $0.01 a request with a $0.015 budget: the second request still fits,
    // the third does not. The second is streamed: a stream's cost counts as well, once it
    // ends. The others are served meanwhile.
    assert_eq!(ask(&gateway, "thrifty-token-3", "default").await.status(), StatusCode::OK);
    let mut streamed = chat("default");
    streamed["stream"] = Value::Bool(true);
    let stream = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth("thrifty-token-3")
        .json(&streamed)
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.status(), StatusCode::OK);
    let events = stream.text().await.expect("the whole stream");
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");
    let over = ask(&gateway, "thrifty-token-3", "default").await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 =
        over.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=86_400).contains(&retry_after), "until the next UTC midnight: {retry_after}");
    assert_eq!(code(over).await, "CLIENT_BUDGET_EXCEEDED");
    assert_eq!(ask(&gateway, "bare-token-1", "default").await.status(), StatusCode::OK);
    assert_eq!(ask(&gateway, "ci-token-2", "fast").await.status(), StatusCode::OK);

    // steady may make two requests a minute.
    for _ in 0..2 {
        assert_eq!(ask(&gateway, "steady-token-4", "fast").await.status(), StatusCode::OK);
    }
    let limited = ask(&gateway, "steady-token-4", "fast").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(code(limited).await, "CLIENT_RATE_LIMITED");
    assert_eq!(
        ask(&gateway, "bare-token-1", "fast").await.status(),
        StatusCode::OK,
        "others go on"
    );

    // Unknown tokens are refused; the upstream saw only admitted requests.
    assert_eq!(ask(&gateway, "nobody", "fast").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(mock.upstream.totals().served, 8);

    let metrics =
        reqwest::get(gateway.url("/metrics")).await.expect("sent").text().await.expect("text");
    assert!(
        metrics.contains(r#"switchyard_client_requests_total{client="thrifty",outcome="CLIENT_BUDGET_EXCEEDED"} 1"#),
        "{metrics}"
    );
    let logs = gateway.stderr();
    for token in ["bare-token-1", "ci-token-2", "thrifty-token-3", "steady-token-4"] {
        assert!(!logs.contains(token), "a client token reached the logs");
    }
}

#[test]
fn a_client_naming_an_unknown_route_is_refused_at_start() {
    let config = r#"
[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
keys = ["gsk_x"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
targets = ["groq/llama-3.3-70b-versatile"]

[[clients]]
name = "ci-bot"
token = "${CI_TOKEN}"
routes = ["fats"]
"#;
    let error = Gateway::start(config, &[("CI_TOKEN", "t".to_owned())]).expect_err("refused");
    assert!(
        error.contains("switchyard.toml:16: routes: client ci-bot names route \"fats\""),
        "{error}"
    );

    let unset =
        Gateway::start(&config.replace("[\"fats\"]", "[\"default\"]"), &[]).expect_err("refused");
    assert!(unset.contains("token: environment variable CI_TOKEN is not set"), "{unset}");

    let typo = Gateway::start(
        &config.replace("routes = [\"fats\"]", "request_per_minute = 5"),
        &[("CI_TOKEN", "t".to_owned())],
    )
    .expect_err("refused");
    assert!(typo.contains("unknown field `request_per_minute`"), "{typo}");
}
