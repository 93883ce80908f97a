//! OpenTelemetry traces, received by a real OTLP/HTTP collector on loopback: the exporter's
//! protobuf requests are decoded and the spans checked against `docs/telemetry.md`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message as _;
use switchyard::{EventSink, StrategyKind};
use switchyard_core::{Clock, ManualClock};
use switchyard_core::{KeyId, ProviderId};
use switchyard_mock::{Fault, FaultRule};
use switchyard_quota::QuotaConfig;
use switchyard_server::{GatewayConfig, Telemetry, TelemetryConfig};

use crate::support::{body, builder, credentials, key, mock, provider, secret, serve, sse_data};

/// What the collector received: the raw bodies, in order.
type Received = Arc<Mutex<Vec<Bytes>>>;

/// An OTLP/HTTP trace receiver on 127.0.0.1:0; answers every export with success.
async fn collector() -> (String, Received) {
    async fn export(
        State(received): State<Received>,
        body: Bytes,
    ) -> impl axum::response::IntoResponse {
        received.lock().expect("not poisoned").push(body);
        // An empty ExportTraceServiceResponse is zero bytes of protobuf.
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], Bytes::new())
    }
    let received: Received = Arc::default();
    let app =
        axum::Router::new().route("/v1/traces", post(export)).with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(Any::StringValue(text)) => text.clone(),
                Some(Any::IntValue(n)) => n.to_string(),
                Some(Any::DoubleValue(x)) => x.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(Any::ArrayValue(array)) => array
                    .values
                    .iter()
                    .map(|item| match &item.value {
                        Some(Any::StringValue(text)) => text.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[track_caller]
fn attribute<'a>(attributes: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    attributes.get(name).unwrap_or_else(|| panic!("no {name} in {attributes:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_per_request_and_one_child_per_attempt_reach_a_collector() {
    let (endpoint, received) = collector().await;
    let clock = ManualClock::default();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let config = TelemetryConfig {
        otlp_endpoint: endpoint,
        service_name: "switchyard-test".to_owned(),
        ..TelemetryConfig::default()
    };
    let telemetry = Arc::new(Telemetry::start(&config, shared).expect("telemetry starts"));
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
    .event_sink(Arc::clone(&telemetry) as Arc<dyn EventSink>)
    .route("fallback", StrategyKind::Priority, ["first/gpt-4o-mini", "second/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let server = serve(router.clone(), &clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/chat/completions");

    let fell_back = client.post(&url).json(&body("fallback", false)).send().await.expect("sent");
    assert_eq!(fell_back.status(), reqwest::StatusCode::OK);
    let fallback_id = fell_back.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let fingerprint_b1 =
        fell_back.headers()["x-switchyard-key"].to_str().expect("ascii").to_owned();
    let answer: serde_json::Value = fell_back.json().await.expect("json");
    // An operator disables A1: the next request on the route skips it, and its span says so.
    let disabled = router.disable_key(&ProviderId::new("first"), &KeyId::new("a1"));
    assert_eq!(disabled.ok(), Some(true));
    let streamed = client.post(&url).json(&body("fallback", true)).send().await.expect("sent");
    assert_eq!(streamed.status(), reqwest::StatusCode::OK);
    let stream_id = streamed.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let events = sse_data(&streamed.text().await.expect("body"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let flushing = Arc::clone(&telemetry);
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .expect("flush joins")
        .expect("spans exported");

    let bodies = received.lock().expect("not poisoned").clone();
    assert!(!bodies.is_empty(), "the collector received nothing");
    let mut spans = Vec::new();
    for raw in &bodies {
        // No secret anywhere in what left the gateway, nor the prompt.
        for id in ["a1", "b1"] {
            let secret = secret(id);
            assert!(
                !raw.windows(secret.len()).any(|window| window == secret.as_bytes()),
                "the secret of {id} was exported"
            );
        }
        let prompt = b"Say hello in five words";
        assert!(
            !raw.windows(prompt.len()).any(|window| window == prompt),
            "the prompt was exported"
        );
        let request = ExportTraceServiceRequest::decode(raw.as_ref()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|resource| resource.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(service, Some(Any::StringValue("switchyard-test".to_owned())));
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    let roots: Vec<&Span> = spans.iter().filter(|span| span.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 2, "one span per request: {spans:#?}");
    let root_of = |request_id: &str| -> &Span {
        roots
            .iter()
            .find(|span| {
                attributes(span).get("switchyard.request_id").map(String::as_str)
                    == Some(request_id)
            })
            .unwrap_or_else(|| panic!("no span for {request_id}"))
    };
    let children_of = |root: &Span| -> Vec<&Span> {
        let mut children: Vec<&Span> =
            spans.iter().filter(|span| span.parent_span_id == root.span_id).collect();
        children.sort_by_key(|span| {
            attribute(&attributes(span), "switchyard.attempt").parse::<u32>().expect("a number")
        });
        children
    };
    // The request that fell back: its span, and one child per attempt in order.
    let root = root_of(&fallback_id);
    assert_eq!(root.name, "chat fallback");
    assert_eq!(root.kind, SpanKind::Server as i32);
    let request = attributes(root);
    assert_eq!(attribute(&request, "gen_ai.operation.name"), "chat");
    assert_eq!(attribute(&request, "gen_ai.request.model"), "fallback");
    assert_eq!(attribute(&request, "gen_ai.response.model"), "gpt-4o-mini");
    assert_eq!(attribute(&request, "gen_ai.provider.name"), "second");
    assert_eq!(attribute(&request, "switchyard.route"), "fallback");
    // `first` fails with a server error (retried on the same key as configured), then
    // `second` serves.
    let n_attempts: usize = attribute(&request, "switchyard.attempts").parse().expect("a number");
    assert!(n_attempts >= 2, "{request:?}");
    assert_eq!(n_attempts, usize::try_from(broken.n_requests()).expect("small") + 1);
    assert_eq!(attribute(&request, "switchyard.outcome"), "ok");
    assert_eq!(attribute(&request, "switchyard.key.id"), "b1");
    assert_eq!(
        attribute(&request, "gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"].to_string()
    );
    assert_eq!(
        attribute(&request, "gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"].to_string()
    );
    let attempts = children_of(root);
    assert_eq!(attempts.len(), n_attempts, "one child per attempt");
    assert_eq!(spans.len(), 2 + n_attempts + 1, "two requests and their attempts: {spans:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.trace_id, root.trace_id, "one trace per request");
        assert_eq!(attempt.kind, SpanKind::Client as i32);
        assert_eq!(attempt.name, "chat gpt-4o-mini");
        assert!(attempt.start_time_unix_nano >= root.start_time_unix_nano);
        assert!(attempt.end_time_unix_nano <= root.end_time_unix_nano);
        assert!(attempt.start_time_unix_nano <= attempt.end_time_unix_nano);
    }
    let (served, failed) = attempts.split_last().expect("attempts");
    for (index, span) in failed.iter().enumerate() {
        let failed = attributes(span);
        assert_eq!(attribute(&failed, "switchyard.attempt"), (index + 1).to_string());
        assert_eq!(attribute(&failed, "gen_ai.provider.name"), "first");
        assert_eq!(attribute(&failed, "gen_ai.system"), "first");
        assert_eq!(attribute(&failed, "gen_ai.request.model"), "gpt-4o-mini");
        assert_eq!(attribute(&failed, "switchyard.key.id"), "a1");
        assert_eq!(attribute(&failed, "error.type"), "server_error");
        assert_eq!(attribute(&failed, "switchyard.outcome"), "server_error");
        assert_eq!(attribute(&failed, "http.response.status_code"), "500");
        assert!(!attribute(&failed, "switchyard.key.fingerprint").is_empty());
        let status = span.status.as_ref().expect("a status");
        assert_eq!(status.code, 2, "a failed attempt's status is Error");
    }
    let served = attributes(served);
    assert_eq!(attribute(&served, "switchyard.attempt"), n_attempts.to_string());
    assert_eq!(attribute(&served, "gen_ai.provider.name"), "second");
    assert_eq!(attribute(&served, "switchyard.key.id"), "b1");
    assert_eq!(attribute(&served, "switchyard.key.fingerprint"), fingerprint_b1);
    assert_eq!(attribute(&served, "switchyard.outcome"), "ok");
    assert!(!served.contains_key("error.type"), "{served:?}");

    // The stream: its span, ended when the stream ended, with its one attempt.
    let root = root_of(&stream_id);
    assert_eq!(root.name, "chat fallback");
    let request = attributes(root);
    assert_eq!(attribute(&request, "switchyard.attempts"), "1");
    assert_eq!(attribute(&request, "switchyard.skipped"), "first/gpt-4o-mini [a1]: disabled");
    assert_eq!(attribute(&request, "switchyard.outcome"), "ok");
    let attempts = children_of(root);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attribute(&attributes(attempts[0]), "switchyard.key.id"), "b1");
    assert_eq!(telemetry.dropped(), 0);

    let closing = Arc::clone(&telemetry);
    tokio::task::spawn_blocking(move || closing.shutdown())
        .await
        .expect("shutdown joins")
        .expect("exporter stops");
}
