//! What the gateway writes: typed views borrowing from the router's answer
//! ([`ChatResponse`]) and stream chunks ([`ChatChunk`]), serialized straight into the bytes
//! sent, in OpenAI's Chat Completions shape.

use serde::{Serialize, Serializer};
use switchyard_core::{ChatChunk, ChatResponse, FinishReason, ToolCall, ToolCallDelta, Usage};

use super::finish_reason;

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

/// The part of the completion spent thinking, when the upstream reported it.
#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            completion_tokens_details: usage
                .reasoning_tokens
                .map(|reasoning_tokens| CompletionTokensDetails { reasoning_tokens }),
        }
    }
}

fn serialize_finish_reason<S: Serializer>(
    reason: &Option<FinishReason>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    reason.as_ref().map(finish_reason).serialize(serializer)
}

/// A `chat.completion` object, borrowing the router's answer. `id` and `created` are the
/// upstream's when it gave them.
#[derive(Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: Option<&'a str>,
    choices: [CompletionChoice<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    #[serde(serialize_with = "serialize_finish_reason")]
    finish_reason: &'a Option<FinishReason>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "ToolCalls::is_empty")]
    tool_calls: ToolCalls<'a>,
}

/// The answer's tool calls in OpenAI's shape, written without a copy.
struct ToolCalls<'a>(&'a [ToolCall]);

impl ToolCalls<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallOut<'a>,
}

impl Serialize for ToolCalls<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|call| ToolCallOut {
            id: &call.id,
            kind: "function",
            function: FunctionCallOut { name: &call.name, arguments: &call.arguments },
        }))
    }
}

/// A `chat.completion` object for `response`. `id` and `created` are the upstream's when it
/// gave them.
pub fn completion<'a>(
    response: &'a ChatResponse,
    fallback_id: &'a str,
    now_unix: i64,
) -> Completion<'a> {
    // OpenAI sends `content: null` beside tool calls when there is no text.
    let content = (response.tool_calls.is_empty() || !response.text.is_empty())
        .then_some(response.text.as_str());
    Completion {
        id: response.id.as_deref().unwrap_or(fallback_id),
        object: "chat.completion",
        created: response.created.unwrap_or(now_unix),
        model: &response.model,
        system_fingerprint: response.system_fingerprint.as_deref(),
        choices: [CompletionChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                tool_calls: ToolCalls(&response.tool_calls),
            },
            logprobs: None,
            finish_reason: &response.finish_reason,
        }],
        usage: response.usage.into(),
    }
}

/// What stays the same across the chunks of one streamed answer.
#[derive(Debug, Clone)]
pub struct ChunkFrame {
    /// The answer's id (the upstream's first id, else the gateway's).
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The model, as the upstream names it.
    pub model: String,
    /// The upstream's `system_fingerprint`, once seen.
    pub system_fingerprint: Option<String>,
}

/// A `chat.completion.chunk` object, borrowing its frame and the router's chunk.
#[derive(Serialize)]
pub struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: Option<&'a str>,
    choices: ChunkChoices<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

/// One choice, or none for the closing usage chunk.
enum ChunkChoices<'a> {
    One(ChunkChoice<'a>),
    None,
}

impl Serialize for ChunkChoices<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(choice) => [choice].serialize(serializer),
            Self::None => serializer.collect_seq(std::iter::empty::<()>()),
        }
    }
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    #[serde(serialize_with = "serialize_finish_reason")]
    finish_reason: &'a Option<FinishReason>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "DeltaCalls::is_empty")]
    tool_calls: DeltaCalls<'a>,
}

/// A chunk's tool-call fragments in OpenAI's shape.
struct DeltaCalls<'a>(&'a [ToolCallDelta]);

impl DeltaCalls<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Serialize)]
struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct DeltaCallOut<'a> {
    index: u32,
    // The id and the type come together, on a call's first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaOut<'a>,
}

impl Serialize for DeltaCalls<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|call| DeltaCallOut {
            index: call.index,
            id: call.id.as_deref(),
            kind: call.id.as_ref().map(|_| "function"),
            function: FunctionDeltaOut { name: call.name.as_deref(), arguments: &call.arguments },
        }))
    }
}

/// A `chat.completion.chunk` object with one choice; `first` adds the assistant role.
pub fn chunk<'a>(frame: &'a ChunkFrame, chunk: &'a ChatChunk, first: bool) -> Chunk<'a> {
    let delta = Delta {
        role: first.then_some("assistant"),
        content: (!chunk.text.is_empty() || first).then_some(chunk.text.as_str()),
        tool_calls: DeltaCalls(&chunk.tool_calls),
    };
    Chunk {
        id: &frame.id,
        object: "chat.completion.chunk",
        created: frame.created,
        model: &frame.model,
        system_fingerprint: frame.system_fingerprint.as_deref(),
        choices: ChunkChoices::One(ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: &chunk.finish_reason,
        }),
        usage: None,
    }
}

/// The last chunk when `stream_options.include_usage` is set: no choices, the usage.
pub fn usage_chunk(frame: &ChunkFrame, usage: Usage) -> Chunk<'_> {
    Chunk {
        id: &frame.id,
        object: "chat.completion.chunk",
        created: frame.created,
        model: &frame.model,
        system_fingerprint: frame.system_fingerprint.as_deref(),
        choices: ChunkChoices::None,
        usage: Some(usage.into()),
    }
}
