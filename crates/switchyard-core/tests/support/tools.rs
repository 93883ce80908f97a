//! What the adapters' tool tests (`tests/it/tools.rs` in each adapter) share, kept once here
//! and included by path: the tool they all define and the request body the mock logged.

#![allow(dead_code, reason = "each adapter uses what its tests need")]

use serde_json::{Value, json};
use switchyard_core::Tool;
use switchyard_mock::MockUpstream;

/// The body of the last request the mock received.
pub(crate) fn received(mock: &MockUpstream) -> Value {
    mock.last_request().and_then(|request| request.body).expect("a logged JSON body")
}

/// A weather lookup by city.
pub(crate) fn weather() -> Tool {
    Tool {
        name: "weather".into(),
        description: Some("Current weather in a city".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}
