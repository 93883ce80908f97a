//! For any conversation within Gemini's capabilities, the body the mock received keeps the
//! system prompt, the order and roles of the turns, the stop sequences and the token limit.

use std::sync::Arc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use switchyard_core::{ChatRequest, Message, Role, SystemClock};
use switchyard_gemini::wire::{GenerateContentRequest, WireRole};

use crate::support::{answer, mock, provider};

fn conversation() -> impl Strategy<Value = ChatRequest> {
    let message = (any::<bool>(), "[ -~]{1,30}").prop_map(|(from_user, text)| {
        if from_user { Message::user(text) } else { Message::assistant(text) }
    });
    (
        prop::option::of("[ -~]{1,40}"),
        vec(message, 1..6),
        prop::option::of(1u32..65_536),
        vec("[a-zA-Z#]{1,6}", 0..5),
    )
        .prop_map(|(system, mut messages, max_tokens, stop)| {
            if let Some(system) = system {
                messages.insert(0, Message::system(system));
            }
            ChatRequest { messages, max_tokens, stop, ..ChatRequest::default() }
        })
}

#[test]
fn the_received_body_keeps_system_order_roles_stops_and_limit() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mock = runtime.block_on(mock().start()).expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10), Arc::new(SystemClock));
    let mut runner = TestRunner::new(Config { cases: 40, ..Config::default() });
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
            let sent: Vec<(Option<WireRole>, String)> = wire
                .contents
                .into_iter()
                .map(|content| {
                    (content.role, content.parts.into_iter().filter_map(|part| part.text).collect())
                })
                .collect();
            let asked: Vec<(Option<WireRole>, String)> = request
                .messages
                .iter()
                .filter(|message| message.role != Role::System)
                .map(|message| {
                    let role =
                        if message.role == Role::User { WireRole::User } else { WireRole::Model };
                    (Some(role), message.joined_text())
                })
                .collect();
            prop_assert_eq!(sent, asked);
            let config = wire.generation_config.unwrap_or_default();
            prop_assert_eq!(config.stop_sequences, request.stop.clone());
            prop_assert_eq!(config.max_output_tokens, request.max_tokens);
            Ok(())
        })
        .expect("the property holds");
    assert_eq!(mock.n_requests(), 40);
}
