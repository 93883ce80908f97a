//! OpenAI's Responses format: `POST /v1/responses` read into a [`ChatRequest`] (`input` as a
//! string or items: messages, function calls and their outputs; `instructions`; function
//! tools; `text.format`), the answer written back as a `response` object with output items,
//! streamed as `response.*` events. Stateless: nothing is stored, so `previous_response_id`
//! is refused.

use std::borrow::Cow;
use std::collections::VecDeque;

use axum::response::sse::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchyard::StreamError;
use switchyard_core::{
    Candidate, ChatRequest, ChatResponse, ContentPart, FinishReason, ImageUrl, Message,
    ReasoningEffort, ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
};

use super::{BlockWriter, Segment};
use crate::wire::{self, CompletionRequest, WireError};

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    input: Option<RawInput<'a>>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    tool_choice: Option<RawToolChoice>,
    #[serde(default)]
    text: Option<RawText>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    reasoning: Option<RawReasoning>,
}

/// `reasoning`: only `effort` is read (`summary` asks for a thinking summary no provider
/// behind the router gives back).
#[derive(Deserialize)]
struct RawReasoning {
    #[serde(default)]
    effort: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawInput<'a> {
    Text(String),
    Items(#[serde(borrow)] Vec<RawItem<'a>>),
}

/// An input item: a message (with or without `type`), a function call or its output.
#[derive(Deserialize)]
struct RawItem<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default)]
    content: Option<RawContent>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    output: Option<RawContent>,
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
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct RawTool {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawToolChoice {
    Mode(String),
    Function { name: String },
}

#[derive(Deserialize)]
struct RawText {
    #[serde(default)]
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawFormat {
    Text,
    JsonObject,
    JsonSchema {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        schema: Option<Value>,
        #[serde(default)]
        strict: Option<bool>,
    },
}

/// Reads a Responses request body.
pub(crate) fn parse(body: &[u8]) -> Result<CompletionRequest, WireError> {
    let raw: RawRequest<'_> = serde_json::from_slice(body)
        .map_err(|error| WireError(format!("invalid request body: {error}")))?;
    wire::check_model(&raw.model)?;
    if raw.previous_response_id.is_some() {
        return Err(WireError(
            "previous_response_id: this gateway stores no responses; send the whole conversation in `input`"
                .into(),
        ));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = raw.instructions {
        messages.push(Message::system(instructions));
    }
    match raw.input {
        None => {}
        Some(RawInput::Text(text)) => messages.push(Message::user(text)),
        Some(RawInput::Items(items)) => {
            for (index, item) in items.into_iter().enumerate() {
                input_item(index, item, &mut messages)?;
            }
        }
    }
    if !messages.iter().any(|message| message.role != Role::System) {
        return Err(WireError("input: at least one message is required".into()));
    }
    let tools = raw
        .tools
        .into_iter()
        .map(|tool| match (tool.kind.as_str(), tool.name) {
            ("function", Some(name)) => Ok(Tool {
                name,
                description: tool.description,
                parameters: tool.parameters.unwrap_or_else(|| json!({"type": "object"})),
            }),
            ("function", None) => Err(WireError("tools: a function needs a name".into())),
            (other, _) => Err(WireError(format!(
                "tools: type {other:?} is not supported (only \"function\")"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = match raw.tool_choice {
        None => None,
        Some(RawToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(WireError(format!("tool_choice: unknown value {other:?}"))),
        }),
        Some(RawToolChoice::Function { name }) => Some(ToolChoice::Function(name)),
    };
    let response_format = raw.text.and_then(|text| text.format).map(|format| match format {
        RawFormat::Text => ResponseFormat::Text,
        RawFormat::JsonObject => ResponseFormat::JsonObject,
        RawFormat::JsonSchema { name, schema, strict } => ResponseFormat::JsonSchema {
            name: name.unwrap_or_else(|| "answer".to_owned()),
            schema: schema.unwrap_or_else(|| Value::Object(Map::new())),
            strict: strict.unwrap_or(false),
        },
    });
    let reasoning_effort = match raw.reasoning.and_then(|reasoning| reasoning.effort) {
        None => None,
        Some(name) => Some(ReasoningEffort::from_name(&name).ok_or_else(|| {
            WireError(format!(
                "reasoning.effort: unknown value {name:?} (minimal, low, medium or high)"
            ))
        })?),
    };
    let request = ChatRequest {
        messages,
        max_tokens: raw.max_output_tokens,
        reasoning_effort,
        temperature: raw.temperature,
        top_p: raw.top_p,
        tools,
        tool_choice,
        response_format,
        ..ChatRequest::default()
    };
    Ok(super::completion_request(raw.model, raw.stream, request))
}

fn input_item(index: usize, item: RawItem<'_>, out: &mut Vec<Message>) -> Result<(), WireError> {
    let at = |field: &str| format!("input[{index}].{field}");
    match item.kind.as_deref().unwrap_or("message") {
        "message" => {
            let role = match item.role.as_deref().unwrap_or_default() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" | "developer" => Role::System,
                other => return Err(WireError(format!("{}: unknown role {other:?}", at("role")))),
            };
            let content = parts(item.content, &at("content"))?;
            out.push(Message {
                role,
                content,
                tool_calls: Vec::new(),
                tool_call_id: None,
                name: None,
            });
        }
        "function_call" => {
            let (Some(id), Some(name)) = (item.call_id, item.name) else {
                return Err(WireError(format!("{}: call_id and name are required", at("type"))));
            };
            let call = ToolCall { id, name, arguments: item.arguments.unwrap_or_default() };
            // Calls following an assistant's message (or each other) are that message's.
            match out.last_mut() {
                Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                _ => out.push(Message {
                    role: Role::Assistant,
                    content: Vec::new(),
                    tool_calls: vec![call],
                    tool_call_id: None,
                    name: None,
                }),
            }
        }
        "function_call_output" => {
            let Some(call_id) = item.call_id else {
                return Err(WireError(format!("{}: call_id is required", at("type"))));
            };
            let content = parts(item.output, &at("output"))?;
            out.push(Message { content, ..Message::tool_result(call_id, String::new()) });
        }
        // A model's reasoning from an earlier turn: no other provider can take it back.
        "reasoning" => {}
        other => {
            return Err(WireError(format!(
                "{}: item type {other:?} is not supported (message, function_call, function_call_output)",
                at("type")
            )));
        }
    }
    Ok(())
}

fn parts(content: Option<RawContent>, at: &str) -> Result<Vec<ContentPart>, WireError> {
    match content {
        None => Ok(Vec::new()),
        Some(RawContent::Text(text)) => Ok(vec![ContentPart::Text { text }]),
        Some(RawContent::Parts(parts)) => parts
            .into_iter()
            .map(|part| match part {
                RawPart::InputText { text } | RawPart::OutputText { text } => {
                    Ok(ContentPart::Text { text })
                }
                RawPart::Refusal { refusal } => Ok(ContentPart::Text { text: refusal }),
                RawPart::InputImage { image_url: Some(url), detail } => {
                    Ok(ContentPart::ImageUrl { image_url: ImageUrl { url, detail } })
                }
                RawPart::InputImage { image_url: None, .. } => {
                    Err(WireError(format!("{at}: an input_image needs an image_url (no file ids)")))
                }
                RawPart::Other => Err(WireError(format!(
                    "{at}: unsupported part type (input_text, output_text, input_image)"
                ))),
            })
            .collect(),
    }
}

/// One output item of an answer, owned: a streamed answer builds them as it goes.
#[derive(Clone, Debug)]
enum Item {
    Message { text: String },
    Call { call_id: String, name: String, arguments: String },
}

/// A whole answer in the Responses shape, the streamed one's included.
pub(crate) struct Answer {
    id: String,
    request_id: String,
    created_at: i64,
    model: String,
    items: Vec<Item>,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    status: &'static str,
}

impl Answer {
    /// The answer of a plain call.
    pub(crate) fn plain(response: &ChatResponse, request_id: &str, now_unix: i64) -> Self {
        let mut items = Vec::with_capacity(1 + response.tool_calls.len());
        if !response.text.is_empty() || response.tool_calls.is_empty() {
            items.push(Item::Message { text: response.text.clone() });
        }
        items.extend(response.tool_calls.iter().map(|call| Item::Call {
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        }));
        let mut answer = Self::empty(request_id, now_unix, &response.model);
        answer.items = items;
        answer.finish(Some(response.usage), response.finish_reason.clone());
        answer
    }

    fn empty(request_id: &str, now_unix: i64, model: &str) -> Self {
        Self {
            id: format!("resp_{request_id}"),
            request_id: request_id.to_owned(),
            created_at: now_unix,
            model: model.to_owned(),
            items: Vec::new(),
            usage: None,
            finish_reason: None,
            status: "in_progress",
        }
    }

    fn finish(&mut self, usage: Option<Usage>, finish_reason: Option<FinishReason>) {
        self.usage = usage;
        self.status =
            if finish_reason == Some(FinishReason::Length) { "incomplete" } else { "completed" };
        self.finish_reason = finish_reason;
    }

    /// The id of the item at `index`: the same in the stream's events and its final response.
    fn item_id(&self, index: u32, call: bool) -> String {
        let prefix = if call { "fc" } else { "msg" };
        format!("{prefix}_{}_{index}", self.request_id)
    }

    fn item_view<'a>(&self, index: usize, item: &'a Item, status: &'static str) -> ItemOut<'a> {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        match item {
            Item::Message { text } => ItemOut::Message {
                id: self.item_id(index, false),
                status,
                role: "assistant",
                content: [TextPart { kind: "output_text", text, annotations: [] }],
            },
            Item::Call { call_id, name, arguments } => ItemOut::FunctionCall {
                id: self.item_id(index, true),
                status,
                call_id,
                name,
                arguments,
            },
        }
    }

    /// The `response` object, borrowing this answer.
    pub(crate) fn view(&self) -> ResponseOut<'_> {
        let status = if self.status == "in_progress" { "in_progress" } else { "completed" };
        ResponseOut {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: self.status,
            model: &self.model,
            output: self
                .items
                .iter()
                .enumerate()
                .map(|(index, item)| self.item_view(index, item, status))
                .collect(),
            usage: self.usage.map(UsageOut::from),
            incomplete_details: (self.status == "incomplete")
                .then_some(Incomplete { reason: "max_output_tokens" }),
            error: None,
        }
    }
}

/// A `response` object.
#[derive(Serialize)]
pub(crate) struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created_at: i64,
    status: &'static str,
    model: &'a str,
    output: Vec<ItemOut<'a>>,
    usage: Option<UsageOut>,
    incomplete_details: Option<Incomplete>,
    error: Option<()>,
}

#[derive(Serialize)]
struct Incomplete {
    reason: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ItemOut<'a> {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: [TextPart<'a>; 1],
    },
    FunctionCall {
        id: String,
        status: &'static str,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
}

#[derive(Serialize)]
struct TextPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u32,
    input_tokens_details: CachedTokens,
    output_tokens: u32,
    output_tokens_details: ReasoningTokens,
    total_tokens: u32,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u32,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: CachedTokens { cached_tokens: 0 },
            output_tokens: usage.completion_tokens,
            output_tokens_details: ReasoningTokens {
                reasoning_tokens: usage.reasoning_tokens.unwrap_or(0),
            },
            total_tokens: usage.total_tokens,
        }
    }
}

/// Writes a routed stream as the Responses API's `response.*` events.
pub(crate) struct Events {
    answer: Answer,
    sequence_number: u64,
}

impl Events {
    pub(crate) fn new(request_id: &str, now_unix: i64, served_by: &Candidate) -> Self {
        Self {
            answer: Answer::empty(request_id, now_unix, served_by.model.as_str()),
            sequence_number: 0,
        }
    }

    /// An event named by its `type`, numbered in sequence.
    fn push(&mut self, kind: &'static str, mut data: Value, out: &mut VecDeque<Event>) {
        if let Value::Object(object) = &mut data {
            object.insert("type".into(), Value::from(kind));
            object.insert("sequence_number".into(), Value::from(self.sequence_number));
        }
        self.sequence_number += 1;
        let event = Event::default()
            .event(kind)
            .json_data(&data)
            .expect("invariant: a wire event serializes");
        out.push_back(event);
    }

    fn response(&self) -> Value {
        serde_json::to_value(self.answer.view()).expect("invariant: a response serializes")
    }

    fn item(&self, index: u32, status: &'static str) -> Value {
        let at = usize::try_from(index).unwrap_or(usize::MAX);
        let Some(item) = self.answer.items.get(at) else { return Value::Null };
        serde_json::to_value(self.answer.item_view(at, item, status))
            .expect("invariant: an item serializes")
    }

    /// Closes item `index` with its whole `content`.
    fn stop(&mut self, index: u32, content: String, out: &mut VecDeque<Event>) {
        let slot = usize::try_from(index).ok().and_then(|at| self.answer.items.get_mut(at));
        let call = match slot {
            Some(Item::Message { text }) => {
                text.clone_from(&content);
                false
            }
            Some(Item::Call { arguments, .. }) => {
                arguments.clone_from(&content);
                true
            }
            None => return,
        };
        let item_id = self.answer.item_id(index, call);
        if call {
            self.push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": index, "arguments": content}),
                out,
            );
        } else {
            self.push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                    "text": content, "logprobs": []}),
                out,
            );
            self.push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": content, "annotations": []}}),
                out,
            );
        }
        let item = self.item(index, "completed");
        self.push("response.output_item.done", json!({"output_index": index, "item": item}), out);
    }
}

impl BlockWriter for Events {
    fn start(&mut self, _served_by: &Candidate, out: &mut VecDeque<Event>) {
        let response = self.response();
        self.push("response.created", json!({"response": response.clone()}), out);
        self.push("response.in_progress", json!({"response": response}), out);
    }

    fn segment(&mut self, segment: Segment<'_>, out: &mut VecDeque<Event>) {
        match segment {
            Segment::TextStart { index } => {
                self.answer.items.push(Item::Message { text: String::new() });
                let item = self.item(index, "in_progress");
                let item_id = self.answer.item_id(index, false);
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.push(
                    "response.content_part.added",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}}),
                    out,
                );
            }
            Segment::Text { index, delta } => {
                let item_id = self.answer.item_id(index, false);
                self.push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                        "delta": delta, "logprobs": []}),
                    out,
                );
            }
            Segment::CallStart { index, id, name } => {
                self.answer.items.push(Item::Call { call_id: id, name, arguments: String::new() });
                let item = self.item(index, "in_progress");
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
            }
            Segment::Args { index, delta } => {
                let item_id = self.answer.item_id(index, true);
                self.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": index, "delta": delta}),
                    out,
                );
            }
            Segment::Stop { index, content } => self.stop(index, content, out),
        }
    }

    fn end(
        &mut self,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
        out: &mut VecDeque<Event>,
    ) {
        self.answer.finish(usage, finish);
        let kind = if self.answer.status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let response = self.response();
        self.push(kind, json!({"response": response}), out);
    }

    fn broken(&mut self, error: &StreamError, out: &mut VecDeque<Event>) {
        self.answer.status = "failed";
        let mut response = self.response();
        response["error"] = json!({"code": "server_error", "message": error.to_string()});
        self.push("response.failed", json!({"response": response}), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_calls_outputs_instructions_and_a_schema() {
        let body = json!({
            "model": "default", "instructions": "be brief", "max_output_tokens": 50,
            "input": [
                {"role": "user", "content": "weather in Oslo?"},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "and"},
                    {"type": "input_image", "image_url": "https://x/y.png"}]},
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
            "store": false,
        });
        let request = parse(body.to_string().as_bytes()).expect("parses").request;
        let roles: Vec<Role> = request.messages.iter().map(|message| message.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::User]);
        assert_eq!(request.messages[2].tool_calls[0].id, "c1");
        assert_eq!(request.messages[3].joined_text(), "rain");
        assert!(request.messages[4].has_image());
        assert_eq!(request.max_tokens, Some(50));
        assert_eq!(request.tool_choice, Some(ToolChoice::Function("weather".into())));
        assert_eq!(
            request.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "w".into(),
                schema: json!({"type": "object"}),
                strict: true
            })
        );
    }

    #[test]
    fn stored_state_and_unknown_items_are_refused_by_name() {
        let refused =
            |body: Value| parse(body.to_string().as_bytes()).expect_err("refused").to_string();
        let error = refused(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}));
        assert!(
            error.starts_with("previous_response_id: this gateway stores no responses"),
            "{error}"
        );
        let error =
            refused(json!({"model": "m", "input": [{"type": "file_search_call", "id": "x"}]}));
        assert!(error.starts_with("input[0].type: item type \"file_search_call\""), "{error}");
        let error =
            refused(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}));
        assert_eq!(error, "tools: type \"web_search\" is not supported (only \"function\")");
        let error = refused(json!({"model": "m", "instructions": "x"}));
        assert_eq!(error, "input: at least one message is required");
    }

    #[test]
    fn the_answer_is_a_response_with_items_and_its_usage() {
        let response = ChatResponse {
            model: "m".into(),
            text: "Hello".into(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: Some(FinishReason::ToolCalls),
            usage: Usage::new(3, 4),
            ..ChatResponse::default()
        };
        let answer = Answer::plain(&response, "req-1", 9);
        let value = serde_json::to_value(answer.view()).expect("json");
        assert_eq!(
            value,
            json!({
                "id": "resp_req-1", "object": "response", "created_at": 9, "status": "completed",
                "model": "m",
                "output": [
                    {"type": "message", "id": "msg_req-1_0", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
                    {"type": "function_call", "id": "fc_req-1_1", "status": "completed",
                     "call_id": "c1", "name": "f", "arguments": "{}"},
                ],
                "usage": {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 7},
                "incomplete_details": null, "error": null,
            })
        );
    }
}
