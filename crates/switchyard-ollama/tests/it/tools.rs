//! A tool-calling round trip and a JSON-schema answer through the adapter, plain and
//! streamed.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{ChatRequest, FinishReason, Message, ResponseFormat, ToolCall};
use switchyard_mock::{MockUpstream, ReplyScript};
use switchyard_ollama::Ollama;

use crate::support::{answer, mock, provider};

#[path = "../../../switchyard-core/tests/support/tools.rs"]
mod shared_tools;
use shared_tools::{received, weather};

async fn started(reply: ReplyScript) -> (MockUpstream, Ollama) {
    let mock = mock().reply(reply).start().await.expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10));
    (mock, provider)
}

#[tokio::test]
async fn definition_call_result_answer() {
    for stream in [false, true] {
        let (calling, provider) = started(ReplyScript::ToolCalls(vec![ToolCall {
            id: "ignored: ollama sends no id".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }]))
        .await;
        let mut request = ChatRequest::from_user("What is the weather in Paris?");
        request.tools.push(weather());
        let first = answer(&provider, &request, stream).await.expect("a tool call");
        assert_eq!(
            first.tool_calls,
            vec![ToolCall {
                id: "ollama_call_0".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }],
            "stream: {stream}"
        );
        assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
        let sent = received(&calling);
        assert_eq!(
            sent["tools"],
            json!([{"type": "function", "function": {"name": "weather", "description": "Current weather in a city",
                "parameters": weather().parameters}}])
        );

        let (answering, provider) =
            started(ReplyScript::Text("It is 18C and sunny in Paris.".into())).await;
        let mut assistant = Message::assistant("");
        assistant.tool_calls = first.tool_calls.clone();
        request.messages.push(assistant);
        request.messages.push(Message::tool_result("ollama_call_0", "18C, sunny"));
        let last = answer(&provider, &request, stream).await.expect("an answer");
        assert_eq!(last.text, "It is 18C and sunny in Paris.");
        assert_eq!(last.finish_reason, Some(FinishReason::Stop));
        let sent = received(&answering);
        assert_eq!(
            sent["messages"],
            json!([
                {"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "content": "18C, sunny", "tool_name": "weather"},
            ]),
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn a_json_schema_answer() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"]});
    for stream in [false, true] {
        let (mock, provider) =
            started(ReplyScript::Text(r#"{"city": "Paris", "population": 2102650}"#.into())).await;
        let mut request = ChatRequest::from_user("Facts about Paris, as JSON.");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "city_facts".into(),
            schema: schema.clone(),
            strict: true,
        });
        let response = answer(&provider, &request, stream).await.expect("an answer");
        let parsed: Value = serde_json::from_str(&response.text).expect("the text is JSON");
        assert_eq!(parsed, json!({"city": "Paris", "population": 2_102_650}), "stream: {stream}");
        assert_eq!(received(&mock)["format"], schema);
    }
}
