//! [`OpenAiProvider`]: the [`Provider`] for the OpenAI Chat Completions format over reqwest,
//! one pooled client per provider.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Stream, StreamExt as _};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use switchyard_core::bounded::{SseEvent, read_body, read_body_truncated, sse_events};
use switchyard_core::ratelimit::{clamp_reset, saturating_add};
use switchyard_core::{
    Call, ChatChunk, ChatReply, ChatStream, Credential, ErrorKind, LimitScope,
    MAX_ERROR_BODY_BYTES, ModelId, ModelInfo, Protocol, Provider, ProviderError, ProviderId,
    RateLimitSnapshot, ReadError, Reset, clamp_hint,
};

use crate::classify::{WireError, classify_preset, parse_error_body, rate_limits, retry_delay};
use crate::decode::{DecodeError, decode_chunk, decode_models, decode_response};
use crate::{OpenAiConfig, OpenAiError, Preset, encode_request};

/// How much of an unreadable error body is kept in the message.
const BODY_SNIPPET: usize = 200;

/// One OpenAI-format upstream. Cheap to share behind an `Arc`; its client pools connections.
pub struct OpenAiProvider {
    config: OpenAiConfig,
    client: reqwest::Client,
    // Parsed once here: parsing a URL and its host on every call showed in profiles.
    chat_url: reqwest::Url,
    models_url: reqwest::Url,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What every error of one attempt names.
#[derive(Clone)]
struct Context {
    preset: Preset,
    provider: ProviderId,
    credential: Option<Credential>,
    model: Option<ModelId>,
    clock: std::sync::Arc<dyn switchyard_core::Clock>,
}

impl Context {
    fn error(&self, kind: ErrorKind, message: &str) -> ProviderError {
        let message = match &self.credential {
            Some(credential) => credential.redact(message),
            None => message.to_owned(),
        };
        let mut error = ProviderError::new(kind, self.provider.clone(), message);
        error.key = self.credential.as_ref().map(|credential| credential.id().clone());
        error.model.clone_from(&self.model);
        error
    }

    fn transport(&self, error: &reqwest::Error) -> ProviderError {
        // Bodies are parsed here, never by reqwest, so its "decode" errors are body reads
        // that failed: the connection, not the content.
        let mut transport =
            ProviderError::transport(self.provider.clone(), error, error.is_timeout());
        transport.message = match &self.credential {
            Some(credential) => credential.redact(&transport.message),
            None => transport.message,
        };
        transport.key = self.credential.as_ref().map(|credential| credential.id().clone());
        transport.model.clone_from(&self.model);
        transport
    }

    /// A bounded read that failed: the transport, or an answer over its limit.
    fn read_failure(&self, error: ReadError<reqwest::Error>) -> ProviderError {
        let mut error = error.into_provider_error(&self.provider, |error| self.transport(&error));
        error.key = self.credential.as_ref().map(|credential| credential.id().clone());
        error.model.clone_from(&self.model);
        error
    }

    /// An error report (a non-2xx body, an error in a 200 body or stream) classified.
    fn reported(
        &self,
        status: u16,
        wire: Option<&WireError>,
        body: &[u8],
        snapshot: RateLimitSnapshot,
        request_id: Option<String>,
    ) -> ProviderError {
        let kind = classify_preset(self.preset, status, wire, &snapshot);
        let message = match wire {
            Some(wire) if !wire.message.is_empty() => wire.message.clone(),
            _ => snippet(body),
        };
        let mut error = self.error(kind, &message);
        error.status = (status != 200).then_some(status).or(wire.and_then(|wire| wire.status));
        let mut snapshot = snapshot;
        let now = self.clock.utc();
        if let Some((mut reading, resets_at)) = wire.and_then(WireError::quoted_limit) {
            // OpenRouter quotes its counter in the body, with the reset as an instant, which is
            // held to at most MAX_HINT from now like every reset from outside.
            let resets_at = resets_at.map(|at| clamp_reset(at, now));
            reading.reset = resets_at.map(Reset::At);
            snapshot.readings.push(reading);
            error.resets_at = resets_at;
            if snapshot.retry_after.is_none() {
                snapshot.retry_after = resets_at.and_then(|at| (at - now).to_std().ok());
            }
        }
        error.retry_after = retry_delay(&snapshot, wire).map(clamp_hint);
        if let (None, Some(retry_after), ErrorKind::RateLimited { scope: LimitScope::Day }) =
            (error.resets_at, error.retry_after, kind)
        {
            error.resets_at = Some(saturating_add(now, retry_after));
        }
        error.rate_limits = snapshot;
        error.upstream_request_id = request_id;
        error
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".to_owned();
    }
    match text.char_indices().nth(BODY_SNIPPET) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "x-generation-id", "request-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()))
        .map(str::to_owned)
}

impl OpenAiProvider {
    /// Builds the provider and its HTTP client (rustls, pooled, with the configured
    /// timeouts).
    ///
    /// # Errors
    /// [`OpenAiError::BaseUrl`] for a base URL that is not http(s),
    /// [`OpenAiError::Client`] when the client cannot be built.
    pub fn try_new(config: OpenAiConfig) -> Result<Self, OpenAiError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(OpenAiError::BaseUrl { id: config.id.clone(), url: config.base_url });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.stream_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| OpenAiError::Client { id: config.id.clone(), source })?;
        let parse = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}")).map_err(|_| OpenAiError::BaseUrl {
                id: config.id.clone(),
                url: config.base_url.clone(),
            })
        };
        let (chat_url, models_url) = (parse("/chat/completions")?, parse("/models")?);
        Ok(Self { chat_url, models_url, config, client })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn context(&self, credential: Option<&Credential>, model: Option<&ModelId>) -> Context {
        Context {
            preset: self.config.preset,
            provider: self.config.id.clone(),
            credential: credential.cloned(),
            model: model.cloned(),
            clock: std::sync::Arc::clone(&self.config.clock),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        credential: Option<&Credential>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url.clone());
        if let Some(credential) = credential {
            request = request.bearer_auth(credential.expose_secret());
        }
        if self.config.preset == Preset::OpenRouter {
            if let Some(referer) = &self.config.attribution.referer {
                request = request.header("HTTP-Referer", referer);
            }
            if let Some(title) = &self.config.attribution.title {
                request = request.header("X-Title", title).header("X-OpenRouter-Title", title);
            }
        }
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        request
    }

    /// Sends a request and turns a non-2xx answer into a classified error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        context: &Context,
    ) -> Result<(reqwest::Response, RateLimitSnapshot, Option<String>), ProviderError> {
        let response = request.send().await.map_err(|error| context.transport(&error))?;
        let snapshot = rate_limits(self.config.preset, response.headers(), self.config.clock.utc());
        let upstream_request_id = request_id(response.headers());
        let status = response.status();
        if status.is_success() {
            return Ok((response, snapshot, upstream_request_id));
        }
        // An error body cut short still has its status: classify by that alone. Only its
        // first MAX_ERROR_BODY_BYTES are read; error reports are short.
        let body = read_body_truncated(response.bytes_stream(), MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let wire = parse_error_body(&body);
        Err(context.reported(status.as_u16(), wire.as_ref(), &body, snapshot, upstream_request_id))
    }

    fn decode_failure(
        context: &Context,
        error: DecodeError,
        body: &[u8],
        snapshot: RateLimitSnapshot,
        request_id: Option<String>,
    ) -> ProviderError {
        match error {
            DecodeError::Malformed(message) => {
                let mut error = context.error(ErrorKind::MalformedResponse, &message);
                error.status = Some(200);
                error.rate_limits = snapshot;
                error.upstream_request_id = request_id;
                error
            }
            DecodeError::Upstream(wire) => {
                context.reported(200, Some(&wire), body, snapshot, request_id)
            }
        }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn id(&self) -> &ProviderId {
        &self.config.id
    }

    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let context = self.context(call.credential, Some(call.model));
        let body = encode_request(call.request, call.model.as_str(), self.config.preset, false);
        let request = self
            .request(reqwest::Method::POST, &self.chat_url, call.credential)
            .timeout(self.config.request_timeout)
            .json(&body);
        let (response, rate_limits, upstream_request_id) = self.send(request, &context).await?;
        let bytes = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| context.read_failure(error))?;
        match decode_response(&bytes) {
            Ok(response) => Ok(ChatReply { response, rate_limits, upstream_request_id }),
            Err(error) => {
                Err(Self::decode_failure(&context, error, &bytes, rate_limits, upstream_request_id))
            }
        }
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let context = self.context(call.credential, Some(call.model));
        let body = encode_request(call.request, call.model.as_str(), self.config.preset, true);
        let request = self
            .request(reqwest::Method::POST, &self.chat_url, call.credential)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        let (response, rate_limits, upstream_request_id) = self.send(request, &context).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if is_json {
            // An error reported in a plain JSON 200 instead of a stream (OpenRouter).
            let bytes = read_body(response.bytes_stream(), self.config.max_body_bytes)
                .await
                .map_err(|error| context.read_failure(error))?;
            let error = match decode_response(&bytes) {
                Err(error) => error,
                Ok(_) => {
                    DecodeError::Malformed("a plain answer where a stream was asked for".into())
                }
            };
            return Err(Self::decode_failure(
                &context,
                error,
                &bytes,
                rate_limits,
                upstream_request_id,
            ));
        }
        let events =
            Box::pin(sse_events(response.bytes_stream().boxed(), self.config.max_line_bytes));
        let chunks = sse_chunks(events, context);
        Ok(ChatStream { rate_limits, upstream_request_id, chunks: Box::pin(chunks) })
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let context = self.context(credential, None);
        let request = self
            .request(reqwest::Method::GET, &self.models_url, credential)
            .timeout(self.config.request_timeout);
        let (response, rate_limits, upstream_request_id) = self.send(request, &context).await?;
        let bytes = read_body(response.bytes_stream(), self.config.max_body_bytes)
            .await
            .map_err(|error| context.read_failure(error))?;
        decode_models(&bytes).map_err(|error| {
            Self::decode_failure(&context, error, &bytes, rate_limits, upstream_request_id)
        })
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<SseEvent, ReadError<reqwest::Error>>> + Send>>;

struct SseState {
    events: Events,
    context: Context,
    finished: bool,
    done: bool,
}

/// Turns SSE events into chunks: `[DONE]` ends the stream, comment lines are skipped by the
/// parser, an error payload or unreadable data ends it with one `Err`, and a body that ends
/// before `[DONE]` and before any finish reason is a cut connection.
fn sse_chunks(
    events: Events,
    context: Context,
) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send {
    let state = SseState { events, context, finished: false, done: false };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let item = match state.events.next().await {
                None => {
                    state.done = true;
                    if state.finished {
                        return None;
                    }
                    let error = state.context.error(
                        ErrorKind::Network,
                        "the stream ended before [DONE] and before a finish reason",
                    );
                    return Some((Err(error), state));
                }
                Some(Err(error)) => Err(state.context.read_failure(error)),
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data.is_empty() {
                        continue;
                    }
                    if data.starts_with("[DONE]") {
                        return None;
                    }
                    match decode_chunk(data) {
                        Ok(chunk) => {
                            state.finished |= chunk.finish_reason.is_some();
                            Ok(chunk)
                        }
                        Err(error) => Err(OpenAiProvider::decode_failure(
                            &state.context,
                            error,
                            data.as_bytes(),
                            RateLimitSnapshot::default(),
                            None,
                        )),
                    }
                }
            };
            state.done = item.is_err();
            return Some((item, state));
        }
    })
}
