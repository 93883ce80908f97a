//! Anthropic Messages adapter: one [`ChatRequest`](switchyard_core::ChatRequest) sent as
//! `POST /v1/messages` (plain or as server-sent events), its answer read back into the shared
//! [`ChatResponse`](switchyard_core::ChatResponse) / [`ChatChunk`](switchyard_core::ChatChunk),
//! and every failure classified into one [`ErrorKind`](switchyard_core::ErrorKind).
//!
//! The pure halves are public so they can be tested and reused without a network:
//! [`encode_request`], [`decode_response`], [`StreamDecoder`], [`error_from_response`] and
//! [`rate_limits_from_headers`]; [`wire`] has the JSON as serde types. [`Anthropic`] joins
//! them over HTTP as a [`Provider`](switchyard_core::Provider).
//!
//! This crate knows only `switchyard-core`. It never logs or returns a key: the key goes into
//! one sensitive header, and upstream messages are redacted before they become errors. It
//! never reads the system time: `retry-after` dates are read against the given
//! [`Clock`](switchyard_core::Clock).

mod client;
mod config;
mod decode;
mod encode;
mod error;
pub mod wire;

pub use client::{Anthropic, Messages};
pub use config::AnthropicConfig;
pub use decode::{MAX_BLOCKS, StreamDecoder, decode_response, finish_reason};
pub use encode::{DEFAULT_MAX_TOKENS, Encoded, JSON_OBJECT_TOOL, encode_request};
pub use error::{
    AnthropicError, classify, error_from_response, rate_limits_from_headers, regain_access_at,
};
