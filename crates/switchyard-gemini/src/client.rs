//! The [`Provider`] over HTTP: `models/{model}:generateContent`,
//! `models/{model}:streamGenerateContent?alt=sse` and the `models` listing.
//!
//! The key travels in the `x-goog-api-key` header, never in the URL, so no URL this adapter
//! builds (and no transport error quoting one) holds a secret. Gemini's messages are passed
//! through [`Credential::redact`] before they become errors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use switchyard_core::bounded::{SseEvent, read_body, read_body_truncated, sse_events};
use switchyard_core::{
    Call, ChatReply, ChatStream, Clock, Credential, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES,
    ErrorKind, MAX_ERROR_BODY_BYTES, ModelId, ModelInfo, Protocol, Provider, ProviderError,
    ProviderId, ReadError,
};

use crate::GeminiError;
use crate::decode::{StreamDecoder, decode_response};
use crate::encode::encode_request;
use crate::error::{error_from_response, rate_limits_from_headers};
use crate::wire::ModelsPage;

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

/// A Gemini (Generative Language API, API-key auth) upstream.
#[derive(Clone)]
pub struct Gemini {
    config: GeminiConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gemini {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gemini").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Gemini {
    /// An adapter sending through `http`. `clock` dates per-day quota resets (next midnight
    /// Pacific) and `retry-after` dates.
    pub fn new(config: GeminiConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self { config, http, clock }
    }

    /// An adapter with its own HTTP client, timeouts taken from `config`.
    ///
    /// # Errors
    /// [`GeminiError::Client`] when the HTTP client cannot be built (no TLS backend).
    pub fn try_new(config: GeminiConfig, clock: Arc<dyn Clock>) -> Result<Self, GeminiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(GeminiError::Client)?;
        Ok(Self::new(config, http, clock))
    }

    /// The configuration.
    pub fn config(&self) -> &GeminiConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{path}",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version.trim_matches('/')
        )
    }

    /// `models/{model}:{method}`; a model given as `models/x` is not doubled.
    fn model_url(&self, model: &ModelId, method: &str) -> String {
        let model = model.as_str().strip_prefix("models/").unwrap_or(model.as_str());
        self.url(&format!("models/{model}:{method}"))
    }

    fn headers(credential: &Credential) -> Result<HeaderMap, GeminiError> {
        let mut key = HeaderValue::from_str(credential.expose_secret()).map_err(|_| {
            GeminiError::Refused(format!("key {} is not a valid header value", credential.id()))
        })?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", key);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(headers)
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
        let now = self.clock.utc();
        let rate_limits = rate_limits_from_headers(response.headers(), now);
        // Error reports are short: the first MAX_ERROR_BODY_BYTES classify a longer one.
        let body = read_body_truncated(response.bytes_stream(), MAX_ERROR_BODY_BYTES)
            .await
            .map_err(|error| attempt.transport(&error))?;
        Err(attempt.label(error_from_response(&self.config.id, status, &body, rate_limits, now)))
    }

    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    fn start<'a>(
        &self,
        model: &ModelId,
        credential: Option<&'a Credential>,
    ) -> Result<(Attempt, &'a Credential), ProviderError> {
        let attempt = Attempt {
            provider: self.config.id.clone(),
            model: model.clone(),
            credential: credential.cloned(),
        };
        let credential = credential.ok_or_else(|| {
            attempt.label(ProviderError::new(
                ErrorKind::InvalidKey,
                self.config.id.clone(),
                "gemini needs an API key and the call has none",
            ))
        })?;
        Ok((attempt, credential))
    }
}

#[async_trait]
impl Provider for Gemini {
    fn id(&self) -> &ProviderId {
        &self.config.id
    }

    fn protocol(&self) -> Protocol {
        Protocol::Gemini
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let (attempt, credential) = self.start(call.model, call.credential)?;
        let body = encode_request(call.request).map_err(|error| attempt.error(error))?;
        let headers = Self::headers(credential).map_err(|error| attempt.error(error))?;
        let request = self
            .http
            .post(self.model_url(call.model, "generateContent"))
            .headers(headers)
            .timeout(self.config.timeout)
            .body(body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = rate_limits_from_headers(response.headers(), self.clock.utc());
        let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| attempt.read_failure(error))?;
        let response = decode_response(&body).map_err(|error| attempt.error(error))?;
        Ok(ChatReply { response, rate_limits, upstream_request_id: None })
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let (attempt, credential) = self.start(call.model, call.credential)?;
        let body = encode_request(call.request).map_err(|error| attempt.error(error))?;
        let headers = Self::headers(credential).map_err(|error| attempt.error(error))?;
        let request = self
            .http
            .post(self.model_url(call.model, "streamGenerateContent"))
            .query(&[("alt", "sse")])
            .headers(headers)
            .body(body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = rate_limits_from_headers(response.headers(), self.clock.utc());
        let events =
            sse_events(response.bytes_stream().boxed(), self.config.max_line_bytes).boxed();
        Ok(ChatStream {
            rate_limits,
            upstream_request_id: None,
            chunks: chunks(events, StreamDecoder::new(), attempt),
        })
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let (attempt, credential) = self.start(&ModelId::new(""), credential)?;
        let headers = Self::headers(credential).map_err(|error| attempt.error(error))?;
        let mut models = Vec::new();
        let mut page_token: Option<String> = None;
        // Gemini lists some fifty models; the bound only stops a server that keeps paging.
        for _ in 0..50 {
            let mut query = vec![("pageSize", "1000".to_owned())];
            if let Some(page_token) = &page_token {
                query.push(("pageToken", page_token.clone()));
            }
            let request = self
                .http
                .get(self.url("models"))
                .headers(headers.clone())
                .query(&query)
                .timeout(self.config.timeout);
            let response = self.send(&attempt, request).await?;
            let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
                .await
                .map_err(|error| attempt.read_failure(error))?;
            let page: ModelsPage = serde_json::from_slice(&body).map_err(|source| {
                attempt.error(GeminiError::Malformed { what: "model list", source })
            })?;
            models.extend(
                page.models
                    .into_iter()
                    .filter(|model| {
                        model.supported_generation_methods.iter().any(|m| m == "generateContent")
                    })
                    .map(|model| ModelInfo {
                        id: ModelId::new(model.name.strip_prefix("models/").unwrap_or(&model.name)),
                        owned_by: Some("google".into()),
                        context_window: model.input_token_limit,
                    }),
            );
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) => page_token = Some(token),
                None => break,
            }
        }
        Ok(models)
    }
}

type Events = BoxStream<'static, Result<SseEvent, ReadError<reqwest::Error>>>;

/// Feeds SSE payloads through the decoder until the first error or the end of the body (a
/// cut, unless a finish reason came).
fn chunks(
    events: Events,
    decoder: StreamDecoder,
    attempt: Attempt,
) -> switchyard_core::ChunkStream {
    let state = Some((events, decoder, attempt));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut events, mut decoder, attempt) = state?;
        let item = match events.next().await {
            Some(Ok(event)) => decoder.push(&event.data).map_err(|error| attempt.error(error)),
            Some(Err(error)) => Err(attempt.read_failure(error)),
            None => match decoder.finish() {
                Ok(()) => return None,
                Err(error) => Err(attempt.error(error)),
            },
        };
        match item {
            Ok(chunk) => Some((Ok(chunk), Some((events, decoder, attempt)))),
            // The stream ends after its first error.
            Err(error) => Some((Err(error), None)),
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

    fn error(&self, error: GeminiError) -> ProviderError {
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
