//! Switchyard's shared vocabulary: the request and response every adapter maps to and from,
//! the [`EmbedRequest`] and [`EmbedResponse`] of an embedding call, the ids of providers, keys, models and candidates, the [`Credential`] that carries a secret,
//! the [`RateLimitSnapshot`] read from response headers, the one [`ProviderError`]
//! classification that decides the cascade, and the two boundary traits every other crate
//! builds on: [`Provider`] and [`Clock`]. Everything an upstream sends is read through
//! [`bounded`] (bodies, lines and events under a size limit) and [`ratelimit`] (every delay
//! and reset clamped to [`MAX_HINT`]); [`hints`] settles every retry hint of a failed response
//! (headers, body, message) into one delay, window and reset.
//!
//! Behind the `http` feature, `http` holds the HTTP plumbing the four adapters share (one
//! pooled client, the exchange, bounded reads, the stream driver), and `retry_wire` the wire of
//! the protocols that send no rate-limit headers but `retry-after`.
//!
//! This crate opens no connection of its own, keeps no state and never reads the system time
//! outside [`SystemClock`]. It never prints a secret: [`Credential`] shows an id and a fingerprint only.

pub mod bounded;
mod chat;
mod clock;
mod credential;
mod embed;
mod error;
pub mod hints;
#[cfg(feature = "http")]
pub mod http;
mod ids;
mod provider;
pub mod ratelimit;
#[cfg(feature = "http")]
pub mod retry_wire;
pub mod spend;
mod stream;

pub use bounded::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES, MAX_ERROR_BODY_BYTES, Oversized, ReadError,
};
pub use chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, ImageUrl, Message, ReasoningEffort,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use credential::{Credential, Fingerprint};
pub use embed::{EmbedCall, EmbedReply, EmbedRequest, EmbedResponse, embeddings_unsupported};
pub use error::{Classify, ErrorKind, NextStep, ProviderError};
pub use ids::{Candidate, KeyId, ModelId, ProviderId};
pub use provider::{Call, ChatReply, ChatStream, ChunkStream, ModelInfo, Protocol, Provider};
pub use ratelimit::{
    LimitReading, LimitScope, LimitUnit, MAX_HINT, RateLimitSnapshot, Reset, clamp_hint,
};
pub use spend::{SpendDay, SpendError, SpendStore};
pub use stream::{ChatChunk, StreamAccumulator, ToolCallDelta};
