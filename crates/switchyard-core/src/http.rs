//! The HTTP plumbing the four adapters share (feature `http`), so each adapter keeps only what
//! its wire says: how to encode, how to decode, how to read its error bodies and headers.
//!
//! - [`shared_client`]: one pooled reqwest client (rustls when the adapter turns it on) for
//!   every adapter built with the same connection settings, so a process that builds many
//!   adapters keeps one connection pool, not one per adapter.
//! - [`Attempt`]: who is calling what; labels every error of one call with its provider, model
//!   and key id, and redacts the key's secret from upstream messages.
//! - [`send`]: one exchange, bounded in time; a non-2xx answer is read (at most
//!   [`MAX_ERROR_BODY_BYTES`]) and classified by the adapter's [`Wire`].
//! - [`read_all`] and [`body_stream`]: bounded body reads, and a body stream that fails with a
//!   timeout when the upstream goes silent for longer than the stream's idle timeout.
//! - [`Upstream`]: what every adapter holds to reach its upstream (the client, the clock, the
//!   time and size limits), with the three exchanges every adapter makes: a plain answer read
//!   whole, an SSE stream and an NDJSON stream.
//! - [`Adapter`] and [`Dialect`]: the one adapter type. A wire protocol's crate implements
//!   [`Dialect`] (its endpoints and how it makes the three calls) and names
//!   `Adapter<ItsDialect>`; the constructors, the shared client and the [`Provider`]
//!   implementation are written once, here.
//! - [`chunk_stream`]: drives a [`Frames`] decoder over SSE events or NDJSON lines into the
//!   [`ChunkStream`] every adapter returns.
//!
//! The idle timeouts here run on Tokio's timer, like the HTTP client's own, not on the
//! [`Clock`]: they bound real waits on a real socket.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::bounded::{SseEvent, lines, read_body, read_body_truncated, sse_events};
use crate::{
    Call, ChatChunk, ChatReply, ChatResponse, ChatStream, ChunkStream, Classify, Clock, Credential,
    EmbedCall, EmbedReply, EmbedResponse, ErrorKind, MAX_ERROR_BODY_BYTES, ModelId, ModelInfo,
    NextStep, Protocol, Provider, ProviderError, ProviderId, RateLimitSnapshot, ReadError,
};

/// What an HTTP client is built with; adapters with equal settings share one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How many idle connections are kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientSettings {
    /// 10 s to connect, reqwest's unbounded idle pool (idle connections close after 90 s).
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), pool_max_idle_per_host: usize::MAX }
    }
}

/// How many distinct settings get a shared client; a process with more (a config that sets a
/// different connect timeout on every provider) builds the rest their own.
const MAX_SHARED_CLIENTS: usize = 8;

/// A client with `settings`, shared with every other caller that asked for the same: a clone
/// of a client is a handle on the same connection pool.
///
/// # Errors
/// When the client cannot be built (no TLS backend could be loaded).
pub fn shared_client(settings: ClientSettings) -> Result<reqwest::Client, reqwest::Error> {
    // A std Mutex: nothing awaits while it is held, and it is taken only when an adapter is
    // built, never per request.
    static CLIENTS: Mutex<Vec<(ClientSettings, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, client)) = clients.iter().find(|(shared, _)| *shared == settings) {
        return Ok(client.clone());
    }
    let client = build_client(settings)?;
    if clients.len() < MAX_SHARED_CLIENTS {
        clients.push((settings, client.clone()));
    }
    Ok(client)
}

/// A new client of its own with `settings`: pooled, `TCP_NODELAY`, no overall timeout (each
/// request sets its own).
///
/// # Errors
/// As [`shared_client`].
pub fn build_client(settings: ClientSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether `base_url` is an `http://` or `https://` URL; adapters refuse any other.
pub fn is_http_url(base_url: &str) -> bool {
    base_url.starts_with("http://") || base_url.starts_with("https://")
}

/// Why reading from the upstream failed below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum Transport {
    /// The HTTP client failed: a refused or cut connection, its own timeout.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The upstream sent nothing for this long.
    #[error("the upstream sent nothing for {} ms", .0.as_millis())]
    Idle(Duration),
}

impl Transport {
    /// Whether the failure was a wait that ran out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Http(error) => error.is_timeout(),
            Self::Idle(_) => true,
        }
    }
}

/// A snapshot of the `retry-after` header alone (seconds or an HTTP date read against `now`,
/// clamped), for upstreams that send no rate-limit counters.
pub fn retry_after_header(headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
    RateLimitSnapshot {
        readings: Vec::new(),
        retry_after: headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| crate::ratelimit::parse_retry_after(value, now)),
    }
}

/// What an adapter's own error enum tells the shared plumbing: its classification. Its
/// `Display` becomes the message.
pub trait AdapterError: std::fmt::Display {
    /// The failure in the shared vocabulary.
    fn kind(&self) -> ErrorKind;

    /// This failure as a [`ProviderError`] of `provider`, the message kept.
    fn into_provider_error(self, provider: &ProviderId) -> ProviderError
    where
        Self: Sized,
    {
        ProviderError::new(self.kind(), provider.clone(), self.to_string())
    }
}

// Every adapter error is classified by its kind.
impl<T: AdapterError + std::error::Error + Send + Sync + 'static> Classify for T {
    fn next_step(&self) -> NextStep {
        self.kind().next_step()
    }
}

/// Who is calling what: labels every error of one call. Cloning is cheap (shared ids, a
/// shared secret).
#[derive(Clone, Debug)]
pub struct Attempt {
    provider: ProviderId,
    model: ModelId,
    credential: Option<Credential>,
}

impl Attempt {
    /// A call of `model` (empty for a model listing) on `provider` with `credential`.
    pub fn new(provider: &ProviderId, model: &ModelId, credential: Option<&Credential>) -> Self {
        Self { provider: provider.clone(), model: model.clone(), credential: credential.cloned() }
    }

    /// The provider called.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The key called with, if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The key called with, or an [`ErrorKind::InvalidKey`] naming the provider for one that
    /// needs a key.
    ///
    /// # Errors
    /// When the call has no key.
    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    pub fn require_key(&self) -> Result<&Credential, ProviderError> {
        self.credential.as_ref().ok_or_else(|| {
            let message = format!("{} needs an API key and the call has none", self.provider);
            self.fail(ErrorKind::InvalidKey, message)
        })
    }

    /// The key as the value of its header, `prefix` first (`"Bearer "`, or `""` for a header
    /// that holds the key alone), marked sensitive so no debug output of the request shows
    /// it. The secret is copied once, into the header.
    ///
    /// # Errors
    /// An [`ErrorKind::InvalidKey`] when the call has no key, an [`ErrorKind::BadRequest`]
    /// when the key holds bytes no header may (it names the key by id only).
    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    pub fn key_header(&self, prefix: &str) -> Result<HeaderValue, ProviderError> {
        let credential = self.require_key()?;
        let secret = credential.expose_secret();
        let mut value = Vec::with_capacity(prefix.len() + secret.len());
        value.extend_from_slice(prefix.as_bytes());
        value.extend_from_slice(secret.as_bytes());
        let mut value = HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| {
            let message = format!(
                "request refused before sending to {}: key {} is not a valid header value",
                self.provider,
                credential.id()
            );
            self.fail(ErrorKind::BadRequest, message)
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Labels `error` with this attempt's model and key id, the secret redacted.
    pub fn label(&self, error: ProviderError) -> ProviderError {
        error.for_attempt(&self.model, self.credential.as_ref())
    }

    /// A new error of `kind` with `message`, labelled.
    pub fn fail(&self, kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        self.label(ProviderError::new(kind, self.provider.clone(), message))
    }

    /// The adapter's own error, labelled.
    pub fn error(&self, error: impl AdapterError) -> ProviderError {
        self.fail(error.kind(), error.to_string())
    }

    /// A transport failure: a timeout or a network error.
    pub fn transport(&self, error: &Transport) -> ProviderError {
        self.label(ProviderError::transport(self.provider.clone(), error, error.is_timeout()))
    }

    /// A bounded read that failed: the transport, or an answer over its limit.
    pub fn read_failure(&self, error: ReadError<Transport>) -> ProviderError {
        let error = error.into_provider_error(&self.provider, |error| {
            ProviderError::transport(self.provider.clone(), &error, error.is_timeout())
        });
        self.label(error)
    }
}

/// A non-2xx answer, for the adapter to classify.
#[derive(Debug)]
pub struct ErrorReport<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The first [`MAX_ERROR_BODY_BYTES`] of the body (empty when it could not be read: the
    /// status still classifies).
    pub body: &'a [u8],
    /// The response's rate-limit headers.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's request id.
    pub request_id: Option<String>,
    /// When the answer was read, for dates and resets.
    pub now: DateTime<Utc>,
}

/// What a provider's wire says about a response besides its body: its rate-limit headers,
/// its request id, and how it reports a failure.
pub trait Wire: Send + Sync {
    /// The rate-limit headers of a response read at `now`, every value clamped.
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot;

    /// The upstream's own request id, for logs.
    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        let _ = headers;
        None
    }

    /// A non-2xx answer as a classified error (the caller labels it with the attempt).
    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError;
}

/// A 2xx answer whose headers are read.
#[derive(Debug)]
pub struct Answer {
    /// The response, its body unread.
    pub response: reqwest::Response,
    /// Its rate-limit headers.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's request id.
    pub request_id: Option<String>,
}

/// Sends `request`, waiting at most `wait` for the answer's headers, and turns a non-2xx
/// answer into `wire`'s classified error, labelled with `attempt`.
///
/// # Errors
/// A transport failure, a wait over `wait`, or the upstream's reported failure.
pub async fn send(
    request: reqwest::RequestBuilder,
    wait: Duration,
    attempt: &Attempt,
    wire: &dyn Wire,
    clock: &dyn Clock,
) -> Result<Answer, ProviderError> {
    let response = match tokio::time::timeout(wait, request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err(attempt.transport(&Transport::Http(error))),
        Err(_) => return Err(attempt.transport(&Transport::Idle(wait))),
    };
    let now = clock.utc();
    let rate_limits = wire.rate_limits(response.headers(), now);
    let request_id = wire.request_id(response.headers());
    let status = response.status();
    if status.is_success() {
        return Ok(Answer { response, rate_limits, request_id });
    }
    // An error body cut short still has its status: classify by that alone. Error reports
    // are short: the first MAX_ERROR_BODY_BYTES classify a longer one.
    let body = read_body_truncated(response.bytes_stream(), MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    let report = ErrorReport { status: status.as_u16(), body: &body, rate_limits, request_id, now };
    Err(attempt.label(wire.error(attempt, report)))
}

/// Reads a whole plain body, at most `limit` bytes.
///
/// # Errors
/// A transport failure, or a body over `limit` (a [`ErrorKind::MalformedResponse`]).
pub async fn read_all(
    response: reqwest::Response,
    limit: usize,
    attempt: &Attempt,
) -> Result<Vec<u8>, ProviderError> {
    let body = response.bytes_stream().map(|item| item.map_err(Transport::Http));
    read_body(body, limit).await.map_err(|error| attempt.read_failure(error))
}

/// The body of a streamed answer as it arrives; a silence longer than `idle` ends it with a
/// [`Transport::Idle`] error.
pub fn body_stream(
    response: reqwest::Response,
    idle: Duration,
) -> BoxStream<'static, Result<Bytes, Transport>> {
    let body = response.bytes_stream().boxed();
    futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(body))),
            Ok(Some(Err(error))) => Some((Err(Transport::Http(error)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(Transport::Idle(idle)), None)),
        }
    })
    .boxed()
}

/// A stream decoder: reads one frame at a time (an SSE event, an NDJSON line) into chunks.
pub trait Frames<F>: Send + 'static {
    /// Reads one frame: a chunk, or `None` when the frame says nothing to pass on.
    ///
    /// # Errors
    /// An unreadable frame, or a failure the upstream reported in the stream: the stream ends
    /// with it.
    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    fn push(&mut self, frame: F, attempt: &Attempt) -> Result<Option<ChatChunk>, ProviderError>;

    /// Whether the answer is complete: nothing after it is read.
    fn is_done(&self) -> bool;

    /// The body ended.
    ///
    /// # Errors
    /// When the answer was not complete: the connection was cut.
    #[expect(
        clippy::result_large_err,
        reason = "ProviderError is what the Provider trait returns; boxing it here would only unbox it again"
    )]
    fn finish(&mut self, attempt: &Attempt) -> Result<(), ProviderError>;
}

/// Feeds `frames` through `decoder` until it is done, the first error, or the end of the body
/// (a cut, unless the decoder says the answer was complete). After its first `Err` item the
/// stream ends.
pub fn chunk_stream<S, F, D>(frames: S, decoder: D, attempt: Attempt) -> ChunkStream
where
    S: futures_core::Stream<Item = Result<F, ReadError<Transport>>> + Send + Unpin + 'static,
    F: Send + 'static,
    D: Frames<F>,
{
    let state = Some((frames, decoder, attempt));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut frames, mut decoder, attempt) = state?;
        loop {
            if decoder.is_done() {
                return None;
            }
            let item = match frames.next().await {
                Some(Ok(frame)) => match decoder.push(frame, &attempt) {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => continue,
                    Err(error) => Err(error),
                },
                Some(Err(error)) => Err(attempt.read_failure(error)),
                None => match decoder.finish(&attempt) {
                    Ok(()) => return None,
                    Err(error) => Err(error),
                },
            };
            return match item {
                Ok(chunk) => Some((Ok(chunk), Some((frames, decoder, attempt)))),
                Err(error) => Some((Err(error), None)),
            };
        }
    }))
}

/// The time and size limits of one upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a plain call may take in all.
    pub timeout: Duration,
    /// How long a stream may go silent (its headers included).
    pub stream_idle_timeout: Duration,
    /// The largest plain body read; a longer one is a `MalformedResponse`.
    pub max_body_bytes: usize,
    /// The longest line, and the largest event, of a stream.
    pub max_line_bytes: usize,
}

/// A plain answer read whole, with what its headers said.
#[derive(Debug)]
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// The rate-limit headers.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's request id.
    pub request_id: Option<String>,
}

impl Fetched {
    /// The reply made of `response`, decoded from this body.
    pub fn reply(self, response: ChatResponse) -> ChatReply {
        ChatReply { response, rate_limits: self.rate_limits, upstream_request_id: self.request_id }
    }

    /// A 200 body that is no answer, as an error of `kind` labelled with `attempt`, with the
    /// status and the upstream's request id.
    pub fn unreadable(self, attempt: &Attempt, kind: ErrorKind, message: String) -> ProviderError {
        let mut error = attempt.fail(kind, message);
        error.status = Some(200);
        error.upstream_request_id = self.request_id;
        error
    }

    /// The embedding reply made of `response`, decoded from this body.
    pub fn embed_reply(self, response: EmbedResponse) -> EmbedReply {
        EmbedReply { response, rate_limits: self.rate_limits, upstream_request_id: self.request_id }
    }
}

/// What every adapter holds to reach its upstream: the (shared) client, the clock that dates
/// resets and `retry-after` dates, and the limits. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Upstream {
    /// Reaches an upstream through `http` (share one client between adapters to share its
    /// connection pool), dating on `clock`, within `limits`.
    pub fn new(http: reqwest::Client, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        Self { http, clock, limits }
    }

    /// The client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The clock, to keep beyond one call (a stream's decoder dates what it reads).
    pub fn shared_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sends `request` within the call timeout and reads the whole 2xx body.
    ///
    /// # Errors
    /// As [`send`] and [`read_all`].
    pub async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        attempt: &Attempt,
        wire: &dyn Wire,
    ) -> Result<Fetched, ProviderError> {
        let timeout = self.limits.timeout;
        let answer = send(request.timeout(timeout), timeout, attempt, wire, &*self.clock).await?;
        let body = read_all(answer.response, self.limits.max_body_bytes, attempt).await?;
        Ok(Fetched { body, rate_limits: answer.rate_limits, request_id: answer.request_id })
    }

    /// Sends a streamed `request`, waiting at most the idle timeout for its headers.
    ///
    /// # Errors
    /// As [`send`].
    pub async fn open(
        &self,
        request: reqwest::RequestBuilder,
        attempt: &Attempt,
        wire: &dyn Wire,
    ) -> Result<Answer, ProviderError> {
        send(request, self.limits.stream_idle_timeout, attempt, wire, &*self.clock).await
    }

    /// The answer's body read as server-sent events through `decoder`.
    pub fn sse<D: Frames<SseEvent>>(
        &self,
        answer: Answer,
        decoder: D,
        attempt: Attempt,
    ) -> ChatStream {
        let body = body_stream(answer.response, self.limits.stream_idle_timeout);
        let events = sse_events(body, self.limits.max_line_bytes);
        ChatStream {
            rate_limits: answer.rate_limits,
            upstream_request_id: answer.request_id,
            chunks: chunk_stream(events, decoder, attempt),
        }
    }

    /// The answer's body read as NDJSON lines through `decoder`.
    pub fn ndjson<D: Frames<Vec<u8>>>(
        &self,
        answer: Answer,
        decoder: D,
        attempt: Attempt,
    ) -> ChatStream {
        let body = body_stream(answer.response, self.limits.stream_idle_timeout);
        let lines = lines(body, self.limits.max_line_bytes);
        ChatStream {
            rate_limits: answer.rate_limits,
            upstream_request_id: answer.request_id,
            chunks: chunk_stream(lines, decoder, attempt),
        }
    }
}

/// One wire protocol's side of an adapter: its configuration, its endpoints, and how it makes
/// the three calls over an [`Upstream`]. [`Adapter`] adds what every adapter shares.
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The adapter's configuration: plain data.
    type Config: fmt::Debug + Send + Sync + 'static;
    /// The adapter's error when it cannot be built.
    type Error;
    /// The protocol it speaks.
    const PROTOCOL: Protocol;

    /// The provider's configured name.
    fn id(config: &Self::Config) -> &ProviderId;

    /// The connection settings its shared client is picked by.
    fn client_settings(config: &Self::Config) -> ClientSettings;

    /// Its time and size limits.
    fn limits(config: &Self::Config) -> Limits;

    /// The error for a client that could not be built.
    fn client_error(config: &Self::Config, error: reqwest::Error) -> Self::Error;

    /// Checks the configuration and prepares what every call needs (URLs, fixed headers).
    ///
    /// # Errors
    /// A base URL that is not http(s), a header that is no header.
    fn prepare(config: &Self::Config) -> Result<Self, Self::Error>;

    /// [`Provider::chat`] (implemented as an `async fn`).
    fn chat(
        &self,
        adapter: &Adapter<Self>,
        call: Call<'_>,
    ) -> impl Future<Output = Result<ChatReply, ProviderError>> + Send;

    /// [`Provider::chat_stream`] (implemented as an `async fn`).
    fn chat_stream(
        &self,
        adapter: &Adapter<Self>,
        call: Call<'_>,
    ) -> impl Future<Output = Result<ChatStream, ProviderError>> + Send;

    /// [`Provider::list_models`] (implemented as an `async fn`).
    fn list_models(
        &self,
        adapter: &Adapter<Self>,
        credential: Option<&Credential>,
    ) -> impl Future<Output = Result<Vec<ModelInfo>, ProviderError>> + Send;

    /// [`Provider::embed`] (implemented as an `async fn`); by default the typed refusal of
    /// a dialect that embeds nothing.
    fn embed(
        &self,
        adapter: &Adapter<Self>,
        call: EmbedCall<'_>,
    ) -> impl Future<Output = Result<EmbedReply, ProviderError>> + Send {
        let refused = crate::embeddings_unsupported(Self::id(adapter.config()), &call);
        std::future::ready(Err(refused))
    }
}

/// An adapter: a [`Dialect`] over an [`Upstream`]. Cheap to share behind an `Arc`.
pub struct Adapter<D: Dialect> {
    config: D::Config,
    dialect: D,
    upstream: Upstream,
}

impl<D: Dialect> Adapter<D> {
    /// An adapter on the process's shared client for its connection settings (see
    /// [`shared_client`]). `clock` dates resets and `retry-after` dates.
    ///
    /// # Errors
    /// The dialect's error for a configuration it refuses or a client that cannot be built.
    pub fn try_new(config: D::Config, clock: Arc<dyn Clock>) -> Result<Self, D::Error> {
        let http = shared_client(D::client_settings(&config))
            .map_err(|error| D::client_error(&config, error))?;
        Self::with_client(config, http, clock)
    }

    /// An adapter sending through `http` (one client shared by many adapters shares its
    /// connection pool).
    ///
    /// # Errors
    /// The dialect's error for a configuration it refuses.
    pub fn with_client(
        config: D::Config,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, D::Error> {
        let dialect = D::prepare(&config)?;
        let upstream = Upstream::new(http, clock, D::limits(&config));
        Ok(Self { config, dialect, upstream })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &D::Config {
        &self.config
    }

    /// The upstream it sends to.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// A new attempt of `model` (empty for a listing) with `credential`.
    pub fn attempt(&self, model: &ModelId, credential: Option<&Credential>) -> Attempt {
        Attempt::new(D::id(&self.config), model, credential)
    }
}

impl<D: Dialect + Clone> Clone for Adapter<D>
where
    D::Config: Clone,
{
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            dialect: self.dialect.clone(),
            upstream: self.upstream.clone(),
        }
    }
}

impl<D: Dialect> fmt::Debug for Adapter<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("protocol", &D::PROTOCOL)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Provider for Adapter<D> {
    fn id(&self) -> &ProviderId {
        D::id(&self.config)
    }

    fn protocol(&self) -> Protocol {
        D::PROTOCOL
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        self.dialect.chat(self, call).await
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        self.dialect.chat_stream(self, call).await
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        self.dialect.list_models(self, credential).await
    }

    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbedReply, ProviderError> {
        self.dialect.embed(self, call).await
    }
}

/// `base_url` (http or https, a trailing `/` dropped) joined with each of `paths`; `None` when
/// that makes no URL.
pub fn endpoints<const N: usize>(base_url: &str, paths: [&str; N]) -> Option<[reqwest::Url; N]> {
    let base = base_url.trim_end_matches('/');
    if !is_http_url(base) {
        return None;
    }
    let mut urls = Vec::with_capacity(N);
    for path in paths {
        urls.push(reqwest::Url::parse(&format!("{base}{path}")).ok()?);
    }
    urls.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_paths_to_an_http_base_and_refuse_the_rest() {
        let [chat, models] =
            endpoints("http://127.0.0.1:8080/v1/", ["/chat/completions", "/models"]).expect("URLs");
        assert_eq!(chat.as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(models.as_str(), "http://127.0.0.1:8080/v1/models");
        assert!(endpoints("localhost:8080", ["/x"]).is_none());
        assert!(endpoints("ftp://example.test", ["/x"]).is_none());
        assert!(endpoints("http://", ["/x"]).is_none());
    }

    #[test]
    fn a_key_header_is_sensitive_and_a_bad_key_is_named_by_id_only() {
        let provider = ProviderId::new("groq");
        let model = ModelId::new("m");
        let good = Credential::new("groq-1", "gsk_0123456789");
        let attempt = Attempt::new(&provider, &model, Some(&good));
        let value = attempt.key_header("Bearer ").expect("a header");
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().expect("ASCII"), "Bearer gsk_0123456789");
        let bad = Credential::new("groq-2", "gsk_with\nnewline_SECRET");
        let error =
            Attempt::new(&provider, &model, Some(&bad)).key_header("").expect_err("refused");
        assert_eq!(error.kind, ErrorKind::BadRequest);
        for text in [format!("{error}"), format!("{error:?}")] {
            assert!(text.contains("groq-2") && !text.contains("SECRET"), "{text}");
        }
        let none = Attempt::new(&provider, &model, None).key_header("").expect_err("no key");
        assert_eq!(none.kind, ErrorKind::InvalidKey);
    }
}
