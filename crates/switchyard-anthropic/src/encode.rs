//! [`ChatRequest`] → Messages API body. Pure: no I/O, no clock.
//!
//! What moves where (the full table is in `docs/providers.md`):
//! - system messages are joined (blank line between) into the top-level `system` field;
//! - a tool result becomes a `tool_result` block of a `user` message (consecutive results
//!   share one message), an assistant's tool calls become `tool_use` blocks whose `input` is
//!   the parsed arguments object;
//! - `max_tokens` is required by Anthropic: an absent limit becomes
//!   [`DEFAULT_MAX_TOKENS`] (or the configured default);
//! - `temperature` above Anthropic's 1.0 ceiling is clamped to 1.0; `seed` and a message's
//!   `name` have no Anthropic field and are dropped with a debug line;
//! - `reasoning_effort` becomes `thinking: {type: "enabled", budget_tokens}` with
//!   [`ReasoningEffort::budget_tokens`] (1024, 2048, 8192, 16384); since Anthropic counts the
//!   thinking inside `max_tokens`, the budget is added to the answer's limit, and
//!   `temperature` (which thinking refuses) and a `top_p` below 0.95 are dropped. Thinking
//!   cannot go with a forced tool call (`tool_choice` any or a named tool, JSON output), so
//!   there the effort is dropped with a debug line;
//! - JSON output (`response_format`) has no Messages field: it is asked for as a forced call
//!   of an extra tool whose `input_schema` is the wanted schema, and [`crate::decode`] turns
//!   that call back into the answer's text.

use serde_json::{Value, json};
use switchyard_core::{
    ChatRequest, ContentPart, Message, ReasoningEffort, ResponseFormat, Role, ToolChoice,
};

use crate::AnthropicError;
use crate::wire::{
    ContentBlock, ImageSource, MessagesRequest, WireContent, WireMessage, WireRole, WireThinking,
    WireTool, WireToolChoice,
};

/// The output token limit sent when a request sets none. Anthropic requires one; 4096 is the
/// largest limit every current Claude model accepts, so no model refuses it.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The name of the tool that carries a `json_object` answer (a `json_schema` answer uses the
/// schema's own name).
pub const JSON_OBJECT_TOOL: &str = "json_answer";

/// A request ready to send, and what decoding its answer needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The JSON body.
    pub body: Value,
    /// The tool standing for a JSON answer, when the request asked for one: its call is the
    /// answer's text, not a tool call.
    pub answer_tool: Option<String>,
}

/// Encodes `request` for `model`, using `default_max_tokens` when the request sets no limit.
///
/// # Errors
/// [`AnthropicError::Refused`] for what Anthropic cannot take: no user or assistant message,
/// an image in a system or assistant message, a tool result without the call id it answers,
/// tool-call arguments that are not a JSON object, or a JSON-output schema that is not an
/// object schema (Anthropic tool inputs are objects) or shares a name with a tool.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
    stream: bool,
) -> Result<Encoded, AnthropicError> {
    let system = system_prompt(&request.messages)?;
    let messages = encode_messages(&request.messages)?;
    if messages.is_empty() {
        return Err(AnthropicError::Refused(
            "anthropic needs at least one user or assistant message".into(),
        ));
    }
    if request.seed.is_some() {
        tracing::debug!("anthropic takes no seed; dropped");
    }
    let temperature = request.temperature.map(|temperature| {
        if temperature > 1.0 {
            tracing::debug!(temperature, "anthropic's temperature ceiling is 1.0; clamped");
            1.0
        } else {
            temperature
        }
    });
    let mut tools: Vec<WireTool> = request
        .tools
        .iter()
        .map(|tool| WireTool {
            name: tool.name.clone(),
            description: tool.description.clone(),
            input_schema: tool.parameters.clone(),
        })
        .collect();
    let mut tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => WireToolChoice::Auto,
        ToolChoice::None => WireToolChoice::None,
        ToolChoice::Required => WireToolChoice::Any,
        ToolChoice::Function(name) => WireToolChoice::Tool { name: name.clone() },
    });
    let answer_tool = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(format) => {
            let tool = answer_tool(format, &tools)?;
            let name = tool.name.clone();
            tool_choice = Some(answer_tool_choice(request, &name));
            tools.push(tool);
            Some(name)
        }
    };
    let max_tokens = request.max_tokens.unwrap_or(default_max_tokens);
    let thinking = thinking(request.reasoning_effort, tool_choice.as_ref());
    let (max_tokens, temperature, top_p) = match thinking {
        None => (max_tokens, temperature, request.top_p),
        Some(WireThinking::Enabled { budget_tokens }) => {
            if temperature.is_some() {
                tracing::debug!("anthropic takes no temperature while thinking; dropped");
            }
            // `max_tokens` must stay above the budget, even for an answer limit of 0.
            let max_tokens = max_tokens.max(1).saturating_add(budget_tokens);
            (max_tokens, None, request.top_p.filter(|p| *p >= 0.95))
        }
    };
    let wire = MessagesRequest {
        model: model.to_owned(),
        max_tokens,
        messages,
        system,
        temperature,
        top_p,
        stop_sequences: request.stop.clone(),
        stream,
        tools,
        tool_choice,
        thinking,
    };
    let mut body = serde_json::to_value(&wire).expect("invariant: wire types serialize to JSON");
    for field in request.merge_extra(&mut body) {
        tracing::debug!(%field, "an extra field replaced the adapter's value");
    }
    Ok(Encoded { body, answer_tool })
}

/// Thinking for `effort`, unless the tool choice forces a call, which Anthropic refuses to
/// combine with thinking.
fn thinking(
    effort: Option<ReasoningEffort>,
    tool_choice: Option<&WireToolChoice>,
) -> Option<WireThinking> {
    let effort = effort?;
    if matches!(tool_choice, Some(WireToolChoice::Any | WireToolChoice::Tool { .. })) {
        tracing::debug!(
            effort = effort.as_str(),
            "anthropic cannot think with a forced tool call; dropped"
        );
        return None;
    }
    Some(WireThinking::Enabled { budget_tokens: effort.budget_tokens() })
}

/// The system messages' text joined by a blank line, wherever they stand in the conversation.
fn system_prompt(messages: &[Message]) -> Result<Option<String>, AnthropicError> {
    let mut parts = Vec::new();
    for message in messages.iter().filter(|message| message.role == Role::System) {
        if message.has_image() {
            return Err(AnthropicError::Refused("anthropic's system prompt takes no image".into()));
        }
        parts.push(message.joined_text());
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("\n\n")) })
}

/// The conversation without its system messages. Consecutive tool results share one `user`
/// message: Anthropic wants every result of an assistant turn's calls in the next message.
fn encode_messages(messages: &[Message]) -> Result<Vec<WireMessage>, AnthropicError> {
    let mut wire: Vec<WireMessage> = Vec::with_capacity(messages.len());
    let mut previous_was_tool = false;
    for message in messages.iter().filter(|message| message.role != Role::System) {
        let encoded = encode_message(message)?;
        match (wire.last_mut(), previous_was_tool && message.role == Role::Tool, encoded.content) {
            (
                Some(WireMessage { content: WireContent::Blocks(results), .. }),
                true,
                WireContent::Blocks(more),
            ) => {
                results.extend(more);
            }
            (_, _, content) => wire.push(WireMessage { role: encoded.role, content }),
        }
        previous_was_tool = message.role == Role::Tool;
    }
    Ok(wire)
}

fn encode_message(message: &Message) -> Result<WireMessage, AnthropicError> {
    if message.name.is_some() {
        tracing::debug!("anthropic messages have no participant name; dropped");
    }
    match message.role {
        Role::User => Ok(WireMessage { role: WireRole::User, content: encode_parts(message)? }),
        Role::Assistant => {
            if message.has_image() {
                return Err(AnthropicError::Refused(
                    "anthropic assistant messages take no image".into(),
                ));
            }
            if message.tool_calls.is_empty() {
                return Ok(WireMessage {
                    role: WireRole::Assistant,
                    content: encode_parts(message)?,
                });
            }
            let mut blocks = text_blocks(message);
            for call in &message.tool_calls {
                blocks.push(ContentBlock::ToolUse {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    input: call
                        .arguments_object()
                        .ok_or_else(|| AnthropicError::Refused(call.arguments_not_an_object()))?,
                });
            }
            Ok(WireMessage { role: WireRole::Assistant, content: WireContent::Blocks(blocks) })
        }
        Role::Tool => {
            let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
                AnthropicError::Refused("a tool result needs the tool_call_id it answers".into())
            })?;
            let block = ContentBlock::ToolResult {
                tool_use_id,
                content: encode_parts(message)?,
                is_error: None,
            };
            Ok(WireMessage { role: WireRole::User, content: WireContent::Blocks(vec![block]) })
        }
        Role::System => unreachable!("invariant: system messages are filtered out before"),
    }
}

/// A bare string for a single text part (the common case, and the smallest body), blocks
/// otherwise.
fn encode_parts(message: &Message) -> Result<WireContent, AnthropicError> {
    if let [ContentPart::Text { text }] = message.content.as_slice() {
        return Ok(WireContent::Text(text.clone()));
    }
    let mut blocks = Vec::with_capacity(message.content.len());
    for part in &message.content {
        blocks.push(match part {
            ContentPart::Text { text } => ContentBlock::Text { text: text.clone() },
            ContentPart::ImageUrl { image_url } => {
                if image_url.detail.is_some() {
                    tracing::debug!("anthropic images take no detail hint; dropped");
                }
                let source = match image_url.as_base64() {
                    Some((media_type, data)) => ImageSource::Base64 {
                        media_type: media_type.to_owned(),
                        data: data.to_owned(),
                    },
                    None => ImageSource::Url { url: image_url.url.clone() },
                };
                ContentBlock::Image { source }
            }
        });
    }
    Ok(WireContent::Blocks(blocks))
}

fn text_blocks(message: &Message) -> Vec<ContentBlock> {
    message
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => {
                Some(ContentBlock::Text { text: text.clone() })
            }
            ContentPart::Text { .. } | ContentPart::ImageUrl { .. } => None,
        })
        .collect()
}

/// The tool whose forced call carries a JSON answer.
fn answer_tool(format: &ResponseFormat, tools: &[WireTool]) -> Result<WireTool, AnthropicError> {
    let (name, schema) = match format {
        ResponseFormat::JsonObject => (JSON_OBJECT_TOOL.to_owned(), json!({"type": "object"})),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            if *strict {
                tracing::debug!("anthropic tools have no strict mode; the schema is a guide");
            }
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(AnthropicError::Refused(format!(
                    "anthropic can give JSON output only for an object schema; {name} is not one"
                )));
            }
            (name.clone(), schema.clone())
        }
        ResponseFormat::Text => unreachable!("invariant: text needs no answer tool"),
    };
    if tools.iter().any(|tool| tool.name == name) {
        return Err(AnthropicError::Refused(format!(
            "the JSON output schema {name} has the name of a tool"
        )));
    }
    Ok(WireTool {
        name,
        description: Some(
            "Give your final answer by calling this tool; its input is the answer.".into(),
        ),
        input_schema: schema,
    })
}

/// With JSON output the answer must come as a tool call: the answer tool's when no real tool
/// may be called, any tool's otherwise (a real one now, the answer later). A named function
/// stays forced: the answer comes on a later turn.
fn answer_tool_choice(request: &ChatRequest, answer_tool: &str) -> WireToolChoice {
    match &request.tool_choice {
        Some(ToolChoice::Function(name)) => WireToolChoice::Tool { name: name.clone() },
        _ if request.tools.is_empty() || request.tool_choice == Some(ToolChoice::None) => {
            WireToolChoice::Tool { name: answer_tool.to_owned() }
        }
        Some(ToolChoice::Auto | ToolChoice::Required | ToolChoice::None) | None => {
            WireToolChoice::Any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    mod shared_conversation {
        // Included, not `#[path]`ed: an inline module's path would start in `src/encode/tests/`.
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../switchyard-core/tests/support/conversation.rs"
        ));
    }
    use proptest::prelude::*;
    use shared_conversation::conversation;
    use switchyard_core::{ImageUrl, Tool, ToolCall};

    fn wire(request: &ChatRequest) -> MessagesRequest {
        let encoded =
            encode_request(request, "claude-test", DEFAULT_MAX_TOKENS, false).expect("encodes");
        serde_json::from_value(encoded.body).expect("reads back")
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_within_a_raised_limit() {
        let mut request = ChatRequest::from_user("think").with_max_tokens(500);
        request.temperature = Some(0.3);
        request.top_p = Some(0.5);
        assert_eq!(wire(&request).thinking, None);
        for effort in ReasoningEffort::ALL {
            request.reasoning_effort = Some(effort);
            let body = wire(&request);
            let budget_tokens = effort.budget_tokens();
            assert_eq!(body.thinking, Some(WireThinking::Enabled { budget_tokens }));
            assert!(budget_tokens >= 1024, "anthropic's minimum budget");
            assert_eq!(body.max_tokens, 500 + budget_tokens, "the answer keeps its 500");
            assert_eq!((body.temperature, body.top_p), (None, None), "thinking refuses them");
        }
        request.top_p = Some(0.97);
        assert_eq!(wire(&request).top_p, Some(0.97), "a top_p of 0.95 or more is allowed");
        request.max_tokens = None;
        let encoded = encode_request(&request, "claude-test", 1000, false).expect("encodes");
        assert_eq!(
            encoded.body["thinking"],
            serde_json::json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(encoded.body["max_tokens"], 1000 + 16384);
        request.max_tokens = Some(0);
        assert_eq!(wire(&request).max_tokens, 1 + 16384, "always above the budget");
    }

    #[test]
    fn a_forced_tool_call_goes_without_thinking() {
        let mut request = ChatRequest::from_user("call it");
        request.reasoning_effort = Some(ReasoningEffort::Low);
        request.temperature = Some(0.3);
        request.tools.push(Tool {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        });
        request.tool_choice = Some(ToolChoice::Auto);
        assert!(wire(&request).thinking.is_some(), "auto leaves the choice to the model");
        request.tool_choice = Some(ToolChoice::Required);
        let body = wire(&request);
        assert_eq!(body.thinking, None);
        assert_eq!(body.temperature, Some(0.3), "without thinking the temperature stays");
        request.tool_choice = None;
        request.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(wire(&request).thinking, None, "JSON output is a forced call");
    }

    #[test]
    fn system_goes_top_level_and_max_tokens_gets_the_default() {
        let mut request = ChatRequest::from_user("hi");
        request.messages.insert(0, Message::system("be brief"));
        request.messages.push(Message::system("and kind"));
        let wire = wire(&request);
        assert_eq!(wire.system.as_deref(), Some("be brief\n\nand kind"));
        assert_eq!(wire.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(
            wire.messages,
            vec![WireMessage { role: WireRole::User, content: WireContent::Text("hi".into()) }]
        );
    }

    #[test]
    fn sampling_fields_map_clamp_or_drop() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(77);
        request.temperature = Some(1.6);
        request.top_p = Some(0.9);
        request.seed = Some(42);
        request.stop = vec!["END".into(), "\n\n".into()];
        let body = encode_request(&request, "m", 10, true).expect("encodes").body;
        assert_eq!(body["max_tokens"], 77);
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["stop_sequences"], json!(["END", "\n\n"]));
        assert_eq!(body["stream"], true);
        assert!(body.get("seed").is_none(), "{body}");
    }

    #[test]
    fn images_become_base64_or_url_sources() {
        let mut message = Message::user("what is this?");
        message.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl { url: "data:image/png;base64,iVBORw0K".into(), detail: None },
        });
        message.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: "https://example.com/cat.jpg".into(),
                detail: Some("low".into()),
            },
        });
        let request = ChatRequest { messages: vec![message], ..ChatRequest::default() };
        let body = encode_request(&request, "m", 10, false).expect("encodes").body;
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ])
        );
    }

    #[test]
    fn tools_calls_and_results_take_anthropic_shapes() {
        let mut assistant = Message::assistant("let me look");
        assistant.tool_calls.push(ToolCall {
            id: "toolu_1".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        });
        let request = ChatRequest {
            messages: vec![
                Message::user("weather in Paris?"),
                assistant,
                Message::tool_result("toolu_1", "18C, sunny"),
            ],
            tools: vec![Tool {
                name: "weather".into(),
                description: Some("current weather".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            }],
            tool_choice: Some(ToolChoice::Required),
            ..ChatRequest::default()
        };
        let body = encode_request(&request, "m", 10, false).expect("encodes").body;
        assert_eq!(
            body["tools"],
            json!([{"name": "weather", "description": "current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        );
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}])
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"}]})
        );
    }

    #[test]
    fn parallel_tool_results_share_one_user_message() {
        let mut assistant = Message::assistant("");
        for (id, city) in [("toolu_a", "Paris"), ("toolu_b", "Rome")] {
            assistant.tool_calls.push(ToolCall {
                id: id.into(),
                name: "weather".into(),
                arguments: format!(r#"{{"city":"{city}"}}"#),
            });
        }
        let request = ChatRequest {
            messages: vec![
                Message::user("weather in Paris and Rome?"),
                assistant,
                Message::tool_result("toolu_a", "18C"),
                Message::tool_result("toolu_b", "24C"),
                Message::user("and tomorrow?"),
            ],
            ..ChatRequest::default()
        };
        let body = encode_request(&request, "m", 10, false).expect("encodes").body;
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "24C"}]})
        );
        assert_eq!(body["messages"][3], json!({"role": "user", "content": "and tomorrow?"}));
    }

    #[test]
    fn json_schema_output_is_a_forced_answer_tool() {
        let schema =
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let mut request = ChatRequest::from_user("a number");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "number".into(),
            schema: schema.clone(),
            strict: true,
        });
        let encoded = encode_request(&request, "m", 10, false).expect("encodes");
        assert_eq!(encoded.answer_tool.as_deref(), Some("number"));
        assert_eq!(encoded.body["tools"][0]["input_schema"], schema);
        assert_eq!(encoded.body["tool_choice"], json!({"type": "tool", "name": "number"}));

        request.response_format = Some(ResponseFormat::JsonObject);
        let encoded = encode_request(&request, "m", 10, false).expect("encodes");
        assert_eq!(encoded.answer_tool.as_deref(), Some(JSON_OBJECT_TOOL));
    }

    #[test]
    fn json_output_beside_real_tools_lets_the_model_pick_either() {
        let mut request = ChatRequest::from_user("a number");
        request.tools.push(Tool {
            name: "lookup".into(),
            description: None,
            parameters: json!({"type": "object"}),
        });
        request.response_format = Some(ResponseFormat::JsonObject);
        let body = encode_request(&request, "m", 10, false).expect("encodes").body;
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
        assert_eq!(body["tools"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn what_anthropic_cannot_take_is_refused_clearly() {
        let refused = |request: &ChatRequest| {
            let error = encode_request(request, "m", 10, false).expect_err("refused");
            assert_eq!(error.kind(), switchyard_core::ErrorKind::BadRequest);
            error.to_string()
        };
        let only_system =
            ChatRequest { messages: vec![Message::system("x")], ..ChatRequest::default() };
        assert!(refused(&only_system).contains("at least one"));
        let mut orphan = Message::tool_result("x", "y");
        orphan.tool_call_id = None;
        let request = ChatRequest { messages: vec![orphan], ..ChatRequest::default() };
        assert!(refused(&request).contains("tool_call_id"));
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "1".into(),
            name: "f".into(),
            arguments: "[1]".into(),
        });
        let request = ChatRequest { messages: vec![assistant], ..ChatRequest::default() };
        assert!(refused(&request).contains("not a JSON object"));
        let mut request = ChatRequest::from_user("x");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "list".into(),
            schema: json!({"type": "array"}),
            strict: false,
        });
        assert!(refused(&request).contains("object schema"));
    }

    proptest! {
        #[test]
        fn the_wire_body_keeps_system_order_roles_stops_and_limit(request in conversation(200_000, 4)) {
            let wire = wire(&request);
            let system: Vec<String> = request.messages.iter()
                .filter(|message| message.role == Role::System)
                .map(Message::joined_text)
                .collect();
            prop_assert_eq!(wire.system, (!system.is_empty()).then(|| system.join("\n\n")));
            let sent: Vec<(WireRole, String)> = wire.messages.iter().map(|message| {
                let WireContent::Text(text) = &message.content else {
                    panic!("a text message is sent as a string: {message:?}");
                };
                (message.role, text.clone())
            }).collect();
            let asked: Vec<(WireRole, String)> = request.messages.iter()
                .filter(|message| message.role != Role::System)
                .map(|message| {
                    let role = if message.role == Role::User { WireRole::User } else { WireRole::Assistant };
                    (role, message.joined_text())
                })
                .collect();
            prop_assert_eq!(sent, asked);
            prop_assert_eq!(wire.stop_sequences, request.stop.clone());
            prop_assert_eq!(wire.max_tokens, request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
            prop_assert!(wire.temperature.is_none_or(|temperature| temperature <= 1.0));
        }
    }

    #[test]
    fn extra_fields_are_copied_and_tags_are_not() {
        let mut request = ChatRequest::from_user("x");
        request.extra.insert("top_k".into(), json!(5));
        request.extra.insert("metadata".into(), json!({"user_id": "u1"}));
        request.tags.push("secret-route".into());
        let body = encode_request(&request, "m", 10, false).expect("encodes").body;
        assert_eq!(body["top_k"], 5);
        assert_eq!(body["metadata"]["user_id"], "u1");
        assert!(!body.to_string().contains("secret-route"));
    }
}
