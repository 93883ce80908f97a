//! The Ollama format over HTTP: a keyless call answered (non-streamed on request, NDJSON by
//! default), a missing model and a busy server in Ollama's words.

use serde_json::{Value, json};
use switchyard_core::ManualClock;
use switchyard_mock::{Failure, Fault, FaultRule, MockUpstream, OllamaWire};

async fn post(mock: &MockUpstream, model: &str, stream: Option<bool>) -> reqwest::Response {
    let mut body =
        json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});
    if let Some(stream) = stream {
        body["stream"] = json!(stream);
    }
    reqwest::Client::new()
        .post(format!("{}/api/chat", mock.base_url()))
        .json(&body)
        .send()
        .await
        .expect("the mock answers")
}

#[tokio::test]
async fn served_missing_and_busy_in_ollamas_words() {
    let mock = MockUpstream::builder(OllamaWire)
        .clock(ManualClock::default())
        .accept_unknown_keys()
        .models(["llama3.2"])
        .start()
        .await
        .expect("starts");
    let served = post(&mock, "llama3.2", Some(false)).await;
    assert_eq!(served.status(), 200);
    let body: Value = served.json().await.expect("json");
    assert_eq!(body["message"]["content"], "You said: hello there");
    assert_eq!((body["done"].as_bool(), body["eval_count"].as_u64()), (Some(true), Some(4)));

    let streamed = post(&mock, "llama3.2", None).await;
    assert_eq!(streamed.headers()["content-type"], "application/x-ndjson");
    let text = streamed.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 5, "four words and the done line");
    assert_eq!(lines[4]["done"], true);

    // Keyless calls skip the scripted model check, so the refusal is injected.
    mock.inject(FaultRule::once(Fault::Fail(Failure::ModelNotFound { model: "llama9".into() })));
    let missing = post(&mock, "llama9", Some(false)).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.expect("body"), r#"{"error":"model 'llama9' not found"}"#);

    mock.inject(FaultRule::once(Fault::overloaded()));
    let busy = post(&mock, "llama3.2", Some(false)).await;
    assert_eq!(busy.status(), 503);
    let body: Value = busy.json().await.expect("json");
    assert!(body["error"].as_str().expect("message").starts_with("server busy"), "{body}");
}
