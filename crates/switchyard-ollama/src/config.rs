//! [`OllamaConfig`]: how to reach one Ollama server, as plain data.

use std::time::Duration;

use switchyard_core::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES, ProviderId};

/// How to reach one Ollama server. Plain data: build it with struct update syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OllamaConfig {
    /// The provider's configured name.
    pub id: ProviderId,
    /// Scheme, host and port, without `/api`.
    pub base_url: String,
    /// How long a plain call may take in all, and how long a stream may go silent. Local
    /// models load for a while before the first token.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The largest plain body read (an answer, the model list); a longer one is a
    /// `MalformedResponse` and the router moves on.
    pub max_body_bytes: usize,
    /// The longest NDJSON line of a stream.
    pub max_line_bytes: usize,
}

impl OllamaConfig {
    /// Ollama's default address.
    pub const DEFAULT_BASE_URL: &'static str = "http://localhost:11434";

    /// A local server under the name `id`: a 10-minute call timeout, 5 s to connect (a local
    /// server that takes longer is not there), 8 MiB bodies and 1 MiB stream lines
    /// ([`DEFAULT_MAX_BODY_BYTES`], [`DEFAULT_MAX_LINE_BYTES`]).
    pub fn new(id: impl Into<ProviderId>) -> Self {
        Self {
            id: id.into(),
            base_url: Self::DEFAULT_BASE_URL.into(),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}
