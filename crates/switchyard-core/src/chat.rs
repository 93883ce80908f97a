//! The one chat request and response every adapter maps to and from its wire format.
//!
//! The shape follows OpenAI's Chat Completions, the format most clients already speak, with
//! provider-neutral names: `max_tokens` is the output token limit whatever the provider calls
//! it (`max_completion_tokens`, `maxOutputTokens`, `options.num_predict`), and `extra` carries
//! provider-specific fields through untouched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model. Adapters move it where their provider wants it (a
    /// top-level `system` field for Anthropic, `systemInstruction` for Gemini).
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering the assistant message that asked for it.
    Tool,
}

/// An image given by URL: `https://...` or a `data:<mime>;base64,<data>` URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageUrl {
    /// The URL or data URI.
    pub url: String,
    /// OpenAI's `detail` hint (`low`, `high`, `auto`), dropped by providers without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// The media type and base64 payload of a `data:` URI, for providers that take inline
    /// images only (Anthropic, Gemini, Ollama). `None` for a plain URL.
    pub fn as_base64(&self) -> Option<(&str, &str)> {
        let rest = self.url.strip_prefix("data:")?;
        let (media_type, data) = rest.split_once(";base64,")?;
        Some((media_type, data))
    }
}

/// One part of a message's content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    ImageUrl {
        /// Where the image is.
        image_url: ImageUrl,
    },
}

/// A tool call the assistant asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call; a tool result names it in `tool_call_id`.
    pub id: String,
    /// The function to call.
    pub name: String,
    /// The arguments, as the JSON text the model wrote (it may not parse).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON object, as providers that take them parsed need them (empty
    /// text is `{}`); `None` when they are not a JSON object.
    pub fn arguments_object(&self) -> Option<Value> {
        if self.arguments.trim().is_empty() {
            return Some(Value::Object(Map::new()));
        }
        serde_json::from_str::<Value>(&self.arguments).ok().filter(Value::is_object)
    }

    /// The message an adapter refuses a call with when [`ToolCall::arguments_object`] is
    /// `None`.
    pub fn arguments_not_an_object(&self) -> String {
        format!("the arguments of the call to {} are not a JSON object", self.name)
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// An optional participant name (OpenAI's `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message of plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: vec![ContentPart::Text { text: text.into() }],
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self { tool_call_id: Some(tool_call_id.into()), ..Self::text(Role::Tool, text) }
    }

    /// The text parts joined, images left out.
    pub fn joined_text(&self) -> String {
        let mut text = String::new();
        for part in &self.content {
            if let ContentPart::Text { text: part } = part {
                text.push_str(part);
            }
        }
        text
    }

    /// Whether any part is an image.
    pub fn has_image(&self) -> bool {
        self.content.iter().any(|part| matches!(part, ContentPart::ImageUrl { .. }))
    }
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool call.
    None,
    /// At least one tool call.
    Required,
    /// This function.
    Function(String),
}

/// The shape the answer must take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Whether the provider must follow the schema exactly, where it can.
        #[serde(default)]
        strict: bool,
    },
}

/// A chat request, before a candidate is chosen: it names no provider, key or model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The most tokens the answer may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// A seed for providers that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The answer's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Provider-specific fields, copied into the wire body as they are.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// Tags for routing rules; never sent upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How hard the model should think before answering, for models that reason. Each adapter
    /// maps it to its provider's control (see [`ReasoningEffort`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
}

/// How much a reasoning model should think: OpenAI's `reasoning_effort` values. OpenAI-family
/// providers take it as it is; providers that take a token budget instead (Anthropic's
/// `thinking.budget_tokens`, Gemini's `thinkingConfig.thinkingBudget`) get
/// [`ReasoningEffort::budget_tokens`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// As little thinking as the model allows.
    Minimal,
    /// A little.
    Low,
    /// Some.
    Medium,
    /// A lot.
    High,
}

impl ReasoningEffort {
    /// Every effort, least first.
    pub const ALL: [Self; 4] = [Self::Minimal, Self::Low, Self::Medium, Self::High];

    /// The thinking budget in tokens for providers that take one. `minimal` is 1024, the least
    /// Anthropic accepts; each step up is a multiple of it, and `high` stays within every
    /// current Gemini thinking model's ceiling (24576 for Flash).
    pub fn budget_tokens(self) -> u32 {
        match self {
            Self::Minimal => 1024,
            Self::Low => 2048,
            Self::Medium => 8192,
            Self::High => 16384,
        }
    }

    /// The effort a token budget stands for: the largest whose budget fits in it (`minimal`
    /// for anything smaller than `low`'s), so `from_budget_tokens(e.budget_tokens()) == e`.
    pub fn from_budget_tokens(budget_tokens: u32) -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|effort| effort.budget_tokens() <= budget_tokens)
            .unwrap_or(Self::Minimal)
    }

    /// The wire name (`minimal`, `low`, `medium`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// Reads a wire name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|effort| effort.as_str() == name)
    }
}

impl ChatRequest {
    /// Puts the `extra` fields into an encoded `body` (a JSON object) as they are: one that
    /// names a field the adapter set wins, since the caller asked for it by name. Returns the
    /// names it replaced, for a debug line.
    pub fn merge_extra<'a>(&'a self, body: &mut Value) -> Vec<&'a str> {
        let Value::Object(object) = body else {
            unreachable!("invariant: a request body is a JSON object");
        };
        let mut replaced = Vec::new();
        for (name, value) in &self.extra {
            if object.insert(name.clone(), value.clone()).is_some() {
                replaced.push(name.as_str());
            }
        }
        replaced
    }

    /// A request of one user message.
    pub fn from_user(text: impl Into<String>) -> Self {
        Self { messages: vec![Message::user(text)], ..Self::default() }
    }

    /// Sets the output token limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Whether any message carries an image.
    pub fn has_image(&self) -> bool {
        self.messages.iter().any(Message::has_image)
    }

    /// The number of characters of text in all messages and tool definitions: the input to a
    /// prompt-token estimate.
    pub fn text_len(&self) -> usize {
        let messages: usize = self
            .messages
            .iter()
            .map(|message| {
                let parts: usize = message
                    .content
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text { text } => text.len(),
                        ContentPart::ImageUrl { .. } => 0,
                    })
                    .sum();
                let calls: usize = message
                    .tool_calls
                    .iter()
                    .map(|call| call.name.len() + call.arguments.len())
                    .sum();
                parts + calls
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|tool| {
                tool.name.len()
                    + tool.description.as_ref().map_or(0, String::len)
                    + tool.parameters.to_string().len()
            })
            .sum();
        messages + tools
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider's safety filter.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// Tokens counted by the provider for one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub completion_tokens: u32,
    /// Their sum as the provider reported it.
    pub total_tokens: u32,
    /// The part of `completion_tokens` the model spent thinking, when the provider reports it
    /// apart (OpenAI's `completion_tokens_details.reasoning_tokens`, Gemini's
    /// `thoughtsTokenCount`); Anthropic counts thinking in its output tokens without a split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u32>,
}

impl Usage {
    /// Usage from input and output counts, the total computed.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            reasoning_tokens: None,
        }
    }
}

/// A complete answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's id of the answer, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// The answer's text (empty when the model only called tools).
    pub text: String,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped; `None` when the provider did not say.
    pub finish_reason: Option<FinishReason>,
    /// Token counts.
    pub usage: Usage,
    /// OpenAI's `system_fingerprint`, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Unix seconds when the upstream created the answer, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_arguments_read_as_an_object_or_not_at_all() {
        let call = |arguments: &str| ToolCall {
            id: "c".into(),
            name: "f".into(),
            arguments: arguments.into(),
        };
        assert_eq!(call("  ").arguments_object(), Some(serde_json::json!({})));
        assert_eq!(call(r#"{"a":1}"#).arguments_object(), Some(serde_json::json!({"a": 1})));
        assert_eq!(call("[1]").arguments_object(), None);
        assert_eq!(call("{").arguments_object(), None);
    }

    #[test]
    fn extra_fields_replace_the_encoded_ones_and_are_named() {
        let mut request = ChatRequest::from_user("hi");
        request.extra.insert("temperature".into(), serde_json::json!(1.5));
        request.extra.insert("keep_alive".into(), serde_json::json!("5m"));
        let mut body = serde_json::json!({"temperature": 0.2, "model": "m"});
        assert_eq!(request.merge_extra(&mut body), ["temperature"]);
        assert_eq!(body, serde_json::json!({"temperature": 1.5, "model": "m", "keep_alive": "5m"}));
    }

    #[test]
    fn data_uri_images_split_into_media_type_and_payload() {
        let image = ImageUrl { url: "data:image/png;base64,iVBORw0K".into(), detail: None };
        assert_eq!(image.as_base64(), Some(("image/png", "iVBORw0K")));
        let remote = ImageUrl { url: "https://example.com/cat.png".into(), detail: None };
        assert_eq!(remote.as_base64(), None);
    }

    #[test]
    fn text_len_counts_messages_and_tools() {
        let mut request = ChatRequest::from_user("abcd");
        request.messages.push(Message::system("ef"));
        assert_eq!(request.text_len(), 6);
        request.tools.push(Tool {
            name: "f".into(),
            description: Some("gh".into()),
            parameters: serde_json::json!({}),
        });
        assert_eq!(request.text_len(), 6 + 1 + 2 + 2);
    }

    #[test]
    fn efforts_map_to_budgets_and_back() {
        for effort in ReasoningEffort::ALL {
            assert_eq!(ReasoningEffort::from_budget_tokens(effort.budget_tokens()), effort);
            assert_eq!(ReasoningEffort::from_name(effort.as_str()), Some(effort));
        }
        assert_eq!(ReasoningEffort::from_budget_tokens(0), ReasoningEffort::Minimal);
        assert_eq!(ReasoningEffort::from_budget_tokens(5000), ReasoningEffort::Low);
        assert_eq!(ReasoningEffort::from_budget_tokens(u32::MAX), ReasoningEffort::High);
        assert_eq!(ReasoningEffort::from_name("extreme"), None);
        let budgets: Vec<u32> = ReasoningEffort::ALL.map(ReasoningEffort::budget_tokens).into();
        assert!(budgets.windows(2).all(|pair| pair[0] < pair[1]), "{budgets:?}");
    }

    #[test]
    fn request_round_trips_through_json() {
        let mut request = ChatRequest::from_user("hi").with_max_tokens(5);
        request.stop = vec!["END".into()];
        request.tool_choice = Some(ToolChoice::Function("lookup".into()));
        request.reasoning_effort = Some(ReasoningEffort::High);
        let json = serde_json::to_string(&request).expect("serializes");
        let back: ChatRequest = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, request);
    }
}
