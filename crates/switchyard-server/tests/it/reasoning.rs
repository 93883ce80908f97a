//! Reasoning effort read from every inbound format, sent upstream, and the upstream's reasoning
//! tokens reported back in each format's usage; and a body over the limit refused in each
//! format's own error shape.

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard::StrategyKind;
use switchyard_core::ManualClock;
use switchyard_mock::{MOCK_REASONING_TOKENS, MockUpstream};
use switchyard_quota::QuotaConfig;
use switchyard_server::GatewayConfig;

use crate::support::{Running, builder, credentials, key, mock, provider, serve, sse_data};

const TOKEN: &str = "gw-token-reason";

/// A gateway asking for [`TOKEN`] over one OpenAI-format mock; route `default`.
async fn gateway(clock: &ManualClock, upstream: &MockUpstream, config: GatewayConfig) -> Running {
    let router = credentials(builder(clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", upstream, clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let config = GatewayConfig { client_tokens: vec![TOKEN.into()], ..config };
    serve(router, clock, config).await
}

async fn post(server: &Running, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(TOKEN)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a JSON answer")
}

/// The body the upstream got last.
fn upstream_body(upstream: &MockUpstream) -> Value {
    upstream.last_request().and_then(|request| request.body).expect("the upstream got a body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_pass_the_effort_and_report_reasoning_tokens_plain_and_streamed() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let server = gateway(&clock, &upstream, GatewayConfig::default()).await;
    let chat = |stream: bool, effort: Option<&str>| {
        let mut body = crate::support::body("default", stream);
        if let Some(effort) = effort {
            body["reasoning_effort"] = json!(effort);
        }
        body
    };

    let answer = json_of(post(&server, "/v1/chat/completions", &chat(false, None)).await).await;
    assert!(answer["usage"].get("completion_tokens_details").is_none(), "{answer}");
    assert!(upstream_body(&upstream).get("reasoning_effort").is_none());

    let answer =
        json_of(post(&server, "/v1/chat/completions", &chat(false, Some("high"))).await).await;
    assert_eq!(upstream_body(&upstream)["reasoning_effort"], "high");
    let usage = &answer["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], MOCK_REASONING_TOKENS);
    let completion = usage["completion_tokens"].as_u64().expect("a count");
    assert!(completion > u64::from(MOCK_REASONING_TOKENS), "thinking is part of it: {usage}");

    let response = post(&server, "/v1/chat/completions", &chat(true, Some("low"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let chunks: Vec<Value> = sse_data(&text)
        .iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("a JSON chunk"))
        .collect();
    let last_usage = chunks.iter().rev().find_map(|chunk| chunk.get("usage")).expect("usage");
    assert_eq!(last_usage["completion_tokens_details"]["reasoning_tokens"], MOCK_REASONING_TOKENS);
    assert_eq!(upstream_body(&upstream)["reasoning_effort"], "low");

    let response = post(&server, "/v1/chat/completions", &chat(false, Some("extreme"))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_read_reasoning_effort_and_report_output_reasoning_tokens() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let server = gateway(&clock, &upstream, GatewayConfig::default()).await;
    let request = |stream: bool, effort: &str| {
        json!({"model": "default", "input": "Say hello", "stream": stream,
               "reasoning": {"effort": effort, "summary": "auto"}})
    };

    let answer = json_of(post(&server, "/v1/responses", &request(false, "medium")).await).await;
    assert_eq!(upstream_body(&upstream)["reasoning_effort"], "medium");
    assert_eq!(
        answer["usage"]["output_tokens_details"]["reasoning_tokens"], MOCK_REASONING_TOKENS,
        "{answer}"
    );

    let response = post(&server, "/v1/responses", &request(true, "minimal")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let completed = sse_data(&text)
        .iter()
        .map(|data| serde_json::from_str::<Value>(data).expect("JSON data"))
        .find(|event| event["type"] == "response.completed")
        .expect("a response.completed event");
    assert_eq!(
        completed["response"]["usage"]["output_tokens_details"]["reasoning_tokens"],
        MOCK_REASONING_TOKENS
    );
    assert_eq!(upstream_body(&upstream)["reasoning_effort"], "minimal");

    let no_effort = json!({"model": "default", "input": "Say hello"});
    let answer = json_of(post(&server, "/v1/responses", &no_effort).await).await;
    assert_eq!(answer["usage"]["output_tokens_details"]["reasoning_tokens"], 0);

    let response = post(&server, "/v1/responses", &request(false, "extreme")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.expect("json");
    let message = error["error"]["message"].as_str().expect("a message");
    assert!(message.contains("reasoning.effort"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_thinking_budget_becomes_an_effort_and_leaves_the_answer_its_room() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let server = gateway(&clock, &upstream, GatewayConfig::default()).await;
    let body = json!({
        "model": "default", "max_tokens": 8192 + 300,
        "thinking": {"type": "enabled", "budget_tokens": 8192},
        "messages": [{"role": "user", "content": "Say hello"}],
    });
    let answer = json_of(post(&server, "/v1/messages", &body).await).await;
    let sent = upstream_body(&upstream);
    assert_eq!(sent["reasoning_effort"], "medium");
    assert_eq!(sent["max_completion_tokens"], 300, "the budget is not the answer's");
    // Anthropic's usage has no reasoning field: the thinking is inside output_tokens.
    let output = answer["usage"]["output_tokens"].as_u64().expect("a count");
    assert!(output > u64::from(MOCK_REASONING_TOKENS), "{answer}");

    let disabled = json!({
        "model": "default", "max_tokens": 64, "thinking": {"type": "disabled"},
        "messages": [{"role": "user", "content": "Say hello"}],
    });
    json_of(post(&server, "/v1/messages", &disabled).await).await;
    let sent = upstream_body(&upstream);
    assert!(sent.get("reasoning_effort").is_none(), "{sent}");
    assert_eq!(sent["max_completion_tokens"], 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_in_the_shape_of_its_format() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let config = GatewayConfig { body_limit_bytes: 2_000, ..GatewayConfig::default() };
    let server = gateway(&clock, &upstream, config).await;
    let long = "x".repeat(5_000);

    let messages = json!({"model": "default", "max_tokens": 16,
                          "messages": [{"role": "user", "content": long}]});
    let response = post(&server, "/v1/messages", &messages).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "request_too_large", "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("2000")), "{error}");

    let responses = json!({"model": "default", "input": long});
    let response = post(&server, "/v1/responses", &responses).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.expect("json");
    assert!(error.get("type").is_none(), "not Anthropic's shape: {error}");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(error["error"]["code"].is_string(), "{error}");

    // Streamed without a declared length, the body is cut short while read: same shapes.
    let chunks = vec![Ok::<_, std::io::Error>(serde_json::to_vec(&messages).expect("bytes"))];
    let response = reqwest::Client::new()
        .post(server.url("/v1/messages"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["type"], "request_too_large", "{error}");
    assert_eq!(upstream.n_requests(), 0, "nothing reached the upstream");
}
