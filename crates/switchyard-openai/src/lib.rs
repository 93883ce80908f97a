//! The OpenAI Chat Completions adapter, with presets for the providers that speak it: OpenAI,
//! Groq, Mistral, OpenRouter, and any OpenAI-compatible server by base URL (vLLM, llama.cpp,
//! LM Studio, Ollama's `/v1`).
//!
//! [`OpenAiProvider`] implements [`switchyard_core::Provider`] over a pooled reqwest client
//! (rustls) shared by every adapter with the same connection settings: plain and SSE-streamed chat, model listing, embeddings (`POST {base}/embeddings`), the `x-ratelimit-*`
//! headers read into a [`RateLimitSnapshot`](switchyard_core::RateLimitSnapshot), and every
//! error body classified into an [`ErrorKind`](switchyard_core::ErrorKind). The wire mapping
//! is pure and public ([`encode_request`], [`decode_response`], [`decode_chunk`],
//! [`classify`]), so it is tested without HTTP.
//!
//! This crate knows no other Switchyard crate but `switchyard-core`. It never logs or
//! returns a secret: upstream messages pass through
//! [`Credential::redact`](switchyard_core::Credential::redact) before they land in an error.

mod classify;
mod client;
mod decode;
mod embed;
mod encode;
mod error;
mod preset;
mod wire;

pub use classify::{
    WireError, classify, classify_preset, parse_error_body, rate_limits, retry_delay,
    scope_in_message,
};
pub use client::{ChatCompletions, OpenAiProvider};
pub use decode::{DecodeError, decode_chunk, decode_models, decode_response};
pub use embed::{decode_embed_response, encode_embed_request};
pub use encode::{encode_request, encode_request_body};
pub use error::OpenAiError;
pub use preset::{Attribution, OpenAiConfig, Preset};
