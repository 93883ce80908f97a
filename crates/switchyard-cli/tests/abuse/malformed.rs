//! Malformed JSON and wrong content types: 415 for a body that does not say it is JSON (what
//! a web page can send without a CORS preflight), 400 in OpenAI's error shape for JSON that
//! is not a chat request; the gateway serves the next request.

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;

use crate::harness::{Gateway, Workdir, chat, client, echoed, mock, report, secret, start};

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
client_tokens = ["${{ABUSE_CLIENT}}"]

[[providers]]
name = "mockA"
kind = "openai"
base_url = "{base_url}"
keys = ["${{KEY_A}}"]
models = ["gpt-4o-mini"]

[[routes]]
name = "default"
targets = ["mockA/gpt-4o-mini"]
"#
    )
}

async fn send(gateway: &Gateway, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut request = client().post(gateway.url("/v1/chat/completions")).body(body.to_vec());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn assert_still_serves(gateway: &Gateway) {
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("default", "after the junk", false))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], echoed("after the junk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_declared_json_are_refused_with_415() {
    let upstream = start(mock(MockUpstream::openai(), &["a1"])).await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let gateway = Gateway::start(&workdir, &[("KEY_A", secret("a1"))]);
    let valid = chat("default", "hi", false).to_string();
    let mut seen = Vec::new();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let (status, body) = send(&gateway, content_type, valid.as_bytes()).await;
        seen.push(json!({"content_type": content_type, "status": status}));
        assert_eq!(status, 415, "{content_type:?}: {body:.300}");
    }
    report(
        "wrong_content_types",
        json!({"answers": seen, "upstream_calls": upstream.n_requests(), "panics": gateway.panics()}),
    );
    assert_eq!(upstream.n_requests(), 0, "a refused body reached the upstream");
    assert_still_serves(&gateway).await;
    gateway.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_in_openais_error_shape() {
    let upstream = start(mock(MockUpstream::openai(), &["a1"])).await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let gateway = Gateway::start(&workdir, &[("KEY_A", secret("a1"))]);
    let cases: [(&str, &[u8]); 8] = [
        ("garbage", b"this is not json"),
        ("truncated", br#"{"model": "default", "messages": [{"role": "user", "con"#),
        ("not utf-8", b"{\"model\": \"\xff\xfe\", \"messages\": []}"),
        ("an array", b"[1, 2, 3]"),
        ("a number model", br#"{"model": 5, "messages": [{"role": "user", "content": "hi"}]}"#),
        ("no messages", br#"{"model": "default"}"#),
        ("deep nesting", &[b'['; 100_000]),
        ("empty", b""),
    ];
    let mut seen = Vec::new();
    for (what, body) in cases {
        let (status, text) = send(&gateway, Some("application/json"), body).await;
        seen.push(json!({"case": what, "status": status}));
        assert_eq!(status, 400, "{what}: {text:.300}");
        let error: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{what}: not an OpenAI error: {text:.300}"));
        assert!(error["error"]["message"].is_string(), "{what}: {error}");
        assert!(error["error"]["type"].is_string(), "{what}: {error}");
        assert!(error["error"].get("code").is_some(), "{what}: {error}");
    }
    report(
        "malformed_json",
        json!({"answers": seen, "upstream_calls": upstream.n_requests(), "panics": gateway.panics()}),
    );
    assert_eq!(upstream.n_requests(), 0, "a malformed body reached the upstream");
    assert_still_serves(&gateway).await;
    gateway.assert_no_panic();
}
