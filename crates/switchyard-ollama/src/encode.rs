//! [`ChatRequest`] → `/api/chat` body. Pure: no I/O, no clock.
//!
//! Ollama's messages are close to OpenAI's: system messages stay in place, roles keep their
//! names. What moves (the full table is in `docs/providers.md`): the output limit, sampling
//! and stop sequences go into `options` (`num_predict`, ...); JSON output is `format` (`"json"`
//! or the schema); an image is its base64 payload in `images`; a tool result names its
//! function in `tool_name`, found from the call it answers. Ollama has no `tool_choice`:
//! `none` sends no tools, `function` sends only that tool, `required` cannot be enforced and
//! is dropped with a debug line.

use serde_json::Value;
use switchyard_core::{ChatRequest, ContentPart, Message, ResponseFormat, Role, ToolChoice};

use crate::OllamaError;
use crate::wire::{
    ChatBody, Options, WireFunction, WireFunctionCall, WireMessage, WireRole, WireTool,
    WireToolCall,
};

/// The prefix of tool-call ids this adapter makes up (Ollama gives calls no id).
pub const SYNTHETIC_CALL_PREFIX: &str = "ollama_call_";

/// Encodes `request` for `model`.
///
/// # Errors
/// [`OllamaError::Refused`] for what Ollama cannot take: no message, an image that is a URL
/// rather than a `data:` URI, or tool-call arguments that are not a JSON object.
pub fn encode_request(
    request: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<Value, OllamaError> {
    if request.messages.is_empty() {
        return Err(OllamaError::Refused("ollama needs at least one message".into()));
    }
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(message_idx, message)| encode_message(message, &request.messages[..message_idx]))
        .collect::<Result<Vec<_>, _>>()?;
    let tools = match &request.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Function(name)) => {
            tracing::debug!(function = %name, "ollama cannot force a call; only that tool is offered");
            request.tools.iter().filter(|tool| &tool.name == name).collect()
        }
        Some(ToolChoice::Required) => {
            tracing::debug!("ollama cannot require a tool call; tool_choice dropped");
            request.tools.iter().collect()
        }
        Some(ToolChoice::Auto) | None => request.tools.iter().collect(),
    };
    let tools = tools
        .into_iter()
        .map(|tool| WireTool {
            kind: "function".into(),
            function: WireFunction {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            },
        })
        .collect();
    let format = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(Value::String("json".into())),
        Some(ResponseFormat::JsonSchema { schema, .. }) => Some(schema.clone()),
    };
    let options = Options {
        num_predict: request.max_tokens.map(i64::from),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request.stop.clone(),
        seed: request.seed,
    };
    let wire = ChatBody {
        model: model.to_owned(),
        messages,
        stream,
        tools,
        format,
        options: (!options.is_empty()).then_some(options),
        // Any effort asks the model to think: Ollama has an on/off switch, not a budget.
        think: request.reasoning_effort.map(|_| true),
    };
    let mut body = serde_json::to_value(&wire).expect("invariant: wire types serialize to JSON");
    for field in request.merge_extra(&mut body) {
        tracing::debug!(%field, "an extra field replaced the adapter's value");
    }
    Ok(body)
}

fn encode_message(message: &Message, earlier: &[Message]) -> Result<WireMessage, OllamaError> {
    if message.name.is_some() && message.role != Role::Tool {
        tracing::debug!("ollama messages have no participant name; dropped");
    }
    let mut images = Vec::new();
    for part in &message.content {
        if let ContentPart::ImageUrl { image_url } = part {
            let (_, data) = image_url.as_base64().ok_or_else(|| {
                OllamaError::Refused(
                    "ollama takes images only inline, as data: URIs; this one is a URL".into(),
                )
            })?;
            images.push(data.to_owned());
        }
    }
    let tool_calls = message
        .tool_calls
        .iter()
        .map(|call| {
            Ok(WireToolCall {
                id: None,
                function: WireFunctionCall {
                    name: call.name.clone(),
                    arguments: call
                        .arguments_object()
                        .ok_or_else(|| OllamaError::Refused(call.arguments_not_an_object()))?,
                },
            })
        })
        .collect::<Result<Vec<_>, OllamaError>>()?;
    let tool_name = match message.role {
        Role::Tool => {
            let called = message.tool_call_id.as_deref().and_then(|call_id| {
                earlier
                    .iter()
                    .rev()
                    .flat_map(|message| &message.tool_calls)
                    .find(|call| call.id == call_id)
                    .map(|call| call.name.clone())
            });
            let name = called.or_else(|| message.name.clone());
            if name.is_none() {
                tracing::debug!("a tool result answers no known call; sent without tool_name");
            }
            name
        }
        Role::System | Role::User | Role::Assistant => None,
    };
    Ok(WireMessage {
        role: match message.role {
            Role::System => WireRole::System,
            Role::User => WireRole::User,
            Role::Assistant => WireRole::Assistant,
            Role::Tool => WireRole::Tool,
        },
        content: message.joined_text(),
        images,
        tool_calls,
        tool_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::json;
    use switchyard_core::{ImageUrl, Tool, ToolCall};

    fn wire(request: &ChatRequest) -> ChatBody {
        serde_json::from_value(encode_request(request, "llama3.2", false).expect("encodes"))
            .expect("reads back")
    }

    #[test]
    fn options_carry_the_limit_sampling_and_stops() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(32);
        request.messages.insert(0, Message::system("be brief"));
        request.temperature = Some(0.2);
        request.top_p = Some(0.9);
        request.seed = Some(-5);
        request.stop = vec!["\n\n".into()];
        let body = encode_request(&request, "llama3.2", true).expect("encodes");
        assert_eq!(body["stream"], true);
        assert_eq!(body["model"], "llama3.2");
        assert_eq!(
            body["options"],
            json!({"num_predict": 32, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\n"], "seed": -5})
        );
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "be brief"}));
        let bare = encode_request(&ChatRequest::from_user("hi"), "m", false).expect("encodes");
        assert_eq!(bare["stream"], false, "stream is always sent: ollama's default is true");
        assert!(bare.get("options").is_none());
    }

    #[test]
    fn any_reasoning_effort_asks_the_model_to_think() {
        for effort in switchyard_core::ReasoningEffort::ALL {
            let mut request = ChatRequest::from_user("hi");
            request.reasoning_effort = Some(effort);
            assert_eq!(wire(&request).think, Some(true), "{effort:?}");
        }
        let bare = encode_request(&ChatRequest::from_user("hi"), "m", false).expect("encodes");
        assert!(bare.get("think").is_none(), "no effort: the model's default");
    }

    #[test]
    fn images_tools_and_results_take_ollama_shapes() {
        let mut user = Message::user("what is this?");
        user.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl { url: "data:image/png;base64,iVBORw0K".into(), detail: None },
        });
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "ollama_call_0".into(),
            name: "weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        });
        let request = ChatRequest {
            messages: vec![user, assistant, Message::tool_result("ollama_call_0", "18C")],
            tools: vec![Tool {
                name: "weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
            }],
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::default()
        };
        let body = encode_request(&request, "m", false).expect("encodes");
        assert_eq!(body["messages"][0]["images"], json!(["iVBORw0K"]));
        assert_eq!(
            body["messages"][1]["tool_calls"],
            json!([{"function": {"name": "weather", "arguments": {"city": "Paris"}}}])
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "tool", "content": "18C", "tool_name": "weather"})
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}])
        );
        assert_eq!(body["format"], "json");
    }

    #[test]
    fn tool_choice_maps_to_which_tools_are_offered() {
        let tool = |name: &str| Tool {
            name: name.into(),
            description: None,
            parameters: json!({"type": "object"}),
        };
        let mut request = ChatRequest::from_user("x");
        request.tools = vec![tool("a"), tool("b")];
        request.tool_choice = Some(ToolChoice::None);
        assert!(wire(&request).tools.is_empty());
        request.tool_choice = Some(ToolChoice::Function("b".into()));
        let names: Vec<String> =
            wire(&request).tools.into_iter().map(|tool| tool.function.name).collect();
        assert_eq!(names, ["b"]);
        request.tool_choice = Some(ToolChoice::Required);
        assert_eq!(wire(&request).tools.len(), 2);
    }

    #[test]
    fn a_json_schema_is_the_format() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let mut request = ChatRequest::from_user("x");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "n".into(),
            schema: schema.clone(),
            strict: false,
        });
        assert_eq!(wire(&request).format, Some(schema));
    }

    #[test]
    fn what_ollama_cannot_take_is_refused_clearly() {
        let mut message = Message::user("x");
        message.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl { url: "https://example.com/cat.png".into(), detail: None },
        });
        let request = ChatRequest { messages: vec![message], ..ChatRequest::default() };
        let error = encode_request(&request, "m", false).expect_err("refused");
        assert_eq!(error.kind(), switchyard_core::ErrorKind::BadRequest);
        assert!(error.to_string().contains("data: URIs"), "{error}");
        let error = encode_request(&ChatRequest::default(), "m", false).expect_err("refused");
        assert!(error.to_string().contains("at least one message"), "{error}");
    }

    fn conversation() -> impl Strategy<Value = ChatRequest> {
        let message = (0u8..3, ".{0,40}").prop_map(|(role, text)| match role {
            0 => Message::system(text),
            1 => Message::user(text),
            _ => Message::assistant(text),
        });
        (vec(message, 1..8), prop::option::of(1u32..100_000), vec("[a-zA-Z#\\n]{1,8}", 0..4))
            .prop_map(|(messages, max_tokens, stop)| ChatRequest {
                messages,
                max_tokens,
                stop,
                ..ChatRequest::default()
            })
    }

    proptest! {
        #[test]
        fn the_wire_body_keeps_system_order_roles_stops_and_limit(request in conversation()) {
            let wire = wire(&request);
            let sent: Vec<(WireRole, String)> = wire.messages.iter().map(|m| (m.role, m.content.clone())).collect();
            let asked: Vec<(WireRole, String)> = request.messages.iter().map(|message| {
                let role = match message.role {
                    Role::System => WireRole::System,
                    Role::User => WireRole::User,
                    Role::Assistant => WireRole::Assistant,
                    Role::Tool => WireRole::Tool,
                };
                (role, message.joined_text())
            }).collect();
            prop_assert_eq!(sent, asked);
            let options = wire.options.unwrap_or_default();
            prop_assert_eq!(options.stop, request.stop.clone());
            prop_assert_eq!(options.num_predict, request.max_tokens.map(i64::from));
        }
    }
}
