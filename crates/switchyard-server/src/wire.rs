//! OpenAI's Chat Completions wire format, read and written here: the gateway speaks it to
//! clients whatever the upstream speaks, and the router only sees [`ChatRequest`]s.
//!
//! Parsing is strict where a wrong guess would change the answer (an unknown role, a tool
//! that is not a function) and lenient where OpenAI is (content as a string or as parts,
//! `stop` as a string or a list). Fields the gateway does not model travel in
//! [`ChatRequest::extra`] to the upstream untouched.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use switchyard_core::{
    ChatRequest, ContentPart, FinishReason, ImageUrl, Message, ReasoningEffort, ResponseFormat,
    Role, Tool, ToolCall, ToolChoice,
};

/// The longest `model` accepted, in bytes: a route or `provider/model` name is far shorter,
/// and the name travels into errors, logs and the router's lookups.
pub const MAX_MODEL_BYTES: usize = 256;

/// Why a request body is not a chat completion request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub(crate) String);

/// A parsed `POST /v1/chat/completions` body.
#[derive(Debug)]
pub struct CompletionRequest {
    /// The route or `provider/model` asked for.
    pub model: String,
    /// Whether to answer with server-sent events.
    pub stream: bool,
    /// Whether the last streamed chunk carries usage (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The request the router sees.
    pub request: ChatRequest,
}

// The body is read straight into these (names and roles borrowed from the body where they
// need no unescaping), then moved into the router's `ChatRequest`: no `serde_json::Value`
// in between, except where `ChatRequest` itself holds one (a tool's parameters, a schema,
// the fields the gateway does not model).
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<RawMessage<'a>>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default, borrow)]
    tools: Vec<RawTool<'a>>,
    #[serde(default, borrow)]
    tool_choice: Option<RawToolChoice<'a>>,
    #[serde(default, borrow)]
    response_format: Option<RawResponseFormat<'a>>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    reasoning_effort: Option<ReasoningEffort>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default)]
    content: Option<RawContent>,
    #[serde(default)]
    tool_calls: Vec<RawToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawContent {
    Text(String),
    Parts(Vec<RawPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Deserialize)]
struct RawToolCall {
    id: String,
    function: RawFunctionCall,
}

#[derive(Deserialize)]
struct RawFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct RawTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    function: RawFunction,
}

#[derive(Deserialize)]
struct RawFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

/// `tool_choice` as sent. Wrong shapes are read too (as `Object` or `Other`), so the
/// client is told what is wrong in the gateway's words rather than serde's.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawToolChoice<'a> {
    Mode(#[serde(borrow)] Cow<'a, str>),
    Named {
        #[serde(borrow)]
        function: NamedFunction<'a>,
    },
    Object(AnyObject),
    Other(IgnoredAny),
}

/// Any JSON object, read and dropped (anything else is refused).
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnyObject;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Deserialize)]
struct NamedFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// `response_format` as sent, read as leniently as OpenAI does: a `type` that is missing or
/// not a string is `""` (refused after parsing), a `json_schema` member's wrong parts take
/// their defaults.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawResponseFormat<'a> {
    Object {
        #[serde(rename = "type", default, borrow)]
        kind: Option<Lenient<Cow<'a, str>>>,
        #[serde(default, borrow)]
        json_schema: RawJsonSchema<'a>,
    },
    Other(IgnoredAny),
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum RawJsonSchema<'a> {
    #[default]
    #[serde(skip)]
    Missing,
    Object {
        #[serde(default, borrow)]
        name: Option<Lenient<Cow<'a, str>>>,
        #[serde(default = "empty_schema")]
        schema: Value,
        #[serde(default)]
        strict: Option<Lenient<bool>>,
    },
    Other(IgnoredAny),
}

fn empty_schema() -> Value {
    Value::Object(Map::new())
}

/// A value of type `T`, or anything else (read and dropped).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Is(T),
    Other(IgnoredAny),
}

impl<T> Lenient<T> {
    fn into_option(self) -> Option<T> {
        match self {
            Self::Is(value) => Some(value),
            Self::Other(_) => None,
        }
    }
}

/// Reads a chat completion request body.
///
/// # Errors
/// [`WireError`] naming what is wrong (serde's message with line and column, or the field).
pub fn parse_request(body: &[u8]) -> Result<CompletionRequest, WireError> {
    parse(body).map_err(|WireError(message)| WireError(shortened(message)))
}

/// The longest error message, in bytes: messages quote the client's values (a role, a type,
/// serde's view of a wrong value), which may be megabytes long.
const MAX_MESSAGE_BYTES: usize = 512;

pub(crate) fn shortened(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// Refuses a `model` that is empty or longer than [`MAX_MODEL_BYTES`].
pub(crate) fn check_model(model: &str) -> Result<(), WireError> {
    if model.len() > MAX_MODEL_BYTES {
        return Err(WireError(format!(
            "model: a name of {} bytes is longer than the {MAX_MODEL_BYTES} accepted",
            model.len()
        )));
    }
    if model.trim().is_empty() {
        return Err(WireError("model: a route or provider/model name is required".into()));
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<CompletionRequest, WireError> {
    let raw: RawRequest<'_> = serde_json::from_slice(body)
        .map_err(|error| WireError(format!("invalid request body: {error}")))?;
    check_model(&raw.model)?;
    if raw.messages.is_empty() {
        return Err(WireError("messages: at least one message is required".into()));
    }
    let messages =
        raw.messages.into_iter().enumerate().map(message).collect::<Result<Vec<_>, _>>()?;
    let tools = raw
        .tools
        .into_iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err(WireError(format!(
                    "tools: type {:?} is not supported (only \"function\")",
                    tool.kind
                )));
            }
            Ok(Tool {
                name: tool.function.name,
                description: tool.function.description,
                parameters: tool.function.parameters.unwrap_or_else(|| {
                    let mut schema = Map::new();
                    schema.insert("type".into(), Value::from("object"));
                    schema.insert("properties".into(), empty_schema());
                    Value::Object(schema)
                }),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stop = match raw.stop {
        None => Vec::new(),
        Some(StopField::One(stop)) => vec![stop],
        Some(StopField::Many(stop)) => stop,
    };
    let request = ChatRequest {
        messages,
        max_tokens: raw.max_completion_tokens.or(raw.max_tokens),
        temperature: raw.temperature,
        top_p: raw.top_p,
        stop,
        seed: raw.seed,
        tools,
        tool_choice: raw.tool_choice.map(tool_choice).transpose()?,
        response_format: raw.response_format.map(response_format).transpose()?,
        extra: raw.extra,
        tags: Vec::new(),
        reasoning_effort: raw.reasoning_effort,
    };
    Ok(CompletionRequest {
        model: raw.model.into_owned(),
        stream: raw.stream,
        include_usage: raw.stream_options.is_some_and(|options| options.include_usage),
        request,
    })
}

fn message((index, raw): (usize, RawMessage<'_>)) -> Result<Message, WireError> {
    let role = match &*raw.role {
        // OpenAI's newer name for system instructions.
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(WireError(format!("messages[{index}].role: unknown role {other:?}")));
        }
    };
    let content = match raw.content {
        None => Vec::new(),
        Some(RawContent::Text(text)) => vec![ContentPart::Text { text }],
        Some(RawContent::Parts(parts)) => parts
            .into_iter()
            .map(|part| match part {
                RawPart::Text { text } => ContentPart::Text { text },
                RawPart::ImageUrl { image_url } => ContentPart::ImageUrl { image_url },
            })
            .collect(),
    };
    let tool_calls = raw
        .tool_calls
        .into_iter()
        .map(|call| ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        })
        .collect();
    Ok(Message { role, content, tool_calls, tool_call_id: raw.tool_call_id, name: raw.name })
}

fn tool_choice(raw: RawToolChoice<'_>) -> Result<ToolChoice, WireError> {
    match raw {
        RawToolChoice::Mode(choice) => match &*choice {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(WireError(format!("tool_choice: unknown value {other:?}"))),
        },
        RawToolChoice::Named { function } => Ok(ToolChoice::Function(function.name.into_owned())),
        RawToolChoice::Object(_) => {
            Err(WireError("tool_choice: expected {\"function\": {\"name\"}}".into()))
        }
        RawToolChoice::Other(_) => {
            Err(WireError("tool_choice: expected a string or an object".into()))
        }
    }
}

fn response_format(raw: RawResponseFormat<'_>) -> Result<ResponseFormat, WireError> {
    let (kind, json_schema) = match raw {
        RawResponseFormat::Object { kind, json_schema } => {
            (kind.and_then(Lenient::into_option), json_schema)
        }
        RawResponseFormat::Other(_) => (None, RawJsonSchema::Missing),
    };
    match kind.as_deref().unwrap_or_default() {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => match json_schema {
            RawJsonSchema::Missing => {
                Err(WireError("response_format.json_schema is required".into()))
            }
            RawJsonSchema::Object { name, schema, strict } => Ok(ResponseFormat::JsonSchema {
                name: name
                    .and_then(Lenient::into_option)
                    .map_or_else(|| "answer".to_owned(), Cow::into_owned),
                schema,
                strict: strict.and_then(Lenient::into_option).unwrap_or(false),
            }),
            RawJsonSchema::Other(_) => Ok(ResponseFormat::JsonSchema {
                name: "answer".to_owned(),
                schema: empty_schema(),
                strict: false,
            }),
        },
        other => Err(WireError(format!("response_format.type: unknown value {other:?}"))),
    }
}

/// OpenAI's name for a finish reason.
pub fn finish_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
    }
}

mod out;
pub use out::{Chunk, ChunkFrame, Completion, chunk, completion, usage_chunk};

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchyard_core::{ChatChunk, ChatResponse, ToolCallDelta, Usage};

    use super::*;

    #[test]
    fn reads_string_and_part_content_tools_and_stop() {
        let body = br#"{
            "model": "default",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "max_completion_tokens": 9, "stop": "END", "user": "u-1",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "stream": true, "stream_options": {"include_usage": true}
        }"#;
        let parsed = parse_request(body).expect("parses");
        assert_eq!(parsed.model, "default");
        assert!(parsed.stream && parsed.include_usage);
        let request = parsed.request;
        assert_eq!(request.messages[0].role, Role::System);
        assert_eq!(request.messages[1].content.len(), 2);
        assert_eq!(request.messages[2].tool_calls[0].name, "f");
        assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(request.max_tokens, Some(9));
        assert_eq!(request.stop, vec!["END".to_owned()]);
        assert_eq!(request.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(request.extra.get("user"), Some(&json!("u-1")));
        assert!(!request.extra.contains_key("stream"));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let error = parse_request(br#"{"model": "m"}"#).expect_err("no messages");
        assert!(error.to_string().contains("missing field `messages`"), "{error}");
        let error = parse_request(br#"{"model": "m", "messages": [{"role": "robot"}]}"#)
            .expect_err("bad role");
        assert_eq!(error.to_string(), "messages[0].role: unknown role \"robot\"");
        let error =
            parse_request(br#"{"model": "m", "messages": []}"#).expect_err("empty messages");
        assert!(error.to_string().starts_with("messages:"), "{error}");
    }

    #[test]
    fn completion_passes_upstream_id_and_fingerprint_through() {
        let response = ChatResponse {
            id: Some("chatcmpl-up".into()),
            model: "m".into(),
            text: "hello".into(),
            finish_reason: Some(FinishReason::Stop),
            usage: Usage::new(3, 1),
            system_fingerprint: Some("fp_1".into()),
            ..ChatResponse::default()
        };
        let value =
            serde_json::to_value(completion(&response, "chatcmpl-gw", 5)).expect("serializes");
        assert_eq!(value["id"], "chatcmpl-up");
        assert_eq!(value["system_fingerprint"], "fp_1");
        assert_eq!(value["created"], 5);
        assert_eq!(value["choices"][0]["message"]["content"], "hello");
        assert_eq!(value["usage"]["total_tokens"], 4);
    }

    #[test]
    fn tool_calls_go_out_in_openai_shape_with_null_content() {
        let response = ChatResponse {
            model: "m".into(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"x\":1}".into(),
            }],
            finish_reason: Some(FinishReason::ToolCalls),
            usage: Usage::new(2, 3),
            ..ChatResponse::default()
        };
        let value = serde_json::to_value(completion(&response, "chatcmpl-gw", 7)).expect("json");
        assert_eq!(
            value,
            json!({
                "id": "chatcmpl-gw", "object": "chat.completion", "created": 7, "model": "m",
                "system_fingerprint": null,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                    "logprobs": null,
                    "finish_reason": "tool_calls",
                }],
                "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
            })
        );
    }

    #[test]
    fn chunks_carry_the_role_first_and_tool_call_fragments() {
        let frame = ChunkFrame {
            id: "chatcmpl-1".into(),
            created: 9,
            model: "m".into(),
            system_fingerprint: Some("fp".into()),
        };
        let first = ChatChunk { text: String::new(), ..ChatChunk::default() };
        let value = serde_json::to_value(chunk(&frame, &first, true)).expect("json");
        assert_eq!(
            value,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 9, "model": "m",
                "system_fingerprint": "fp",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                    "logprobs": null, "finish_reason": null}],
            })
        );
        let calls = ChatChunk {
            tool_calls: vec![
                ToolCallDelta {
                    index: 0,
                    id: Some("c1".into()),
                    name: Some("f".into()),
                    arguments: String::new(),
                },
                ToolCallDelta { index: 0, id: None, name: None, arguments: "{}".into() },
            ],
            finish_reason: Some(FinishReason::Other("odd".into())),
            ..ChatChunk::default()
        };
        let value = serde_json::to_value(chunk(&frame, &calls, false)).expect("json");
        assert_eq!(
            value["choices"][0]["delta"],
            json!({"tool_calls": [
                {"index": 0, "id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": ""}},
                {"index": 0, "function": {"arguments": "{}"}},
            ]})
        );
        assert_eq!(value["choices"][0]["finish_reason"], "odd");
        let value = serde_json::to_value(usage_chunk(&frame, Usage::new(1, 2))).expect("json");
        assert_eq!(value["choices"], json!([]));
        assert_eq!(value["usage"]["total_tokens"], 3);
    }

    #[test]
    fn tool_choice_and_response_format_keep_their_messages() {
        let with = |field: &str| {
            let body = format!(
                r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], {field}}}"#
            );
            parse_request(body.as_bytes()).map(|parsed| parsed.request)
        };
        let error = |field: &str| with(field).expect_err("refused").to_string();
        assert_eq!(
            with(r#""tool_choice": "required""#).expect("ok").tool_choice,
            Some(ToolChoice::Required)
        );
        assert_eq!(error(r#""tool_choice": "maybe""#), "tool_choice: unknown value \"maybe\"");
        assert_eq!(
            error(r#""tool_choice": {"type": "function"}"#),
            "tool_choice: expected {\"function\": {\"name\"}}"
        );
        assert_eq!(error(r#""tool_choice": 3"#), "tool_choice: expected a string or an object");
        assert_eq!(with(r#""tool_choice": null"#).expect("ok").tool_choice, None);
        assert_eq!(
            with(r#""response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}}"#)
                .expect("ok")
                .response_format,
            Some(ResponseFormat::JsonSchema { name: "n".into(), schema: json!({"type": "object"}), strict: true })
        );
        assert_eq!(
            with(r#""response_format": {"type": "json_schema", "json_schema": {"name": 5, "strict": "yes"}}"#)
                .expect("ok")
                .response_format,
            Some(ResponseFormat::JsonSchema { name: "answer".into(), schema: json!({}), strict: false })
        );
        assert_eq!(
            error(r#""response_format": {"type": "json_schema"}"#),
            "response_format.json_schema is required"
        );
        assert_eq!(
            error(r#""response_format": {"type": 1}"#),
            "response_format.type: unknown value \"\""
        );
        assert_eq!(
            error(r#""response_format": "text""#),
            "response_format.type: unknown value \"\""
        );
        assert_eq!(
            with(r#""response_format": {"type": "json_object"}"#).expect("ok").response_format,
            Some(ResponseFormat::JsonObject)
        );
    }
}
