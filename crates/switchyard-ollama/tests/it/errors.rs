//! A server that is not there, errors after the 200, models missing and listed, and what the
//! adapter sends with and without a key.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use switchyard_core::{
    Call, ChatRequest, Classify, Credential, ErrorKind, ModelId, NextStep, Provider,
};
use switchyard_mock::{Fault, FaultRule, KeyScript, MockUpstream, OllamaWire};

use crate::support::{MODEL, answer, answer_with, mock, provider};

#[tokio::test]
async fn a_refused_connection_is_a_network_error() {
    // Bind a port, then free it: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    let provider = provider(&format!("http://{address}"), Duration::from_secs(5));
    for stream in [false, true] {
        let error =
            answer(&provider, &ChatRequest::from_user("hi"), stream).await.expect_err("refused");
        assert_eq!(error.kind, ErrorKind::Network, "{error}");
        assert_eq!(error.next_step(), NextStep::NextProvider);
        assert_eq!(error.status, None);
    }
    let error = provider.list_models(None).await.expect_err("refused");
    assert_eq!(error.kind, ErrorKind::Network);
}

#[tokio::test]
async fn no_key_is_needed_and_none_is_sent() {
    let mock = mock().start().await.expect("starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(5));
    let response = answer(&provider, &ChatRequest::from_user("hi"), false).await.expect("served");
    assert_eq!(response.text, "You said: hi");
    let logged = mock.last_request().expect("logged");
    assert!(logged.headers.get("authorization").is_none());
    assert_eq!(
        logged.body.expect("json")["stream"],
        false,
        "stream is always said: Ollama's default is true"
    );
}

#[tokio::test]
async fn a_key_when_given_is_a_bearer_and_a_missing_model_is_named() {
    let mock = MockUpstream::builder(OllamaWire)
        .key(KeyScript::valid("ollama-cloud", "ollama-secret-0123456789"))
        .models(["llama3.2"])
        .start()
        .await
        .expect("starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(5));
    let credential = Credential::new("ollama-cloud", "ollama-secret-0123456789");
    answer_with(&provider, &ChatRequest::from_user("hi"), true, Some(&credential))
        .await
        .expect("served");
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.headers["authorization"], "Bearer [key ollama-cloud]");
    let model = ModelId::new("llama9");
    let request = ChatRequest::from_user("hi");
    let error =
        provider.chat(Call::new(&request, &model, Some(&credential))).await.expect_err("missing");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::ModelNotFound, "model 'llama9' not found")
    );
    assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some("ollama-cloud"));
    let wrong = Credential::new("ollama-old", "ollama-revoked");
    let error =
        provider.chat(Call::new(&request, &model, Some(&wrong))).await.expect_err("unauthorized");
    assert_eq!(error.kind, ErrorKind::InvalidKey);
}

#[tokio::test]
async fn an_error_line_after_the_200_ends_the_stream_classified() {
    let mock = mock().start().await.expect("starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(5));
    let body = [
        json!({"model": MODEL, "created_at": "2026-01-15T12:00:00Z", "message": {"role": "assistant", "content": "Hel"}, "done": false}),
        json!({"error": "an error was encountered while running the model: unexpected EOF"}),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect::<String>();
    mock.inject(FaultRule::once(Fault::Raw {
        status: 200,
        content_type: "application/x-ndjson".into(),
        headers: Vec::new(),
        body,
    }));
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new(MODEL);
    let mut chunks =
        provider.chat_stream(Call::new(&request, &model, None)).await.expect("starts").chunks;
    assert_eq!(chunks.next().await.expect("a chunk").expect("text").text, "Hel");
    let error = chunks.next().await.expect("an item").expect_err("the error line");
    assert_eq!(error.kind, ErrorKind::ServerError);
    assert!(error.message.contains("unexpected EOF"), "{error}");
    assert!(chunks.next().await.is_none());
}

#[tokio::test]
async fn a_busy_server_is_overloaded_and_models_are_listed() {
    let mock = mock().models(["llama3.2:latest", "qwen3:8b"]).start().await.expect("starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(5));
    mock.inject(FaultRule::once(Fault::overloaded()));
    let error = answer(&provider, &ChatRequest::from_user("hi"), true).await.expect_err("busy");
    assert_eq!((error.kind, error.status), (ErrorKind::Overloaded, Some(503)));
    let models = provider.list_models(None).await.expect("listed");
    let ids: Vec<&str> = models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["llama3.2:latest", "qwen3:8b"]);
    assert_eq!(mock.last_request().expect("logged").path, "/api/tags");
}
