//! The [`Provider`] over HTTP: `POST /api/chat` (plain and NDJSON-streamed),
//! `GET /api/tags` and embeddings (`POST /api/embed`).
//!
//! A local Ollama needs no key; when a credential is given (Ollama's cloud, or a proxy in
//! front) it goes as `Authorization: Bearer`, in a sensitive header, and Ollama's messages
//! are redacted before they become errors. A refused connection (no server on the port) is a
//! [`ErrorKind::Network`] error, so the router moves on.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use switchyard_core::http::{Adapter, Attempt, ClientSettings, Dialect, Limits, endpoints};
use switchyard_core::retry_wire::RetryAfterWire;
use switchyard_core::{
    Call, ChatReply, ChatStream, Credential, EmbedCall, EmbedReply, ErrorKind, ModelId, ModelInfo,
    Protocol, ProviderError, ProviderId,
};

use crate::OllamaError;
use crate::config::OllamaConfig;
use crate::decode::{StreamDecoder, decode_response};
use crate::embed::{decode_embed_response, encode_embed_request};
use crate::encode::encode_request;
use crate::error::error_from_response;
use crate::wire::Tags;

/// An Ollama server speaking its native API: the shared [`Adapter`] speaking [`NativeChat`].
pub type Ollama = Adapter<NativeChat>;

/// Ollama's native `/api` dialect: its endpoints, checked once.
#[derive(Clone, Debug)]
pub struct NativeChat {
    chat_url: reqwest::Url,
    tags_url: reqwest::Url,
}

// ProviderError is what the Provider trait returns; boxing it in the request builders would
// only unbox it again.
#[expect(clippy::result_large_err, reason = "the Provider trait's error, returned as it is")]
impl NativeChat {
    /// A request to `url`, with the key as a bearer token when the call has one (a local
    /// Ollama needs none).
    fn request(
        adapter: &Ollama,
        method: reqwest::Method,
        url: &reqwest::Url,
        attempt: &Attempt,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if attempt.credential().is_some() {
            headers.insert(AUTHORIZATION, attempt.key_header("Bearer ")?);
        }
        Ok(adapter.upstream().http().request(method, url.clone()).headers(headers))
    }

    /// `POST /api/chat` with the encoded request.
    fn post(
        &self,
        adapter: &Ollama,
        call: &Call<'_>,
        stream: bool,
    ) -> Result<(Attempt, reqwest::RequestBuilder), ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let body = encode_request(call.request, call.model.as_str(), stream)
            .map_err(|error| attempt.error(error))?;
        let request = Self::request(adapter, reqwest::Method::POST, &self.chat_url, &attempt)?;
        Ok((attempt, request.body(body.to_string())))
    }
}

/// How Ollama reports failures: it sends no rate-limit headers, but its cloud (or a proxy)
/// may send `retry-after`.
const REPORTS: RetryAfterWire = RetryAfterWire::new(error_from_response);

impl Dialect for NativeChat {
    type Config = OllamaConfig;
    type Error = OllamaError;
    const PROTOCOL: Protocol = Protocol::Ollama;

    /// Refuses a base URL that is not http(s).
    fn prepare(config: &OllamaConfig) -> Result<Self, OllamaError> {
        let Some([chat_url, tags_url]) = endpoints(&config.base_url, ["/api/chat", "/api/tags"])
        else {
            return Err(OllamaError::BaseUrl {
                id: config.id.clone(),
                url: config.base_url.clone(),
            });
        };
        Ok(Self { chat_url, tags_url })
    }

    fn id(config: &OllamaConfig) -> &ProviderId {
        &config.id
    }

    fn client_settings(config: &OllamaConfig) -> ClientSettings {
        ClientSettings { connect_timeout: config.connect_timeout, ..ClientSettings::default() }
    }

    /// A local model loads for a while before its first token: a stream may stay silent as
    /// long as a whole call may take.
    fn limits(config: &OllamaConfig) -> Limits {
        let timeout = config.timeout;
        let (max_body_bytes, max_line_bytes) = (config.max_body_bytes, config.max_line_bytes);
        Limits { timeout, stream_idle_timeout: timeout, max_body_bytes, max_line_bytes }
    }

    fn client_error(_: &OllamaConfig, error: reqwest::Error) -> OllamaError {
        OllamaError::Client(error)
    }

    async fn chat(&self, adapter: &Ollama, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, false)?;
        let fetched = adapter.upstream().fetch(request, &attempt, &REPORTS).await?;
        let response = decode_response(&fetched.body).map_err(|error| attempt.error(error))?;
        Ok(fetched.reply(response))
    }

    async fn chat_stream(
        &self,
        adapter: &Ollama,
        call: Call<'_>,
    ) -> Result<ChatStream, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, true)?;
        let answer = adapter.upstream().open(request, &attempt, &REPORTS).await?;
        Ok(adapter.upstream().ndjson(answer, StreamDecoder::new(), attempt))
    }

    /// `POST /api/embed` with every input in one call.
    async fn embed(
        &self,
        adapter: &Ollama,
        call: EmbedCall<'_>,
    ) -> Result<EmbedReply, ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let Some([url]) = endpoints(&adapter.config().base_url, ["/api/embed"]) else {
            let message = format!("base URL {:?} is not an http(s) URL", adapter.config().base_url);
            return Err(attempt.fail(ErrorKind::BadRequest, message));
        };
        let body = encode_embed_request(call.request, call.model.as_str()).to_string();
        let request = Self::request(adapter, reqwest::Method::POST, &url, &attempt)?;
        let fetched = adapter.upstream().fetch(request.body(body), &attempt, &REPORTS).await?;
        match decode_embed_response(&fetched.body, call.request) {
            Ok(response) => Ok(fetched.embed_reply(response)),
            Err((kind, message)) => Err(fetched.unreadable(&attempt, kind, message)),
        }
    }

    async fn list_models(
        &self,
        adapter: &Ollama,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = adapter.attempt(&ModelId::new(""), credential);
        let request = Self::request(adapter, reqwest::Method::GET, &self.tags_url, &attempt)?;
        let fetched = adapter.upstream().fetch(request, &attempt, &REPORTS).await?;
        let tags: Tags = serde_json::from_slice(&fetched.body).map_err(|source| {
            attempt.error(OllamaError::Malformed { what: "model list", source })
        })?;
        Ok(tags
            .models
            .into_iter()
            .map(|model| ModelInfo {
                id: ModelId::new(model.name),
                owned_by: None,
                context_window: None,
            })
            .collect())
    }
}
