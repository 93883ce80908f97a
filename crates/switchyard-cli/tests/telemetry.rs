//! `[telemetry]` end to end: the real `switchyard serve` binary with an OTLP endpoint sends
//! its spans to a collector on loopback (a plain HTTP/1.1 receiver here), and the spans still
//! batched when it is stopped with SIGTERM are exported before it exits.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use support::{Gateway, start_mock};

const CONFIG: &str = r#"
[telemetry]
otlp_endpoint = "${OTEL_ENDPOINT}"
service_name = "switchyard-cli-test"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "${BASE_URL}"
keys = ["${K1}"]
models = ["llama-3.3-70b-versatile"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile"]
"#;

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// Serves one connection: each request's body is kept and answered `200` with an empty
/// (valid, zero-byte) OTLP response.
fn serve_connection(mut socket: TcpStream, received: &Received) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break at + 4;
            }
            match socket.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            match socket.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        received.lock().expect("not poisoned").push(buffer[head_end..head_end + length].to_vec());
        buffer.drain(..head_end + length);
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if socket.write_all(answer).is_err() {
            return;
        }
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1:0, on threads of its own.
fn collector() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received: Received = Arc::default();
    let kept = Arc::clone(&received);
    std::thread::spawn(move || {
        for socket in listener.incoming().map_while(Result::ok) {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || serve_connection(socket, &kept));
        }
    });
    (format!("http://{addr}"), received)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_a_span_per_request_and_flushes_at_shutdown() {
    let (endpoint, received) = collector();
    let mock = start_mock(&["k1"]).await;
    let env = [
        ("OTEL_ENDPOINT", endpoint),
        ("BASE_URL", mock.upstream.base_url()),
        ("K1", mock.secret("k1")),
    ];
    let mut gateway = Gateway::start(CONFIG, &env).expect("the gateway starts");
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "default",
            "messages": [{"role": "user", "content": "a prompt that stays private"}],
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let status = gateway.terminate();
    assert!(status.success(), "{status:?}: {}", gateway.stderr());
    assert!(gateway.stderr().contains("OpenTelemetry traces on"), "{}", gateway.stderr());

    let bodies = received.lock().expect("not poisoned").clone();
    let all: Vec<u8> = bodies.concat();
    // Protobuf keeps strings as they are: what the spans say can be found in the bytes.
    for text in [
        "switchyard-cli-test",
        "chat default",
        "chat llama-3.3-70b-versatile",
        "gen_ai.request.model",
        "switchyard.key.fingerprint",
        request_id.as_str(),
    ] {
        assert!(
            contains(&all, text.as_bytes()),
            "{text} was not exported ({} bodies)",
            bodies.len()
        );
    }
    assert!(!contains(&all, mock.secret("k1").as_bytes()), "a key's secret was exported");
    assert!(!contains(&all, b"a prompt that stays private"), "the prompt was exported");
}
