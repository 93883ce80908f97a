//! A tool-calling round trip and a JSON-schema answer through the adapter, plain and
//! streamed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{
    ChatRequest, FinishReason, ManualClock, Message, ResponseFormat, ToolCall, ToolChoice,
};
use switchyard_mock::{MockUpstream, ReplyScript};

use crate::support::{answer, mock, provider};

#[path = "../../../switchyard-core/tests/support/tools.rs"]
mod shared_tools;
use shared_tools::{received, weather};

async fn started(reply: ReplyScript) -> (MockUpstream, switchyard_anthropic::Anthropic) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).reply(reply).start().await.expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock));
    (mock, provider)
}

#[tokio::test]
async fn definition_call_result_answer() {
    for stream in [false, true] {
        let call = ToolCall {
            id: "toolu_01A".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        };
        let (calling, provider) = started(ReplyScript::ToolCalls(vec![call.clone()])).await;
        let mut request = ChatRequest::from_user("What is the weather in Paris?");
        request.tools.push(weather());
        request.tool_choice = Some(ToolChoice::Auto);
        let first = answer(&provider, &request, stream).await.expect("a tool call");
        assert_eq!(first.tool_calls, vec![call.clone()], "stream: {stream}");
        assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
        let sent = received(&calling);
        assert_eq!(sent["tools"][0]["name"], "weather");
        assert_eq!(sent["tools"][0]["input_schema"], weather().parameters);
        assert_eq!(sent["tool_choice"], json!({"type": "auto"}));

        let (answering, provider) =
            started(ReplyScript::Text("It is 18C and sunny in Paris.".into())).await;
        let mut assistant = Message::assistant("");
        assistant.tool_calls = first.tool_calls.clone();
        request.messages.push(assistant);
        request.messages.push(Message::tool_result(&call.id, "18C, sunny"));
        let last = answer(&provider, &request, stream).await.expect("an answer");
        assert_eq!(last.text, "It is 18C and sunny in Paris.");
        assert_eq!(last.finish_reason, Some(FinishReason::Stop));
        let sent = received(&answering);
        assert_eq!(
            sent["messages"],
            json!([
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C, sunny"}]},
            ]),
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn a_json_schema_answer_comes_back_as_text() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"]});
    for stream in [false, true] {
        let (mock, provider) = started(ReplyScript::ToolCalls(vec![ToolCall {
            id: "toolu_01B".into(),
            name: "city_facts".into(),
            arguments: r#"{"city":"Paris","population":2102650}"#.into(),
        }]))
        .await;
        let mut request = ChatRequest::from_user("Facts about Paris, as JSON.");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "city_facts".into(),
            schema: schema.clone(),
            strict: true,
        });
        let response = answer(&provider, &request, stream).await.expect("an answer");
        let parsed: Value = serde_json::from_str(&response.text).expect("the text is JSON");
        assert_eq!(parsed, json!({"city": "Paris", "population": 2_102_650}), "stream: {stream}");
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
        let sent = received(&mock);
        assert_eq!(sent["tool_choice"], json!({"type": "tool", "name": "city_facts"}));
        assert_eq!(sent["tools"][0]["input_schema"], schema);
    }
}
