//! Property tests of the request parser, as an attacker would call it: random bytes, and
//! JSON with the right keys holding wrong types, huge numbers, huge strings and deep nesting.
//! Every input gets a parsed request or a [`WireError`]; a parsed one keeps the bounds.
//!
//! 20,000 cases in a default run (8,000 of random bytes, 12,000 of JSON);
//! `SWITCHYARD_FUZZ_CASES=N` runs at least N per property, as the adapters' fuzz tests do.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use super::{MAX_MODEL_BYTES, parse_request};

/// A property's cases: `default`, or `SWITCHYARD_FUZZ_CASES` when that asks for more.
fn cases(default: u32) -> Config {
    let asked = std::env::var("SWITCHYARD_FUZZ_CASES")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .unwrap_or(0);
    Config { cases: default.max(asked), failure_persistence: None, ..Config::default() }
}

/// What every outcome must satisfy, whatever the input.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse_request(body) {
        Ok(parsed) => {
            prop_assert!(
                parsed.model.len() <= MAX_MODEL_BYTES,
                "model of {} bytes",
                parsed.model.len()
            );
            prop_assert!(!parsed.model.trim().is_empty());
            prop_assert!(!parsed.request.messages.is_empty());
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(!message.is_empty());
            // The message quotes at most a short piece of the input.
            prop_assert!(message.len() <= 1_024, "an error of {} bytes", message.len());
        }
    }
    Ok(())
}

/// Any JSON value, nested a few levels, with huge numbers and long strings among the leaves.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        ".{0,40}".prop_map(Value::String),
        (0usize..6_000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn role() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["system", "developer", "user", "assistant", "tool", "robot"])
            .prop_map(Value::from),
        any_json(),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,30}".prop_map(Value::String),
        (prop::sample::select(vec!["text", "image_url", "audio"]), any_json(),)
            .prop_map(|(kind, value)| json!([{"type": kind, "text": value, "image_url": value}])),
        any_json(),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    (role(), content(), prop::option::of(any_json()), prop::option::of(any_json())).prop_map(
        |(role, content, tool_calls, tool_call_id)| {
            let mut message = Map::new();
            message.insert("role".into(), role);
            message.insert("content".into(), content);
            if let Some(calls) = tool_calls {
                message.insert("tool_calls".into(), calls);
            }
            if let Some(id) = tool_call_id {
                message.insert("tool_call_id".into(), id);
            }
            Value::Object(message)
        },
    )
}

/// A model name: short, at the bound, just over it, huge, or not a string at all.
fn model() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z]{1,8}(/[a-z0-9.-]{1,20})?".prop_map(Value::String),
        Just(Value::String("m".repeat(MAX_MODEL_BYTES))),
        Just(Value::String("m".repeat(MAX_MODEL_BYTES + 1))),
        (0usize..100_000).prop_map(|n| Value::String("é".repeat(n))),
        any_json(),
    ]
}

/// A request with the right keys, each holding a plausible or a hostile value.
fn request() -> impl Strategy<Value = Value> {
    let optional_fields = prop::collection::btree_map(
        prop::sample::select(vec![
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "stop",
            "seed",
            "tools",
            "tool_choice",
            "response_format",
            "stream",
            "stream_options",
            "user",
        ]),
        any_json(),
        0..6,
    );
    let messages =
        prop_oneof![prop::collection::vec(message(), 0..4).prop_map(Value::Array), any_json(),];
    (model(), messages, optional_fields).prop_map(|(model, messages, fields)| {
        let mut body = Map::new();
        body.insert("model".into(), model);
        body.insert("messages".into(), messages);
        for (name, value) in fields {
            body.insert(name.into(), value);
        }
        Value::Object(body)
    })
}

proptest! {
    #![proptest_config(cases(8_000))]
    #[test]
    fn random_bytes_get_a_request_or_a_typed_error(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body)?;
    }
}

proptest! {
    #![proptest_config(cases(12_000))]
    #[test]
    fn valid_looking_json_gets_a_request_or_a_typed_error(body in request()) {
        let text = serde_json::to_vec(&body).expect("a JSON value serializes");
        check(&text)?;
        // A parsed request names exactly the model it was sent.
        if let Ok(parsed) = parse_request(&text) {
            prop_assert_eq!(Some(parsed.model.as_str()), body["model"].as_str());
        }
    }
}

/// Nesting deeper than serde_json's recursion limit is an error, not a stack overflow, in
/// every place a client may put a JSON value.
#[test]
fn deep_nesting_is_a_typed_error() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in [
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"extra":{deep}}}"#),
        format!(r#"{{"model":"m","messages":{deep}}}"#),
        format!(r#"{{"model":{deep},"messages":[]}}"#),
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{deep}}}}}]}}"#
        ),
    ] {
        let error = parse_request(body.as_bytes()).expect_err("too deep");
        let message = error.to_string();
        assert!(message.starts_with("invalid request body: "), "{message}");
        assert!(
            message.contains("recursion limit") || message.contains("expected a string"),
            "{message}"
        );
    }
}

#[test]
fn a_model_name_over_the_bound_is_refused_and_one_at_it_is_read() {
    let body = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
    };
    let at = "m".repeat(MAX_MODEL_BYTES);
    assert_eq!(parse_request(body(&at).as_bytes()).expect("at the bound").model, at);
    let over = "m".repeat(MAX_MODEL_BYTES + 1);
    let error = parse_request(body(&over).as_bytes()).expect_err("over the bound");
    assert!(error.to_string().starts_with("model: a name of 257 bytes"), "{error}");
    assert!(!error.to_string().contains(&over), "the name is not quoted back");
    let error = parse_request(body("  ").as_bytes()).expect_err("blank");
    assert!(error.to_string().starts_with("model:"), "{error}");
}
