//! OpenAI's Chat Completions wire format, read and written here: the gateway speaks it to
//! clients whatever the upstream speaks, and the router only sees [`ChatRequest`]s.
//!
//! Parsing is strict where a wrong guess would change the answer (an unknown role, a tool
//! that is not a function) and lenient where OpenAI is (content as a string or as parts,
//! `stop` as a string or a list). Fields the gateway does not model travel in
//! [`ChatRequest::extra`] to the upstream untouched.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard_core::{
    ChatChunk, ChatRequest, ChatResponse, ContentPart, FinishReason, ImageUrl, Message,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
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

#[derive(Deserialize)]
struct RawRequest {
    model: String,
    messages: Vec<RawMessage>,
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
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
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
struct RawMessage {
    role: String,
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
struct RawTool {
    #[serde(rename = "type")]
    kind: String,
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

fn shortened(mut message: String) -> String {
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

fn parse(body: &[u8]) -> Result<CompletionRequest, WireError> {
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|error| WireError(format!("invalid request body: {error}")))?;
    if raw.model.len() > MAX_MODEL_BYTES {
        return Err(WireError(format!(
            "model: a name of {} bytes is longer than the {MAX_MODEL_BYTES} accepted",
            raw.model.len()
        )));
    }
    if raw.model.trim().is_empty() {
        return Err(WireError("model: a route or provider/model name is required".into()));
    }
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
            let mut converted = Tool {
                name: tool.function.name,
                description: tool.function.description,
                parameters: json!({"type": "object", "properties": {}}),
            };
            if let Some(parameters) = tool.function.parameters {
                converted.parameters = parameters;
            }
            Ok(converted)
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
    };
    Ok(CompletionRequest {
        model: raw.model,
        stream: raw.stream,
        include_usage: raw.stream_options.is_some_and(|options| options.include_usage),
        request,
    })
}

fn message((index, raw): (usize, RawMessage)) -> Result<Message, WireError> {
    let role = match raw.role.as_str() {
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

fn tool_choice(value: Value) -> Result<ToolChoice, WireError> {
    match &value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(WireError(format!("tool_choice: unknown value {other:?}"))),
        },
        Value::Object(object) => object
            .get("function")
            .and_then(|function| function.get("name"))
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Function(name.to_owned()))
            .ok_or_else(|| WireError("tool_choice: expected {\"function\": {\"name\"}}".into())),
        _ => Err(WireError("tool_choice: expected a string or an object".into())),
    }
}

fn response_format(value: Value) -> Result<ResponseFormat, WireError> {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let schema = value
                .get("json_schema")
                .ok_or_else(|| WireError("response_format.json_schema is required".into()))?;
            Ok(ResponseFormat::JsonSchema {
                name: schema.get("name").and_then(Value::as_str).unwrap_or("answer").to_owned(),
                schema: schema.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: schema.get("strict").and_then(Value::as_bool).unwrap_or(false),
            })
        }
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

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

/// A `chat.completion` object. `id` and `created` are the upstream's when it gave them.
pub fn completion_json(response: &ChatResponse, fallback_id: &str, now_unix: i64) -> Value {
    let mut message = json!({"role": "assistant", "content": response.text});
    if !response.tool_calls.is_empty() {
        let calls: Vec<Value> = response
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
        if response.text.is_empty() {
            message["content"] = Value::Null;
        }
    }
    json!({
        "id": response.id.as_deref().unwrap_or(fallback_id),
        "object": "chat.completion",
        "created": response.created.unwrap_or(now_unix),
        "model": response.model,
        "system_fingerprint": response.system_fingerprint,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": response.finish_reason.as_ref().map(finish_reason),
        }],
        "usage": usage_json(response.usage),
    })
}

/// What stays the same across the chunks of one streamed answer.
#[derive(Debug, Clone)]
pub struct ChunkFrame {
    /// The answer's id (the upstream's first id, else the gateway's).
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The model, as the upstream names it.
    pub model: String,
    /// The upstream's `system_fingerprint`, once seen.
    pub system_fingerprint: Option<String>,
}

/// A `chat.completion.chunk` object with one choice; `first` adds the assistant role.
pub fn chunk_json(frame: &ChunkFrame, chunk: &ChatChunk, first: bool) -> Value {
    let mut delta = Map::new();
    if first {
        delta.insert("role".into(), json!("assistant"));
    }
    if !chunk.text.is_empty() || first {
        delta.insert("content".into(), json!(chunk.text));
    }
    if !chunk.tool_calls.is_empty() {
        let calls: Vec<Value> = chunk
            .tool_calls
            .iter()
            .map(|call| {
                let mut function = Map::new();
                if let Some(name) = &call.name {
                    function.insert("name".into(), json!(name));
                }
                function.insert("arguments".into(), json!(call.arguments));
                let mut value = json!({"index": call.index, "function": function});
                if let Some(id) = &call.id {
                    value["id"] = json!(id);
                    value["type"] = json!("function");
                }
                value
            })
            .collect();
        delta.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({
        "id": frame.id,
        "object": "chat.completion.chunk",
        "created": frame.created,
        "model": frame.model,
        "system_fingerprint": frame.system_fingerprint,
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": chunk.finish_reason.as_ref().map(finish_reason),
        }],
    })
}

/// The last chunk when `stream_options.include_usage` is set: no choices, the usage.
pub fn usage_chunk_json(frame: &ChunkFrame, usage: Usage) -> Value {
    json!({
        "id": frame.id,
        "object": "chat.completion.chunk",
        "created": frame.created,
        "model": frame.model,
        "system_fingerprint": frame.system_fingerprint,
        "choices": [],
        "usage": usage_json(usage),
    })
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
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
        let value = completion_json(&response, "chatcmpl-gw", 5);
        assert_eq!(value["id"], "chatcmpl-up");
        assert_eq!(value["system_fingerprint"], "fp_1");
        assert_eq!(value["created"], 5);
        assert_eq!(value["choices"][0]["message"]["content"], "hello");
        assert_eq!(value["usage"]["total_tokens"], 4);
    }
}
