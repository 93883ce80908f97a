// A random conversation for the encoder properties of the Anthropic and Gemini adapters
// (`src/encode.rs` unit tests), kept once here and included (`include!`): an optional system prompt
// first, then user and assistant turns, a token limit below `max_tokens`, fewer than
// `max_stops` stop sequences and a temperature.

use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_core::{ChatRequest, Message};

pub(crate) fn conversation(max_tokens: u32, max_stops: usize) -> impl Strategy<Value = ChatRequest> {
    let message = (prop::bool::ANY, ".{0,40}").prop_map(|(from_user, text)| {
        if from_user { Message::user(text) } else { Message::assistant(text) }
    });
    (
        prop::option::of(".{0,60}"),
        vec(message, 1..8),
        prop::option::of(1u32..max_tokens),
        vec("[a-zA-Z#\\n]{1,8}", 0..max_stops),
        prop::option::of(0.0f64..2.0),
    )
        .prop_map(|(system, mut messages, max_tokens, stop, temperature)| {
            if let Some(system) = system {
                messages.insert(0, Message::system(system));
            }
            ChatRequest { messages, max_tokens, stop, temperature, ..ChatRequest::default() }
        })
}
