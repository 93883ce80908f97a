//! The contract between the protocol-independent mock (keys, quotas, faults, latency, log) and
//! one provider's wire format. A [`WireFormat`] only parses requests and renders answers: it
//! never decides whether a request is served. The server decides that from the script and
//! hands the format a neutral [`Reply`] or [`Failure`] to render in its provider's words.
//!
//! See `PROTOCOLS.md` beside this crate's `Cargo.toml` for how to add a format.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use switchyard_core::{FinishReason, ToolCall, Usage};

/// What a request asks of the upstream, as the format's router reads method and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A chat call; whether it streams is read from the body (OpenAI, Anthropic, Ollama).
    Chat,
    /// A chat call whose path says it streams (Gemini's `:streamGenerateContent`).
    ChatStream,
    /// The model listing.
    ListModels,
}

/// What the mock needs to know of a chat request, read by the format from its wire body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatSummary {
    /// The model asked for.
    pub model: String,
    /// Whether the answer is to be streamed.
    pub stream: bool,
    /// Whether a streamed answer must carry usage (OpenAI's `stream_options.include_usage`;
    /// formats that always send usage set it to `true`).
    pub stream_usage: bool,
    /// All the text of the conversation (system prompt, messages, tool definitions) joined:
    /// the input to the prompt-token estimate.
    pub prompt_text: String,
    /// The text of the last user message: what [`crate::ReplyScript::Echo`] repeats.
    pub last_user_text: String,
    /// The output token limit, whatever the format calls it.
    pub max_tokens: Option<u32>,
    /// Whether the request asked the model to think (OpenAI's `reasoning_effort`, Anthropic's
    /// `thinking`, Gemini's `thinkingConfig.thinkingBudget` above 0, Ollama's `think: true`):
    /// the answer then spends
    /// [`MOCK_REASONING_TOKENS`] more output tokens thinking, reported apart where the format
    /// does.
    pub reasoning: bool,
}

/// The thinking tokens a mock answer spends when the request asked for reasoning.
pub const MOCK_REASONING_TOKENS: u32 = 24;

/// A successful answer, protocol-neutral; the format renders it plain or as stream frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The answer's id (`chatcmpl-mock-7`); formats may reshape it.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix seconds of the answer, from the mock's clock.
    pub created: i64,
    /// The text, already cut to the token limit.
    pub text: String,
    /// The text in the pieces a stream sends, in order; joined they equal `text`.
    pub pieces: Vec<String>,
    /// Tool calls the answer makes.
    pub tool_calls: Vec<ToolCall>,
    /// Why the answer ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
}

/// The window a mock quota counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// A sliding 60-second window.
    Minute,
    /// A calendar day in the mock's time zone.
    Day,
}

/// What a mock quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Requests.
    Requests,
    /// Tokens (prompt and completion together).
    Tokens,
}

/// A failure the mock decided on, protocol-neutral; the format renders it with its
/// provider's real status, body and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A quota window is spent.
    RateLimited {
        /// The window.
        window: Window,
        /// What it counts.
        unit: Unit,
        /// Its limit.
        limit: u64,
        /// What was used of it.
        used: u64,
        /// What this request needed.
        requested: u64,
        /// When the request would fit.
        retry_after: Duration,
    },
    /// The request needs more tokens than the per-minute limit allows at all.
    RequestTooLarge {
        /// The per-minute token limit.
        limit: u64,
        /// What the request needed.
        requested: u64,
    },
    /// No credit or a spend cap.
    BillingStopped,
    /// An unknown, missing or revoked key. `sent` is the key as the client sent it, for
    /// formats whose message echoes a masked form of it.
    InvalidKey {
        /// The key sent, if any.
        sent: Option<String>,
    },
    /// The key may not do this.
    PermissionDenied,
    /// The model is not served.
    ModelNotFound {
        /// The model asked for.
        model: String,
    },
    /// The prompt is longer than the context window.
    ContextTooLong {
        /// The window in tokens.
        max: u64,
        /// The prompt's tokens.
        requested: u64,
    },
    /// The request cannot be read.
    BadRequest {
        /// Why.
        message: String,
    },
    /// The upstream is overloaded (OpenAI's 503, Anthropic's 529).
    Overloaded,
    /// The upstream failed with this 5xx status.
    ServerError {
        /// The status.
        status: u16,
    },
}

impl Failure {
    /// A short stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            Self::RateLimited { window: Window::Minute, .. } => "rate_limited_minute",
            Self::RateLimited { window: Window::Day, .. } => "rate_limited_day",
            Self::RequestTooLarge { .. } => "request_too_large",
            Self::BillingStopped => "billing_stopped",
            Self::InvalidKey { .. } => "invalid_key",
            Self::PermissionDenied => "permission_denied",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::ContextTooLong { .. } => "context_too_long",
            Self::BadRequest { .. } => "bad_request",
            Self::Overloaded => "overloaded",
            Self::ServerError { .. } => "server_error",
        }
    }
}

/// One quota window's state, for the rate-limit headers of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowReading {
    /// The window.
    pub window: Window,
    /// What it counts.
    pub unit: Unit,
    /// Its limit.
    pub limit: u64,
    /// What is left.
    pub remaining: u64,
    /// Time until the window is whole again.
    pub reset_after: Duration,
    /// The same as an instant.
    pub reset_at: DateTime<Utc>,
}

/// A rendered non-streamed answer.
#[derive(Clone, Debug)]
pub struct WireResponse {
    /// The status.
    pub status: StatusCode,
    /// Headers beyond `content-type` (`retry-after`, ...).
    pub headers: HeaderMap,
    /// The `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl WireResponse {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            content_type: "application/json",
            body: Bytes::from(body.to_string()),
        }
    }

    /// Adds a header (names and values the format writes are valid by construction).
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(value) = value.to_string().parse() {
            self.headers.insert(name, value);
        }
        self
    }
}

/// A rendered streamed answer: each frame is written as it comes (an SSE event with its
/// blank line, an NDJSON line).
#[derive(Clone, Debug)]
pub struct StreamFrames {
    /// The `content-type` (`text/event-stream`, `application/x-ndjson`).
    pub content_type: &'static str,
    /// The frames, in order.
    pub frames: Vec<Bytes>,
}

/// One provider's wire format: how to read its requests and how to say things in it.
///
/// Implementations are pure: no state, no clock, no I/O. The server calls them with what
/// the script decided.
pub trait WireFormat: Send + Sync + 'static {
    /// A short name for logs (`openai`, `groq`).
    fn name(&self) -> &'static str;

    /// The path prefix clients put after `http://host:port` (`/v1`); the mock's
    /// [`base_url`](crate::MockUpstream::base_url) ends with it.
    fn base_path(&self) -> &'static str;

    /// Which operation a request is, from its method and path (query excluded); `None`
    /// answers 404.
    fn operation(&self, method: &Method, path: &str) -> Option<Operation>;

    /// The key the client sent, from the headers or the query string.
    fn credential(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String>;

    /// Reads a chat request's body.
    ///
    /// # Errors
    /// A message saying what is wrong, rendered as [`Failure::BadRequest`].
    fn parse_chat(
        &self,
        operation: Operation,
        path: &str,
        body: &Value,
    ) -> Result<ChatSummary, String>;

    /// A plain answer's body.
    fn chat_body(&self, summary: &ChatSummary, reply: &Reply) -> Value;

    /// A streamed answer's frames, terminator included.
    fn stream_frames(&self, summary: &ChatSummary, reply: &Reply) -> StreamFrames;

    /// The model listing's body.
    fn models_body(&self, models: &[String]) -> Value;

    /// A failure, in the provider's real status, body and headers. `model` is the model
    /// asked for, when the request named one.
    fn failure(&self, failure: &Failure, model: Option<&str>) -> WireResponse;

    /// Adds the provider's rate-limit headers for the key's windows to a response (success
    /// and failure alike). Formats whose provider sends none leave `headers` alone.
    fn limit_headers(&self, readings: &[WindowReading], headers: &mut HeaderMap);

    /// A frame that cannot be parsed, for the malformed-stream fault. The default suits SSE.
    fn malformed_frame(&self) -> Bytes {
        Bytes::from_static(b"data: {\"choices\": [{\"delta\": \n\n")
    }

    /// A body that cannot be parsed, for the malformed-body fault.
    fn malformed_body(&self) -> Bytes {
        Bytes::from_static(b"{\"id\": \"mock\", \"choices\": [{\"message\": {\"content\": \"Hel")
    }
}

/// Writes a duration the way Go's `time.Duration` prints it, as OpenAI and Groq headers and
/// messages do: `12ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn format_go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = (millis / 60_000) % 60;
    let seconds_millis = millis % 60_000;
    let mut text = String::new();
    if hours > 0 {
        let _ = write!(text, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(text, "{minutes}m");
    }
    let whole = seconds_millis / 1000;
    let frac = seconds_millis % 1000;
    if frac == 0 {
        let _ = write!(text, "{whole}s");
    } else {
        let frac = format!("{frac:03}");
        let _ = write!(text, "{whole}.{}s", frac.trim_end_matches('0'));
    }
    text
}

/// Reads the key from an `Authorization: Bearer <key>` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let key = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    let key = key.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_print_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(12), "12ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(179_560), "2m59.56s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_go_duration(duration), text);
            let back = switchyard_core::ratelimit::parse_go_duration(text);
            assert_eq!(back, Some(duration), "{text}");
        }
    }

    #[test]
    fn bearer_reads_the_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer sk-1".parse().expect("header"));
        assert_eq!(bearer(&headers).as_deref(), Some("sk-1"));
        headers.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
    }
}
