//! [`OpenAiProvider`]: the [`Provider`] for the OpenAI Chat Completions format over the
//! shared HTTP plumbing of `switchyard_core::http`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use switchyard_core::bounded::SseEvent;
use switchyard_core::hints::{StatedHints, settle};
use switchyard_core::http::{
    Adapter, Attempt, ClientSettings, Dialect, ErrorReport, Fetched, Frames, Limits, Wire,
    endpoints,
};
use switchyard_core::ratelimit::clamp_reset;
use switchyard_core::{
    Call, ChatChunk, ChatReply, ChatStream, Clock, Credential, EmbedCall, EmbedReply, ErrorKind,
    ModelId, ModelInfo, Protocol, ProviderError, ProviderId, RateLimitSnapshot, Reset, clamp_hint,
};

use crate::classify::{WireError, classify_preset, parse_error_body, rate_limits, retry_delay};
use crate::decode::{DecodeError, decode_chunk, decode_models, decode_response};
use crate::embed::{decode_embed_response, encode_embed_request};
use crate::{OpenAiConfig, OpenAiError, Preset, encode_request_body};

/// How much of an unreadable error body is kept in the message.
const BODY_SNIPPET: usize = 200;

/// Where an upstream names its request id, first found wins.
static REQUEST_ID_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-generation-id"),
    HeaderName::from_static("request-id"),
];

/// One OpenAI-format upstream: the shared [`Adapter`] speaking [`ChatCompletions`]. Cheap to
/// share behind an `Arc`; its client pools connections.
pub type OpenAiProvider = Adapter<ChatCompletions>;

/// The Chat Completions dialect of one preset: its endpoints and fixed headers, checked once.
pub struct ChatCompletions {
    reports: Reports,
    // Parsed once here: parsing a URL and its host on every call showed in profiles.
    chat_url: reqwest::Url,
    models_url: reqwest::Url,
    /// The configured headers (and OpenRouter's attribution).
    headers: HeaderMap,
}

impl std::fmt::Debug for ChatCompletions {
    // The configured headers are left out, as `OpenAiConfig`'s Debug leaves them out: an
    // operator may put a credential in one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCompletions")
            .field("chat_url", &self.chat_url)
            .field("models_url", &self.models_url)
            .finish_non_exhaustive()
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

// ProviderError is what the Provider trait returns; boxing it in the request builders would
// only unbox it again.
#[expect(clippy::result_large_err, reason = "the Provider trait's error, returned as it is")]
impl ChatCompletions {
    /// A request to `url` with the key (when there is one) and the configured headers.
    fn request(
        &self,
        adapter: &OpenAiProvider,
        method: reqwest::Method,
        url: &reqwest::Url,
        attempt: &Attempt,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut headers = self.headers.clone();
        if attempt.credential().is_some() {
            headers.insert(AUTHORIZATION, attempt.key_header("Bearer ")?);
        }
        Ok(adapter.upstream().http().request(method, url.clone()).headers(headers))
    }

    fn post(
        &self,
        adapter: &OpenAiProvider,
        call: &Call<'_>,
        stream: bool,
    ) -> Result<(Attempt, reqwest::RequestBuilder), ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let preset = adapter.config().preset;
        let body = encode_request_body(call.request, call.model.as_str(), preset, stream);
        let request = self.request(adapter, reqwest::Method::POST, &self.chat_url, &attempt)?;
        Ok((attempt, request.body(body)))
    }
}

/// The configured headers and OpenRouter's attribution as one map, checked once.
fn configured_headers(config: &OpenAiConfig) -> Result<HeaderMap, OpenAiError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut add = |name: &str, value: &str| {
        let bad = || OpenAiError::Header { id: config.id.clone(), name: name.to_owned() };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        headers.append(header, HeaderValue::from_str(value).map_err(|_| bad())?);
        Ok::<_, OpenAiError>(())
    };
    if config.preset == Preset::OpenRouter {
        if let Some(referer) = &config.attribution.referer {
            add("HTTP-Referer", referer)?;
        }
        if let Some(title) = &config.attribution.title {
            add("X-Title", title)?;
            add("X-OpenRouter-Title", title)?;
        }
    }
    for (name, value) in &config.headers {
        add(name, value)?;
    }
    Ok(headers)
}

/// How the OpenAI family reports limits and failures, per preset.
#[derive(Clone, Copy, Debug)]
struct Reports {
    preset: Preset,
}

impl Wire for Reports {
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
        rate_limits(self.preset, headers, now)
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        REQUEST_ID_HEADERS
            .iter()
            .find_map(|name| headers.get(name).and_then(|value| value.to_str().ok()))
            .map(str::to_owned)
    }

    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError {
        let wire = parse_error_body(report.body);
        self.reported(attempt, wire.as_ref(), report)
    }
}

impl Reports {
    /// An error report (a non-2xx body, an error in a 200 body or stream) classified.
    fn reported(
        self,
        attempt: &Attempt,
        wire: Option<&WireError>,
        report: ErrorReport<'_>,
    ) -> ProviderError {
        let ErrorReport { status, body, rate_limits: mut snapshot, request_id, now } = report;
        let kind = classify_preset(self.preset, status, wire, &snapshot);
        let message = match wire {
            Some(wire) if !wire.message.is_empty() => wire.message.clone(),
            _ => snippet(body),
        };
        let mut error = attempt.fail(kind, message);
        error.status = (status != 200).then_some(status).or(wire.and_then(|wire| wire.status));
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
        error.rate_limits = snapshot;
        error.upstream_request_id = request_id;
        // A 429's delay, window and reset from every hint: the headers, and the body whatever
        // its shape (Gemini's OpenAI-compatible endpoint answers a `google.rpc.Status`, listed).
        settle(error, &StatedHints::from_body(body, now), now)
    }

    /// A whole 200 body, read at `now`, that is no answer (chat or embeddings alike).
    fn fetched_failure(
        self,
        attempt: &Attempt,
        error: DecodeError,
        fetched: Fetched,
        now: DateTime<Utc>,
    ) -> ProviderError {
        let report = ErrorReport {
            status: 200,
            body: &fetched.body,
            rate_limits: fetched.rate_limits,
            request_id: fetched.request_id,
            now,
        };
        self.decode_failure(attempt, error, report)
    }

    /// A 200 body that is no answer: unreadable, or an error report.
    fn decode_failure(
        self,
        attempt: &Attempt,
        error: DecodeError,
        report: ErrorReport<'_>,
    ) -> ProviderError {
        match error {
            DecodeError::Malformed(message) => {
                let mut error = attempt.fail(ErrorKind::MalformedResponse, message);
                error.status = Some(200);
                error.rate_limits = report.rate_limits;
                error.upstream_request_id = report.request_id;
                error
            }
            DecodeError::Upstream(wire) => self.reported(attempt, Some(&wire), report),
        }
    }
}

impl Dialect for ChatCompletions {
    type Config = OpenAiConfig;
    type Error = OpenAiError;
    const PROTOCOL: Protocol = Protocol::OpenAi;

    /// Refuses a base URL that is not http(s), and a configured header that is no header.
    fn prepare(config: &OpenAiConfig) -> Result<Self, OpenAiError> {
        let paths = ["/chat/completions", "/models"];
        let Some([chat_url, models_url]) = endpoints(&config.base_url, paths) else {
            return Err(OpenAiError::BaseUrl {
                id: config.id.clone(),
                url: config.base_url.clone(),
            });
        };
        let headers = configured_headers(config)?;
        Ok(Self { reports: Reports { preset: config.preset }, chat_url, models_url, headers })
    }

    fn id(config: &OpenAiConfig) -> &ProviderId {
        &config.id
    }

    fn client_settings(config: &OpenAiConfig) -> ClientSettings {
        let (connect_timeout, pool_max_idle_per_host) =
            (config.connect_timeout, config.pool_max_idle_per_host);
        ClientSettings { connect_timeout, pool_max_idle_per_host }
    }

    fn limits(config: &OpenAiConfig) -> Limits {
        Limits {
            timeout: config.request_timeout,
            stream_idle_timeout: config.stream_idle_timeout,
            max_body_bytes: config.max_body_bytes,
            max_line_bytes: config.max_line_bytes,
        }
    }

    fn client_error(config: &OpenAiConfig, source: reqwest::Error) -> OpenAiError {
        OpenAiError::Client { id: config.id.clone(), source }
    }

    async fn chat(
        &self,
        adapter: &OpenAiProvider,
        call: Call<'_>,
    ) -> Result<ChatReply, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, false)?;
        let fetched = adapter.upstream().fetch(request, &attempt, &self.reports).await?;
        match decode_response(&fetched.body) {
            Ok(response) => Ok(fetched.reply(response)),
            Err(error) => {
                let now = adapter.upstream().clock().utc();
                Err(self.reports.fetched_failure(&attempt, error, fetched, now))
            }
        }
    }

    async fn chat_stream(
        &self,
        adapter: &OpenAiProvider,
        call: Call<'_>,
    ) -> Result<ChatStream, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, true)?;
        let request = request.header(ACCEPT, "text/event-stream");
        let answer = adapter.upstream().open(request, &attempt, &self.reports).await?;
        let is_json = answer
            .response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if !is_json {
            let clock = Arc::clone(adapter.upstream().shared_clock());
            let events = Events { reports: self.reports, clock, finished: false, done: false };
            return Ok(adapter.upstream().sse(answer, events, attempt));
        }
        // An error reported in a plain JSON 200 instead of a stream (OpenRouter).
        let limit = adapter.upstream().limits().max_body_bytes;
        let body = switchyard_core::http::read_all(answer.response, limit, &attempt).await?;
        let error = match decode_response(&body) {
            Err(error) => error,
            Ok(_) => DecodeError::Malformed("a plain answer where a stream was asked for".into()),
        };
        let report = ErrorReport {
            status: 200,
            body: &body,
            rate_limits: answer.rate_limits,
            request_id: answer.request_id,
            now: adapter.upstream().clock().utc(),
        };
        Err(self.reports.decode_failure(&attempt, error, report))
    }

    /// `POST {base}/embeddings`; failures read as the chat path reads them.
    async fn embed(
        &self,
        adapter: &OpenAiProvider,
        call: EmbedCall<'_>,
    ) -> Result<EmbedReply, ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let Some([url]) = endpoints(&adapter.config().base_url, ["/embeddings"]) else {
            let message = format!("base URL {:?} is not an http(s) URL", adapter.config().base_url);
            return Err(attempt.fail(ErrorKind::BadRequest, message));
        };
        let body = encode_embed_request(call.request, call.model.as_str()).to_string();
        let request = self.request(adapter, reqwest::Method::POST, &url, &attempt)?.body(body);
        let fetched = adapter.upstream().fetch(request, &attempt, &self.reports).await?;
        match decode_embed_response(&fetched.body, call.request) {
            Ok(response) => Ok(fetched.embed_reply(response)),
            Err(error) => {
                let now = adapter.upstream().clock().utc();
                Err(self.reports.fetched_failure(&attempt, error, fetched, now))
            }
        }
    }

    async fn list_models(
        &self,
        adapter: &OpenAiProvider,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = adapter.attempt(&ModelId::new(""), credential);
        let request = self.request(adapter, reqwest::Method::GET, &self.models_url, &attempt)?;
        let fetched = adapter.upstream().fetch(request, &attempt, &self.reports).await?;
        decode_models(&fetched.body).map_err(|error| {
            let report = ErrorReport {
                status: 200,
                body: &fetched.body,
                rate_limits: fetched.rate_limits.clone(),
                request_id: fetched.request_id.clone(),
                now: adapter.upstream().clock().utc(),
            };
            self.reports.decode_failure(&attempt, error, report)
        })
    }
}

/// The SSE events of one answer: `[DONE]` ends the stream, an error payload or unreadable
/// data ends it with one `Err`, and a body that ends before `[DONE]` and before any finish
/// reason is a cut connection.
struct Events {
    reports: Reports,
    clock: Arc<dyn Clock>,
    /// A chunk carried a finish reason.
    finished: bool,
    /// `[DONE]` came.
    done: bool,
}

impl Frames<SseEvent> for Events {
    fn push(
        &mut self,
        event: SseEvent,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        if data.starts_with("[DONE]") {
            self.done = true;
            return Ok(None);
        }
        match decode_chunk(data) {
            Ok(chunk) => {
                self.finished |= chunk.finish_reason.is_some();
                Ok(Some(chunk))
            }
            Err(error) => {
                let report = ErrorReport {
                    status: 200,
                    body: data.as_bytes(),
                    rate_limits: RateLimitSnapshot::default(),
                    request_id: None,
                    now: self.clock.utc(),
                };
                Err(self.reports.decode_failure(attempt, error, report))
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, attempt: &Attempt) -> Result<(), ProviderError> {
        if self.finished {
            return Ok(());
        }
        Err(attempt
            .fail(ErrorKind::Network, "the stream ended before [DONE] and before a finish reason"))
    }
}
