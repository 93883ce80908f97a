//! Reasoning effort through the Gemini adapter against the mock: a thinking budget sent, the
//! thinking tokens read back from `thoughtsTokenCount`, plain and streamed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_core::{ChatRequest, ManualClock, ReasoningEffort};
use switchyard_mock::{MOCK_REASONING_TOKENS, ReplyScript};

use crate::support::{answer, mock, provider};

#[tokio::test]
async fn an_effort_is_thought_through_and_its_tokens_counted() {
    for stream in [false, true] {
        let clock = ManualClock::default();
        let mock = mock()
            .clock(clock.clone())
            .reply(ReplyScript::Text("Four.".into()))
            .start()
            .await
            .expect("the mock starts");
        let provider: switchyard_gemini::Gemini =
            provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock));
        let mut request = ChatRequest::from_user("What is 2 + 2?").with_max_tokens(100);
        request.temperature = Some(0.7);
        request.reasoning_effort = Some(ReasoningEffort::High);
        let response = answer(&provider, &request, stream).await.expect("an answer");
        assert_eq!(response.text, "Four.", "stream: {stream}");
        let sent = mock.last_request().and_then(|request| request.body).expect("a body");
        assert_eq!(sent["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 16384}));
        assert_eq!(sent["generationConfig"]["maxOutputTokens"], 100);
        assert_eq!(
            response.usage.reasoning_tokens,
            Some(MOCK_REASONING_TOKENS),
            "stream: {stream}"
        );
        assert!(response.usage.completion_tokens > MOCK_REASONING_TOKENS, "stream: {stream}");
    }
}
