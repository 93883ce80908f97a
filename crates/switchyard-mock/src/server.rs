//! The HTTP server: a [`MockBuilder`] assembles the script, [`MockBuilder::start`] binds
//! `127.0.0.1:0` and serves it, and the [`MockUpstream`] handle injects faults and reads the
//! log and counters while it runs.
//!
//! Each request is decided under one short lock (key, faults, quotas, log), then answered
//! outside it: latency is slept through the clock, streams are written frame by frame.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use chrono_tz::Tz;
use futures_util::StreamExt as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use serde_json::Value;
use switchyard_core::{Clock, FinishReason, KeyId, SystemClock, ToolCall, Usage};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::embed::{self, EmbedAsk};
use crate::hostile;
use crate::openai::OpenAiWire;
use crate::script::{
    Fault, FaultRule, HintStyle, KeyScript, Latency, Quotas, ReplyScript, WindowQuota,
};
use crate::state::{GroupScript, KeyCounts, Outcome, RecordedRequest, State, Time};
use crate::wire::{
    ChatSummary, Failure, MOCK_REASONING_TOKENS, Operation, Reply, StreamFrames, WireFormat,
    WireResponse,
};

/// The mock's one error: it could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// Binding the loopback listener failed.
    #[error("cannot bind the mock upstream on 127.0.0.1")]
    Bind(#[source] std::io::Error),
}

/// Assembles a mock upstream: its wire format, clock, keys, models, latency, faults.
pub struct MockBuilder {
    wire: Arc<dyn WireFormat>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
    keys: Vec<KeyScript>,
    groups: Vec<GroupScript>,
    models: Vec<String>,
    context_window: Option<u64>,
    latency: Latency,
    stream_interval: Duration,
    reply: ReplyScript,
    faults: Vec<FaultRule>,
    accept_unknown_keys: bool,
    log_limit: usize,
    seed: u64,
}

impl MockBuilder {
    /// A mock speaking `wire`, on the system clock, in UTC, with no keys.
    pub fn new(wire: impl WireFormat) -> Self {
        Self {
            wire: Arc::new(wire),
            clock: Arc::new(SystemClock),
            time_zone: Tz::UTC,
            keys: Vec::new(),
            groups: Vec::new(),
            models: Vec::new(),
            context_window: None,
            latency: Latency::None,
            stream_interval: Duration::ZERO,
            reply: ReplyScript::Echo,
            faults: Vec::new(),
            accept_unknown_keys: false,
            log_limit: 100_000,
            seed: 0x5eed,
        }
    }

    /// Runs windows, latency and the log's timestamps on this clock (a `ManualClock` clone
    /// shares its time with the test).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.shared_clock(Arc::new(clock))
    }

    /// Runs on a clock already shared as `Arc<dyn Clock>`.
    #[must_use]
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time zone whose calendar days the daily quotas count (UTC by default;
    /// `America/Los_Angeles` for Gemini).
    #[must_use]
    pub fn time_zone(mut self, time_zone: Tz) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// Adds a key.
    #[must_use]
    pub fn key(mut self, key: KeyScript) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds keys.
    #[must_use]
    pub fn keys(mut self, keys: impl IntoIterator<Item = KeyScript>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// Quotas shared by every key scripted [`in_group`](KeyScript::in_group) `name`.
    #[must_use]
    pub fn group(mut self, name: impl Into<String>, quotas: Quotas) -> Self {
        let name = name.into();
        match self.groups.iter_mut().find(|(group, _, _)| *group == name) {
            Some(group) => group.1 = quotas,
            None => self.groups.push((name, quotas, Vec::new())),
        }
        self
    }

    /// A window of any length, sliding or fixed, shared by every key scripted
    /// [`in_group`](KeyScript::in_group) `name`, on top of its [`Quotas`].
    #[must_use]
    pub fn group_window(mut self, name: impl Into<String>, window: WindowQuota) -> Self {
        let name = name.into();
        match self.groups.iter_mut().find(|(group, _, _)| *group == name) {
            Some(group) => group.2.push(window),
            None => self.groups.push((name, Quotas::default(), vec![window])),
        }
        self
    }

    /// Serves only these models (others answer model-not-found) and lists them. With none,
    /// any model is served and the listing is empty.
    #[must_use]
    pub fn models<S: Into<String>>(mut self, models: impl IntoIterator<Item = S>) -> Self {
        self.models.extend(models.into_iter().map(Into::into));
        self
    }

    /// Refuses prompts longer than this many tokens (estimated as characters / 4).
    #[must_use]
    pub fn context_window(mut self, tokens: u64) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// How long served calls take.
    #[must_use]
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// The pause between stream frames.
    #[must_use]
    pub fn stream_interval(mut self, interval: Duration) -> Self {
        self.stream_interval = interval;
        self
    }

    /// What served calls answer.
    #[must_use]
    pub fn reply(mut self, reply: ReplyScript) -> Self {
        self.reply = reply;
        self
    }

    /// A fault active from the start.
    #[must_use]
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    /// Serves keys it was not told about, without limits (a local server that ignores keys).
    #[must_use]
    pub fn accept_unknown_keys(mut self) -> Self {
        self.accept_unknown_keys = true;
        self
    }

    /// Keeps at most this many requests in the log (100 000 by default; 0 keeps none, for
    /// benches). Counters are exact whatever the limit.
    #[must_use]
    pub fn log_limit(mut self, log_limit: usize) -> Self {
        self.log_limit = log_limit;
        self
    }

    /// Seeds the random draws (latency, probabilistic faults), for reproducible runs.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Binds `127.0.0.1:0` and serves until the handle is dropped.
    ///
    /// # Errors
    /// [`MockError::Bind`] when the listener cannot be bound.
    pub async fn start(self) -> Result<MockUpstream, MockError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(MockError::Bind)?;
        let addr = listener.local_addr().map_err(MockError::Bind)?;
        let started = self.clock.now();
        let shared = Arc::new(Shared {
            wire: self.wire,
            clock: self.clock,
            time_zone: self.time_zone,
            models: self.models,
            context_window: self.context_window,
            latency: self.latency,
            stream_interval: self.stream_interval,
            reply: self.reply,
            accept_unknown_keys: self.accept_unknown_keys,
            state: Mutex::new(State::new(
                self.keys,
                self.groups,
                self.faults,
                self.log_limit,
                self.seed,
                started,
            )),
        });
        let router = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, router, shutdown_rx));
        Ok(MockUpstream { addr, shared, shutdown })
    }
}

/// A running mock upstream. Dropping it stops the server and closes its connections.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .field("wire", &self.shared.wire.name())
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// A builder for an OpenAI Chat Completions upstream.
    pub fn openai() -> MockBuilder {
        MockBuilder::new(OpenAiWire::openai())
    }

    /// A builder for an upstream speaking `wire`.
    pub fn builder(wire: impl WireFormat) -> MockBuilder {
        MockBuilder::new(wire)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client is configured with (`http://127.0.0.1:PORT/v1` for OpenAI).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.wire.base_path())
    }

    /// Adds a fault rule; rules are tried in the order they were added.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.state.lock().faults.push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.state.lock().faults.clear();
    }

    /// The requests received, oldest first (at most the log limit).
    pub fn log(&self) -> Vec<RecordedRequest> {
        self.shared.state.lock().log.iter().cloned().collect()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.state.lock().log.back().cloned()
    }

    /// Empties the log (counters stay).
    pub fn clear_log(&self) {
        self.shared.state.lock().log = VecDeque::new();
    }

    /// A scripted key's counters, by its id.
    pub fn counts(&self, key: &str) -> Option<KeyCounts> {
        let state = self.shared.state.lock();
        state.keys.iter().find(|k| k.script.id().as_str() == key).map(|k| k.counts)
    }

    /// Counters of calls made with no key or an unknown one.
    pub fn unknown_key_counts(&self) -> KeyCounts {
        self.shared.state.lock().unknown_key
    }

    /// Counters over every call.
    pub fn totals(&self) -> KeyCounts {
        self.shared.state.lock().totals
    }

    /// How many calls arrived.
    pub fn n_requests(&self) -> u64 {
        self.shared.state.lock().totals.requests
    }

    /// Stops serving now (dropping the handle does the same).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

struct Shared {
    wire: Arc<dyn WireFormat>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
    models: Vec<String>,
    context_window: Option<u64>,
    latency: Latency,
    stream_interval: Duration,
    reply: ReplyScript,
    accept_unknown_keys: bool,
    state: Mutex<State>,
}

/// Lets a handler drop its own connection (the reset fault).
#[derive(Clone, Default)]
struct ConnectionControl {
    kill: Arc<Notify>,
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let control = ConnectionControl::default();
        let service = TowerToHyperService::new(router.clone().layer(Extension(control.clone())));
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = control.kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// What the locked part decided; carried out after the lock is released.
enum Plan {
    Respond(WireResponse),
    Serve { summary: ChatSummary, reply: Reply, headers: HeaderMap, latency: Duration },
    Fault { fault: Fault, summary: Option<ChatSummary>, reply: Reply },
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(control): Extension<ConnectionControl>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let embedding = embed::parse(&*shared.wire, &parts.method, parts.uri.path(), &bytes);
    let embed_summary = embedding.as_ref().map(|ask| ask.as_ref().map(EmbedAsk::summary));
    let plan = shared.decide(&parts.method, &parts.uri, &parts.headers, &bytes, embed_summary);
    match plan {
        Plan::Respond(response) => render(response),
        Plan::Serve { summary, reply, headers, latency } => {
            if !latency.is_zero() {
                shared.clock.sleep(latency).await;
            }
            if let Some(Ok(ask)) = &embedding {
                let mut response = WireResponse::json(StatusCode::OK, &ask.body(&reply.usage));
                response.headers = headers;
                render(response)
            } else if summary.stream {
                let frames = shared.wire.stream_frames(&summary, &reply);
                stream_response(&shared, frames, None, headers)
            } else {
                let body = shared.wire.chat_body(&summary, &reply);
                let mut response = WireResponse::json(StatusCode::OK, &body);
                response.headers = headers;
                render(response)
            }
        }
        Plan::Fault { fault, summary, reply } => {
            apply_fault(&shared, &control, fault, summary.as_ref(), &reply).await
        }
    }
}

async fn apply_fault(
    shared: &Arc<Shared>,
    control: &ConnectionControl,
    fault: Fault,
    summary: Option<&ChatSummary>,
    reply: &Reply,
) -> Response {
    let stream = summary.is_some_and(|summary| summary.stream);
    match fault {
        Fault::Fail(failure) => {
            render(shared.wire.failure(&failure, summary.map(|s| s.model.as_str())))
        }
        // `decide` serves a slow call itself; a slow fault never gets here.
        Fault::Hang | Fault::Slow(_) => std::future::pending().await,
        Fault::Reset => {
            control.kill.notify_one();
            std::future::pending().await
        }
        Fault::Malformed if stream => {
            let summary = summary.expect("invariant: a stream has a summary");
            let mut frames = shared.wire.stream_frames(summary, reply);
            frames.frames.truncate(1);
            frames.frames.push(shared.wire.malformed_frame());
            stream_response(shared, frames, None, HeaderMap::new())
        }
        Fault::Malformed => render(WireResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_type: "application/json",
            body: shared.wire.malformed_body(),
        }),
        Fault::CutStream { after_frames } => match summary {
            Some(summary) if summary.stream => {
                let frames = shared.wire.stream_frames(summary, reply);
                stream_response(shared, frames, Some(after_frames), HeaderMap::new())
            }
            _ => cut_plain(shared, summary, reply),
        },
        Fault::CutMidFrame { after_frames } => match summary {
            Some(summary) if summary.stream => {
                let mut frames = shared.wire.stream_frames(summary, reply);
                let keep = after_frames.min(frames.frames.len().saturating_sub(1));
                let cut = frames.frames.get(keep).cloned().unwrap_or_default();
                frames.frames.truncate(keep);
                frames.frames.push(cut.slice(..cut.len() / 2));
                let n_frames = frames.frames.len();
                stream_response(shared, frames, Some(n_frames), HeaderMap::new())
            }
            _ => cut_plain(shared, summary, reply),
        },
        Fault::HugeBody { bytes } => hostile::huge_body(&*shared.wire, summary, reply, bytes),
        Fault::EndlessStream => {
            let pace = if shared.stream_interval.is_zero() {
                hostile::ENDLESS_PACE
            } else {
                shared.stream_interval
            };
            hostile::endless(&*shared.wire, summary, reply, Arc::clone(&shared.clock), pace)
        }
        Fault::GarbageStream => hostile::garbage(&*shared.wire, summary, reply),
        Fault::Raw { status, content_type, headers, body } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let response_headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response_headers.insert(header::CONTENT_TYPE, value);
            }
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) =
                    (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
                {
                    response_headers.append(name, value);
                }
            }
            response
        }
    }
}

/// A plain answer (or the model listing) cut after half its body.
fn cut_plain(shared: &Arc<Shared>, summary: Option<&ChatSummary>, reply: &Reply) -> Response {
    let body = match summary {
        Some(summary) => Bytes::from(shared.wire.chat_body(summary, reply).to_string()),
        None => Bytes::from(shared.wire.models_body(&shared.models).to_string()),
    };
    let half = body.slice(..body.len() / 2);
    let frames = StreamFrames { content_type: "application/json", frames: vec![half] };
    stream_response(shared, frames, Some(1), HeaderMap::new())
}

fn render(response: WireResponse) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(response.content_type));
    out
}

/// A chunked response writing `frames` one by one, pausing `stream_interval` between them
/// on the clock; with `cut_after`, the connection is dropped after that many frames, so
/// the client sees the body end without its terminating chunk.
fn stream_response(
    shared: &Arc<Shared>,
    frames: StreamFrames,
    cut_after: Option<usize>,
    headers: HeaderMap,
) -> Response {
    let interval = shared.stream_interval;
    let clock = Arc::clone(&shared.clock);
    let content_type = frames.content_type;
    let mut frames: VecDeque<Bytes> = frames.frames.into();
    if let Some(keep) = cut_after {
        frames.truncate(keep);
    }
    let cut = cut_after.is_some();
    let body = futures_util::stream::unfold(
        (frames, clock, true, cut),
        move |(mut frames, clock, first, cut)| async move {
            match frames.pop_front() {
                Some(frame) => {
                    if !first && !interval.is_zero() {
                        clock.sleep(interval).await;
                    }
                    Some((Ok(frame), (frames, clock, false, cut)))
                }
                None if cut => {
                    // Pending once before the error lets hyper flush the frames already
                    // written; an error in the same poll would drop them with the socket.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    Some((
                        Err(std::io::Error::other("cut by the mock")),
                        (frames, clock, false, false),
                    ))
                }
                None => None,
            }
        },
    )
    .boxed();
    let mut response = Response::new(Body::from_stream(body));
    *response.headers_mut() = headers;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response.into_response()
}

impl Shared {
    /// Decides one request under the lock. `embedding`: an embedding request, read (or the
    /// message of its 400), which the script treats as a plain chat call of its summary.
    fn decide(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        bytes: &[u8],
        embedding: Option<Result<ChatSummary, &String>>,
    ) -> Plan {
        let time = Time::read(&*self.clock, self.time_zone);
        let path = uri.path();
        let operation = if embedding.is_some() {
            Some(Operation::Chat)
        } else {
            self.wire.operation(method, path)
        };
        let secret = self.wire.credential(headers, uri.query());
        let body: Option<Value> = serde_json::from_slice(bytes).ok();
        let mut state = self.state.lock();
        let key_idx = secret.as_ref().and_then(|secret| state.by_secret.get(secret).copied());
        let key_id = key_idx.map(|key_idx| state.keys[key_idx].script.id().clone());
        // A mock with no log (benches) skips copying headers and bodies it would drop.
        let logging = state.log_limit > 0;
        let mut record = RecordedRequest {
            seq: 0,
            at: time.utc,
            method: method.to_string(),
            path: uri.path_and_query().map_or_else(|| path.to_owned(), ToString::to_string),
            headers: if logging {
                redacted(headers, secret.as_deref(), key_id.as_ref())
            } else {
                HeaderMap::new()
            },
            key: key_id.clone(),
            body: if logging { body.clone() } else { None },
            model: None,
            stream: false,
            outcome: Outcome::NotFound,
        };
        let Some(operation) = operation else {
            state.record(record, key_idx);
            let body = serde_json::json!({"error": {"message": format!("no route for {path}")}});
            return Plan::Respond(WireResponse::json(StatusCode::NOT_FOUND, &body));
        };
        let summary = match operation {
            Operation::ListModels => None,
            Operation::Chat | Operation::ChatStream => {
                let parsed = match (embedding, &body) {
                    (Some(read), _) => read.map_err(Clone::clone),
                    (None, Some(body)) => self.wire.parse_chat(operation, path, body),
                    (None, None) => Err("the body is not JSON".to_owned()),
                };
                match parsed {
                    Ok(summary) => Some(summary),
                    Err(message) => {
                        let failure = Failure::BadRequest { message };
                        let response = self.wire.failure(&failure, None);
                        record.outcome = Outcome::Refused(failure);
                        state.record(record, key_idx);
                        return Plan::Respond(response);
                    }
                }
            }
        };
        record.model = summary.as_ref().map(|summary| summary.model.clone());
        record.stream = summary.as_ref().is_some_and(|summary| summary.stream);
        let reply = self.reply_for(summary.as_ref(), state.n_logged, &time);
        let model = summary.as_ref().map(|summary| summary.model.as_str());

        let mut delay = Duration::ZERO;
        match state.take_fault(key_id.as_ref(), model, time.now) {
            Some(Fault::Slow(slow)) => delay = slow,
            Some(fault) => {
                record.outcome = Outcome::Fault(fault.clone());
                state.record(record, key_idx);
                return Plan::Fault { fault, summary, reply };
            }
            None => {}
        }

        let refusal = self.refusal(&mut state, key_idx, secret, summary.as_ref(), &reply, &time);
        let mut response_headers = HeaderMap::new();
        let hints = key_idx.map_or(HintStyle::AsFormat, |key_idx| state.keys[key_idx].script.hints);
        if let Some(key_idx) = key_idx {
            let readings = state.readings(key_idx, &time);
            self.wire.limit_headers(&readings, &mut response_headers);
        }
        hints.apply(&mut response_headers);
        if let Some(failure) = refusal {
            let mut response = self.wire.failure(&failure, model);
            for (name, value) in &response_headers {
                if !response.headers.contains_key(name) {
                    response.headers.insert(name, value.clone());
                }
            }
            hints.apply(&mut response.headers);
            record.outcome = Outcome::Refused(failure);
            state.record(record, key_idx);
            return Plan::Respond(response);
        }
        let Some(summary) = summary else {
            let mut response =
                WireResponse::json(StatusCode::OK, &self.wire.models_body(&self.models));
            response.headers = response_headers;
            record.outcome = Outcome::Served { usage: Usage::default() };
            state.record(record, key_idx);
            return Plan::Respond(response);
        };
        record.outcome = Outcome::Served { usage: reply.usage };
        state.record(record, key_idx);
        let latency = self.latency.sample(&mut state.rng) + delay;
        Plan::Serve { summary, reply, headers: response_headers, latency }
    }

    /// Why the script refuses this call, if it does; a chat call that passes is charged to
    /// the key's windows.
    fn refusal(
        &self,
        state: &mut State,
        key_idx: Option<usize>,
        secret: Option<String>,
        summary: Option<&ChatSummary>,
        reply: &Reply,
        time: &Time,
    ) -> Option<Failure> {
        let Some(key_idx) = key_idx else {
            return (!self.accept_unknown_keys).then_some(Failure::InvalidKey { sent: secret });
        };
        let key = &state.keys[key_idx];
        let since_start = time.now.saturating_duration_since(state.started);
        if !key.script.valid || key.revoked_by(since_start) {
            return Some(Failure::InvalidKey { sent: secret });
        }
        if key.script.billing_stopped {
            return Some(Failure::BillingStopped);
        }
        let summary = summary?;
        if !self.models.is_empty() && !self.models.contains(&summary.model) {
            return Some(Failure::ModelNotFound { model: summary.model.clone() });
        }
        let prompt_tokens = u64::from(reply.usage.prompt_tokens);
        if let Some(max) = self.context_window
            && prompt_tokens > max
        {
            return Some(Failure::ContextTooLong { max, requested: prompt_tokens });
        }
        state.admit(key_idx, time, u64::from(reply.usage.total_tokens)).err()
    }

    fn reply_for(&self, summary: Option<&ChatSummary>, seq: u64, time: &Time) -> Reply {
        let (model, prompt_text, last_user, max_tokens) = summary.map_or(("", "", "", None), |s| {
            (s.model.as_str(), s.prompt_text.as_str(), s.last_user_text.as_str(), s.max_tokens)
        });
        let reasoning_tokens = summary.filter(|s| s.reasoning).map(|_| MOCK_REASONING_TOKENS);
        let prompt_tokens = estimate_tokens(prompt_text).max(1);
        let (text, tool_calls) = match &self.reply {
            ReplyScript::Echo => (format!("You said: {last_user}"), Vec::new()),
            ReplyScript::Text(text) => (text.clone(), Vec::new()),
            ReplyScript::ToolCalls(calls) => (String::new(), calls.clone()),
        };
        let mut pieces = split_pieces(&text);
        let mut finish_reason =
            if tool_calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls };
        if let Some(max_tokens) = max_tokens
            && pieces.len() > max_tokens as usize
        {
            pieces.truncate(max_tokens as usize);
            finish_reason = FinishReason::Length;
        }
        let call_tokens: usize = tool_calls
            .iter()
            .map(|call: &ToolCall| estimate_tokens(&call.name) + estimate_tokens(&call.arguments))
            .sum();
        let completion_tokens = u32::try_from(pieces.len() + call_tokens)
            .unwrap_or(u32::MAX)
            .saturating_add(reasoning_tokens.unwrap_or(0));
        let mut usage =
            Usage::new(u32::try_from(prompt_tokens).unwrap_or(u32::MAX), completion_tokens);
        usage.reasoning_tokens = reasoning_tokens;
        Reply {
            id: format!("chatcmpl-mock-{seq}"),
            model: model.to_owned(),
            created: time.utc.timestamp(),
            text: pieces.concat(),
            pieces,
            tool_calls,
            finish_reason,
            usage,
        }
    }
}

/// The mock's token estimate: a token per four characters, rounded up.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Splits text into stream pieces, one word each with its leading space: one token each.
fn split_pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The headers as logged: any value carrying the secret names the key instead.
fn redacted(headers: &HeaderMap, secret: Option<&str>, key: Option<&KeyId>) -> HeaderMap {
    let Some(secret) = secret.filter(|secret| !secret.is_empty()) else {
        return headers.clone();
    };
    let shown = format!("[key {}]", key.map_or("unknown", KeyId::as_str));
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let value = match value.to_str() {
            Ok(text) if text.contains(secret) => {
                HeaderValue::from_str(&text.replace(secret, &shown))
                    .unwrap_or_else(|_| value.clone())
            }
            _ => value.clone(),
        };
        out.append(name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_rejoin_to_the_text() {
        assert_eq!(split_pieces("You said: hi there"), ["You", " said:", " hi", " there"]);
        assert_eq!(split_pieces("").len(), 0);
        assert_eq!(split_pieces("one").concat(), "one");
    }
}
