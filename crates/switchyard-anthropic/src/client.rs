//! The [`Provider`] over HTTP: `POST /v1/messages` (plain and streamed) and `GET /v1/models`.
//!
//! Every failure leaves here as a [`ProviderError`] naming the provider, key id and model,
//! with Anthropic's message passed through [`Credential::redact`]: an echoed key never
//! reaches an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use switchyard_core::bounded::SseEvent;
use switchyard_core::http::{
    Attempt, ClientSettings, ErrorReport, Frames, Limits, Upstream, Wire, is_http_url,
    shared_client,
};
use switchyard_core::{
    Call, ChatChunk, ChatReply, ChatStream, Clock, Credential, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_LINE_BYTES, ModelId, ModelInfo, Protocol, Provider, ProviderError, ProviderId,
    RateLimitSnapshot,
};

use crate::AnthropicError;
use crate::decode::{StreamDecoder, decode_response};
use crate::encode::{DEFAULT_MAX_TOKENS, encode_request};
use crate::error::{error_from_response, rate_limits_from_headers};
use crate::wire::ModelsPage;

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

/// An Anthropic Messages upstream.
#[derive(Clone)]
pub struct Anthropic {
    config: AnthropicConfig,
    upstream: Upstream,
    messages_url: reqwest::Url,
    models_url: reqwest::Url,
    version: HeaderValue,
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Anthropic {
    /// An adapter on the process's shared client for its connect timeout. `clock` dates
    /// `retry-after` headers given as HTTP dates.
    ///
    /// # Errors
    /// [`AnthropicError::BaseUrl`] for a base URL that is not http(s) or a version that is no
    /// header value, [`AnthropicError::Client`] when the HTTP client cannot be built.
    pub fn try_new(config: AnthropicConfig, clock: Arc<dyn Clock>) -> Result<Self, AnthropicError> {
        let settings =
            ClientSettings { connect_timeout: config.connect_timeout, ..ClientSettings::default() };
        let http = shared_client(settings).map_err(AnthropicError::Client)?;
        Self::with_client(config, http, clock)
    }

    /// An adapter sending through `http` (one client shared by many adapters shares its
    /// connection pool).
    ///
    /// # Errors
    /// As [`Anthropic::try_new`], but for the client.
    pub fn with_client(
        config: AnthropicConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AnthropicError> {
        let base = config.base_url.trim_end_matches('/');
        let bad_url =
            || AnthropicError::BaseUrl { id: config.id.clone(), url: config.base_url.clone() };
        if !is_http_url(base) {
            return Err(bad_url());
        }
        let parse =
            |path: &str| reqwest::Url::parse(&format!("{base}{path}")).map_err(|_| bad_url());
        let (messages_url, models_url) = (parse("/v1/messages")?, parse("/v1/models")?);
        let version = HeaderValue::from_str(&config.version).map_err(|_| bad_url())?;
        let limits = Limits {
            timeout: config.timeout,
            stream_idle_timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
            max_line_bytes: config.max_line_bytes,
        };
        let upstream = Upstream::new(http, clock, limits);
        Ok(Self { config, upstream, messages_url, models_url, version })
    }

    /// The configuration.
    pub fn config(&self) -> &AnthropicConfig {
        &self.config
    }

    /// A request to `url` with the key and version headers.
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
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert("x-api-key", attempt.key_header("")?);
        headers.insert("anthropic-version", self.version.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
    ) -> Result<(Attempt, reqwest::RequestBuilder, Option<String>), ProviderError> {
        let attempt = Attempt::new(&self.config.id, call.model, call.credential);
        let request = self.request(reqwest::Method::POST, &self.messages_url, &attempt)?;
        let encoded = encode_request(
            call.request,
            call.model.as_str(),
            self.config.default_max_tokens,
            stream,
        )
        .map_err(|error| attempt.error(error))?;
        Ok((attempt, request.body(encoded.body.to_string()), encoded.answer_tool))
    }
}

/// How Anthropic reports limits and failures.
struct Reports;

impl Wire for Reports {
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
        rate_limits_from_headers(headers, now)
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        headers.get("request-id").and_then(|value| value.to_str().ok()).map(str::to_owned)
    }

    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError {
        let ErrorReport { status, body, rate_limits, request_id, now } = report;
        let mut error = error_from_response(attempt.provider(), status, body, rate_limits, now);
        error.upstream_request_id = error.upstream_request_id.or(request_id);
        error
    }
}

impl Frames<SseEvent> for StreamDecoder {
    fn push(
        &mut self,
        event: SseEvent,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        StreamDecoder::push(self, &event.data).map_err(|error| attempt.error(error))
    }

    fn is_done(&self) -> bool {
        self.is_complete()
    }

    fn finish(&mut self, attempt: &Attempt) -> Result<(), ProviderError> {
        StreamDecoder::finish(self).map_err(|error| attempt.error(error))
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn id(&self) -> &ProviderId {
        &self.config.id
    }

    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let (attempt, request, answer_tool) = self.post(&call, false)?;
        let fetched = self.upstream.fetch(request, &attempt, &Reports).await?;
        let response = decode_response(&fetched.body, answer_tool.as_deref())
            .map_err(|error| attempt.error(error))?;
        Ok(fetched.reply(response))
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let (attempt, request, answer_tool) = self.post(&call, true)?;
        let answer = self.upstream.open(request, &attempt, &Reports).await?;
        Ok(self.upstream.sse(answer, StreamDecoder::new(answer_tool), attempt))
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = Attempt::new(&self.config.id, &ModelId::new(""), credential);
        let mut models = Vec::new();
        let mut after_id: Option<String> = None;
        // Anthropic lists fewer than a hundred models; the bound only stops a server that
        // keeps saying `has_more`.
        for _ in 0..50 {
            let mut query = vec![("limit", "1000".to_owned())];
            if let Some(after_id) = &after_id {
                query.push(("after_id", after_id.clone()));
            }
            let request = self.request(reqwest::Method::GET, &self.models_url, &attempt)?;
            let fetched = self.upstream.fetch(request.query(&query), &attempt, &Reports).await?;
            let page: ModelsPage = serde_json::from_slice(&fetched.body).map_err(|source| {
                attempt.error(AnthropicError::Malformed { what: "model list", source })
            })?;
            models.extend(page.data.into_iter().map(|model| ModelInfo {
                id: ModelId::new(model.id),
                owned_by: Some("anthropic".into()),
                context_window: model.max_input_tokens,
            }));
            match (page.has_more, page.last_id) {
                (true, Some(last_id)) => after_id = Some(last_id),
                (true, None) | (false, _) => break,
            }
        }
        Ok(models)
    }
}
