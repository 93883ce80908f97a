//! The [`Provider`] over HTTP: `POST /api/chat` (plain and NDJSON-streamed) and
//! `GET /api/tags`.
//!
//! A local Ollama needs no key; when a credential is given (Ollama's cloud, or a proxy in
//! front) it goes as `Authorization: Bearer`, in a sensitive header, and Ollama's messages
//! are redacted before they become errors. A refused connection (no server on the port) is a
//! [`ErrorKind::Network`] error, so the router moves on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use switchyard_core::bounded::{Lines, lines, read_body, read_body_truncated};
use switchyard_core::ratelimit::parse_retry_after;
use switchyard_core::{
    Call, ChatReply, ChatStream, Clock, Credential, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES,
    MAX_ERROR_BODY_BYTES, ModelId, ModelInfo, Protocol, Provider, ProviderError, ProviderId,
    RateLimitSnapshot, ReadError,
};

use crate::OllamaError;
use crate::decode::{StreamDecoder, decode_response};
use crate::encode::encode_request;
use crate::error::error_from_response;
use crate::wire::Tags;

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

/// An Ollama server speaking its native API.
#[derive(Clone)]
pub struct Ollama {
    config: OllamaConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ollama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ollama").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Ollama {
    /// An adapter sending through `http`. `clock` dates `retry-after` headers given as HTTP
    /// dates (Ollama's cloud).
    pub fn new(config: OllamaConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self { config, http, clock }
    }

    /// An adapter with its own HTTP client, timeouts taken from `config`.
    ///
    /// # Errors
    /// [`OllamaError::Client`] when the HTTP client cannot be built.
    pub fn try_new(config: OllamaConfig, clock: Arc<dyn Clock>) -> Result<Self, OllamaError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(OllamaError::Client)?;
        Ok(Self::new(config, http, clock))
    }

    /// The configuration.
    pub fn config(&self) -> &OllamaConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn headers(credential: Option<&Credential>) -> Result<HeaderMap, OllamaError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(credential) = credential {
            let mut bearer = HeaderValue::from_str(&format!(
                "Bearer {}",
                credential.expose_secret()
            ))
            .map_err(|_| {
                OllamaError::Refused(format!("key {} is not a valid header value", credential.id()))
            })?;
            bearer.set_sensitive(true);
            headers.insert(AUTHORIZATION, bearer);
        }
        Ok(headers)
    }

    fn rate_limits(&self, headers: &HeaderMap) -> RateLimitSnapshot {
        RateLimitSnapshot {
            readings: Vec::new(),
            retry_after: headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, self.clock.utc())),
        }
    }

    /// Sends `request`, turning a non-2xx answer into its classified error.
    async fn send(
        &self,
        attempt: &Attempt,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = request.send().await.map_err(|error| attempt.transport(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let rate_limits = self.rate_limits(response.headers());
        // Error reports are short: the first MAX_ERROR_BODY_BYTES classify a longer one.
        let body = read_body_truncated(response.bytes_stream(), MAX_ERROR_BODY_BYTES)
            .await
            .map_err(|error| attempt.transport(&error))?;
        Err(attempt.label(error_from_response(&self.config.id, status, &body, rate_limits)))
    }

    fn attempt(&self, model: &ModelId, credential: Option<&Credential>) -> Attempt {
        Attempt {
            provider: self.config.id.clone(),
            model: model.clone(),
            credential: credential.cloned(),
        }
    }
}

#[async_trait]
impl Provider for Ollama {
    fn id(&self) -> &ProviderId {
        &self.config.id
    }

    fn protocol(&self) -> Protocol {
        Protocol::Ollama
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let attempt = self.attempt(call.model, call.credential);
        let body = encode_request(call.request, call.model.as_str(), false)
            .map_err(|error| attempt.error(error))?;
        let headers = Self::headers(call.credential).map_err(|error| attempt.error(error))?;
        let request = self
            .http
            .post(self.url("/api/chat"))
            .headers(headers)
            .timeout(self.config.timeout)
            .body(body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = self.rate_limits(response.headers());
        let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| attempt.read_failure(error))?;
        let response = decode_response(&body).map_err(|error| attempt.error(error))?;
        Ok(ChatReply { response, rate_limits, upstream_request_id: None })
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let attempt = self.attempt(call.model, call.credential);
        let body = encode_request(call.request, call.model.as_str(), true)
            .map_err(|error| attempt.error(error))?;
        let headers = Self::headers(call.credential).map_err(|error| attempt.error(error))?;
        let request = self.http.post(self.url("/api/chat")).headers(headers).body(body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = self.rate_limits(response.headers());
        let body = response.bytes_stream().boxed();
        Ok(ChatStream {
            rate_limits,
            upstream_request_id: None,
            chunks: chunks(lines(body, self.config.max_line_bytes), attempt),
        })
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = self.attempt(&ModelId::new(""), credential);
        let headers = Self::headers(credential).map_err(|error| attempt.error(error))?;
        let request =
            self.http.get(self.url("/api/tags")).headers(headers).timeout(self.config.timeout);
        let response = self.send(&attempt, request).await?;
        let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| attempt.read_failure(error))?;
        let tags: Tags = serde_json::from_slice(&body).map_err(|source| {
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

/// The body cut into NDJSON lines as it arrives, each at most the configured length.
type BodyLines = Lines<BoxStream<'static, Result<Bytes, reqwest::Error>>>;

/// Feeds NDJSON lines through the decoder until the done line, the first error, or the end of
/// the body (a cut, unless the done line came).
fn chunks(lines: BodyLines, attempt: Attempt) -> switchyard_core::ChunkStream {
    let state = Some((lines, StreamDecoder::new(), attempt));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut lines, mut decoder, attempt) = state?;
        loop {
            if decoder.is_done() {
                return None;
            }
            let item = match lines.next().await {
                Some(Ok(line)) => match decoder.push(&line) {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => continue,
                    Err(error) => Err(attempt.error(error)),
                },
                Some(Err(error)) => Err(attempt.read_failure(error)),
                None => match decoder.finish() {
                    Ok(()) => return None,
                    Err(error) => Err(attempt.error(error)),
                },
            };
            return match item {
                Ok(chunk) => Some((Ok(chunk), Some((lines, decoder, attempt)))),
                // The stream ends after its first error.
                Err(error) => Some((Err(error), None)),
            };
        }
    }))
}

/// Who is calling what, to label every error of one attempt.
#[derive(Clone)]
struct Attempt {
    provider: ProviderId,
    model: ModelId,
    credential: Option<Credential>,
}

impl Attempt {
    fn label(&self, error: ProviderError) -> ProviderError {
        error.for_attempt(&self.model, self.credential.as_ref())
    }

    fn error(&self, error: OllamaError) -> ProviderError {
        self.label(error.into_provider_error(&self.provider))
    }

    fn transport(&self, error: &reqwest::Error) -> ProviderError {
        self.label(ProviderError::transport(self.provider.clone(), error, error.is_timeout()))
    }

    /// A bounded read that failed: the transport, or an answer over its limit.
    fn read_failure(&self, error: ReadError<reqwest::Error>) -> ProviderError {
        self.label(error.into_provider_error(&self.provider, |error| {
            ProviderError::transport(self.provider.clone(), &error, error.is_timeout())
        }))
    }
}
