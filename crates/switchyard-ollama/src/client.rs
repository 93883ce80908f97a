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
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use switchyard_core::http::{
    Attempt, ClientSettings, ErrorReport, Frames, Limits, Upstream, Wire, is_http_url,
    retry_after_header, shared_client,
};
use switchyard_core::{
    Call, ChatChunk, ChatReply, ChatStream, Clock, Credential, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_LINE_BYTES, ModelId, ModelInfo, Protocol, Provider, ProviderError, ProviderId,
    RateLimitSnapshot,
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
    upstream: Upstream,
    chat_url: reqwest::Url,
    tags_url: reqwest::Url,
}

impl std::fmt::Debug for Ollama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ollama").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Ollama {
    /// An adapter on the process's shared client for its connect timeout. `clock` dates
    /// `retry-after` headers given as HTTP dates (Ollama's cloud).
    ///
    /// # Errors
    /// [`OllamaError::BaseUrl`] for a base URL that is not http(s), [`OllamaError::Client`]
    /// when the HTTP client cannot be built.
    pub fn try_new(config: OllamaConfig, clock: Arc<dyn Clock>) -> Result<Self, OllamaError> {
        let settings =
            ClientSettings { connect_timeout: config.connect_timeout, ..ClientSettings::default() };
        let http = shared_client(settings).map_err(OllamaError::Client)?;
        Self::with_client(config, http, clock)
    }

    /// An adapter sending through `http` (one client shared by many adapters shares its
    /// connection pool).
    ///
    /// # Errors
    /// As [`Ollama::try_new`], but for the client.
    pub fn with_client(
        config: OllamaConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OllamaError> {
        let base = config.base_url.trim_end_matches('/');
        let bad_url =
            || OllamaError::BaseUrl { id: config.id.clone(), url: config.base_url.clone() };
        if !is_http_url(base) {
            return Err(bad_url());
        }
        let parse =
            |path: &str| reqwest::Url::parse(&format!("{base}{path}")).map_err(|_| bad_url());
        let (chat_url, tags_url) = (parse("/api/chat")?, parse("/api/tags")?);
        let limits = Limits {
            timeout: config.timeout,
            stream_idle_timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
            max_line_bytes: config.max_line_bytes,
        };
        let upstream = Upstream::new(http, clock, limits);
        Ok(Self { config, upstream, chat_url, tags_url })
    }

    /// The configuration.
    pub fn config(&self) -> &OllamaConfig {
        &self.config
    }

    /// A request to `url`, with the key as a bearer token when the call has one (a local
    /// Ollama needs none).
    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        attempt: &Attempt,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if attempt.credential().is_some() {
            headers.insert(AUTHORIZATION, attempt.key_header("Bearer ")?);
        }
        Ok(self.upstream.http().request(method, url.clone()).headers(headers))
    }

    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    fn post(
        &self,
        call: &Call<'_>,
        stream: bool,
    ) -> Result<(Attempt, reqwest::RequestBuilder), ProviderError> {
        let attempt = Attempt::new(&self.config.id, call.model, call.credential);
        let body = encode_request(call.request, call.model.as_str(), stream)
            .map_err(|error| attempt.error(error))?;
        let request = self.request(reqwest::Method::POST, &self.chat_url, &attempt)?;
        Ok((attempt, request.body(body.to_string())))
    }
}

/// How Ollama reports failures (its cloud may send `retry-after`).
struct Reports;

impl Wire for Reports {
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
        retry_after_header(headers, now)
    }

    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError {
        error_from_response(attempt.provider(), report.status, report.body, report.rate_limits)
    }
}

impl Frames<Vec<u8>> for StreamDecoder {
    fn push(
        &mut self,
        line: Vec<u8>,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        StreamDecoder::push(self, &line).map_err(|error| attempt.error(error))
    }

    fn is_done(&self) -> bool {
        StreamDecoder::is_done(self)
    }

    fn finish(&mut self, attempt: &Attempt) -> Result<(), ProviderError> {
        StreamDecoder::finish(self).map_err(|error| attempt.error(error))
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
        let (attempt, request) = self.post(&call, false)?;
        let fetched = self.upstream.fetch(request, &attempt, &Reports).await?;
        let response = decode_response(&fetched.body).map_err(|error| attempt.error(error))?;
        Ok(fetched.reply(response))
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let (attempt, request) = self.post(&call, true)?;
        let answer = self.upstream.open(request, &attempt, &Reports).await?;
        Ok(self.upstream.ndjson(answer, StreamDecoder::new(), attempt))
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = Attempt::new(&self.config.id, &ModelId::new(""), credential);
        let request = self.request(reqwest::Method::GET, &self.tags_url, &attempt)?;
        let fetched = self.upstream.fetch(request, &attempt, &Reports).await?;
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
