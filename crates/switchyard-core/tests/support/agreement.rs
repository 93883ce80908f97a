//! For any answer the upstream gives (text of any length, cut by a token limit or not, or
//! tool calls with any arguments), the streamed answer reassembles to the plain one: same
//! text, tool calls, finish reason and usage.
//!
//! One property for the adapters whose mock replies are scripted alike (Anthropic, Gemini,
//! Ollama), kept once here and included by path as their `agreement` test module; each
//! crate's `support` gives `mock()`, `shared(base_url, timeout)` and `answer(..)`.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use switchyard_core::{ChatRequest, ToolCall};
use switchyard_mock::ReplyScript;

use crate::support::{answer, mock, shared};

fn reply() -> impl Strategy<Value = ReplyScript> {
    let text =
        vec("[a-zA-Z0-9,.!?']{1,10}", 0..40).prop_map(|words| ReplyScript::Text(words.join(" ")));
    let call =
        ("[a-z_]{1,12}", "[ -~]{0,20}", any::<i32>()).prop_map(|(name, value, number)| ToolCall {
            id: format!("toolu_{name}"),
            name,
            arguments: json!({"value": value, "number": number}).to_string(),
        });
    prop_oneof![text, vec(call, 1..4).prop_map(ReplyScript::ToolCalls)]
}

#[test]
fn streamed_answers_reassemble_to_the_plain_ones() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut runner = TestRunner::new(Config { cases: 32, ..Config::default() });
    runner
        .run(&(reply(), prop::option::of(1u32..30)), |(reply, max_tokens)| {
            let (plain, streamed) = runtime.block_on(async {
                let mock = mock().reply(reply).start().await.expect("the mock starts");
                let provider = shared(&mock.base_url(), Duration::from_secs(10));
                let request = ChatRequest { max_tokens, ..ChatRequest::from_user("go") };
                let plain = answer(&*provider, &request, false).await.expect("a plain answer");
                let streamed = answer(&*provider, &request, true).await.expect("a streamed answer");
                (plain, streamed)
            });
            prop_assert_eq!(&streamed.text, &plain.text);
            prop_assert_eq!(&streamed.tool_calls, &plain.tool_calls);
            prop_assert_eq!(&streamed.finish_reason, &plain.finish_reason);
            prop_assert_eq!(streamed.usage, plain.usage);
            prop_assert_eq!(&streamed.model, &plain.model);
            Ok(())
        })
        .expect("the property holds");
}
