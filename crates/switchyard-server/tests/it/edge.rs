//! The gateway's edge against hostile clients, over raw sockets on loopback: slow and idle
//! connections, the connection cap, the drain on shutdown, content types, the `Host` check
//! without tokens, oversized names and headers, and metric labels that never carry a
//! client's name.
//!
//! Socket deadlines run on real time (like hyper's timer); each test sets them small or
//! large so that only the limit under test can close a connection within the bounded waits.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchyard::StrategyKind;
use switchyard_core::ManualClock;
use switchyard_quota::QuotaConfig;
use switchyard_server::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Running, body, builder, credentials, key, mock, provider, serve, wait_until};

/// Longest real wait for something that must happen; a failure, never a hang.
const BOUND: Duration = Duration::from_secs(30);
/// Longer than any test runs: a limit set to this never fires during a test.
const NEVER: Duration = Duration::from_secs(600);

async fn gateway(
    clock: &ManualClock,
    config: GatewayConfig,
) -> (Running, switchyard_mock::MockUpstream) {
    let upstream = mock(clock, vec![key("k1")]).await;
    let router = credentials(builder(clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    (serve(router, clock, config).await, upstream)
}

fn limits(header: Duration, idle: Duration, max_connections: usize) -> GatewayConfig {
    GatewayConfig {
        header_read_timeout: header,
        idle_timeout: idle,
        max_connections,
        ..GatewayConfig::default()
    }
}

/// Reads until the peer closes the connection, failing after [`BOUND`]; returns what came.
async fn read_to_close(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "gave up waiting for the gateway to close {what}");
    seen
}

/// Reads one response head and its `content-length` body from a keep-alive connection.
async fn read_response(stream: &mut TcpStream, what: &str) -> String {
    let read = tokio::time::timeout(BOUND, async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("reads");
            assert!(n > 0, "the connection closed before the response to {what}");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if seen.len() >= head_end + 4 + length {
                    return text;
                }
            }
        }
    })
    .await;
    read.unwrap_or_else(|_| panic!("gave up waiting for the response to {what}"))
}

fn get(path: &str, addr: SocketAddr) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_line_is_closed_after_the_header_timeout() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, limits(Duration::from_millis(500), NEVER, 64)).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connects");
    slow.write_all(b"POST /v1/chat/comp").await.expect("writes");
    // Idle connections live for NEVER: only the header timeout can close this one.
    let answer = read_to_close(&mut slow, "a connection with half a request line").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "nothing was served: {answer}");
    // Meanwhile, and after it, a normal request is served.
    let response = reqwest::get(server.url("/healthz")).await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, limits(NEVER, Duration::from_millis(500), 64)).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connects");
    idle.write_all(get("/healthz", server.addr).as_bytes()).await.expect("writes");
    let response = read_response(&mut idle, "GET /healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(!response.to_ascii_lowercase().contains("connection: close"), "kept alive: {response}");
    // Header reads may take NEVER: only the idle timeout can close it.
    let rest = read_to_close(&mut idle, "an idle keep-alive connection").await;
    assert!(rest.is_empty(), "nothing more was sent: {}", String::from_utf8_lossy(&rest));
}

/// A connection that never sends a byte is idle too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, limits(NEVER, Duration::from_millis(500), 64)).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connects");
    let rest = read_to_close(&mut silent, "a silent connection").await;
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_while_those_under_it_are_served() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, limits(NEVER, NEVER, 2)).await;
    // The first connection holds a place and sends nothing.
    let holder = TcpStream::connect(server.addr).await.expect("connects");
    // The second is under the cap: served.
    let mut second = TcpStream::connect(server.addr).await.expect("connects");
    second.write_all(get("/healthz", server.addr).as_bytes()).await.expect("writes");
    let response = read_response(&mut second, "a request under the cap").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The third waits: two connections are open, so it cannot be accepted.
    let mut third = TcpStream::connect(server.addr).await.expect("the kernel takes it");
    third.write_all(get("/healthz", server.addr).as_bytes()).await.expect("writes");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection past the cap was served: {early:?}");
    // When one closes, the waiting one is served.
    drop(holder);
    let response = read_response(&mut third, "the request that waited").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_in_flight() {
    let clock = ManualClock::default();
    let upstream = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .latency(switchyard_mock::Latency::Fixed(Duration::from_secs(5)))
        .start()
        .await
        .expect("mock starts");
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider("openai", &upstream, &clock))
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let server = serve(router, &clock, GatewayConfig::default()).await;
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(server.url("/v1/chat/completions"))
            .json(&body("default", false))
            .send(),
    );
    wait_until("the upstream holds the request", || clock.sleepers() > 0).await;
    let stopping = tokio::spawn(server.shutdown());
    // The server waits for the request: it cannot end while the upstream holds it.
    let early = tokio::time::timeout(Duration::from_millis(200), async {
        while !stopping.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(early.is_err(), "the server stopped with a request in flight");
    clock.advance(Duration::from_secs(5));
    let response = tokio::time::timeout(BOUND, request)
        .await
        .expect("the request finishes")
        .expect("joins")
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    tokio::time::timeout(BOUND, stopping)
        .await
        .expect("the server stops once drained")
        .expect("joins")
        .expect("the server stops cleanly");
}

/// Sends `request` on a fresh connection and returns the status and JSON body.
async fn exchange(addr: SocketAddr, request: String) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let text = read_response(&mut stream, "a raw request").await;
    let status: u16 = text[9..12].parse().expect("a status code");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn post(host: &str, content_type: Option<&str>, payload: &str) -> String {
    let content_type =
        content_type.map(|value| format!("Content-Type: {value}\r\n")).unwrap_or_default();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n{content_type}Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_json_bodies_are_read() {
    let clock = ManualClock::default();
    let config = GatewayConfig { admin_token: Some("admin-1".into()), ..GatewayConfig::default() };
    let (server, _upstream) = gateway(&clock, config).await;
    let host = server.addr.to_string();
    let payload = body("default", false).to_string();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        let (status, answer) = exchange(server.addr, post(&host, content_type, &payload)).await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert_eq!(answer["error"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{content_type:?}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
    }
    let (status, answer) =
        exchange(server.addr, post(&host, Some("Application/JSON; charset=utf-8"), &payload)).await;
    assert_eq!(status, 200, "{answer}");
    // The admin API's JSON bodies likewise.
    let feedback = r#"{"request_id": "req-1", "quality": 0.5}"#;
    let request = post(&host, Some("text/plain"), feedback)
        .replace("/v1/chat/completions", "/admin/feedback")
        .replace("Host:", "Authorization: Bearer admin-1\r\nHost:");
    let (status, answer) = exchange(server.addr, request).await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_this_gateways_host_names_are_answered() {
    let clock = ManualClock::default();
    let config =
        GatewayConfig { allowed_hosts: vec!["gateway.lan".into()], ..GatewayConfig::default() };
    let (server, _upstream) = gateway(&clock, config).await;
    let port = server.addr.port();
    let payload = body("default", false).to_string();
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("gateway.lan:{port}")]
    {
        let (status, answer) =
            exchange(server.addr, post(&host, Some("application/json"), &payload)).await;
        assert_eq!(status, 200, "{host}: {answer}");
    }
    // DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends that name.
    for host in [
        format!("rebind.attacker.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".to_owned(),
    ] {
        let (status, answer) =
            exchange(server.addr, post(&host, Some("application/json"), &payload)).await;
        assert_eq!(status, 403, "{host}: {answer}");
        assert_eq!(answer["error"]["code"], "HOST_NOT_ALLOWED", "{host}");
        let (status, _) = exchange(
            server.addr,
            get("/metrics", server.addr).replace(&server.addr.to_string(), &host),
        )
        .await;
        assert_eq!(status, 403, "{host}: /metrics");
    }
    // Health probes answer whatever the name.
    let (status, _) = exchange(
        server.addr,
        get("/healthz", server.addr).replace(&server.addr.to_string(), "lb.internal"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_token_any_host_name_is_answered() {
    let clock = ManualClock::default();
    let config = GatewayConfig { client_tokens: vec!["tok-1".into()], ..GatewayConfig::default() };
    let (server, _upstream) = gateway(&clock, config).await;
    let payload = body("default", false).to_string();
    let request = post("gateway.example.com", Some("application/json"), &payload)
        .replace("Host:", "Authorization: Bearer tok-1\r\nHost:");
    let (status, answer) = exchange(server.addr, request).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_answered_408() {
    let clock = ManualClock::default();
    let config =
        GatewayConfig { body_read_timeout: Duration::from_millis(300), ..GatewayConfig::default() };
    let (server, _upstream) = gateway(&clock, config).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let text = read_response(&mut stream, "a stalled body").await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("BODY_READ_TIMEOUT"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_names_and_headers_are_refused() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let long = "x".repeat(300);
    let response = client
        .post(server.url("/v1/chat/completions"))
        .json(&body(&long, false))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "BAD_REQUEST");
    assert!(!answer["error"]["message"].as_str().unwrap_or_default().contains(&long));
    let response = client
        .get(server.url("/healthz"))
        .header("x-padding", "p".repeat(100 << 10))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// Metric labels carry declared routes and targets only: whatever a client names is `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_never_carry_a_clients_name() {
    let clock = ManualClock::default();
    let (server, _upstream) = gateway(&clock, GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    for model in ["default", "openai/gpt-4o-mini", "junk-route-7f3a", "openai/junk-model-9c1d"] {
        client
            .post(server.url("/v1/chat/completions"))
            .json(&body(model, false))
            .send()
            .await
            .expect("sent");
    }
    let text =
        client.get(server.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(!text.contains("junk"), "a client's name in /metrics:\n{text}");
    assert!(text.contains("route=\"default\""), "{text}");
    assert!(text.contains("route=\"openai/gpt-4o-mini\""), "{text}");
    assert!(text.contains("route=\"other\""), "{text}");
}
