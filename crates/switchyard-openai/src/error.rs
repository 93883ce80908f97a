//! The crate's own error: a provider that cannot be configured or built. Failed calls are
//! [`ProviderError`](switchyard_core::ProviderError)s, classified like every adapter's.

use switchyard_core::{Classify, NextStep, ProviderId};

/// Why an [`OpenAiProvider`](crate::OpenAiProvider) could not be configured or built.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// The base URL is not an `http://` or `https://` URL.
    #[error("provider {id}: base URL {url:?} is not an http(s) URL")]
    BaseUrl {
        /// The provider.
        id: ProviderId,
        /// The URL given.
        url: String,
    },
    /// A configured header (or OpenRouter attribution) is not a valid header name or value.
    #[error("provider {id}: header {name:?} is not a valid header name or value")]
    Header {
        /// The provider.
        id: ProviderId,
        /// The header's name.
        name: String,
    },
    /// No preset has this name.
    #[error(
        "no OpenAI-format preset named {0:?} (openai, groq, mistral, openrouter, openai-compatible)"
    )]
    UnknownPreset(String),
    /// The HTTP client could not be built (the TLS roots could not be loaded).
    #[error("provider {id}: cannot build its HTTP client")]
    Client {
        /// The provider.
        id: ProviderId,
        /// What reqwest said.
        #[source]
        source: reqwest::Error,
    },
}

impl Classify for OpenAiError {
    fn next_step(&self) -> NextStep {
        match self {
            // Configuration errors: no other attempt fixes them; the operator must.
            Self::BaseUrl { .. }
            | Self::Header { .. }
            | Self::UnknownPreset(_)
            | Self::Client { .. } => NextStep::Stop,
        }
    }
}
