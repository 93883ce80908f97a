//! For any conversation within Ollama's capabilities (system, user and assistant messages,
//! tool calls and their results), the body the mock received keeps the order, roles and
//! content of the messages, the stop sequences and the token limit.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use switchyard_core::{ChatRequest, Message, Role, ToolCall};
use switchyard_ollama::wire::{ChatBody, WireMessage, WireRole};

use crate::support::{answer, mock, provider};

/// System, user and assistant messages and tool exchanges (a call and its result).
fn conversation() -> impl Strategy<Value = ChatRequest> {
    let turn = (0u8..4, "[ -~]{1,30}", "[a-z]{1,12}");
    (vec(turn, 1..7), prop::option::of(1u32..100_000), vec("[a-zA-Z#]{1,6}", 0..4)).prop_map(
        |(turns, max_tokens, stop)| {
            let mut messages = Vec::new();
            for (turn_idx, (kind, text, word)) in turns.into_iter().enumerate() {
                match kind {
                    0 => messages.push(Message::system(text)),
                    1 => messages.push(Message::user(text)),
                    2 => messages.push(Message::assistant(text)),
                    _ => {
                        let id = format!("ollama_call_{turn_idx}");
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
        },
    )
}

/// A message as (role, content, calls, tool name).
type Seen = (WireRole, String, Vec<String>, Option<String>);

fn sent(message: &WireMessage) -> Seen {
    let calls = message
        .tool_calls
        .iter()
        .map(|call| format!("{} {}", call.function.name, call.function.arguments))
        .collect();
    (message.role, message.content.clone(), calls, message.tool_name.clone())
}

fn asked(message: &Message) -> Seen {
    let role = match message.role {
        Role::System => WireRole::System,
        Role::User => WireRole::User,
        Role::Assistant => WireRole::Assistant,
        Role::Tool => WireRole::Tool,
    };
    let calls = message
        .tool_calls
        .iter()
        .map(|call| {
            let arguments: Value = serde_json::from_str(&call.arguments).expect("JSON");
            format!("{} {arguments}", call.name)
        })
        .collect();
    let tool_name = (message.role == Role::Tool).then(|| "lookup".to_owned());
    (role, message.joined_text(), calls, tool_name)
}

#[test]
fn the_received_body_keeps_order_roles_content_stops_and_limit() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mock = runtime.block_on(mock().start()).expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10));
    let mut runner = TestRunner::new(Config { cases: 48, ..Config::default() });
    runner
        .run(&conversation(), |request| {
            runtime.block_on(answer(&provider, &request, false)).expect("served");
            let body = mock.last_request().and_then(|logged| logged.body).expect("a JSON body");
            let wire: ChatBody = serde_json::from_value(body).expect("an /api/chat body");
            prop_assert!(!wire.stream);
            let sent: Vec<Seen> = wire.messages.iter().map(sent).collect();
            let asked: Vec<Seen> = request.messages.iter().map(asked).collect();
            prop_assert_eq!(sent, asked);
            let options = wire.options.unwrap_or_default();
            prop_assert_eq!(options.stop, request.stop.clone());
            prop_assert_eq!(options.num_predict, request.max_tokens.map(i64::from));
            Ok(())
        })
        .expect("the property holds");
    assert_eq!(mock.n_requests(), 48);
}
