//! `POST /v1/messages` (Anthropic) and `POST /v1/responses` (OpenAI Responses) over real
//! HTTP in front of a mock upstream, and the per-request headers of every format.

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard::{CacheConfig, RouteConfig, RouterConfig, StrategyKind};
use switchyard_core::{ManualClock, ToolCall};
use switchyard_mock::{KeyScript, MockUpstream, ReplyScript};
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig};
use switchyard_server::GatewayConfig;

use crate::support::{Running, builder, credentials, key, mock, provider, secret, serve};

const TOKEN: &str = "gw-token-123";

/// A gateway asking for [`TOKEN`], over one OpenAI-format mock with `keys`, its quota `quota`;
/// route `default` targets `openai/gpt-4o-mini`.
async fn gateway(
    clock: &ManualClock,
    upstream: &MockUpstream,
    ids: &[&str],
    quota: QuotaConfig,
) -> Running {
    let router = credentials(builder(clock, quota), "openai", ids)
        .provider(provider("openai", upstream, clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let config = GatewayConfig { client_tokens: vec![TOKEN.into()], ..GatewayConfig::default() };
    serve(router, clock, config).await
}

/// One key a minute: the third call on two keys finds both spent.
fn one_a_minute() -> QuotaConfig {
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "openai".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![Limit::per_minute(1)])],
        }],
        ..QuotaConfig::default()
    }
}

fn weather_call() -> ToolCall {
    ToolCall {
        id: "call_w1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Oslo"}"#.into(),
    }
}

async fn tool_mock(clock: &ManualClock) -> MockUpstream {
    MockUpstream::openai()
        .clock(clock.clone())
        .key(KeyScript::valid("k1", secret("k1")))
        .models(["gpt-4o-mini"])
        .reply(ReplyScript::ToolCalls(vec![weather_call()]))
        .start()
        .await
        .expect("mock starts")
}

/// Posts `body` to `path` as an Anthropic SDK does: `x-api-key` and `anthropic-version`.
async fn anthropic_post(server: &Running, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .header("x-api-key", TOKEN)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("sent")
}

/// Posts `body` to `path` with the bearer token and `headers`.
async fn bearer_post(
    server: &Running,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(server.url(path)).bearer_auth(TOKEN).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sent")
}

/// The events of an SSE body: `(event name, data as JSON)`.
async fn events_of(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.expect("body");
    let mut events = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events
                .push((std::mem::take(&mut name), serde_json::from_str(data).expect("JSON data")));
        }
    }
    events
}

fn messages_body(stream: bool) -> Value {
    json!({
        "model": "default", "max_tokens": 32, "stream": stream,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_answer_plain_and_streamed_in_anthropic_shape() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let server = gateway(&clock, &upstream, &["k1"], QuotaConfig::default()).await;

    let response = anthropic_post(&server, "/v1/messages", &messages_body(false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-provider"], "openai");
    assert_eq!(response.headers()["x-switchyard-attempts"], "1");
    let message: Value = response.json().await.expect("json");
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["stop_reason"], "end_turn");
    let text = message["content"][0]["text"].as_str().expect("a text block");
    assert!(text.contains("Say hello"), "the mock echoes the prompt: {message}");
    assert!(message["usage"]["input_tokens"].as_u64().expect("input") > 0);
    assert!(message["usage"]["output_tokens"].as_u64().expect("output") > 0);
    // The system prompt reached the upstream as OpenAI's system message.
    let sent = upstream.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You are terse."}));

    let events =
        events_of(anthropic_post(&server, "/v1/messages", &messages_body(true)).await).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[1], "content_block_start");
    assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "the data's type is the event's name");
    }
    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().expect("text")
        })
        .collect();
    assert_eq!(streamed, text, "streamed and plain answers are the same text");
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], message["usage"]["output_tokens"]);
    assert_eq!(upstream.counts("k1").expect("k1").served, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_use_round_trip_through_messages() {
    let clock = ManualClock::default();
    let upstream = tool_mock(&clock).await;
    let server = gateway(&clock, &upstream, &["k1"], QuotaConfig::default()).await;
    let mut body = json!({
        "model": "default", "max_tokens": 64,
        "tools": [{"name": "weather", "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "tool", "name": "weather"},
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    });

    let message: Value =
        anthropic_post(&server, "/v1/messages", &body).await.json().await.expect("json");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([{"type": "tool_use", "id": "call_w1", "name": "weather", "input": {"city": "Oslo"}}])
    );
    let sent = upstream.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));

    body["stream"] = Value::from(true);
    let events = events_of(anthropic_post(&server, "/v1/messages", &body).await).await;
    let start = events.iter().find(|(name, _)| name == "content_block_start").expect("a block");
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "weather");
    let json_text: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().expect("input_json_delta"))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json_text).expect("JSON"), json!({"city": "Oslo"}));
    let delta = events.iter().find(|(name, _)| name == "message_delta").expect("message_delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

    // The client answers the call: the upstream gets the call and its result in its format.
    body["stream"] = Value::from(false);
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_w1", "content": "rain, 4°C"}]},
    ]);
    let response = anthropic_post(&server, "/v1/messages", &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent = upstream.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_w1");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Oslo"}"#);
    assert_eq!(sent["messages"][2]["role"], "tool");
    assert_eq!(sent["messages"][2]["tool_call_id"], "call_w1");
    assert_eq!(sent["messages"][2]["content"], "rain, 4°C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_errors_come_in_anthropic_shape() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let server = gateway(&clock, &upstream, &["k1", "k2"], one_a_minute()).await;
    let anthropic_error = |status: StatusCode, kind: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status);
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], kind, "{body}");
            body["error"].clone()
        }
    };

    let response = reqwest::Client::new()
        .post(server.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&messages_body(false))
        .send()
        .await
        .expect("sent");
    anthropic_error(StatusCode::UNAUTHORIZED, "authentication_error")(response).await;

    let mut unknown = messages_body(false);
    unknown["model"] = Value::from("nowhere");
    let response = anthropic_post(&server, "/v1/messages", &unknown).await;
    let error = anthropic_error(StatusCode::NOT_FOUND, "not_found_error")(response).await;
    assert_eq!(error["code"], "UNKNOWN_MODEL");

    let bad = json!({"model": "default", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "video"}]}]});
    let response = anthropic_post(&server, "/v1/messages", &bad).await;
    let error = anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error")(response).await;
    assert!(error["message"].as_str().expect("text").contains("unsupported block type"), "{error}");

    for _ in 0..2 {
        let response = anthropic_post(&server, "/v1/messages", &messages_body(false)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = anthropic_post(&server, "/v1/messages", &messages_body(false)).await;
    let retry_after: u64 =
        response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((60..=61).contains(&retry_after), "{retry_after}");
    let error = anthropic_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")(response).await;
    assert_eq!(error["code"], "QUOTA_EXCEEDED");
    assert_eq!(upstream.n_requests(), 2, "the spent keys were not called");

    // Counting tokens routes nothing.
    let counted: Value =
        anthropic_post(&server, "/v1/messages/count_tokens", &messages_body(false))
            .await
            .json()
            .await
            .expect("json");
    assert!(counted["input_tokens"].as_u64().expect("a count") > 0, "{counted}");
    assert_eq!(upstream.n_requests(), 2);
}

fn responses_body(stream: bool) -> Value {
    json!({
        "model": "default", "instructions": "You are terse.", "input": "Say hello",
        "max_output_tokens": 32, "stream": stream, "store": false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_answer_plain_and_streamed() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let server = gateway(&clock, &upstream, &["k1"], QuotaConfig::default()).await;

    let response = bearer_post(&server, "/v1/responses", &responses_body(false), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-model"], "gpt-4o-mini");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["output"][0]["type"], "message");
    let text = answer["output"][0]["content"][0]["text"].as_str().expect("output_text");
    assert!(text.contains("Say hello"), "{answer}");
    let usage = &answer["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["input_tokens"].as_u64().expect("in")
                + usage["output_tokens"].as_u64().expect("out")
        )
    );
    let sent = upstream.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["max_completion_tokens"].as_u64().or(sent["max_tokens"].as_u64()), Some(32));

    let events =
        events_of(bearer_post(&server, "/v1/responses", &responses_body(true), &[]).await).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["response.created", "response.in_progress", "response.output_item.added"]
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    for (seq, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], seq, "events are numbered in order");
    }
    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(streamed, text);
    let done = events.iter().find(|(name, _)| name == "response.output_text.done").expect("done");
    assert_eq!(done.1["text"], text);
    let completed = &events.last().expect("an event").1["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], text);
    assert_eq!(completed["usage"], answer["usage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_call_round_trip_through_responses() {
    let clock = ManualClock::default();
    let upstream = tool_mock(&clock).await;
    let server = gateway(&clock, &upstream, &["k1"], QuotaConfig::default()).await;
    let mut body = json!({
        "model": "default", "input": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    });

    let answer: Value =
        bearer_post(&server, "/v1/responses", &body, &[]).await.json().await.expect("json");
    let call = &answer["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_w1");
    assert_eq!(call["name"], "weather");
    assert_eq!(call["arguments"], r#"{"city":"Oslo"}"#);

    body["stream"] = Value::from(true);
    let events = events_of(bearer_post(&server, "/v1/responses", &body, &[]).await).await;
    let arguments: String = events
        .iter()
        .filter(|(name, _)| name == "response.function_call_arguments.delta")
        .map(|(_, data)| data["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(arguments, r#"{"city":"Oslo"}"#);
    let completed = &events.last().expect("an event").1["response"];
    assert_eq!(completed["output"][0]["call_id"], "call_w1");

    body["stream"] = Value::from(false);
    body["input"] = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": "call_w1", "name": "weather", "arguments": r#"{"city":"Oslo"}"#},
        {"type": "function_call_output", "call_id": "call_w1", "output": "rain"},
    ]);
    assert_eq!(bearer_post(&server, "/v1/responses", &body, &[]).await.status(), StatusCode::OK);
    let sent = upstream.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_w1");
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_w1", "content": "rain"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_errors_come_in_openai_shape() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let server = gateway(&clock, &upstream, &["k1", "k2"], one_a_minute()).await;

    let mut stateful = responses_body(false);
    stateful["previous_response_id"] = Value::from("resp_123");
    let response = bearer_post(&server, "/v1/responses", &stateful, &[]).await;
    let error = crate::support::error_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"].as_str().expect("text").starts_with("previous_response_id:"),
        "{error}"
    );

    for _ in 0..2 {
        let response = bearer_post(&server, "/v1/responses", &responses_body(false), &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = bearer_post(&server, "/v1/responses", &responses_body(false), &[]).await;
    assert!(response.headers().contains_key("retry-after"));
    let error = crate::support::error_of(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error["code"], "QUOTA_EXCEEDED");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(upstream.n_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_pin_a_provider_bypass_the_cache_and_are_bounded() {
    let clock = ManualClock::default();
    let first = mock(&clock, vec![key("a1")]).await;
    let second = mock(&clock, vec![key("b1")]).await;
    let config = RouterConfig { cache: Some(CacheConfig::default()), ..RouterConfig::default() };
    let mut route = RouteConfig::new(
        "default",
        StrategyKind::Priority,
        ["first/gpt-4o-mini", "second/gpt-4o-mini"],
    );
    route.cache = true;
    let router = credentials(
        credentials(builder(&clock, QuotaConfig::default()).config(config), "first", &["a1"]),
        "second",
        &["b1"],
    )
    .provider(provider("first", &first, &clock))
    .provider(provider("second", &second, &clock))
    .route_config(route)
    .build()
    .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let chat = crate::support::body("default", false);
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = client.post(server.url("/v1/chat/completions")).json(&chat);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    let pinned = post(&[("x-switchyard-provider", "second")]).await.expect("sent");
    assert_eq!(pinned.status(), StatusCode::OK);
    assert_eq!(pinned.headers()["x-switchyard-provider"], "second");
    assert_eq!(first.n_requests(), 0, "the pin kept the first provider out");
    // The same request again comes from the cache, unless the client says no-cache.
    let cached = post(&[("x-switchyard-provider", "second")]).await.expect("sent");
    assert_eq!(cached.headers()["x-switchyard-cache"], "hit");
    let fresh = post(&[("x-switchyard-provider", "second"), ("cache-control", "no-cache")])
        .await
        .expect("sent");
    assert_eq!(fresh.headers()["x-switchyard-cache"], "miss");
    assert_eq!(second.n_requests(), 2);

    let refused = [
        (
            &[("x-switchyard-provider", "nobody")][..],
            "x-switchyard-provider: no provider \"nobody\"",
        ),
        (&[("x-switchyard-timeout-ms", "soon")][..], "x-switchyard-timeout-ms: expected"),
        (&[("x-switchyard-max-wait-ms", "0")][..], "x-switchyard-max-wait-ms: expected"),
        (
            &[("x-switchyard-tags", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q")][..],
            "x-switchyard-tags: more than 16 tags",
        ),
    ];
    for (headers, message) in refused {
        let response = post(headers).await.expect("sent");
        let error = crate::support::error_of(response, StatusCode::BAD_REQUEST).await;
        assert!(error["message"].as_str().expect("text").starts_with(message), "{error}");
    }
    let long_tag = format!("team:{}", "x".repeat(64));
    let response = client
        .post(server.url("/v1/chat/completions"))
        .header("x-switchyard-tags", long_tag)
        .json(&chat)
        .send()
        .await
        .expect("sent");
    let error = crate::support::error_of(response, StatusCode::BAD_REQUEST).await;
    assert!(error["message"].as_str().expect("text").contains("longer than the 64"), "{error}");
    // Tags within bounds pass, and a pin in the tags is a pin.
    let tagged = post(&[
        ("x-switchyard-tags", "team:search, provider:first"),
        ("cache-control", "no-store"),
    ])
    .await
    .expect("sent");
    assert_eq!(tagged.status(), StatusCode::OK);
    assert_eq!(tagged.headers()["x-switchyard-provider"], "first");
    assert_eq!(first.n_requests(), 1);
    assert_eq!(second.n_requests() + first.n_requests(), 3, "refused requests reached nobody");
}
