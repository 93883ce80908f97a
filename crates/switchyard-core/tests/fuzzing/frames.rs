//! Strategies for the adapters' property tests (`tests/it/fuzz.rs` in each adapter), kept
//! once here and included by path: random bytes, random JSON, and "valid-looking frames":
//! a real frame of the provider's format with fields deleted or replaced by random JSON of
//! the wrong type, huge numbers past any integer or float, and nesting past serde's limit.
//!
//! The number of cases scales with the environment variable `SWITCHYARD_FUZZ_CASES`: unset,
//! each property runs the count its test names (a normal `cargo test` stays fast); set to N,
//! each runs at least N cases (`SWITCHYARD_FUZZ_CASES=200000 cargo test fuzz`). It is read
//! once per test binary.

#![allow(dead_code, reason = "each adapter uses the strategies its formats need")]

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// A text that stands for a number no integer or float holds; replaced in the serialized
/// frame by [`HUGE_NUMBERS`].
const HUGE: &str = "__huge_number__";

/// Number literals past every range serde reads into.
const HUGE_NUMBERS: [&str; 6] = [
    "1e999",
    "-1e999",
    "99999999999999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "1.7976931348623157e309",
];

/// The proptest config for a property that runs `default` cases unless
/// `SWITCHYARD_FUZZ_CASES` asks for more.
pub(crate) fn config(default: u32) -> Config {
    static FROM_ENV: OnceLock<Option<u32>> = OnceLock::new();
    let from_env = *FROM_ENV.get_or_init(|| {
        std::env::var("SWITCHYARD_FUZZ_CASES").ok().and_then(|cases| cases.trim().parse().ok())
    });
    // Failures are reported with their minimal input; nothing is written into the tree.
    Config {
        cases: from_env.map_or(default, |cases| cases.max(default)),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any bytes, short.
pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..256)
}

/// A JSON leaf: every type, edge numbers and texts included.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::String(HUGE.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String("1e15s".to_owned())),
        Just(Value::String("-1".to_owned())),
        Just(Value::String("+262143-12-31T23:59:59Z".to_owned())),
    ]
}

/// Random JSON a few levels deep.
pub(crate) fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// What is done to one node of a frame.
#[derive(Clone, Debug)]
enum Mutation {
    Delete,
    Replace(Value),
    /// Nesting past serde's recursion limit of 128.
    Deep,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Delete),
        6 => json().prop_map(Mutation::Replace),
        1 => Just(Mutation::Deep),
    ]
}

/// Every path (as JSON pointers) below the root of `value`.
fn paths(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                paths(child, &path, out);
                out.push(path);
            }
        }
        Value::Array(items) => {
            for (idx, child) in items.iter().enumerate() {
                let path = format!("{at}/{idx}");
                paths(child, &path, out);
                out.push(path);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

fn apply(frame: &mut Value, path: &str, mutation: &Mutation) {
    let value = match mutation {
        Mutation::Replace(value) => value.clone(),
        Mutation::Deep => (0..200).fold(Value::Null, |inner, _| Value::Array(vec![inner])),
        Mutation::Delete => {
            let Some((parent, last)) = path.rsplit_once('/') else { return };
            match frame.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Some(idx) = last.parse::<usize>().ok().filter(|idx| *idx < items.len()) {
                        items.remove(idx);
                    }
                }
                Some(Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) | None => {
                }
            }
            return;
        }
    };
    if let Some(slot) = frame.pointer_mut(path) {
        *slot = value;
    }
}

/// One of `templates` (real frames of the format) with up to three fields deleted, replaced by
/// random JSON or nested too deep, serialized, with huge number literals in place of the
/// [`HUGE`] marker.
pub(crate) fn frame(templates: Vec<Value>) -> impl Strategy<Value = String> {
    let n_templates = templates.len();
    (
        0..n_templates,
        proptest::collection::vec((any::<prop::sample::Index>(), mutation()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(template_idx, mutations, huge_idx)| {
            let mut frame = templates[template_idx].clone();
            for (at, mutation) in &mutations {
                let mut all = Vec::new();
                paths(&frame, "", &mut all);
                if all.is_empty() {
                    break;
                }
                apply(&mut frame, &all[at.index(all.len())], mutation);
            }
            let huge = HUGE_NUMBERS[huge_idx.index(HUGE_NUMBERS.len())];
            frame.to_string().replace(&format!("\"{HUGE}\""), huge)
        })
}

/// A random text that may or may not be a number, for headers: digits, exponents, signs,
/// dates, Go durations.
pub(crate) fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,30}",
        "-?[0-9]{0,5}(\\.[0-9]{0,5})?(e[+-]?[0-9]{1,4})?(ms|s|m|h|us|ns)?",
        "([0-9]{1,20}(h|m|s|ms)){1,4}",
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("+262143-12-31T23:59:59Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        "[ -~]{0,24}",
    ]
}
