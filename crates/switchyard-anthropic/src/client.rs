//! The [`Provider`] over HTTP: `POST /v1/messages` (plain and streamed) and `GET /v1/models`.
//!
//! Every failure leaves here as a [`ProviderError`] naming the provider, key id and model,
//! with Anthropic's message passed through [`Credential::redact`]: an echoed key never
//! reaches an error.

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
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Anthropic {
    /// An adapter sending through `http` (share one client between adapters to share its
    /// connection pool). `clock` dates `retry-after` headers given as HTTP dates.
    pub fn new(config: AnthropicConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self { config, http, clock }
    }

    /// An adapter with its own HTTP client, timeouts taken from `config`.
    ///
    /// # Errors
    /// [`AnthropicError::Client`] when the HTTP client cannot be built (no TLS backend).
    pub fn try_new(config: AnthropicConfig, clock: Arc<dyn Clock>) -> Result<Self, AnthropicError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(AnthropicError::Client)?;
        Ok(Self::new(config, http, clock))
    }

    /// The configuration.
    pub fn config(&self) -> &AnthropicConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn headers(&self, credential: &Credential) -> Result<HeaderMap, AnthropicError> {
        let mut key = HeaderValue::from_str(credential.expose_secret()).map_err(|_| {
            AnthropicError::Refused(format!("key {} is not a valid header value", credential.id()))
        })?;
        key.set_sensitive(true);
        let version = HeaderValue::from_str(&self.config.version).map_err(|_| {
            AnthropicError::Refused("the anthropic-version is not a valid header value".into())
        })?;
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        headers.insert("anthropic-version", version);
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
        let request_id = request_id(response.headers());
        // Error reports are short: the first MAX_ERROR_BODY_BYTES classify a longer one.
        let body = read_body_truncated(response.bytes_stream(), MAX_ERROR_BODY_BYTES)
            .await
            .map_err(|error| attempt.transport(&error))?;
        let mut error = error_from_response(&self.config.id, status, &body, rate_limits, now);
        error.upstream_request_id = error.upstream_request_id.or(request_id);
        Err(attempt.label(error))
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
                "anthropic needs an API key and the call has none",
            ))
        })?;
        Ok((attempt, credential))
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
        let (attempt, credential) = self.start(call.model, call.credential)?;
        let encoded = encode_request(
            call.request,
            call.model.as_str(),
            self.config.default_max_tokens,
            false,
        )
        .map_err(|error| attempt.error(error))?;
        let headers = self.headers(credential).map_err(|error| attempt.error(error))?;
        let request = self
            .http
            .post(self.url("/v1/messages"))
            .headers(headers)
            .timeout(self.config.timeout)
            .body(encoded.body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = rate_limits_from_headers(response.headers(), self.clock.utc());
        let upstream_request_id = request_id(response.headers());
        let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| attempt.read_failure(error))?;
        let response = decode_response(&body, encoded.answer_tool.as_deref())
            .map_err(|error| attempt.error(error))?;
        Ok(ChatReply { response, rate_limits, upstream_request_id })
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let (attempt, credential) = self.start(call.model, call.credential)?;
        let encoded =
            encode_request(call.request, call.model.as_str(), self.config.default_max_tokens, true)
                .map_err(|error| attempt.error(error))?;
        let headers = self.headers(credential).map_err(|error| attempt.error(error))?;
        let request = self
            .http
            .post(self.url("/v1/messages"))
            .headers(headers)
            .body(encoded.body.to_string());
        let response = self.send(&attempt, request).await?;
        let rate_limits = rate_limits_from_headers(response.headers(), self.clock.utc());
        let upstream_request_id = request_id(response.headers());
        let events =
            sse_events(response.bytes_stream().boxed(), self.config.max_line_bytes).boxed();
        let decoder = StreamDecoder::new(encoded.answer_tool);
        Ok(ChatStream {
            rate_limits,
            upstream_request_id,
            chunks: chunks(events, decoder, attempt),
        })
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let (attempt, credential) = self.start(&ModelId::new(""), credential)?;
        let headers = self.headers(credential).map_err(|error| attempt.error(error))?;
        let mut models = Vec::new();
        let mut after_id: Option<String> = None;
        // Anthropic lists fewer than a hundred models; the bound only stops a server that
        // keeps saying `has_more`.
        for _ in 0..50 {
            let mut query = vec![("limit", "1000".to_owned())];
            if let Some(after_id) = &after_id {
                query.push(("after_id", after_id.clone()));
            }
            let request = self
                .http
                .get(self.url("/v1/models"))
                .headers(headers.clone())
                .query(&query)
                .timeout(self.config.timeout);
            let response = self.send(&attempt, request).await?;
            let body = read_body(response.bytes_stream(), self.config.max_body_bytes)
                .await
                .map_err(|error| attempt.read_failure(error))?;
            let page: ModelsPage = serde_json::from_slice(&body).map_err(|source| {
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

type Events = BoxStream<'static, Result<SseEvent, ReadError<reqwest::Error>>>;

/// Feeds SSE events through the decoder until `message_stop`, the first error, or the end of
/// the body (a cut, unless `message_stop` came).
fn chunks(
    events: Events,
    decoder: StreamDecoder,
    attempt: Attempt,
) -> switchyard_core::ChunkStream {
    let state = Some((events, decoder, attempt));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut events, mut decoder, attempt) = state?;
        loop {
            let item = match events.next().await {
                Some(Ok(event)) => match decoder.push(&event.data) {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) if decoder.is_complete() => return None,
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
                Ok(chunk) => Some((Ok(chunk), Some((events, decoder, attempt)))),
                // The stream ends after its first error.
                Err(error) => Some((Err(error), None)),
            };
        }
    }))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("request-id").and_then(|value| value.to_str().ok()).map(str::to_owned)
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

    fn error(&self, error: AnthropicError) -> ProviderError {
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
