//! Ollama adapter for its native API: one [`ChatRequest`](switchyard_core::ChatRequest) sent
//! as `POST /api/chat` (plain or streamed as NDJSON), its answer read back into the shared
//! [`ChatResponse`](switchyard_core::ChatResponse) / [`ChatChunk`](switchyard_core::ChatChunk),
//! every failure classified into one [`ErrorKind`](switchyard_core::ErrorKind), and the local
//! models listed from `/api/tags`.
//!
//! The pure halves are public so they can be tested and reused without a network:
//! [`encode_request`], [`decode_response`], [`StreamDecoder`], [`error_from_response`];
//! [`wire`] has the JSON as serde types. [`Ollama`] joins them over HTTP as a
//! [`Provider`](switchyard_core::Provider). (Ollama's OpenAI-compatible `/v1` is served by
//! `switchyard-openai`.)
//!
//! This crate knows only `switchyard-core`. A key is optional; when there is one it goes into
//! one sensitive header and never into a log line or an error.

mod client;
mod config;
mod decode;
mod embed;
mod encode;
mod error;
pub mod wire;

pub use client::{NativeChat, Ollama};
pub use config::OllamaConfig;
pub use decode::{StreamDecoder, decode_response, finish_reason};
pub use embed::{decode_embed_response, encode_embed_request};
pub use encode::{SYNTHETIC_CALL_PREFIX, encode_request};
pub use error::{OllamaError, classify, error_from_response, rate_limits_from_headers};
