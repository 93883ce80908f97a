//! Ollama's native `/api/chat` JSON, as serde types: the request body, the response (also
//! each NDJSON line of a streamed one), the error body and the `/api/tags` listing. Nothing
//! here knows [`switchyard_core::ChatRequest`].
//!
//! Every type both serializes and deserializes, so a test (or `switchyard-mock`) can read a
//! body back and check what was sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/chat` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatBody {
    /// `name:tag`.
    pub model: String,
    /// The conversation, system messages in place.
    pub messages: Vec<WireMessage>,
    /// Whether to stream. Always sent: Ollama streams when it is absent.
    pub stream: bool,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool>,
    /// `"json"` or a JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Sampling and output settings (Modelfile parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Whether a thinking model thinks first (absent: the model's default). Ollama takes no
    /// budget; a model that cannot think refuses `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message, and the `message` of a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Its author.
    pub role: WireRole,
    /// Its text.
    #[serde(default)]
    pub content: String,
    /// Base64 images (no media type, no URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Calls an assistant message made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    /// On a tool result: the function that was called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// One call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireToolCall {
    /// An id, which newer servers may add; older ones give none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call.
    pub function: WireFunctionCall,
}

/// `tool_calls[].function`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireFunctionCall {
    /// The function.
    pub name: String,
    /// The arguments as a JSON object (not a string, unlike OpenAI).
    #[serde(default)]
    pub arguments: Value,
}

/// One tool definition, in OpenAI's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: WireFunction,
}

/// `tools[].function`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireFunction {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parameters as JSON Schema.
    pub parameters: Value,
}

/// `options`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// The output token limit (`-1`, Ollama's default, is unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<i64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// A seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

impl Options {
    /// Whether nothing is set (the field is then left out).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A response, and each NDJSON line of a streamed one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLine {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The answer (a delta in a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<WireMessage>,
    /// Whether this is the last line.
    #[serde(default)]
    pub done: bool,
    /// `stop`, `length`, `load`, `unload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Input tokens (absent when the whole prompt came from the cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u32>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u32>,
    /// A failure: an error body, or a failure mid-stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/tags`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tags {
    /// The local models.
    #[serde(default)]
    pub models: Vec<TagModel>,
}

/// One local model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagModel {
    /// `llama3.2:latest`.
    pub name: String,
}
