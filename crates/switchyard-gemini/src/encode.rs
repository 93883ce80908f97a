//! [`ChatRequest`] → `generateContent` body. Pure: no I/O, no clock.
//!
//! What moves where (the full table is in `docs/providers.md`):
//! - system messages are joined (blank line between) into `systemInstruction`;
//! - `assistant` is role `model`; a tool result is a `functionResponse` part of a `user` turn
//!   (consecutive results share one turn, as Gemini wants parallel calls answered), named
//!   after the call it answers, since Gemini matches results by function name;
//! - sampling fields go into `generationConfig`; JSON output is `responseMimeType`
//!   `application/json` with the schema as `responseJsonSchema`;
//! - images must be `data:` URIs (`inlineData`); Gemini fetches no URL.
//!
//! Tool-call ids: Gemini gives a call an id only sometimes, so [`crate::decode`] makes one up
//! (`gemini_call_N`) when it has none, and appends the call's thought signature after
//! [`SIGNATURE_MARK`] when it has one, because Gemini 3 refuses a function call sent back
//! without its signature. Encoding takes both apart again.

use serde_json::{Value, json};
use switchyard_core::{ChatRequest, ContentPart, Message, ResponseFormat, Role, ToolChoice};

use crate::GeminiError;
use crate::wire::{
    Blob, CallingMode, Content, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, ToolConfig,
    WireRole, WireTool,
};

/// The prefix of tool-call ids this adapter makes up for calls Gemini gave no id.
pub const SYNTHETIC_CALL_PREFIX: &str = "gemini_call_";

/// Separates a tool-call id from the thought signature carried along with it.
pub const SIGNATURE_MARK: &str = "~sig~";

/// Encodes `request` as a `generateContent` body (the model is in the URL, not the body).
///
/// # Errors
/// [`GeminiError::Refused`] for what Gemini cannot take: no user or model turn, an image that
/// is a URL rather than a `data:` URI, an image in the system prompt, a tool result whose call
/// cannot be found (its function name is required), tool-call arguments that are not a JSON
/// object, or a seed beyond Gemini's 32 bits.
pub fn encode_request(request: &ChatRequest) -> Result<Value, GeminiError> {
    let system_instruction = system_instruction(&request.messages)?;
    let contents = contents(&request.messages)?;
    if contents.is_empty() {
        return Err(GeminiError::Refused("gemini needs at least one user or model turn".into()));
    }
    let seed = request
        .seed
        .map(|seed| {
            i32::try_from(seed).map_err(|_| {
                GeminiError::Refused(format!("seed {seed} does not fit gemini's 32-bit seed"))
            })
        })
        .transpose()?;
    let (response_mime_type, response_json_schema) = match &request.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json".to_owned()), None),
        Some(ResponseFormat::JsonSchema { schema, strict, .. }) => {
            if *strict {
                tracing::debug!("gemini has no strict flag; the schema itself constrains output");
            }
            (Some("application/json".to_owned()), Some(schema.clone()))
        }
    };
    let generation_config = GenerationConfig {
        max_output_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: request.stop.clone(),
        seed,
        response_mime_type,
        response_json_schema,
        thinking_config: request
            .reasoning_effort
            .map(|effort| ThinkingConfig { thinking_budget: Some(effort.budget_tokens()) }),
    };
    let tools = if request.tools.is_empty() {
        Vec::new()
    } else {
        vec![WireTool {
            function_declarations: request
                .tools
                .iter()
                .map(|tool| FunctionDeclaration {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters_json_schema: Some(tool.parameters.clone()),
                })
                .collect(),
        }]
    };
    let tool_config = request.tool_choice.as_ref().map(|choice| {
        let (mode, allowed_function_names) = match choice {
            ToolChoice::Auto => (CallingMode::Auto, Vec::new()),
            ToolChoice::None => (CallingMode::None, Vec::new()),
            ToolChoice::Required => (CallingMode::Any, Vec::new()),
            ToolChoice::Function(name) => (CallingMode::Any, vec![name.clone()]),
        };
        ToolConfig {
            function_calling_config: FunctionCallingConfig { mode, allowed_function_names },
        }
    });
    let wire = GenerateContentRequest {
        contents,
        system_instruction,
        generation_config: (!generation_config.is_empty()).then_some(generation_config),
        tools,
        tool_config,
    };
    let mut body = serde_json::to_value(&wire).expect("invariant: wire types serialize to JSON");
    for field in request.merge_extra(&mut body) {
        tracing::debug!(%field, "an extra field replaced the adapter's value");
    }
    Ok(body)
}

fn system_instruction(messages: &[Message]) -> Result<Option<Content>, GeminiError> {
    let mut texts = Vec::new();
    for message in messages.iter().filter(|message| message.role == Role::System) {
        if message.has_image() {
            return Err(GeminiError::Refused("gemini's system instruction takes no image".into()));
        }
        texts.push(message.joined_text());
    }
    Ok((!texts.is_empty())
        .then(|| Content { role: None, parts: vec![Part::text(texts.join("\n\n"))] }))
}

fn contents(messages: &[Message]) -> Result<Vec<Content>, GeminiError> {
    let mut contents: Vec<Content> = Vec::new();
    let mut previous_was_tool = false;
    for (message_idx, message) in messages.iter().enumerate() {
        if message.name.is_some() && message.role != Role::Tool {
            tracing::debug!("gemini turns have no participant name; dropped");
        }
        match message.role {
            Role::System => continue,
            Role::User => {
                contents.push(Content { role: Some(WireRole::User), parts: media_parts(message)? })
            }
            Role::Assistant => {
                contents.push(Content { role: Some(WireRole::Model), parts: model_parts(message)? })
            }
            Role::Tool => {
                let part = function_response(message, &messages[..message_idx])?;
                match contents.last_mut() {
                    Some(last) if previous_was_tool => last.parts.push(part),
                    Some(_) | None => {
                        contents.push(Content { role: Some(WireRole::User), parts: vec![part] });
                    }
                }
            }
        }
        previous_was_tool = message.role == Role::Tool;
    }
    Ok(contents)
}

fn media_parts(message: &Message) -> Result<Vec<Part>, GeminiError> {
    message
        .content
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } => Ok(Part::text(text.clone())),
            ContentPart::ImageUrl { image_url } => {
                let (mime_type, data) = image_url.as_base64().ok_or_else(|| {
                    GeminiError::Refused(
                        "gemini takes images only inline, as data: URIs; this one is a URL".into(),
                    )
                })?;
                if image_url.detail.is_some() {
                    tracing::debug!("gemini images take no detail hint; dropped");
                }
                Ok(Part {
                    inline_data: Some(Blob {
                        mime_type: mime_type.to_owned(),
                        data: data.to_owned(),
                    }),
                    ..Part::default()
                })
            }
        })
        .collect()
}

fn model_parts(message: &Message) -> Result<Vec<Part>, GeminiError> {
    if message.tool_calls.is_empty() {
        return media_parts(message);
    }
    let mut parts: Vec<Part> = message
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => Some(Part::text(text.clone())),
            ContentPart::Text { .. } | ContentPart::ImageUrl { .. } => None,
        })
        .collect();
    for call in &message.tool_calls {
        let (id, thought_signature) = split_call_id(&call.id);
        parts.push(Part {
            function_call: Some(FunctionCall {
                id,
                name: call.name.clone(),
                args: call
                    .arguments_object()
                    .ok_or_else(|| GeminiError::Refused(call.arguments_not_an_object()))?,
            }),
            thought_signature,
            ..Part::default()
        });
    }
    Ok(parts)
}

/// A tool message as a `functionResponse`: the name is the called function's, found by the
/// call id among the earlier assistant turns (nearest first), or the message's `name`.
fn function_response(message: &Message, earlier: &[Message]) -> Result<Part, GeminiError> {
    let call_id = message.tool_call_id.as_deref();
    let called = call_id.and_then(|call_id| {
        earlier
            .iter()
            .rev()
            .flat_map(|message| &message.tool_calls)
            .find(|call| call.id == call_id)
            .map(|call| call.name.clone())
    });
    let name = called.or_else(|| message.name.clone()).ok_or_else(|| {
        GeminiError::Refused(format!(
            "gemini needs the function name of a tool result; no earlier call has id {}",
            call_id.unwrap_or("(none)")
        ))
    })?;
    let text = message.joined_text();
    // Gemini wants an object; a result that is not one is given under "output", the key
    // Gemini reads as the function's output.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({"output": other}),
        Err(_) => json!({"output": text}),
    };
    let id = call_id.and_then(|call_id| split_call_id(call_id).0);
    Ok(Part { function_response: Some(FunctionResponse { id, name, response }), ..Part::default() })
}

/// Splits an id made by [`crate::call_id`] into Gemini's own call id (none for a made-up one)
/// and the thought signature.
pub fn split_call_id(id: &str) -> (Option<String>, Option<String>) {
    let (id, signature) = match id.split_once(SIGNATURE_MARK) {
        Some((id, signature)) => (id, Some(signature.to_owned())),
        None => (id, None),
    };
    let id = (!id.starts_with(SYNTHETIC_CALL_PREFIX) && !id.is_empty()).then(|| id.to_owned());
    (id, signature)
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

    fn wire(request: &ChatRequest) -> GenerateContentRequest {
        serde_json::from_value(encode_request(request).expect("encodes")).expect("reads back")
    }

    #[test]
    fn system_roles_and_generation_config_take_gemini_names() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(64);
        request.messages.insert(0, Message::system("be brief"));
        request.messages.push(Message::assistant("hello"));
        request.temperature = Some(1.5);
        request.top_p = Some(0.9);
        request.stop = vec!["END".into()];
        request.seed = Some(7);
        let body = encode_request(&request).expect("encodes");
        assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "be brief"}]}));
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}])
        );
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 64, "temperature": 1.5, "topP": 0.9, "stopSequences": ["END"], "seed": 7})
        );
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget() {
        let mut request = ChatRequest::from_user("think").with_max_tokens(64);
        request.reasoning_effort = Some(switchyard_core::ReasoningEffort::Medium);
        let body = encode_request(&request).expect("encodes");
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 64, "thinkingConfig": {"thinkingBudget": 8192}})
        );
        request.max_tokens = None;
        request.reasoning_effort = Some(switchyard_core::ReasoningEffort::Minimal);
        let body = encode_request(&request).expect("encodes");
        assert_eq!(body["generationConfig"], json!({"thinkingConfig": {"thinkingBudget": 1024}}));
    }

    #[test]
    fn a_bare_request_sends_no_generation_config() {
        let body = encode_request(&ChatRequest::from_user("hi")).expect("encodes");
        assert!(body.get("generationConfig").is_none(), "{body}");
        assert!(body.get("systemInstruction").is_none(), "{body}");
    }

    #[test]
    fn json_output_sets_the_mime_type_and_schema() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false});
        let mut request = ChatRequest::from_user("a number");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "n".into(),
            schema: schema.clone(),
            strict: true,
        });
        let body = encode_request(&request).expect("encodes");
        assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(body["generationConfig"]["responseJsonSchema"], schema);
        request.response_format = Some(ResponseFormat::JsonObject);
        let body = encode_request(&request).expect("encodes");
        assert_eq!(body["generationConfig"], json!({"responseMimeType": "application/json"}));
    }

    #[test]
    fn tools_calls_and_results_take_gemini_shapes() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls = vec![
            ToolCall {
                id: "gemini_call_0~sig~c2lnbmF0dXJl".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
            ToolCall { id: "abc123".into(), name: "time".into(), arguments: String::new() },
        ];
        let request = ChatRequest {
            messages: vec![
                Message::user("weather and time in Paris?"),
                assistant,
                Message::tool_result("gemini_call_0~sig~c2lnbmF0dXJl", r#"{"temp_c":18}"#),
                Message::tool_result("abc123", "14:00"),
            ],
            tools: vec![Tool {
                name: "weather".into(),
                description: Some("current weather".into()),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: Some(ToolChoice::Function("weather".into())),
            ..ChatRequest::default()
        };
        let body = encode_request(&request).expect("encodes");
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{"name": "weather", "description": "current weather", "parametersJsonSchema": {"type": "object"}}]}])
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
        );
        assert_eq!(
            body["contents"][1],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
                {"functionCall": {"id": "abc123", "name": "time", "args": {}}}]})
        );
        assert_eq!(
            body["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "weather", "response": {"temp_c": 18}}},
                {"functionResponse": {"id": "abc123", "name": "time", "response": {"output": "14:00"}}}]})
        );
        assert_eq!(body["contents"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn images_go_inline() {
        let mut message = Message::user("what is this?");
        message.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl { url: "data:image/jpeg;base64,/9j/4AAQ".into(), detail: None },
        });
        let request = ChatRequest { messages: vec![message], ..ChatRequest::default() };
        let body = encode_request(&request).expect("encodes");
        assert_eq!(
            body["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
        );
    }

    #[test]
    fn what_gemini_cannot_take_is_refused_clearly() {
        let refused = |request: &ChatRequest| {
            let error = encode_request(request).expect_err("refused");
            assert_eq!(error.kind(), switchyard_core::ErrorKind::BadRequest);
            error.to_string()
        };
        let mut message = Message::user("x");
        message.content.push(ContentPart::ImageUrl {
            image_url: ImageUrl { url: "https://example.com/cat.png".into(), detail: None },
        });
        assert!(
            refused(&ChatRequest { messages: vec![message], ..ChatRequest::default() })
                .contains("data: URIs")
        );
        let orphan = ChatRequest {
            messages: vec![Message::tool_result("nowhere", "1")],
            ..ChatRequest::default()
        };
        assert!(refused(&orphan).contains("nowhere"));
        let mut big_seed = ChatRequest::from_user("x");
        big_seed.seed = Some(i64::from(i32::MAX) + 1);
        assert!(refused(&big_seed).contains("32-bit"));
        let only_system =
            ChatRequest { messages: vec![Message::system("x")], ..ChatRequest::default() };
        assert!(refused(&only_system).contains("at least one"));
    }

    proptest! {
        #[test]
        fn the_wire_body_keeps_system_order_roles_stops_and_limit(request in conversation(65_536, 5)) {
            let wire = wire(&request);
            let system: Vec<String> = request.messages.iter()
                .filter(|message| message.role == Role::System)
                .map(Message::joined_text)
                .collect();
            let sent_system = wire.system_instruction.map(|content| content.parts[0].text.clone().unwrap_or_default());
            prop_assert_eq!(sent_system, (!system.is_empty()).then(|| system.join("\n\n")));
            let sent: Vec<(WireRole, String)> = wire.contents.iter()
                .map(|content| (content.role.expect("a role"), content.parts[0].text.clone().unwrap_or_default()))
                .collect();
            let asked: Vec<(WireRole, String)> = request.messages.iter()
                .filter(|message| message.role != Role::System)
                .map(|message| {
                    let role = if message.role == Role::User { WireRole::User } else { WireRole::Model };
                    (role, message.joined_text())
                })
                .collect();
            prop_assert_eq!(sent, asked);
            let config = wire.generation_config.unwrap_or_default();
            prop_assert_eq!(config.stop_sequences, request.stop.clone());
            prop_assert_eq!(config.max_output_tokens, request.max_tokens);
            prop_assert_eq!(config.temperature, request.temperature);
        }
    }
}
