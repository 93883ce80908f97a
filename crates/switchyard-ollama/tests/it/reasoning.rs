//! Reasoning effort through the Ollama adapter against the mock: `think: true` sent, and the
//! thinking counted inside the output tokens (Ollama gives no split), plain and streamed.

use std::time::Duration;

use serde_json::json;
use switchyard_core::{ChatRequest, ReasoningEffort};
use switchyard_mock::{MOCK_REASONING_TOKENS, ReplyScript};

use crate::support::{answer, mock, provider};

#[tokio::test]
async fn an_effort_turns_thinking_on_and_its_tokens_are_output_tokens() {
    for stream in [false, true] {
        let mock = mock().reply(ReplyScript::Text("Four.".into())).start().await.expect("starts");
        let provider = provider(&mock.base_url(), Duration::from_secs(10));
        let plain = answer(&provider, &ChatRequest::from_user("What is 2 + 2?"), stream)
            .await
            .expect("an answer");
        let sent = mock.last_request().and_then(|request| request.body).expect("a body");
        assert!(sent.get("think").is_none(), "no effort, no switch: {sent}");

        let mut request = ChatRequest::from_user("What is 2 + 2?");
        request.reasoning_effort = Some(ReasoningEffort::Low);
        let response = answer(&provider, &request, stream).await.expect("an answer");
        assert_eq!(response.text, "Four.", "stream: {stream}");
        let sent = mock.last_request().and_then(|request| request.body).expect("a body");
        assert_eq!(sent["think"], json!(true));
        assert_eq!(response.usage.reasoning_tokens, None, "stream: {stream}");
        assert_eq!(
            response.usage.completion_tokens,
            plain.usage.completion_tokens + MOCK_REASONING_TOKENS,
            "stream: {stream}"
        );
    }
}
