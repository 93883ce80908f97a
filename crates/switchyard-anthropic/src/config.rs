//! [`AnthropicConfig`]: how to reach one Anthropic upstream, as plain data.

use std::time::Duration;

use switchyard_core::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES, ProviderId};

use crate::encode::DEFAULT_MAX_TOKENS;

/// How to reach one Anthropic upstream. Plain data: build it with struct update syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnthropicConfig {
    /// The provider's configured name.
    pub id: ProviderId,
    /// Scheme, host and port, without `/v1`.
    pub base_url: String,
    /// The `anthropic-version` header.
    pub version: String,
    /// The output token limit sent when a request sets none (Anthropic requires one).
    pub default_max_tokens: u32,
    /// How long a plain call may take in all, and how long a stream may go silent.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The largest plain body read (an answer, a model page); a longer one is a
    /// `MalformedResponse` and the router moves on.
    pub max_body_bytes: usize,
    /// The longest line, and the largest event, of a stream.
    pub max_line_bytes: usize,
}

impl AnthropicConfig {
    /// Anthropic's public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    /// The API version every current model speaks.
    pub const DEFAULT_VERSION: &'static str = "2023-06-01";

    /// The public API under the name `id`, with the defaults: 4096 output tokens, a 10-minute
    /// call timeout (long answers of large models take minutes), 10 s to connect, 8 MiB bodies
    /// and 1 MiB stream lines ([`DEFAULT_MAX_BODY_BYTES`], [`DEFAULT_MAX_LINE_BYTES`]).
    pub fn new(id: impl Into<ProviderId>) -> Self {
        Self {
            id: id.into(),
            base_url: Self::DEFAULT_BASE_URL.into(),
            version: Self::DEFAULT_VERSION.into(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}
