//! For any conversation within Gemini's capabilities (text turns, function calls and their
//! responses), the body the mock received keeps the system prompt, the order, roles and
//! content of the turns, the stop sequences and the token limit.

use std::sync::Arc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use switchyard_core::{ChatRequest, Message, Role, SystemClock, ToolCall};
use switchyard_gemini::wire::{Content, GenerateContentRequest, WireRole};

use crate::support::{answer, mock, provider};

/// Text turns and tool exchanges (a call and its result), with an optional system prompt.
fn conversation() -> impl Strategy<Value = ChatRequest> {
    let turn = (0u8..3, "[ -~]{1,30}", "[a-z]{1,12}");
    (
        prop::option::of("[ -~]{1,40}"),
        vec(turn, 1..6),
        prop::option::of(1u32..65_536),
        vec("[a-zA-Z#]{1,6}", 0..5),
    )
        .prop_map(|(system, turns, max_tokens, stop)| {
            let mut messages: Vec<Message> = system.into_iter().map(Message::system).collect();
            for (turn_idx, (kind, text, word)) in turns.into_iter().enumerate() {
                match kind {
                    0 => messages.push(Message::user(text)),
                    1 => messages.push(Message::assistant(text)),
                    _ => {
                        let id = format!("call_{turn_idx}");
                        let mut call = Message::assistant("");
                        call.tool_calls.push(ToolCall {
                            id: id.clone(),
                            name: "lookup".into(),
                            arguments: format!(r#"{{"q":"{word}"}}"#),
                        });
                        messages.push(call);
                        messages.push(Message::tool_result(id, format!("result {word}")));
                    }
                }
            }
            ChatRequest { messages, max_tokens, stop, ..ChatRequest::default() }
        })
}

/// What a turn says, one line per part.
fn sent(content: &Content) -> (Option<WireRole>, Vec<String>) {
    let lines = content
        .parts
        .iter()
        .map(|part| {
            if let Some(call) = &part.function_call {
                format!("call {:?} {} {}", call.id, call.name, call.args)
            } else if let Some(response) = &part.function_response {
                format!("result {:?} {} {}", response.id, response.name, response.response)
            } else {
                part.text.clone().unwrap_or_default()
            }
        })
        .collect();
    (content.role, lines)
}

/// What a request message asks to be sent, in the same lines.
fn asked(message: &Message) -> (Option<WireRole>, Vec<String>) {
    let text = message.joined_text();
    match message.role {
        Role::User => (Some(WireRole::User), vec![text]),
        Role::Tool => {
            let response = json!({"output": text});
            let id = message.tool_call_id.clone();
            (Some(WireRole::User), vec![format!("result {id:?} lookup {response}")])
        }
        Role::Assistant | Role::System => {
            if message.tool_calls.is_empty() {
                return (Some(WireRole::Model), vec![text]);
            }
            let mut lines: Vec<String> = (!text.is_empty()).then_some(text).into_iter().collect();
            for call in &message.tool_calls {
                let args: Value = serde_json::from_str(&call.arguments).expect("JSON");
                lines.push(format!("call {:?} {} {args}", Some(&call.id), call.name));
            }
            (Some(WireRole::Model), lines)
        }
    }
}

#[test]
fn the_received_body_keeps_system_order_roles_content_stops_and_limit() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mock = runtime.block_on(mock().start()).expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(SystemClock));
    let mut runner = TestRunner::new(Config { cases: 48, ..Config::default() });
    runner
        .run(&conversation(), |request| {
            runtime.block_on(answer(&provider, &request, false)).expect("served");
            let body = mock.last_request().and_then(|logged| logged.body).expect("a JSON body");
            let wire: GenerateContentRequest = serde_json::from_value(body).expect("a Gemini body");
            let system: Vec<String> = request
                .messages
                .iter()
                .filter(|message| message.role == Role::System)
                .map(Message::joined_text)
                .collect();
            let sent_system = wire.system_instruction.map(|content| {
                content.parts.into_iter().filter_map(|part| part.text).collect::<String>()
            });
            prop_assert_eq!(sent_system, (!system.is_empty()).then(|| system.join("\n\n")));
            let sent: Vec<_> = wire.contents.iter().map(sent).collect();
            let asked: Vec<_> = request
                .messages
                .iter()
                .filter(|message| message.role != Role::System)
                .map(asked)
                .collect();
            prop_assert_eq!(sent, asked);
            let config = wire.generation_config.unwrap_or_default();
            prop_assert_eq!(config.stop_sequences, request.stop.clone());
            prop_assert_eq!(config.max_output_tokens, request.max_tokens);
            Ok(())
        })
        .expect("the property holds");
    assert_eq!(mock.n_requests(), 48);
}
