//! For any conversation within Ollama's capabilities, the body the mock received keeps the
//! system messages, the order and roles of the messages, the stop sequences and the token
//! limit.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use switchyard_core::{ChatRequest, Message, Role};
use switchyard_ollama::wire::{ChatBody, WireRole};

use crate::support::{answer, mock, provider};

fn conversation() -> impl Strategy<Value = ChatRequest> {
    let message = (0u8..3, "[ -~]{1,30}").prop_map(|(role, text)| match role {
        0 => Message::system(text),
        1 => Message::user(text),
        _ => Message::assistant(text),
    });
    (vec(message, 1..7), prop::option::of(1u32..100_000), vec("[a-zA-Z#]{1,6}", 0..4)).prop_map(
        |(messages, max_tokens, stop)| ChatRequest {
            messages,
            max_tokens,
            stop,
            ..ChatRequest::default()
        },
    )
}

#[test]
fn the_received_body_keeps_system_order_roles_stops_and_limit() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mock = runtime.block_on(mock().start()).expect("the mock starts");
    let provider = provider(&mock.base_url(), Duration::from_secs(10));
    let mut runner = TestRunner::new(Config { cases: 40, ..Config::default() });
    runner
        .run(&conversation(), |request| {
            runtime.block_on(answer(&provider, &request, false)).expect("served");
            let body = mock.last_request().and_then(|logged| logged.body).expect("a JSON body");
            let wire: ChatBody = serde_json::from_value(body).expect("an /api/chat body");
            let sent: Vec<(WireRole, String)> =
                wire.messages.into_iter().map(|message| (message.role, message.content)).collect();
            let asked: Vec<(WireRole, String)> = request
                .messages
                .iter()
                .map(|message| {
                    let role = match message.role {
                        Role::System => WireRole::System,
                        Role::User => WireRole::User,
                        Role::Assistant => WireRole::Assistant,
                        Role::Tool => WireRole::Tool,
                    };
                    (role, message.joined_text())
                })
                .collect();
            prop_assert_eq!(sent, asked);
            let options = wire.options.unwrap_or_default();
            prop_assert_eq!(options.stop, request.stop.clone());
            prop_assert_eq!(options.num_predict, request.max_tokens.map(i64::from));
            Ok(())
        })
        .expect("the property holds");
    assert_eq!(mock.n_requests(), 40);
}
