//! `POST /v1/embeddings` over real HTTP: OpenAI's answer shape with the gateway's headers, a
//! client's route permissions and token, and a failing key cascading as on chat.

use std::sync::Arc;

use serde_json::{Value, json};
use switchyard::{QuotaConfig, StrategyKind};
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule, MockUpstream, mock_embedding};
use switchyard_server::{ClientConfig, GatewayConfig, Services};

use crate::support::{Running, builder, credentials, error_of, key, provider, serve_with};

const MODEL: &str = "text-embedding-3-small";

fn client(name: &str, token: &str, route: &str) -> Arc<ClientConfig> {
    Arc::new(ClientConfig {
        name: name.into(),
        token: token.into(),
        routes: Some(vec![route.into()]),
        requests_per_minute: None,
        daily_budget: None,
    })
}

async fn running(clock: &ManualClock, upstream: &MockUpstream) -> Running {
    let router =
        credentials(
            builder(clock, QuotaConfig::default())
                .provider(provider("openai", upstream, clock))
                .route("vectors", StrategyKind::Priority, [format!("openai/{MODEL}").as_str()]),
            "openai",
            &["k1", "k2"],
        )
        .build()
        .expect("router builds");
    let config = GatewayConfig {
        clients: vec![
            client("reader", "tok-reader", "vectors"),
            client("chatter", "tok-chat", "default"),
        ],
        ..GatewayConfig::default()
    };
    serve_with(router, clock, config, Services::default()).await
}

async fn embed(running: &Running, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(running.url("/v1/embeddings")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_answer_in_openai_shape_with_the_gateway_headers_and_cascade_keys() {
    let clock = ManualClock::default();
    let upstream = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .models([MODEL])
        .start()
        .await
        .expect("mock starts");
    upstream.inject(FaultRule::once(Fault::server_error()).for_key("k1"));
    upstream.inject(FaultRule::once(Fault::server_error()).for_key("k1"));
    let running = running(&clock, &upstream).await;
    let ask = json!({"model": "vectors", "input": ["one", "two"], "dimensions": 4, "user": "u1"});

    let response = embed(&running, Some("tok-reader"), &ask).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-switchyard-provider"], "openai");
    assert_eq!(headers["x-switchyard-model"], MODEL);
    assert_eq!(headers["x-switchyard-cache"], "miss");
    assert_eq!(headers["x-switchyard-attempts"], "3", "k1 failed twice (one retry), k2 served");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], MODEL);
    for (index, text) in ["one", "two"].into_iter().enumerate() {
        assert_eq!(body["data"][index]["object"], "embedding");
        assert_eq!(body["data"][index]["index"], index);
        assert_eq!(body["data"][index]["embedding"], json!(mock_embedding(text, 4)));
    }
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 2);
    assert_eq!(upstream.counts("k2").expect("k2").requests, 1);

    let refused = embed(&running, Some("tok-chat"), &ask).await;
    let error = error_of(refused, reqwest::StatusCode::FORBIDDEN).await;
    assert_eq!(error["code"], "ROUTE_NOT_ALLOWED", "{error}");
    let anonymous = embed(&running, None, &ask).await;
    assert_eq!(anonymous.status(), 401);
    let tokens = json!({"model": "vectors", "input": [[1, 2, 3]]});
    let error = error_of(
        embed(&running, Some("tok-reader"), &tokens).await,
        reqwest::StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(error["message"].as_str().expect("message").contains("token-id"), "{error}");
    let unknown = json!({"model": "nope", "input": "x"});
    let refused = embed(&running, Some("tok-reader"), &unknown).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(upstream.n_requests(), 3, "refused requests reach no upstream");
}
