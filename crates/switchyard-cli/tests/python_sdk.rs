//! The gateway as its users meet it: the real `switchyard` binary driven by the official
//! OpenAI Python SDK (from PyPI, in the virtual environment `cargo xtask test` prepares and
//! names in `SWITCHYARD_TEST_PYTHON`), against `switchyard-mock` upstreams.

mod support;

use serde_json::Value;

use support::{Gateway, Mock, start_mock};

/// One SDK call per mode; prints one JSON line saying what the SDK saw.
const SCRIPT: &str = r#"
import json, sys
import openai

base, token, mode, model = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
messages = [{"role": "user", "content": "Say hello in five words"}]
if mode == "plain":
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=16)
    completion = raw.parse()
    print(json.dumps({
        "id": completion.id,
        "text": completion.choices[0].message.content,
        "finish": completion.choices[0].finish_reason,
        "system_fingerprint": completion.system_fingerprint,
        "total_tokens": completion.usage.total_tokens,
        "provider": raw.headers.get("x-switchyard-provider"),
        "attempts": raw.headers.get("x-switchyard-attempts"),
    }))
elif mode == "stream":
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, stream=True,
        stream_options={"include_usage": True})
    text, usage, n_chunks, ids = "", None, 0, set()
    for chunk in stream:
        n_chunks += 1
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage.total_tokens
    print(json.dumps({"text": text, "total_tokens": usage, "chunks": n_chunks, "ids": sorted(ids)}))
elif mode == "spent":
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=16)
        print(json.dumps({"raised": None}))
    except openai.RateLimitError as error:
        print(json.dumps({
            "raised": type(error).__name__,
            "status": error.status_code,
            "code": error.code,
            "type": error.type,
            "message": error.message,
            "retry_after": error.response.headers.get("retry-after"),
        }))
elif mode == "denied":
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=16)
        print(json.dumps({"raised": None}))
    except openai.PermissionDeniedError as error:
        print(json.dumps({
            "raised": type(error).__name__,
            "status": error.status_code,
            "code": error.code,
            "message": error.message,
        }))
"#;

/// Runs the SDK script against `gateway` and returns the JSON it printed.
async fn sdk(gateway: &Gateway, mode: &str, model: &str) -> Value {
    sdk_as(gateway, "app-token", mode, model).await
}

/// As [`sdk`], with the client token `token`.
async fn sdk_as(gateway: &Gateway, token: &str, mode: &str, model: &str) -> Value {
    support::python(SCRIPT, [gateway.url(""), token.to_owned(), mode.to_owned(), model.to_owned()])
        .await
}

/// A gateway over a broken first provider and a healthy second one, with the routes the
/// tests name: `healthy`, `fallback` (broken first) and `tight` (one key, one request a
/// minute).
async fn setup() -> (Gateway, Mock, Mock, Mock) {
    let broken = start_mock(&["b1"]).await;
    broken
        .upstream
        .inject(switchyard_mock::FaultRule::always(switchyard_mock::Fault::server_error()));
    let healthy = start_mock(&["h1"]).await;
    let tight = start_mock(&["t1", "t2"]).await;
    let config = format!(
        r#"
[server]
client_tokens = ["${{APP_TOKEN}}"]

[[clients]]
name = "sdk-client"
token = "${{SDK_CLIENT_TOKEN}}"
routes = ["healthy"]
requests_per_minute = 1

[[providers]]
name = "broken"
kind = "openai"
preset = "mistral"
base_url = "{broken}"
keys = ["${{BROKEN_KEY}}"]
models = ["mistral-small-latest"]

[[providers]]
name = "healthy"
kind = "openai"
preset = "groq"
base_url = "{healthy}"
keys = ["${{HEALTHY_KEY}}"]
models = ["llama-3.3-70b-versatile"]

{tight}
[[routes]]
name = "healthy"
targets = ["healthy/llama-3.3-70b-versatile"]

[[routes]]
name = "fallback"
strategy = "priority"
targets = ["broken/mistral-small-latest", "healthy/llama-3.3-70b-versatile"]
"#,
        broken = broken.upstream.base_url(),
        healthy = healthy.upstream.base_url(),
        tight = support::tight_provider(&tight.upstream.base_url()),
    );
    let env = [
        ("APP_TOKEN", "app-token".to_owned()),
        ("SDK_CLIENT_TOKEN", "sdk-client-token".to_owned()),
        ("BROKEN_KEY", broken.secret("b1")),
        ("HEALTHY_KEY", healthy.secret("h1")),
        ("TIGHT_1", tight.secret("t1")),
        ("TIGHT_2", tight.secret("t2")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    (gateway, broken, healthy, tight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_makes_a_plain_call() {
    let (gateway, _broken, healthy, _tight) = setup().await;
    let seen = sdk(&gateway, "plain", "healthy").await;
    assert!(seen["id"].as_str().expect("id").starts_with("chatcmpl-mock-"), "{seen}");
    assert_eq!(seen["system_fingerprint"], "fp_mock");
    assert_eq!(seen["finish"], "stop");
    assert!(!seen["text"].as_str().expect("text").is_empty());
    assert!(seen["total_tokens"].as_u64().expect("usage") > 0);
    assert_eq!(seen["provider"], "healthy");
    assert_eq!(seen["attempts"], "1");
    assert_eq!(healthy.upstream.totals().served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_streams_with_usage_in_the_last_chunk() {
    let (gateway, _broken, healthy, _tight) = setup().await;
    let plain = sdk(&gateway, "plain", "healthy").await;
    let seen = sdk(&gateway, "stream", "healthy").await;
    // The mock answers a request with the same text whether streamed or not.
    assert_eq!(seen["text"], plain["text"], "{seen}");
    assert_eq!(seen["total_tokens"], plain["total_tokens"]);
    assert!(seen["chunks"].as_u64().expect("chunks") >= 3, "{seen}");
    assert_eq!(seen["ids"].as_array().expect("ids").len(), 1, "one id across chunks: {seen}");
    assert_eq!(healthy.upstream.totals().served, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_call_falls_back_across_providers() {
    let (gateway, broken, healthy, _tight) = setup().await;
    let seen = sdk(&gateway, "plain", "fallback").await;
    assert_eq!(seen["provider"], "healthy", "{seen}");
    let attempts: u32 = seen["attempts"].as_str().expect("attempts").parse().expect("number");
    assert!(attempts >= 2, "{seen}");
    assert!(broken.upstream.n_requests() >= 1);
    assert_eq!(healthy.upstream.totals().served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_keys_raise_rate_limit_error_with_the_typed_code() {
    let (gateway, _broken, _healthy, tight) = setup().await;
    for _ in 0..2 {
        let seen = sdk(&gateway, "plain", "tight").await;
        assert_eq!(seen["provider"], "tight");
    }
    let seen = sdk(&gateway, "spent", "tight").await;
    assert_eq!(seen["raised"], "RateLimitError", "{seen}");
    assert_eq!(seen["status"], 429);
    assert_eq!(seen["code"], "QUOTA_EXCEEDED");
    assert_eq!(seen["type"], "rate_limit_error");
    let message = seen["message"].as_str().expect("message");
    assert!(message.contains("all 2 keys are out of quota"), "{message}");
    let retry_after: u64 =
        seen["retry_after"].as_str().expect("retry-after").parse().expect("seconds");
    assert!((1..=61).contains(&retry_after), "{seen}");
    assert_eq!(tight.upstream.n_requests(), 2, "the spent keys were not called again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_limits_reach_the_sdk_as_its_own_errors() {
    let (gateway, _broken, healthy, _tight) = setup().await;
    let denied = sdk_as(&gateway, "sdk-client-token", "denied", "fallback").await;
    assert_eq!(denied["raised"], "PermissionDeniedError", "{denied}");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["code"], "ROUTE_NOT_ALLOWED");
    let served = sdk_as(&gateway, "sdk-client-token", "plain", "healthy").await;
    assert_eq!(served["provider"], "healthy");
    let limited = sdk_as(&gateway, "sdk-client-token", "spent", "healthy").await;
    assert_eq!(limited["raised"], "RateLimitError", "{limited}");
    assert_eq!(limited["code"], "CLIENT_RATE_LIMITED");
    let retry_after: u64 =
        limited["retry_after"].as_str().expect("retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after), "{limited}");
    // The bare token is not held to the client's minute.
    assert_eq!(sdk(&gateway, "plain", "healthy").await["provider"], "healthy");
    assert_eq!(healthy.upstream.totals().served, 2);
}
