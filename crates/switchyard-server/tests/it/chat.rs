//! `POST /v1/chat/completions` and the endpoints around it.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use switchyard::StrategyKind;
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule};
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig};
use switchyard_server::GatewayConfig;

use crate::support::{
    body, builder, credentials, error_of, get_json, key, mock, provider, send_json, serve,
    sse_data, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_call_answers_in_openai_shape_and_says_what_served_it() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();

    let response = client
        .post(server.url("/v1/chat/completions"))
        .header("x-request-id", "req-abc")
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-request-id"], "req-abc");
    assert_eq!(headers["x-switchyard-provider"], "openai");
    assert_eq!(headers["x-switchyard-model"], "gpt-4o-mini");
    assert_eq!(headers["x-switchyard-attempts"], "1");
    assert_eq!(headers["x-switchyard-cache"], "miss");
    let fingerprint = switchyard_core::Fingerprint::of(&crate::support::secret("k1"));
    assert_eq!(headers["x-switchyard-key"], fingerprint.to_string().as_str());
    assert!(headers["x-switchyard-overhead-us"].to_str().expect("ascii").parse::<u64>().is_ok());
    assert!(!headers.contains_key("x-switchyard-trace"), "a trace only when asked");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let text = answer["choices"][0]["message"]["content"].as_str().expect("text");
    assert!(!text.is_empty());
    // The upstream's own id and fingerprint pass through unchanged.
    assert!(answer["id"].as_str().expect("id").starts_with("chatcmpl-mock-"), "{answer}");
    assert_eq!(answer["system_fingerprint"], "fp_mock");
    assert!(answer["usage"]["total_tokens"].as_u64().expect("tokens") > 0);

    // Without an id the gateway makes one; with the trace header the trace comes back.
    let response = client
        .post(server.url("/v1/chat/completions"))
        .header("x-switchyard-trace", "1")
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(id.starts_with("req-") && id.len() > 10, "{id}");
    let trace: Value =
        serde_json::from_str(response.headers()["x-switchyard-trace"].to_str().expect("ascii"))
            .expect("trace is JSON");
    assert_eq!(trace["route"], "default");
    assert_eq!(trace["attempts"].as_array().expect("attempts").len(), 1);
    assert_eq!(upstream.counts("k1").expect("k1").served, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_call_ends_with_usage_then_done() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();

    let plain: Value =
        send_json(&client, &server.url("/v1/chat/completions"), &body("default", false))
            .await
            .json()
            .await
            .expect("json");
    let response =
        send_json(&client, &server.url("/v1/chat/completions"), &body("openai/gpt-4o-mini", true))
            .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-switchyard-provider"], "openai");
    let text = response.text().await.expect("body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).expect("a chunk is JSON"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-mock-"), "{id}");
    assert!(
        chunks.iter().all(|chunk| chunk["id"] == id && chunk["object"] == "chat.completion.chunk")
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    // The mock answers the same request with the same text, streamed or not.
    assert_eq!(streamed, plain["choices"][0]["message"]["content"].as_str().expect("text"));
    let last = chunks.last().expect("a usage chunk");
    assert_eq!(last["choices"], Value::Array(Vec::new()));
    assert_eq!(last["usage"], plain["usage"]);
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|chunk| !chunk["choices"][0]["finish_reason"].is_null())
        .map(|chunk| &chunk["choices"][0]["finish_reason"])
        .collect();
    assert_eq!(finish, vec![&Value::from("stop")]);

    // Without include_usage no usage chunk is sent.
    let mut without = body("default", true);
    without.as_object_mut().expect("object").remove("stream_options");
    let text = send_json(&client, &server.url("/v1/chat/completions"), &without)
        .await
        .text()
        .await
        .expect("body");
    assert!(!text.contains("\"usage\""), "{text}");
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_falls_back_and_the_headers_say_so() {
    let clock = ManualClock::default();
    let broken = mock(&clock, vec![key("a1")]).await;
    broken.inject(FaultRule::always(Fault::server_error()));
    let healthy = mock(&clock, vec![key("b1")]).await;
    let router = credentials(
        credentials(builder(&clock, QuotaConfig::default()), "first", &["a1"]),
        "second",
        &["b1"],
    )
    .provider(provider("first", &broken, &clock))
    .provider(provider("second", &healthy, &clock))
    .route("default", StrategyKind::Priority, ["first/gpt-4o-mini", "second/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;

    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-provider"], "second");
    let attempts: u32 =
        response.headers()["x-switchyard-attempts"].to_str().expect("ascii").parse().expect("n");
    assert!(attempts >= 2, "{attempts}");
    assert!(broken.n_requests() >= 1);
    assert_eq!(healthy.counts("b1").expect("b1").served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_keys_answer_429_with_the_typed_code_and_retry_after() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1"), key("k2")]).await;
    let quota = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "openai".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![Limit::per_minute(1)])],
        }],
        ..QuotaConfig::default()
    };
    let router = credentials(builder(&clock, quota), "openai", &["k1", "k2"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let call = || client.post(server.url("/v1/chat/completions")).json(&body("default", false));

    for _ in 0..2 {
        assert_eq!(call().send().await.expect("sent").status(), StatusCode::OK);
    }
    let response = call().send().await.expect("sent");
    let retry_after: u64 =
        response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    // The first key was spent at t=0 on a one-minute window; seconds are rounded up.
    assert!((60..=61).contains(&retry_after), "{retry_after}");
    let error = error_of(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error["code"], "QUOTA_EXCEEDED");
    assert_eq!(error["type"], "rate_limit_error");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("all 2 keys are out of quota"), "{message}");
    assert_eq!(upstream.n_requests(), 2, "the spent keys were not called");

    // A minute later the window has passed.
    clock.advance(Duration::from_secs(61));
    assert_eq!(call().send().await.expect("sent").status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_openai_shape_with_their_status() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let config = GatewayConfig { body_limit_bytes: 2_000, ..GatewayConfig::default() };
    let server = serve(router, &clock, config).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    // JSON cut short: the same typed error as any other malformed body.
    let cut_short = client.post(&url).header("content-type", "application/json");
    let response = cut_short.body("{\"model\": \"default\", \"messages\": [").send().await;
    let response = response.expect("sent");
    assert!(response.headers().contains_key("x-request-id"));
    let error = error_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["code"], "BAD_REQUEST");
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].as_str().expect("text").contains("line 1"), "{error}");

    let response = client.post(&url).json(&body("nowhere", false)).send().await.expect("sent");
    let error = error_of(response, StatusCode::NOT_FOUND).await;
    assert_eq!(error["code"], "UNKNOWN_MODEL");

    let mut large = body("default", false);
    large["messages"][0]["content"] = Value::from("x".repeat(5_000));
    let response = client.post(&url).json(&large).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(upstream.n_requests(), 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_are_503_and_a_dead_upstream_is_502() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![switchyard_mock::KeyScript::invalid("k1", "sk-other")]).await;
    let down = mock(&clock, vec![key("d1")]).await;
    down.inject(FaultRule::always(Fault::server_error()));
    let router = credentials(
        credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"]),
        "down",
        &["d1"],
    )
    .provider(provider("openai", &upstream, &clock))
    .provider(provider("down", &down, &clock))
    .route("bad-keys", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .route("failing", StrategyKind::Priority, ["down/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    let response = client.post(&url).json(&body("bad-keys", false)).send().await.expect("sent");
    let error = error_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(error["code"], "INVALID_KEYS");
    assert!(!error.to_string().contains(&crate::support::secret("k1")));

    let response = client
        .post(&url)
        .header("x-switchyard-trace", "1")
        .json(&body("failing", false))
        .send()
        .await
        .expect("sent");
    // A failed request's trace says what was tried, when asked for.
    let trace: Value =
        serde_json::from_str(response.headers()["x-switchyard-trace"].to_str().expect("ascii"))
            .expect("trace is JSON");
    let attempts = trace["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len() as u64, down.n_requests(), "{trace}");
    assert!(attempts.iter().all(|attempt| attempt["error"]["kind"] == "server_error"), "{trace}");
    let error = error_of(response, StatusCode::BAD_GATEWAY).await;
    assert_eq!(error["code"], "ALL_PROVIDERS_FAILED");
    assert_eq!(error["type"], "server_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tokens_guard_the_api_but_not_health() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let config = GatewayConfig {
        client_tokens: vec!["tok-one".into(), "tok-two".into()],
        ..GatewayConfig::default()
    };
    assert!(!format!("{config:?}").contains("tok-one"), "tokens stay out of Debug");
    let server = serve(router, &clock, config).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    for auth in [None, Some("Bearer tok-on"), Some("Bearer tok-onee"), Some("tok-one")] {
        let mut request = client.post(&url).json(&body("default", false));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("sent");
        let error = error_of(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(error["type"], "authentication_error");
    }
    let models = client.get(server.url("/v1/models")).send().await.expect("sent");
    assert_eq!(models.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.n_requests(), 0);
    let response =
        client.post(&url).bearer_auth("tok-two").json(&body("default", false)).send().await;
    assert_eq!(response.expect("sent").status(), StatusCode::OK);
    let health = client.get(server.url("/healthz")).send().await.expect("sent");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_routes_and_their_targets_and_readyz_reports() {
    let clock = ManualClock::default();
    let upstream = mock(&clock, vec![key("k1")]).await;
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route(
            "default",
            StrategyKind::Priority,
            ["openai/gpt-4o-mini", "openai/llama-3.3-70b-versatile"],
        )
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let models = get_json(&client, &server.url("/v1/models")).await;
    assert_eq!(models["object"], "list");
    let default = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|model| model["id"] == "default")
        .expect("the route is listed");
    assert_eq!(
        default["targets"],
        serde_json::json!(["openai/gpt-4o-mini", "openai/llama-3.3-70b-versatile"])
    );
    let ready = client.get(server.url("/readyz")).send().await.expect("sent");
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["available_providers"], serde_json::json!(["openai"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream_call() {
    let clock = ManualClock::default();
    let upstream = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let quota = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "openai".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![Limit::per_minute(10)])],
        }],
        ..QuotaConfig::default()
    };
    let router = credentials(builder(&clock, quota), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;

    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&body("default", true))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let mut bytes = response.bytes_stream();
    let first = bytes.next().await.expect("a first frame").expect("bytes");
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    // The mock is pacing its frames on the manual clock: it waits for time to pass.
    wait_until("the mock waits between frames", || clock.sleepers() > 0).await;
    drop(bytes);
    // The gateway drops the routed stream, which closes the upstream connection; the
    // mock's pending frame then has nobody to go to and its sleeper ends.
    wait_until("the upstream stream is cancelled", || clock.sleepers() == 0).await;
    assert_eq!(upstream.counts("k1").expect("k1").requests, 1);
    let stats = server.gateway.router().stats().await;
    assert_eq!(stats.session.requests, 0, "an abandoned stream is not a served request");
    assert_eq!(stats.total_calls, 1, "exactly one upstream call was counted");
    // The ledger counted the abandoned call once, and holds nothing back for it.
    assert_eq!(requests_used(&server).await, 1);
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&body("default", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(requests_used(&server).await, 2);
}

/// Requests counted against key k1's one-minute limit.
async fn requests_used(server: &crate::support::Running) -> u64 {
    let stats = server.gateway.router().stats().await;
    let key = stats
        .quota
        .iter()
        .flat_map(|provider| &provider.keys)
        .find(|key| key.key.as_str() == "k1")
        .expect("k1 is in the quota summary");
    key.limits.iter().map(|limit| limit.used).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_stream_in_flight() {
    let clock = ManualClock::default();
    let upstream = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let addr = server.addr;
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&body("default", true))
        .send()
        .await
        .expect("sent");
    wait_until("the mock waits between frames", || clock.sleepers() > 0).await;
    let stopping = tokio::spawn(server.shutdown());
    // New connections are refused once the server stops accepting. The shutdown runs on
    // another task that a busy machine may schedule late: bound the wait in real time, not
    // in attempts (a thousand attempts can all fit before it runs).
    let refused = tokio::time::timeout(Duration::from_secs(20), async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the listener closes on shutdown");
    let pump = async {
        loop {
            clock.advance(Duration::from_secs(1));
            tokio::task::yield_now().await;
        }
    };
    let streamed = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            text = response.text() => text.expect("the stream completes"),
            () = pump => unreachable!("the pump never ends"),
        }
    })
    .await;
    let text = streamed.expect("the stream ends while the clock moves (20 s of real time)");
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"), "{text}");
    stopping.await.expect("joins").expect("the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_deadline_answers_504() {
    let clock = ManualClock::default();
    let upstream = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .latency(switchyard_mock::Latency::Fixed(Duration::from_secs(30)))
        .start()
        .await
        .expect("mock starts");
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let config =
        GatewayConfig { request_timeout: Some(Duration::from_secs(2)), ..GatewayConfig::default() };
    let server = serve(router, &clock, config).await;
    let request = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&body("default", false));
    let pending = tokio::spawn(async move { request.send().await.expect("sent") });
    // The mock sleeps 30 s on the clock and the router's 2 s deadline waits on it too.
    wait_until("the call is under way", || clock.sleepers() >= 2).await;
    clock.advance(Duration::from_secs(3));
    let response = pending.await.expect("joins");
    let error = error_of(response, StatusCode::GATEWAY_TIMEOUT).await;
    assert_eq!(error["code"], "DEADLINE_EXCEEDED");
}
