//! For any conversation within Anthropic's capabilities (text turns, tool calls and their
//! results), the body the mock received keeps the system prompt, the order, roles and
//! content of the messages, the stop sequences and the token limit.

use std::sync::Arc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use switchyard_anthropic::DEFAULT_MAX_TOKENS;
use switchyard_anthropic::wire::{ContentBlock, MessagesRequest, WireContent, WireRole};
use switchyard_core::{ChatRequest, Message, Role, SystemClock, ToolCall};

use crate::support::{answer, mock, provider};

/// Text turns and tool exchanges (a call and its result), with an optional system prompt.
fn conversation() -> impl Strategy<Value = ChatRequest> {
    let turn = (0u8..3, "[ -~]{1,30}", "[a-z]{1,12}");
    (
        prop::option::of("[ -~]{1,40}"),
        vec(turn, 1..6),
        prop::option::of(1u32..100_000),
        vec("[a-zA-Z#]{1,6}", 0..4),
    )
        .prop_map(|(system, turns, max_tokens, stop)| {
            let mut messages: Vec<Message> = system.into_iter().map(Message::system).collect();
            for (turn_idx, (kind, text, word)) in turns.into_iter().enumerate() {
                match kind {
                    0 => messages.push(Message::user(text)),
                    1 => messages.push(Message::assistant(text)),
                    _ => {
                        let id = format!("toolu_{turn_idx}");
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

/// What a wire message says, as one line per piece.
fn sent(content: &WireContent) -> Vec<String> {
    match content {
        WireContent::Text(text) => vec![text.clone()],
        WireContent::Blocks(blocks) => blocks
            .iter()
            .map(|block| match block {
                ContentBlock::Text { text } => text.clone(),
                ContentBlock::ToolUse { id, name, input } => format!("call {id} {name} {input}"),
                ContentBlock::ToolResult { tool_use_id, content, .. } => {
                    format!("result {tool_use_id} {}", sent(content).concat())
                }
                ContentBlock::Image { .. } | ContentBlock::Unknown => "?".into(),
            })
            .collect(),
    }
}

/// What a request message asks to be sent, in the same lines.
fn asked(message: &Message) -> (WireRole, Vec<String>) {
    match message.role {
        Role::User => (WireRole::User, vec![message.joined_text()]),
        Role::Tool => (
            WireRole::User,
            vec![format!(
                "result {} {}",
                message.tool_call_id.clone().unwrap_or_default(),
                message.joined_text()
            )],
        ),
        Role::Assistant | Role::System => {
            let text = message.joined_text();
            if message.tool_calls.is_empty() {
                return (WireRole::Assistant, vec![text]);
            }
            let mut lines: Vec<String> = (!text.is_empty()).then_some(text).into_iter().collect();
            for call in &message.tool_calls {
                let input: serde_json::Value = serde_json::from_str(&call.arguments).expect("JSON");
                lines.push(format!("call {} {} {input}", call.id, call.name));
            }
            (WireRole::Assistant, lines)
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
            let wire: MessagesRequest = serde_json::from_value(body).expect("a Messages body");
            let system: Vec<String> = request
                .messages
                .iter()
                .filter(|message| message.role == Role::System)
                .map(Message::joined_text)
                .collect();
            prop_assert_eq!(wire.system, (!system.is_empty()).then(|| system.join("\n\n")));
            let sent: Vec<(WireRole, Vec<String>)> = wire
                .messages
                .iter()
                .map(|message| (message.role, sent(&message.content)))
                .collect();
            let asked: Vec<(WireRole, Vec<String>)> = request
                .messages
                .iter()
                .filter(|message| message.role != Role::System)
                .map(asked)
                .collect();
            prop_assert_eq!(sent, asked);
            prop_assert_eq!(wire.stop_sequences, request.stop.clone());
            prop_assert_eq!(wire.max_tokens, request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
            Ok(())
        })
        .expect("the property holds");
    assert_eq!(mock.n_requests(), 48);
}
