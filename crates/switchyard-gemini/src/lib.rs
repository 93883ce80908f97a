//! Google Gemini adapter (Generative Language API with an API key): one
//! [`ChatRequest`](switchyard_core::ChatRequest) sent as `generateContent` or
//! `streamGenerateContent?alt=sse`, its answer read back into the shared
//! [`ChatResponse`](switchyard_core::ChatResponse) / [`ChatChunk`](switchyard_core::ChatChunk),
//! and every failure classified into one [`ErrorKind`](switchyard_core::ErrorKind), with a
//! spent quota's window (per minute or per day) told apart by the violated quota id.
//!
//! The pure halves are public so they can be tested and reused without a network:
//! [`encode_request`], [`decode_response`], [`StreamDecoder`], [`error_from_response`];
//! [`wire`] has the JSON as serde types. [`Gemini`] joins them over HTTP as a
//! [`Provider`](switchyard_core::Provider).
//!
//! This crate knows only `switchyard-core`. The key goes into one sensitive header, never a
//! URL, log line or error. It never reads the system time: quota resets are dated on the
//! given [`Clock`](switchyard_core::Clock).

mod client;
mod config;
mod decode;
mod embed;
mod encode;
mod error;
pub mod wire;

pub use client::{Gemini, GenerateContent};
pub use config::GeminiConfig;
pub use decode::{StreamDecoder, call_id, decode_response, finish_reason, usage};
pub use embed::{MAX_BATCH, decode_embed_response, encode_embed_request};
pub use encode::{SIGNATURE_MARK, SYNTHETIC_CALL_PREFIX, encode_request, split_call_id};
pub use error::{
    GeminiError, classify, error_from_response, is_zero_limit, next_pacific_midnight, quota_scope,
    rate_limits_from_headers, retry_delay,
};
