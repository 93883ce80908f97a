//! Oversized requests: a body over `[server] body_limit_bytes` (sized and chunked), a
//! megabyte of headers, a megabyte model name. Each gets a typed 4xx, and the gateway serves
//! the next request.

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;

use crate::harness::{
    Answer, Gateway, Workdir, chat, client, echoed, metrics, mock, post, report, secret, start,
};
use crate::raw::{RawBody, exchange};

const BODY_LIMIT: usize = 4 * 1024 * 1024;
const MEGABYTE: usize = 1024 * 1024;

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
client_tokens = ["${{ABUSE_CLIENT}}"]
body_limit_bytes = {BODY_LIMIT}

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

async fn gateway() -> (MockUpstream, Workdir, Gateway) {
    let upstream = start(mock(MockUpstream::openai(), &["a1"])).await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let gateway = Gateway::start(&workdir, &[("KEY_A", secret("a1"))]);
    (upstream, workdir, gateway)
}

/// The next ordinary request is served.
async fn still_serves(gateway: &Gateway) {
    let answer =
        post(&client(), &gateway.url("/v1/chat/completions"), &chat("default", "next one", false))
            .await;
    let Answer::Done { status: 200, body, .. } = &answer else {
        panic!("the next request was not served: {answer:?}");
    };
    let body: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], echoed("next one"));
}

/// Whether `body` is an OpenAI-shaped error with a message.
fn is_openai_error(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|error| {
        error["error"]["message"].is_string() && error["error"].get("code").is_some()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_413_and_the_next_request_is_served() {
    let (_upstream, _workdir, gateway) = gateway().await;
    let head = |path: &str| {
        vec![format!("POST {path} HTTP/1.1"), "Content-Type: application/json".to_owned()]
    };
    let sized = exchange(
        gateway.addr(),
        &head("/v1/chat/completions"),
        RawBody::Sized {
            prefix: br#"{"model": "default", "messages": [{"role": "user", "content": ""#.to_vec(),
            len: BODY_LIMIT + MEGABYTE,
            suffix: br#""}]}"#.to_vec(),
        },
    )
    .await;
    let chunked = exchange(
        gateway.addr(),
        &head("/v1/chat/completions"),
        RawBody::Chunked { len: BODY_LIMIT + MEGABYTE },
    )
    .await;
    report(
        "oversized_body",
        json!({
            "body_bytes": BODY_LIMIT + MEGABYTE, "limit_bytes": BODY_LIMIT,
            "sized_status": sized.as_ref().map(|a| a.status).ok(),
            "chunked_status": chunked.as_ref().map(|a| a.status).ok(),
            "panics": gateway.panics(),
        }),
    );
    for (how, answer) in [("with a length", sized), ("chunked", chunked)] {
        let answer = answer.unwrap_or_else(|error| panic!("a body too large {how}: {error}"));
        assert_eq!(answer.status, 413, "a body too large {how}: {answer:?}");
        assert!(is_openai_error(&answer.body), "a typed error {how}: {:?}", answer.body);
    }
    still_serves(&gateway).await;
    gateway.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_of_headers_is_a_4xx_and_the_next_request_is_served() {
    let (_upstream, _workdir, gateway) = gateway().await;
    let one_header = exchange(
        gateway.addr(),
        &[
            "POST /v1/chat/completions HTTP/1.1".to_owned(),
            format!("X-Junk: {}", "a".repeat(MEGABYTE)),
        ],
        RawBody::Empty,
    )
    .await;
    let many_headers: Vec<String> = std::iter::once("GET /v1/models HTTP/1.1".to_owned())
        .chain((0..16 * 1024).map(|idx| format!("X-Junk-{idx}: {}", "b".repeat(48))))
        .collect();
    let many = exchange(gateway.addr(), &many_headers, RawBody::Empty).await;
    report(
        "oversized_headers",
        json!({
            "one_header_bytes": MEGABYTE,
            "one_header_status": one_header.as_ref().map(|a| a.status).map_err(Clone::clone),
            "many_headers": 16 * 1024,
            "many_headers_status": many.as_ref().map(|a| a.status).map_err(Clone::clone),
            "panics": gateway.panics(),
        }),
    );
    for (how, answer) in [("one 1 MB header", one_header), ("16,384 headers", many)] {
        let answer = answer.unwrap_or_else(|error| panic!("{how}: {error}"));
        assert!((400..500).contains(&answer.status), "{how}: {answer:?}");
    }
    still_serves(&gateway).await;
    gateway.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_model_name_is_a_typed_4xx_that_does_not_echo_it() {
    let (upstream, _workdir, gateway) = gateway().await;
    still_serves(&gateway).await;
    let (metrics_before, _) = metrics(&gateway).await;
    let client = client();
    let url = gateway.url("/v1/chat/completions");
    let mut answers = Vec::new();
    for name in ["m".repeat(MEGABYTE), format!("mockA/{}", "n".repeat(MEGABYTE))] {
        let answer = post(&client, &url, &chat(&name, "hi", false)).await;
        answers.push((name[..6].to_owned(), answer));
    }
    let (metrics_after, _) = metrics(&gateway).await;
    let figures: Vec<Value> = answers
        .iter()
        .map(|(prefix, answer)| match answer {
            Answer::Done { status, body, .. } => {
                json!({"prefix": prefix, "status": status, "answer_bytes": body.len()})
            }
            other => json!({"prefix": prefix, "failed": format!("{other:?}")}),
        })
        .collect();
    report(
        "oversized_model_name",
        json!({"answers": figures, "metrics_bytes_before": metrics_before,
               "metrics_bytes_after": metrics_after, "upstream_calls": upstream.n_requests(),
               "panics": gateway.panics()}),
    );
    for (prefix, answer) in answers {
        let Answer::Done { status, body, .. } = answer else {
            panic!("a 1 MB model name ({prefix}...) was not answered: {answer:?}");
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!((400..500).contains(&status), "a 1 MB model name: {status} {text:.300}");
        assert!(is_openai_error(&text), "a typed error: {text:.300}");
        assert!(body.len() < 64 * 1024, "the answer echoes the name: {} bytes", body.len());
    }
    assert!(
        metrics_after < metrics_before + 4096,
        "/metrics grew from {metrics_before} to {metrics_after} bytes"
    );
    still_serves(&gateway).await;
    gateway.assert_no_panic();
}
