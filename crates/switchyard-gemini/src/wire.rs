//! The Generative Language API's JSON (camelCase), as serde types: the `generateContent`
//! body, its response (also each streamed chunk), the `google.rpc.Status` error body and the
//! model listing. Nothing here knows [`switchyard_core::ChatRequest`].
//!
//! Every type both serializes and deserializes, so a test (or `switchyard-mock`) can read a
//! body back and check what was sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`) body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation without the system prompt.
    pub contents: Vec<Content>,
    /// The system prompt (its `role` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Sampling and output settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Functions the model may call (one entry holding all declarations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool>,
    /// Whether and which function must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
}

/// Who wrote a turn: Gemini calls the assistant `model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    /// The user (and function responses).
    User,
    /// The model.
    Model,
}

/// One turn: a role and its parts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// Its author; unset in `systemInstruction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<WireRole>,
    /// Its parts, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn. Gemini's `Part` is a union of which exactly one data field is set, plus
/// flags; a struct of options reads every variant, known or not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inline bytes (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// A call the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// The answer to a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// Whether this text is the model's thinking, not its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// An opaque signature of the model's thinking that must come back with the part it
    /// was attached to (Gemini 3 refuses a function call returned without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: Some(text.into()), ..Self::default() }
    }
}

/// Inline bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// `image/png`, ...
    pub mime_type: String,
    /// Base64.
    pub data: String,
}

/// `functionCall`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Gemini's id of the call, when the model gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function.
    pub name: String,
    /// The arguments, a JSON object.
    #[serde(default)]
    pub args: Value,
}

/// `functionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionResponse {
    /// The call's id, when the call had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function that was called.
    pub name: String,
    /// The result, a JSON object (`{"output": ...}` for a result that is not one).
    pub response: Value,
}

/// `generationConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// The output token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// A 32-bit seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    /// `application/json` for JSON output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// The answer's JSON Schema (full JSON Schema, unlike the OpenAPI-subset `responseSchema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    /// How much a thinking model may think.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// The most tokens the thinking may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u32>,
}

impl GenerationConfig {
    /// Whether nothing is set (the field is then left out).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One `tools` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTool {
    /// The functions.
    #[serde(default)]
    pub function_declarations: Vec<FunctionDeclaration>,
}

/// One function the model may call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parameters in JSON Schema (the OpenAPI-subset `parameters` would reject common
    /// JSON Schema keywords).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<Value>,
}

/// `toolConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The calling mode.
    pub function_calling_config: FunctionCallingConfig,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY` or `NONE`.
    pub mode: CallingMode,
    /// With `ANY`: the functions that may be called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

/// `functionCallingConfig.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallingMode {
    /// The model decides.
    Auto,
    /// The model must call a function.
    Any,
    /// No function call.
    None,
}

/// A `generateContent` response, and each chunk of a streamed one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The answers (one unless `candidateCount` asked for more); absent when the prompt was
    /// blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Why the prompt was blocked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts (running totals in a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The answer's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

/// One answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Its parts (absent when a safety stop left nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, ...; on the last chunk of a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// `promptFeedback`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
}

/// `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Input tokens.
    #[serde(default)]
    pub prompt_token_count: u32,
    /// Output tokens of the answer, thinking excluded.
    #[serde(default)]
    pub candidates_token_count: u32,
    /// Thinking tokens (billed as output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<u32>,
    /// Input tokens of tool-use prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_prompt_token_count: Option<u32>,
    /// Everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_token_count: Option<u32>,
}

/// An error body: `{"error": google.rpc.Status}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The status.
    pub error: Status,
}

/// `google.rpc.Status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The HTTP status code.
    #[serde(default)]
    pub code: u16,
    /// Google's words.
    #[serde(default)]
    pub message: String,
    /// The canonical code: `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...
    #[serde(default)]
    pub status: String,
    /// Typed details.
    #[serde(default)]
    pub details: Vec<Detail>,
}

/// One entry of `details`. The fields of the detail types this adapter reads
/// (`ErrorInfo`, `QuotaFailure`, `RetryInfo`) side by side; `@type` says which one it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// `type.googleapis.com/google.rpc.ErrorInfo`, ...
    #[serde(rename = "@type", default)]
    pub type_url: String,
    /// `ErrorInfo.reason`: `API_KEY_INVALID`, `SERVICE_DISABLED`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `QuotaFailure.violations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<QuotaViolation>,
    /// `RetryInfo.retryDelay`: a protobuf duration, `"37s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<String>,
}

/// One violated quota.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaViolation {
    /// `generativelanguage.googleapis.com/generate_content_free_tier_requests`, ...
    #[serde(default)]
    pub quota_metric: String,
    /// `GenerateRequestsPerMinutePerProjectPerModel-FreeTier`, ...: names the window.
    #[serde(default)]
    pub quota_id: String,
    /// `{"location": "global", "model": "..."}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_dimensions: Option<Value>,
    /// The limit, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_value: Option<String>,
}

/// `GET /v1beta/models` page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelsPage {
    /// The models.
    #[serde(default)]
    pub models: Vec<WireModel>,
    /// The next page's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One listed model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireModel {
    /// `models/gemini-2.5-flash`.
    pub name: String,
    /// Its context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_limit: Option<u32>,
    /// `generateContent`, `countTokens`, `embedContent`, ...
    #[serde(default)]
    pub supported_generation_methods: Vec<String>,
}
