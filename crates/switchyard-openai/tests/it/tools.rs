//! Tool calling and structured output through the adapter, plain and streamed.

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use switchyard_core::{
    Call, ChatRequest, ChatResponse, Credential, FinishReason, Message, ModelId, Provider,
    ResponseFormat, StreamAccumulator, ToolCall, ToolChoice,
};
use switchyard_mock::{MockUpstream, ReplyScript};
use switchyard_openai::{OpenAiProvider, Preset};

use crate::support::for_mock;

#[path = "../../../switchyard-core/tests/support/tools.rs"]
mod shared_tools;
use shared_tools::weather;

async fn mock_replying(reply: ReplyScript) -> (MockUpstream, OpenAiProvider) {
    let mock =
        MockUpstream::openai().accept_unknown_keys().reply(reply).start().await.expect("starts");
    let adapter = for_mock(Preset::OpenAi, &mock);
    (mock, adapter)
}

async fn both(adapter: &OpenAiProvider, request: &ChatRequest) -> (ChatResponse, ChatResponse) {
    let model = ModelId::new("gpt-4o-mini");
    let credential = Credential::new("k", "sk-k");
    let plain = adapter.chat(Call::new(request, &model, Some(&credential))).await.expect("plain");
    let mut stream =
        adapter.chat_stream(Call::new(request, &model, Some(&credential))).await.expect("stream");
    let mut accumulator = StreamAccumulator::new();
    while let Some(chunk) = stream.chunks.next().await {
        accumulator.push(&chunk.expect("a chunk"));
    }
    (plain.response, accumulator.finish())
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let call = ToolCall {
        id: "call_1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Oslo"}"#.into(),
    };
    let (mock, adapter) = mock_replying(ReplyScript::ToolCalls(vec![call.clone()])).await;
    let mut request = ChatRequest::from_user("Weather in Oslo?");
    request.tools.push(weather());
    request.tool_choice = Some(ToolChoice::Required);
    let (plain, streamed) = both(&adapter, &request).await;
    assert_eq!(plain.tool_calls, vec![call.clone()]);
    assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(streamed.tool_calls, plain.tool_calls, "deltas reassemble to the same call");
    assert_eq!(streamed.finish_reason, plain.finish_reason);
    let sent = mock.last_request().expect("logged").body.expect("json");
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    assert_eq!(sent["tool_choice"], "required");

    // The caller runs the tool and sends its result back; the upstream answers in text.
    let (mock, adapter) = mock_replying(ReplyScript::Text("It is cold in Oslo.".into())).await;
    request.messages.push(Message {
        tool_calls: plain.tool_calls,
        content: Vec::new(),
        ..Message::assistant("")
    });
    request.messages.push(Message::tool_result("call_1", r#"{"celsius":-3}"#));
    request.tool_choice = None;
    let (plain, streamed) = both(&adapter, &request).await;
    assert_eq!(plain.text, "It is cold in Oslo.");
    assert_eq!(streamed.text, plain.text);
    let sent = mock.last_request().expect("logged").body.expect("json");
    let messages = sent["messages"].as_array().expect("messages");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[1]["content"], Value::Null);
    assert_eq!(
        messages[2],
        json!({"role": "tool", "content": "{\"celsius\":-3}", "tool_call_id": "call_1"})
    );
}

#[tokio::test]
async fn a_json_schema_answer() {
    let (mock, adapter) =
        mock_replying(ReplyScript::Text(r#"{"city":"Oslo","celsius":-3}"#.into())).await;
    let mut request = ChatRequest::from_user("Weather in Oslo as JSON");
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"},
                        "celsius": {"type": "number"}}, "required": ["city", "celsius"]});
    request.response_format = Some(ResponseFormat::JsonSchema {
        name: "weather".into(),
        schema: schema.clone(),
        strict: true,
    });
    let (plain, streamed) = both(&adapter, &request).await;
    let parsed: Value = serde_json::from_str(&plain.text).expect("the answer is JSON");
    assert_eq!(parsed["celsius"], -3);
    assert_eq!(streamed.text, plain.text);
    let sent = mock.last_request().expect("logged").body.expect("json");
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": true}})
    );
}
