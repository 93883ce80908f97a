//! A tool-calling round trip and a JSON-schema answer through the adapter, plain and
//! streamed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{
    ChatRequest, FinishReason, ManualClock, Message, ResponseFormat, ToolCall, ToolChoice,
};
use switchyard_gemini::Gemini;
use switchyard_mock::{MockUpstream, ReplyScript};

use crate::support::{answer, mock, provider};

#[path = "../../../switchyard-core/tests/support/tools.rs"]
mod shared_tools;
use shared_tools::{received, weather};

async fn started(reply: ReplyScript) -> (MockUpstream, Gemini) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).reply(reply).start().await.expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(clock));
    (mock, provider)
}

#[tokio::test]
async fn definition_call_result_answer() {
    for stream in [false, true] {
        let (calling, provider) = started(ReplyScript::ToolCalls(vec![ToolCall {
            id: "ignored: gemini sends no id".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }]))
        .await;
        let mut request = ChatRequest::from_user("What is the weather in Paris?");
        request.messages.insert(0, Message::system("Use tools."));
        request.tools.push(weather());
        request.tool_choice = Some(ToolChoice::Required);
        let first = answer(&provider, &request, stream).await.expect("a tool call");
        assert_eq!(
            first.tool_calls,
            vec![ToolCall {
                id: "gemini_call_0".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }],
            "stream: {stream}"
        );
        assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
        let sent = received(&calling);
        assert_eq!(
            sent["tools"],
            json!([{"functionDeclarations": [{"name": "weather", "description": "Current weather in a city",
                "parametersJsonSchema": weather().parameters}]}])
        );
        assert_eq!(sent["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));

        let (answering, provider) =
            started(ReplyScript::Text("It is 18C and sunny in Paris.".into())).await;
        let mut assistant = Message::assistant("");
        assistant.tool_calls = first.tool_calls.clone();
        request.messages.push(assistant);
        request.messages.push(Message::tool_result("gemini_call_0", "18C, sunny"));
        let last = answer(&provider, &request, stream).await.expect("an answer");
        assert_eq!(last.text, "It is 18C and sunny in Paris.");
        assert_eq!(last.finish_reason, Some(FinishReason::Stop));
        let sent = received(&answering);
        assert_eq!(sent["systemInstruction"], json!({"parts": [{"text": "Use tools."}]}));
        assert_eq!(
            sent["contents"],
            json!([
                {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"output": "18C, sunny"}}}]},
            ]),
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn a_json_schema_answer() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": false});
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
        let sent = received(&mock);
        assert_eq!(sent["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(sent["generationConfig"]["responseJsonSchema"], schema);
    }
}
