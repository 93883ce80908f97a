//! `ChatRequest` → the Chat Completions JSON body, as a pure function of the request, the
//! model, the preset and whether to stream.

use serde_json::{Map, Value, json};
use switchyard_core::{ChatRequest, ContentPart, Message, ResponseFormat, Role, ToolChoice};

use crate::Preset;

/// Encodes a request for `model` in the preset's dialect.
///
/// Fields of `request.extra` are copied last, so an explicit provider field wins over the
/// mapped one; `tags` are never sent.
pub fn encode_request(request: &ChatRequest, model: &str, preset: Preset, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(model));
    body.insert(
        "messages".to_owned(),
        Value::Array(request.messages.iter().map(encode_message).collect()),
    );
    if let Some(max_tokens) = request.max_tokens {
        body.insert(preset.max_tokens_field().to_owned(), json!(max_tokens));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".to_owned(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".to_owned(), json!(top_p));
    }
    if !request.stop.is_empty() {
        body.insert("stop".to_owned(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        body.insert(preset.seed_field().to_owned(), json!(seed));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("name".to_owned(), json!(tool.name));
                if let Some(description) = &tool.description {
                    function.insert("description".to_owned(), json!(description));
                }
                function.insert("parameters".to_owned(), tool.parameters.clone());
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".to_owned(), choice);
    }
    if let Some(format) = &request.response_format {
        let format = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            }),
        };
        body.insert("response_format".to_owned(), format);
    }
    if stream {
        body.insert("stream".to_owned(), json!(true));
        if preset.accepts_stream_options() {
            body.insert("stream_options".to_owned(), json!({"include_usage": true}));
        }
    }
    for (field, value) in &request.extra {
        body.insert(field.clone(), value.clone());
    }
    Value::Object(body)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn encode_message(message: &Message) -> Value {
    let mut out = Map::new();
    out.insert("role".to_owned(), json!(role_name(message.role)));
    let only_text = message.content.iter().all(|part| matches!(part, ContentPart::Text { .. }));
    let content = if message.content.is_empty() && !message.tool_calls.is_empty() {
        // An assistant turn that only called tools has null content on the wire.
        Value::Null
    } else if only_text {
        json!(message.joined_text())
    } else {
        Value::Array(
            message
                .content
                .iter()
                .map(|part| match part {
                    ContentPart::Text { text } => json!({"type": "text", "text": text}),
                    ContentPart::ImageUrl { image_url } => {
                        let mut image = Map::new();
                        image.insert("url".to_owned(), json!(image_url.url));
                        if let Some(detail) = &image_url.detail {
                            image.insert("detail".to_owned(), json!(detail));
                        }
                        json!({"type": "image_url", "image_url": image})
                    }
                })
                .collect(),
        )
    };
    out.insert("content".to_owned(), content);
    if !message.tool_calls.is_empty() {
        let calls = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({"id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments}})
            })
            .collect();
        out.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        out.insert("tool_call_id".to_owned(), json!(id));
    }
    if let Some(name) = &message.name {
        out.insert("name".to_owned(), json!(name));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use switchyard_core::{ImageUrl, Tool, ToolCall};

    #[test]
    fn sampling_parameters_go_on_the_wire_as_written() {
        let mut request = ChatRequest::from_user("hi");
        request.temperature = Some(0.9);
        request.top_p = Some(0.1);
        let body = encode_request(&request, "gpt-4o-mini", Preset::OpenAi, false);
        assert_eq!(body["temperature"].to_string(), "0.9");
        assert_eq!(body["top_p"].to_string(), "0.1");
    }

    #[test]
    fn each_preset_names_the_token_limit_and_seed_its_way() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(7);
        request.seed = Some(42);
        let openai = encode_request(&request, "gpt-4o-mini", Preset::OpenAi, false);
        assert_eq!(openai["max_completion_tokens"], 7);
        assert!(openai.get("max_tokens").is_none());
        let groq = encode_request(&request, "llama", Preset::Groq, false);
        assert_eq!(groq["max_tokens"], 7);
        assert_eq!(groq["seed"], 42);
        let mistral = encode_request(&request, "mistral-small", Preset::Mistral, true);
        assert_eq!(mistral["random_seed"], 42);
        assert!(mistral.get("seed").is_none());
        assert!(mistral.get("stream_options").is_none(), "Mistral refuses stream_options");
        let streamed = encode_request(&request, "llama", Preset::Compatible, true);
        assert_eq!(streamed["stream_options"]["include_usage"], true);
    }

    #[test]
    fn tools_choice_format_images_and_extra_go_through() {
        let mut request = ChatRequest::from_user("weather?");
        request.messages.push(Message {
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into(),
            }],
            content: Vec::new(),
            ..Message::assistant("")
        });
        request.messages.push(Message::tool_result("call_1", "cold"));
        request.messages.push(Message {
            content: vec![
                ContentPart::Text { text: "and this?".into() },
                ContentPart::ImageUrl {
                    image_url: ImageUrl { url: "data:image/png;base64,AA".into(), detail: None },
                },
            ],
            ..Message::user("")
        });
        request.tools.push(Tool {
            name: "weather".into(),
            description: Some("the weather".into()),
            parameters: json!({"type": "object"}),
        });
        request.tool_choice = Some(ToolChoice::Function("weather".into()));
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        request.extra.insert("parallel_tool_calls".into(), json!(false));
        request.tags.push("never-sent".into());
        let body = encode_request(&request, "gpt", Preset::OpenAi, false);
        let expected = json!({
            "model": "gpt",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                  "type": "function", "function": {"name": "weather",
                  "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "content": "cold", "tool_call_id": "call_1"},
                {"role": "user", "content": [{"type": "text", "text": "and this?"},
                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
            ],
            "tools": [{"type": "function", "function": {"name": "weather",
                       "description": "the weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer",
                                "schema": {"type": "object"}, "strict": true}},
            "parallel_tool_calls": false,
        });
        assert_eq!(body, expected);
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::System), Just(Role::User), Just(Role::Assistant)]
    }

    fn preset() -> impl Strategy<Value = Preset> {
        prop_oneof![
            Just(Preset::OpenAi),
            Just(Preset::Groq),
            Just(Preset::Mistral),
            Just(Preset::OpenRouter),
            Just(Preset::Compatible),
        ]
    }

    proptest! {
        #[test]
        fn encoding_keeps_order_roles_text_stop_and_limit(
            messages in proptest::collection::vec((role(), ".{0,40}"), 1..8),
            stop in proptest::collection::vec("[a-z#]{1,6}", 0..4),
            max_tokens in proptest::option::of(1u32..100_000),
            preset in preset(),
            stream in any::<bool>(),
        ) {
            let request = ChatRequest {
                messages: messages.iter().map(|(role, text)| Message::text(*role, text.clone())).collect(),
                stop: stop.clone(),
                max_tokens,
                ..ChatRequest::default()
            };
            let body = encode_request(&request, "m", preset, stream);
            let wire = body["messages"].as_array().expect("messages");
            prop_assert_eq!(wire.len(), messages.len());
            for ((role, text), sent) in messages.iter().zip(wire) {
                prop_assert_eq!(sent["role"].as_str(), Some(role_name(*role)));
                prop_assert_eq!(sent["content"].as_str(), Some(text.as_str()));
            }
            if stop.is_empty() {
                prop_assert!(body.get("stop").is_none());
            } else {
                prop_assert_eq!(&body["stop"], &json!(stop));
            }
            let field = preset.max_tokens_field();
            prop_assert_eq!(body.get(field).and_then(Value::as_u64), max_tokens.map(u64::from));
            let other = if field == "max_tokens" { "max_completion_tokens" } else { "max_tokens" };
            prop_assert!(body.get(other).is_none());
            prop_assert_eq!(body.get("stream").is_some(), stream);
        }
    }
}
