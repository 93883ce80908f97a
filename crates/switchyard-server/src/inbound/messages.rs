//! Anthropic's Messages format: `POST /v1/messages` read into a [`ChatRequest`] (a `system`
//! string or text blocks, content blocks of text, images, tool uses and tool results), the
//! answer written back as a `message` with content blocks, streamed as Anthropic's events
//! (`message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`), and failures in Anthropic's error shape.

use std::borrow::Cow;
use std::collections::VecDeque;

use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard::StreamError;
use switchyard_core::{
    Candidate, ChatRequest, ChatResponse, ContentPart, FinishReason, ImageUrl, Message,
    ReasoningEffort, Role, Tool, ToolCall, ToolChoice, Usage,
};

use super::{BlockWriter, Segment};
use crate::error::ServerError;
use crate::wire::{self, CompletionRequest, WireError};

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    messages: Vec<RawMessage<'a>>,
    #[serde(default)]
    system: Option<RawSystem>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    tool_choice: Option<RawToolChoice>,
    #[serde(default)]
    thinking: Option<RawThinking>,
}

/// Extended thinking: `{"type": "enabled", "budget_tokens": N}` or `{"type": "disabled"}`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawThinking {
    Enabled { budget_tokens: u32 },
    Disabled,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSystem {
    Text(String),
    Blocks(Vec<RawTextBlock>),
}

#[derive(Deserialize)]
struct RawTextBlock {
    text: String,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    content: RawContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawContent {
    Text(String),
    Blocks(Vec<RawBlock>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawBlock {
    Text {
        text: String,
    },
    Image {
        source: RawImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<RawContent>,
    },
    // A model's reasoning from an earlier turn: no other provider can take it back.
    Thinking,
    RedactedThinking,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Deserialize)]
struct RawTool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawToolChoice {
    Auto,
    Any,
    None,
    Tool { name: String },
}

/// Reads a Messages request body.
pub(crate) fn parse(body: &[u8]) -> Result<CompletionRequest, WireError> {
    let raw: RawRequest<'_> = serde_json::from_slice(body)
        .map_err(|error| WireError(format!("invalid request body: {error}")))?;
    wire::check_model(&raw.model)?;
    if raw.messages.is_empty() {
        return Err(WireError("messages: at least one message is required".into()));
    }
    let mut messages = Vec::with_capacity(raw.messages.len() + 1);
    match raw.system {
        Some(RawSystem::Text(text)) => messages.push(Message::system(text)),
        Some(RawSystem::Blocks(blocks)) if !blocks.is_empty() => {
            let text: Vec<String> = blocks.into_iter().map(|block| block.text).collect();
            messages.push(Message::system(text.join("\n")));
        }
        Some(RawSystem::Blocks(_)) | None => {}
    }
    for (index, raw) in raw.messages.into_iter().enumerate() {
        read_message(index, raw, &mut messages)?;
    }
    let tools = raw
        .tools
        .into_iter()
        .map(|tool| match tool.kind.as_deref() {
            None | Some("custom") => Ok(Tool {
                name: tool.name,
                description: tool.description,
                parameters: tool
                    .input_schema
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            }),
            Some(other) => Err(WireError(format!(
                "tools: type {other:?} is not supported (only client tools with an input_schema)"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = raw.tool_choice.map(|choice| match choice {
        RawToolChoice::Auto => ToolChoice::Auto,
        RawToolChoice::Any => ToolChoice::Required,
        RawToolChoice::None => ToolChoice::None,
        RawToolChoice::Tool { name } => ToolChoice::Function(name),
    });
    // Anthropic's `max_tokens` covers the thinking budget too; the router's is the answer's
    // own limit, and an adapter that thinks by budget adds the budget back.
    let (reasoning_effort, max_tokens) = match raw.thinking {
        Some(RawThinking::Enabled { budget_tokens }) => (
            Some(ReasoningEffort::from_budget_tokens(budget_tokens)),
            raw.max_tokens.map(|max| max.saturating_sub(budget_tokens).max(1)),
        ),
        Some(RawThinking::Disabled) | None => (None, raw.max_tokens),
    };
    let request = ChatRequest {
        messages,
        max_tokens,
        reasoning_effort,
        temperature: raw.temperature,
        top_p: raw.top_p,
        stop: raw.stop_sequences,
        tools,
        tool_choice,
        ..ChatRequest::default()
    };
    Ok(super::completion_request(raw.model, raw.stream, request))
}

/// One Messages message as the router's messages: a user message's tool results become tool
/// messages (first, as Anthropic puts them), its other blocks one user message; an
/// assistant's tool uses become its tool calls.
fn read_message(
    index: usize,
    raw: RawMessage<'_>,
    out: &mut Vec<Message>,
) -> Result<(), WireError> {
    let role = match &*raw.role {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(WireError(format!(
                "messages[{index}].role: unknown role {other:?} (user or assistant)"
            )));
        }
    };
    let blocks = match raw.content {
        RawContent::Text(text) => {
            out.push(Message::text(role, text));
            return Ok(());
        }
        RawContent::Blocks(blocks) => blocks,
    };
    let mut content = Vec::new();
    let mut tool_calls = Vec::new();
    for (block_idx, block) in blocks.into_iter().enumerate() {
        let at = || format!("messages[{index}].content[{block_idx}]");
        match block {
            RawBlock::Text { text } => content.push(ContentPart::Text { text }),
            RawBlock::Image { source } => content.push(image(source)),
            RawBlock::ToolUse { id, name, input } if role == Role::Assistant => {
                let arguments = if input.is_null() { "{}".to_owned() } else { input.to_string() };
                tool_calls.push(ToolCall { id, name, arguments });
            }
            RawBlock::ToolResult { tool_use_id, content: result } if role == Role::User => {
                let parts = match result {
                    None => Vec::new(),
                    Some(RawContent::Text(text)) => vec![ContentPart::Text { text }],
                    Some(RawContent::Blocks(blocks)) => blocks
                        .into_iter()
                        .filter_map(|block| match block {
                            RawBlock::Text { text } => Some(Ok(ContentPart::Text { text })),
                            RawBlock::Image { source } => Some(Ok(image(source))),
                            RawBlock::Thinking | RawBlock::RedactedThinking => None,
                            _ => Some(Err(WireError(format!(
                                "{}: a tool result holds text and images only",
                                at()
                            )))),
                        })
                        .collect::<Result<_, _>>()?,
                };
                out.push(Message {
                    content: parts,
                    ..Message::tool_result(tool_use_id, String::new())
                });
            }
            RawBlock::ToolUse { .. } => {
                return Err(WireError(format!("{}: tool_use is an assistant's block", at())));
            }
            RawBlock::ToolResult { .. } => {
                return Err(WireError(format!("{}: tool_result is a user's block", at())));
            }
            RawBlock::Thinking | RawBlock::RedactedThinking => {}
            RawBlock::Other => {
                return Err(WireError(format!(
                    "{}: unsupported block type (text, image, tool_use, tool_result)",
                    at()
                )));
            }
        }
    }
    if !content.is_empty() || !tool_calls.is_empty() {
        out.push(Message { role, content, tool_calls, tool_call_id: None, name: None });
    }
    Ok(())
}

fn image(source: RawImageSource) -> ContentPart {
    let url = match source {
        RawImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        RawImageSource::Url { url } => url,
    };
    ContentPart::ImageUrl { image_url: ImageUrl { url, detail: None } }
}

/// Anthropic's name for why the model stopped.
fn stop_reason(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        Some(FinishReason::Stop | FinishReason::Other(_)) | None => "end_turn",
    }
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u32,
    output_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(usage: Usage) -> Self {
        Self { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens }
    }
}

/// A `message` object, borrowing the router's answer.
#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Value },
}

/// A call's arguments as the object Anthropic's `input` is (`{}` when they are not one).
fn input(call: &ToolCall) -> Value {
    call.arguments_object().unwrap_or_else(|| Value::Object(Map::new()))
}

/// The answer as a Messages `message`.
pub(crate) fn message<'a>(response: &'a ChatResponse, request_id: &str) -> MessageOut<'a> {
    let mut content = Vec::with_capacity(1 + response.tool_calls.len());
    if !response.text.is_empty() || response.tool_calls.is_empty() {
        content.push(BlockOut::Text { text: &response.text });
    }
    for call in &response.tool_calls {
        content.push(BlockOut::ToolUse { id: &call.id, name: &call.name, input: input(call) });
    }
    MessageOut {
        id: response
            .id
            .as_deref()
            .map_or_else(|| Cow::Owned(format!("msg_{request_id}")), Cow::Borrowed),
        kind: "message",
        role: "assistant",
        model: &response.model,
        content,
        stop_reason: Some(stop_reason(response.finish_reason.as_ref())),
        stop_sequence: None,
        usage: response.usage.into(),
    }
}

/// Anthropic's `error.type` for a status.
fn error_type(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 408 | 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// A failure in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`, with
/// the gateway's typed code beside them, the status and headers of any other format.
pub(crate) fn error(error: ServerError) -> Response {
    let body = serde_json::json!({
        "type": "error",
        "error": {
            "type": error_type(error.status()),
            "message": error.to_string(),
            "code": error.code(),
        },
    });
    error.respond_with(body)
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the router estimates them.
pub(crate) fn count_tokens(body: &[u8]) -> Result<Response, WireError> {
    let parsed = parse(body).map_err(|WireError(message)| WireError(wire::shortened(message)))?;
    let estimate = switchyard::Estimate::of(&parsed.request, 0);
    Ok(axum::Json(serde_json::json!({"input_tokens": estimate.prompt_tokens})).into_response())
}

/// Writes a routed stream as Anthropic's events.
pub(crate) struct Events {
    id: String,
}

impl Events {
    pub(crate) fn new(request_id: &str) -> Self {
        Self { id: format!("msg_{request_id}") }
    }
}

fn event(name: &'static str, data: &impl Serialize) -> Event {
    Event::default().event(name).json_data(data).expect("invariant: a wire event serializes")
}

impl BlockWriter for Events {
    fn start(&mut self, served_by: &Candidate, out: &mut VecDeque<Event>) {
        let message = serde_json::json!({
            "type": "message_start",
            "message": {
                "id": self.id, "type": "message", "role": "assistant",
                "model": served_by.model.as_str(), "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        });
        out.push_back(event("message_start", &message));
    }

    fn segment(&mut self, segment: Segment<'_>, out: &mut VecDeque<Event>) {
        out.push_back(block_event(segment));
    }

    fn end(
        &mut self,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
        out: &mut VecDeque<Event>,
    ) {
        let delta = serde_json::json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(finish.as_ref()), "stop_sequence": null},
            "usage": UsageOut::from(usage.unwrap_or_default()),
        });
        out.push_back(event("message_delta", &delta));
        out.push_back(event("message_stop", &serde_json::json!({"type": "message_stop"})));
    }

    fn broken(&mut self, error: &StreamError, out: &mut VecDeque<Event>) {
        let body = serde_json::json!({"type": "error", "error": {
            "type": "api_error", "message": error.to_string(), "code": "STREAM_INTERRUPTED",
        }});
        out.push_back(event("error", &body));
    }
}

fn block_event(segment: Segment<'_>) -> Event {
    use serde_json::json;
    match segment {
        Segment::TextStart { index } => event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
        ),
        Segment::Text { index, delta } => event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": delta}}),
        ),
        Segment::CallStart { index, id, name } => event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ),
        Segment::Args { index, delta } => event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": delta}}),
        ),
        Segment::Stop { index, .. } => {
            event("content_block_stop", &json!({"type": "content_block_stop", "index": index}))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_system_blocks_images_tool_uses_and_results() {
        let body = json!({
            "model": "default", "max_tokens": 64, "stop_sequences": ["END"],
            "system": [{"type": "text", "text": "be brief"}],
            "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "tu1", "name": "weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tu1", "content": "rain"},
                    {"type": "text", "text": "and?"}]},
            ],
        });
        let parsed = parse(body.to_string().as_bytes()).expect("parses");
        let request = parsed.request;
        let roles: Vec<Role> = request.messages.iter().map(|message| message.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::User]);
        assert_eq!(request.messages[0].joined_text(), "be brief");
        assert_eq!(
            request.messages[1].content[1],
            ContentPart::ImageUrl {
                image_url: ImageUrl { url: "data:image/png;base64,AAA".into(), detail: None }
            }
        );
        assert_eq!(request.messages[2].tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("tu1"));
        assert_eq!(request.messages[3].joined_text(), "rain");
        assert_eq!(request.stop, ["END"]);
        assert_eq!(request.tool_choice, Some(ToolChoice::Required));
        assert_eq!(request.max_tokens, Some(64));
    }

    #[test]
    fn wrong_blocks_are_named() {
        let refused = |messages: Value| {
            let body = json!({"model": "m", "max_tokens": 1, "messages": messages});
            parse(body.to_string().as_bytes()).expect_err("refused").to_string()
        };
        assert_eq!(
            refused(json!([{"role": "user", "content": [{"type": "document", "source": {}}]}])),
            "messages[0].content[0]: unsupported block type (text, image, tool_use, tool_result)"
        );
        assert_eq!(
            refused(json!([{"role": "system", "content": "x"}])),
            "messages[0].role: unknown role \"system\" (user or assistant)"
        );
        assert_eq!(
            refused(
                json!([{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f"}]}])
            ),
            "messages[0].content[0]: tool_use is an assistant's block"
        );
    }

    #[test]
    fn the_answer_has_text_and_tool_use_blocks_and_anthropic_usage() {
        let response = ChatResponse {
            model: "m".into(),
            text: "Let me look.".into(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into(),
            }],
            finish_reason: Some(FinishReason::ToolCalls),
            usage: Usage::new(5, 7),
            ..ChatResponse::default()
        };
        let value = serde_json::to_value(message(&response, "req-1")).expect("json");
        assert_eq!(
            value,
            json!({
                "id": "msg_req-1", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 7},
            })
        );
    }
}
