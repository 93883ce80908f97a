//! `ChatRequest` → the Chat Completions JSON body, as a pure function of the request, the
//! model, the preset and whether to stream. The body is written by serde straight from the
//! borrowed request (no intermediate `serde_json::Value`): it is on every call's path.

use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};
use serde_json::Value;
use switchyard_core::{
    ChatRequest, ContentPart, Message, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};

use crate::Preset;

/// Encodes a request for `model` in the preset's dialect, as a JSON value (for tests and
/// tools; the adapter sends [`encode_request_body`]'s bytes, written from the same code).
///
/// Fields of `request.extra` are copied last, so an explicit provider field wins over the
/// mapped one; `tags` are never sent.
pub fn encode_request(request: &ChatRequest, model: &str, preset: Preset, stream: bool) -> Value {
    serde_json::to_value(Body { request, model, preset, stream })
        .expect("invariant: a request serializes (its JSON values are JSON)")
}

/// The request body as bytes, written straight from the request with no intermediate JSON
/// value: the hot path.
pub fn encode_request_body(
    request: &ChatRequest,
    model: &str,
    preset: Preset,
    stream: bool,
) -> Vec<u8> {
    serde_json::to_vec(&Body { request, model, preset, stream })
        .expect("invariant: a request serializes (its JSON values are JSON)")
}

/// The Chat Completions body, serialized from the request it borrows.
struct Body<'a> {
    request: &'a ChatRequest,
    model: &'a str,
    preset: Preset,
    stream: bool,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let mut body = serializer.serialize_map(None)?;
        // A field the request's `extra` names is left to `extra`, written last.
        let field = |name: &str| !request.extra.contains_key(name);
        if field("model") {
            body.serialize_entry("model", self.model)?;
        }
        if field("messages") {
            body.serialize_entry("messages", &Seq(&request.messages, Wire))?;
        }
        if let Some(max_tokens) =
            request.max_tokens.filter(|_| field(self.preset.max_tokens_field()))
        {
            body.serialize_entry(self.preset.max_tokens_field(), &max_tokens)?;
        }
        if let Some(temperature) = request.temperature.filter(|_| field("temperature")) {
            body.serialize_entry("temperature", &temperature)?;
        }
        if let Some(top_p) = request.top_p.filter(|_| field("top_p")) {
            body.serialize_entry("top_p", &top_p)?;
        }
        if !request.stop.is_empty() && field("stop") {
            body.serialize_entry("stop", &request.stop)?;
        }
        if let Some(seed) = request.seed.filter(|_| field(self.preset.seed_field())) {
            body.serialize_entry(self.preset.seed_field(), &seed)?;
        }
        if !request.tools.is_empty() && field("tools") {
            body.serialize_entry("tools", &Seq(&request.tools, Wire))?;
        }
        if let Some(choice) = request.tool_choice.as_ref().filter(|_| field("tool_choice")) {
            body.serialize_entry("tool_choice", &Wire(choice))?;
        }
        if let Some(format) = request.response_format.as_ref().filter(|_| field("response_format"))
        {
            body.serialize_entry("response_format", &Wire(format))?;
        }
        if let Some(effort) = request.reasoning_effort.filter(|_| field("reasoning_effort")) {
            body.serialize_entry("reasoning_effort", effort.as_str())?;
        }
        if self.stream {
            if field("stream") {
                body.serialize_entry("stream", &true)?;
            }
            if self.preset.accepts_stream_options() && field("stream_options") {
                body.serialize_entry("stream_options", &IncludeUsage { include_usage: true })?;
            }
        }
        for (name, value) in &request.extra {
            body.serialize_entry(name, value)?;
        }
        body.end()
    }
}

/// A type's Chat Completions form.
struct Wire<T>(T);

/// A slice written as an array of `Wire` forms.
struct Seq<'a, T>(&'a [T], fn(&'a T) -> Wire<&'a T>);

impl<'a, T> Serialize for Seq<'a, T>
where
    Wire<&'a T>: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

#[derive(Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
}

/// `{"type": "function", "function": ...}`.
#[derive(Serialize)]
struct Typed<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: T,
}

fn typed<T>(function: T) -> Typed<T> {
    Typed { kind: "function", function }
}

impl Serialize for Wire<&Tool> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tool = self.0;
        typed(Function {
            name: &tool.name,
            description: tool.description.as_deref(),
            parameters: &tool.parameters,
        })
        .serialize(serializer)
    }
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

impl Serialize for Wire<&ToolChoice> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => typed(Named { name }).serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct Schema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

impl Serialize for Wire<&ResponseFormat> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut format = serializer.serialize_map(Some(2))?;
        match self.0 {
            ResponseFormat::Text => format.serialize_entry("type", "text")?,
            ResponseFormat::JsonObject => format.serialize_entry("type", "json_object")?,
            ResponseFormat::JsonSchema { name, schema, strict } => {
                format.serialize_entry("type", "json_schema")?;
                format.serialize_entry("json_schema", &Schema { name, schema, strict: *strict })?;
            }
        }
        format.end()
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// A message's text parts joined, written as one string without joining them first.
struct JoinedText<'a>(&'a [ContentPart]);

impl std::fmt::Display for JoinedText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in self.0 {
            if let ContentPart::Text { text } = part {
                f.write_str(text)?;
            }
        }
        Ok(())
    }
}

impl Serialize for JoinedText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [ContentPart::Text { text }] => serializer.serialize_str(text),
            _ => serializer.collect_str(self),
        }
    }
}

#[derive(Serialize)]
struct Image<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for Wire<&ContentPart> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut part = serializer.serialize_map(Some(2))?;
        match self.0 {
            ContentPart::Text { text } => {
                part.serialize_entry("type", "text")?;
                part.serialize_entry("text", text)?;
            }
            ContentPart::ImageUrl { image_url } => {
                part.serialize_entry("type", "image_url")?;
                let image = Image { url: &image_url.url, detail: image_url.detail.as_deref() };
                part.serialize_entry("image_url", &image)?;
            }
        }
        part.end()
    }
}

#[derive(Serialize)]
struct CallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl Serialize for Wire<&ToolCall> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let call = self.0;
        let mut out = serializer.serialize_map(Some(3))?;
        out.serialize_entry("id", &call.id)?;
        out.serialize_entry("type", "function")?;
        out.serialize_entry(
            "function",
            &CallFunction { name: &call.name, arguments: &call.arguments },
        )?;
        out.end()
    }
}

impl Serialize for Wire<&Message> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let mut out = serializer.serialize_map(None)?;
        out.serialize_entry("role", role_name(message.role))?;
        let only_text = message.content.iter().all(|part| matches!(part, ContentPart::Text { .. }));
        if message.content.is_empty() && !message.tool_calls.is_empty() {
            // An assistant turn that only called tools has null content on the wire.
            out.serialize_entry("content", &())?;
        } else if only_text {
            out.serialize_entry("content", &JoinedText(&message.content))?;
        } else {
            out.serialize_entry("content", &Seq(&message.content, Wire))?;
        }
        if !message.tool_calls.is_empty() {
            out.serialize_entry("tool_calls", &Seq(&message.tool_calls, Wire))?;
        }
        if let Some(id) = &message.tool_call_id {
            out.serialize_entry("tool_call_id", id)?;
        }
        if let Some(name) = &message.name {
            out.serialize_entry("name", name)?;
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use switchyard_core::ImageUrl;

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
    fn reasoning_effort_goes_through_by_name_and_only_when_asked() {
        let mut request = ChatRequest::from_user("hi");
        let plain = encode_request(&request, "o4-mini", Preset::OpenAi, false);
        assert!(plain.get("reasoning_effort").is_none());
        request.reasoning_effort = Some(switchyard_core::ReasoningEffort::Minimal);
        let body = encode_request(&request, "gpt-5", Preset::OpenAi, false);
        assert_eq!(body["reasoning_effort"], "minimal");
        let groq = encode_request(&request, "openai/gpt-oss-20b", Preset::Groq, true);
        assert_eq!(groq["reasoning_effort"], "minimal");
        let bytes = encode_request_body(&request, "gpt-5", Preset::OpenAi, false);
        let parsed: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(parsed, body);
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

    #[test]
    fn an_extra_field_replaces_the_mapped_one_and_the_bytes_are_the_value() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(7);
        request.temperature = Some(0.5);
        request.extra.insert("temperature".into(), json!(1.5));
        request.extra.insert("max_tokens".into(), json!(9));
        let body = encode_request(&request, "llama", Preset::Groq, true);
        assert_eq!(body["temperature"], 1.5);
        assert_eq!(body["max_tokens"], 9);
        assert_eq!(body["stream_options"]["include_usage"], true);
        let bytes = encode_request_body(&request, "llama", Preset::Groq, true);
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
        assert_eq!(serde_json::from_slice::<Value>(&bytes).expect("JSON"), body);
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
