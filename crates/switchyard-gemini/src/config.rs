//! [`GeminiConfig`]: how to reach one Gemini upstream, as plain data.

use std::time::Duration;

use switchyard_core::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES, ProviderId};

/// How to reach one Gemini upstream. Plain data: build it with struct update syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeminiConfig {
    /// The provider's configured name.
    pub id: ProviderId,
    /// Scheme, host and port, without the API version.
    pub base_url: String,
    /// The API version path segment: `v1beta` (where JSON-schema output and function
    /// calling live) or `v1`.
    pub api_version: String,
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

impl GeminiConfig {
    /// Google's public endpoint.
    pub const DEFAULT_BASE_URL: &'static str = "https://generativelanguage.googleapis.com";

    /// The public API under the name `id`: `v1beta`, a 10-minute call timeout (thinking models
    /// take minutes on long answers), 10 s to connect, 8 MiB bodies and 1 MiB stream lines
    /// ([`DEFAULT_MAX_BODY_BYTES`], [`DEFAULT_MAX_LINE_BYTES`]).
    pub fn new(id: impl Into<ProviderId>) -> Self {
        Self {
            id: id.into(),
            base_url: Self::DEFAULT_BASE_URL.into(),
            api_version: "v1beta".into(),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}
