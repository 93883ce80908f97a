//! The Messages API's JSON, as serde types: the request body, the response, the streamed
//! events and the error body. Field names are Anthropic's; nothing here knows
//! [`switchyard_core::ChatRequest`] (that is [`crate::encode_request`] and
//! [`crate::decode_response`]).
//!
//! Every type both serializes and deserializes, so a test (or `switchyard-mock`) can read a
//! body back and check what was sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model id.
    pub model: String,
    /// The output token limit; required by Anthropic.
    pub max_tokens: u32,
    /// The conversation without system messages.
    pub messages: Vec<WireMessage>,
    /// The system prompt: top-level, never a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Sampling temperature, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Whether to answer as server-sent events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool>,
    /// Whether and which tool must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<WireToolChoice>,
    /// Extended thinking, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<WireThinking>,
}

/// `thinking`: the model thinks in up to `budget_tokens` (at least 1024, below `max_tokens`)
/// before answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireThinking {
    /// Thinking on, with its budget.
    Enabled {
        /// The most tokens the thinking may take.
        budget_tokens: u32,
    },
}

/// Who wrote a message: Anthropic knows only these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Its author.
    pub role: WireRole,
    /// Its content.
    pub content: WireContent,
}

/// A message's content: a bare string or a list of blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireContent {
    /// Plain text.
    Text(String),
    /// Typed blocks.
    Blocks(Vec<ContentBlock>),
}

/// One content block of a message or a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where its bytes are.
        source: ImageSource,
    },
    /// A call the model made.
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, a JSON object.
        input: Value,
    },
    /// The answer to a call.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// The result.
        content: WireContent,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// Any block this adapter does not read (`thinking`, `redacted_thinking`, server tools).
    #[serde(other)]
    Unknown,
}

/// An image's bytes or address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline, base64-encoded.
    Base64 {
        /// `image/png`, `image/jpeg`, ...
        media_type: String,
        /// The base64 payload.
        data: String,
    },
    /// Fetched by Anthropic from a public URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// A tool definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireTool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its input as a JSON Schema object.
    pub input_schema: Value,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireToolChoice {
    /// The model decides.
    Auto,
    /// The model must call some tool.
    Any,
    /// The model must call this tool.
    Tool {
        /// The tool's name.
        name: String,
    },
    /// No tool call.
    None,
}

/// A complete (non-streamed) answer, and the `message` of a `message_start` event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_...`.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The answer's blocks (empty in `message_start`). Required, so that an error body sent
    /// with a 2xx status does not read as an empty message.
    pub content: Vec<ContentBlock>,
    /// Why it stopped (`null` in `message_start`).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: WireUsage,
}

/// `usage` of a response or a `message_start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u32,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u32,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
}

impl WireUsage {
    /// All input tokens: fresh, cache writes and cache reads.
    pub fn prompt_tokens(&self) -> u32 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

/// One server-sent event's `data`; its `type` repeats the event's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The answer begins; carries the input token count.
    MessageStart {
        /// The message so far (no content).
        message: MessagesResponse,
    },
    /// A content block begins.
    ContentBlockStart {
        /// The block's position in the answer.
        index: u32,
        /// The block, empty (a `tool_use` has `input: {}`).
        content_block: ContentBlock,
    },
    /// More of a content block.
    ContentBlockDelta {
        /// The block's position in the answer.
        index: u32,
        /// What to add.
        delta: BlockDelta,
    },
    /// A content block is complete.
    ContentBlockStop {
        /// The block's position in the answer.
        index: u32,
    },
    /// The answer's end: stop reason and cumulative usage.
    MessageDelta {
        /// The stop reason.
        delta: MessageDelta,
        /// Cumulative counts.
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    /// The stream is complete.
    MessageStop,
    /// A keep-alive.
    Ping,
    /// A failure after the 200 status.
    Error {
        /// What failed.
        error: ErrorDetail,
    },
    /// An event type this adapter does not know; ignored, as Anthropic asks.
    #[serde(other)]
    Unknown,
}

/// What a `content_block_delta` adds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// More text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// More of a tool call's input JSON, to concatenate.
    InputJsonDelta {
        /// A fragment of JSON text.
        partial_json: String,
    },
    /// Thinking, signatures, citations: not read.
    #[serde(other)]
    Other,
}

/// `message_delta.delta`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Why the answer stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// `message_delta.usage`: cumulative counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaUsage {
    /// Output tokens so far.
    #[serde(default)]
    pub output_tokens: u32,
    /// Input tokens, when this event repeats them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    /// Cache writes, when repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
    /// Cache reads, when repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
}

/// An error response body: `{"type":"error","error":{...},"request_id":"req_..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What failed.
    pub error: ErrorDetail,
    /// Anthropic's request id, in newer responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `error` of an error body or an `error` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `rate_limit_error`, `overloaded_error`, `invalid_request_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Anthropic's words.
    #[serde(default)]
    pub message: String,
}

/// `GET /v1/models` page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelsPage {
    /// The models.
    #[serde(default)]
    pub data: Vec<WireModel>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_more: bool,
    /// The last id of this page, for `after_id`.
    #[serde(default)]
    pub last_id: Option<String>,
}

/// One listed model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireModel {
    /// Its id.
    pub id: String,
    /// Its context window, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u32>,
}
