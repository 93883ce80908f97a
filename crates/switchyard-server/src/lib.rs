//! The gateway: an axum application thin over a [`switchyard::Router`]. A client points its
//! OpenAI or Anthropic SDK here and calls `POST /v1/chat/completions`, `POST /v1/responses`
//! or `POST /v1/messages` with a route's name (or `provider/model`) as `model`; every format
//! goes through the same routing, and the answer says in `x-switchyard-*` headers which
//! provider, model and key served it. A failure comes back in the format's own error shape
//! with the router's typed code.
//!
//! Around it: client tokens with scopes (routes, requests a minute, a daily budget), an admin
//! API under `/admin/` behind its own token (status of every key, stats, scores, feedback,
//! key reset/disable/enable, reload, analytics reports), the analytics event log fed from the
//! router's events ([`EventHub`]) and alert webhooks sent from a background task.
//!
//! This crate parses and writes the client wire formats itself and knows no adapter: it is
//! given a built router (and a new one on reload, swapped in atomically). It reads time only
//! through the [`Clock`] it is given and never logs a secret: keys appear as fingerprints,
//! client tokens not at all.

mod admin;
mod alerts;
pub mod api;
mod clients;
mod conn;
mod error;
mod events;
mod host;
mod inbound;
mod keylife;
mod metrics;
mod sse;
mod status;
mod telemetry;
mod ui;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use chrono_tz::Tz;
use serde_json::json;
use switchyard::{Answer, KeyId, ProviderId, RequestOptions, Router, Trace};
use switchyard_core::Clock;
use switchyard_store::analytics::Analytics;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use inbound::Inbound;

pub use alerts::AlertConfig;
pub use error::ServerError;
pub use events::EventHub;
pub use keylife::{KeyUseSink, LifecycleConfig};
pub use telemetry::{EventSinks, Telemetry, TelemetryConfig, TelemetryError, traces_url};

/// The request id header, accepted from the client and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Set to `1` by a client that wants the decision trace in `x-switchyard-trace`.
pub const TRACE: HeaderName = HeaderName::from_static("x-switchyard-trace");
const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
const KEY: HeaderName = HeaderName::from_static("x-switchyard-key");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
const OVERHEAD: HeaderName = HeaderName::from_static("x-switchyard-overhead-us");
const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// How the gateway behaves, apart from routing.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Tokens a client must send as `Authorization: Bearer <token>` (all routes, no
    /// limits); with `clients` also empty, no token is asked for.
    pub client_tokens: Vec<String>,
    /// Named clients, each with its token, routes and limits.
    pub clients: Vec<Arc<ClientConfig>>,
    /// The token of the admin API; `None` closes `/admin/*` (404).
    pub admin_token: Option<String>,
    /// Each provider's time zone, for its reset times in the admin status (UTC when absent).
    pub time_zones: BTreeMap<ProviderId, Tz>,
    /// Each key's fingerprint, for the admin status (keys are never shown otherwise).
    pub fingerprints: BTreeMap<(ProviderId, KeyId), String>,
    /// The largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A deadline for every request, over the route's own, when set.
    pub request_timeout: Option<Duration>,
    /// How long a client may take to send a request's head once it started it. Read when
    /// serving starts (a reload keeps the running value).
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its next request. Read when serving starts.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's body. Read when the app is built.
    pub body_read_timeout: Duration,
    /// The most connections served at once; more wait to be accepted. Read when serving
    /// starts.
    pub max_connections: usize,
    /// Host names (`name` for any port, `name:port` for one) accepted in the `Host` header
    /// besides the loopback names of the listening address, when no client token is set:
    /// without a token, the `Host` check is what keeps a web page in the operator's browser
    /// (DNS rebinding) away from the API.
    pub allowed_hosts: Vec<String>,
    /// After how long a key of each provider is due for rotation (`rotate_after_days`): the
    /// key lifecycle keeper ([`Services::lifecycle`]) raises `key_rotation_due` past it. Read
    /// at each save, so a reload takes a change.
    pub rotate_after: BTreeMap<ProviderId, Duration>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            client_tokens: Vec::new(),
            clients: Vec::new(),
            admin_token: None,
            time_zones: BTreeMap::new(),
            fingerprints: BTreeMap::new(),
            // 4 MiB holds a long conversation with a few inline images.
            body_limit_bytes: 4 << 20,
            request_timeout: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            allowed_hosts: Vec::new(),
            rotate_after: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: only their number, and the clients' names, are shown.
        f.debug_struct("GatewayConfig")
            .field("n_client_tokens", &self.client_tokens.len())
            .field("clients", &self.clients)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("time_zones", &self.time_zones)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("rotate_after", &self.rotate_after)
            .finish_non_exhaustive()
    }
}

/// One named client: its token, the routes it may use and its limits. Plain data.
#[derive(Clone, PartialEq)]
pub struct ClientConfig {
    /// The name analytics and errors use.
    pub name: String,
    /// The bearer token; a secret, never shown.
    pub token: String,
    /// The routes (or `provider/model` targets) it may name; `None` for all.
    pub routes: Option<Vec<String>>,
    /// Requests it may make in any 60 seconds.
    pub requests_per_minute: Option<u32>,
    /// Dollars it may spend a UTC day, by the router's prices.
    pub daily_budget: Option<f64>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("daily_budget", &self.daily_budget)
            .finish_non_exhaustive()
    }
}

/// Rebuilds the router and settings from wherever they came from (the CLI re-reads its
/// configuration file and keys). Called by `POST /admin/reload` on a blocking thread.
pub trait Reloader: Send + Sync + 'static {
    /// A new router and settings.
    ///
    /// # Errors
    /// What is wrong with the configuration, in words for the operator (no secrets).
    fn reload(&self) -> Result<(Router, GatewayConfig), String>;
}

/// What the gateway runs besides the router, all optional.
#[derive(Default)]
pub struct Services {
    /// The router's event sink (build the router with it): analytics, client attribution,
    /// alert triggers, recent outcomes per key.
    pub events: Option<Arc<EventHub>>,
    /// The analytics store to read reports from (a connection of its own).
    pub analytics: Option<Analytics>,
    /// How `POST /admin/reload` rebuilds the router.
    pub reloader: Option<Arc<dyn Reloader>>,
    /// Alert webhooks; starting them needs a Tokio runtime.
    pub alerts: Option<AlertConfig>,
    /// Key lifecycle and the audit log in the state file; starting it needs a Tokio runtime.
    pub lifecycle: Option<LifecycleConfig>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("events", &self.events.is_some())
            .field("analytics", &self.analytics.is_some())
            .field("reloader", &self.reloader.is_some())
            .field("alerts", &self.alerts)
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

/// The gateway: the router it serves (swappable), its clock and its configuration.
/// Cheap to clone; clones share the router.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    router: ArcSwap<Router>,
    clock: Arc<dyn Clock>,
    config: ArcSwap<GatewayConfig>,
    metrics: metrics::Metrics,
    meters: clients::Meters,
    events: Option<Arc<EventHub>>,
    /// Reports are read on a blocking thread; one at a time on this connection.
    analytics: Option<Arc<Mutex<Analytics>>>,
    reloader: Option<Arc<dyn Reloader>>,
    outbox: Option<Arc<alerts::Outbox>>,
    keylife: Option<Arc<keylife::KeyLife>>,
    /// Where [`serve`] listens, for the `Host` check (unknown until it starts).
    /// Read by every request without a lock.
    listen: arc_swap::ArcSwapOption<std::net::SocketAddr>,
    /// The names metrics may carry as `route`: the router's routes and configured
    /// `provider/model` targets, taken when the router is swapped in (before any client
    /// named anything); every other name is counted as `other`.
    labels: ArcSwap<metrics::Labels>,
    /// The status page's recent requests and login codes.
    ui: ui::UiState,
    /// The low-success thresholds `/admin/status` judges keys by (the alerts' own).
    low_success: (f64, usize),
}

/// The request's id, as accepted or generated by the gateway.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl Gateway {
    /// A gateway serving `router`, reading time from `clock`.
    pub fn new(router: Router, clock: Arc<dyn Clock>, config: GatewayConfig) -> Self {
        Self::with_services(router, clock, config, Services::default())
    }

    /// A gateway with its services. Alert webhooks, when configured, start here: call it
    /// inside a Tokio runtime then.
    pub fn with_services(
        router: Router,
        clock: Arc<dyn Clock>,
        config: GatewayConfig,
        services: Services,
    ) -> Self {
        let outbox = services.alerts.as_ref().map(|_| Arc::new(alerts::Outbox::default()));
        let labels = metrics::Labels::of(&router);
        let alert_queue = services.alerts.as_ref().map_or(64, |alerts| alerts.queue);
        let low_success = services
            .alerts
            .as_ref()
            .map_or((status::LOW_SUCCESS_RATE, status::LOW_SUCCESS_MIN_ATTEMPTS), |alerts| {
                (alerts.low_success_rate, alerts.low_success_min_attempts)
            });
        let keylife = services.lifecycle.map(|c| Arc::new(keylife::KeyLife::new(c, alert_queue)));
        let gateway = Self {
            shared: Arc::new(Shared {
                labels: ArcSwap::from_pointee(labels),
                listen: arc_swap::ArcSwapOption::empty(),
                router: ArcSwap::from_pointee(router),
                clock,
                config: ArcSwap::from_pointee(config),
                metrics: metrics::Metrics::new(),
                meters: clients::Meters::default(),
                events: services.events,
                analytics: services.analytics.map(|analytics| Arc::new(Mutex::new(analytics))),
                reloader: services.reloader,
                outbox: outbox.clone(),
                keylife,
                ui: ui::UiState::default(),
                low_success,
            }),
        };
        if let (Some(config), Some(outbox)) = (services.alerts, &outbox) {
            alerts::spawn(&gateway, config, outbox);
        }
        keylife::spawn(&gateway);
        gateway
    }

    /// The router serving now.
    pub fn router(&self) -> Arc<Router> {
        self.shared.router.load_full()
    }

    /// Swaps in a new router: requests already running finish on the old one, new ones use
    /// the new one.
    pub fn replace_router(&self, router: Router) {
        self.shared.labels.store(Arc::new(metrics::Labels::of(&router)));
        self.shared.router.store(Arc::new(router));
    }

    /// Swaps in a new router and new settings at once (a configuration reload). Client
    /// tokens and the request timeout apply to the next request; the body limit is the
    /// one the application was built with. Clients keep their minute and their day's spend.
    pub fn reload(&self, router: Router, config: GatewayConfig) {
        self.shared.config.store(Arc::new(config));
        self.shared.labels.store(Arc::new(metrics::Labels::of(&router)));
        self.shared.router.store(Arc::new(router));
        if let Some(events) = &self.shared.events {
            // Keys may have come or gone: the alert task looks at every provider again.
            for provider in self.router().providers() {
                events.request_check(&provider);
            }
        }
    }

    /// The status page's view now.
    pub(crate) async fn status_view(&self) -> status::StatusView {
        let router = self.router();
        let config = self.shared.config.load();
        let context = status::Context {
            zones: &config.time_zones,
            fingerprints: &config.fingerprints,
            events: self.shared.events.as_deref(),
            now: self.shared.clock.utc(),
            low_success: self.shared.low_success,
        };
        status::status(&router, &context).await
    }

    /// The axum application.
    pub fn app(&self) -> axum::Router {
        let config = self.shared.config.load();
        let limit = config.body_limit_bytes;
        let api = axum::Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/responses", post(responses))
            .route("/v1/embeddings", post(inbound::embeddings::embeddings))
            .route("/v1/models", get(models))
            .route_layer(middleware::from_fn_with_state(self.clone(), authorize));
        // Health probes come from load balancers with any `Host`; they reveal nothing.
        let guarded = axum::Router::new()
            .merge(api)
            .merge(admin::routes(self))
            .merge(ui::routes(self))
            .route("/metrics", get(render_metrics))
            .layer(middleware::from_fn_with_state(self.clone(), check_host));
        axum::Router::new()
            .merge(guarded)
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .layer(DefaultBodyLimit::max(limit))
            .layer(RequestBodyLimitLayer::new(limit))
            // tower-http refuses a declared length over the limit before any handler runs,
            // with a plain-text 413: clients get the same typed error as a body cut short,
            // in the shape of the format they speak.
            .layer(middleware::from_fn(move |request: Request, next: Next| async move {
                let format = Inbound::of_path(request.uri().path());
                typed_too_large(next.run(request).await, limit, format)
            }))
            .layer(RequestBodyTimeoutLayer::new(config.body_read_timeout))
            .layer(middleware::from_fn(request_id))
            .with_state(self.clone())
    }
}

/// Serves `gateway` on `listener` until `shutdown` completes, then stops accepting, closes
/// idle connections and waits for the requests in flight (streams included) to finish.
///
/// Connections are served with the limits of the gateway's configuration: a cap on
/// connections at once, a header-read timeout, an idle timeout and a body-read timeout
/// (see `docs/security.md`).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    gateway: &Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    gateway.shared.listen.store(Some(Arc::new(addr)));
    let config = gateway.shared.config.load_full();
    let limits = conn::Limits {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
        max_connections: config.max_connections,
    };
    conn::serve(listener, gateway.app(), limits, shutdown).await
}

/// A plain 413 from a body limit layer, as the gateway's typed error in `format`'s shape.
fn typed_too_large(response: Response, limit_bytes: usize, format: Inbound) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return format.error(ServerError::BodyTooLarge { limit_bytes });
    }
    response
}

/// Refuses a request whose `Host` is not this gateway's when no client token is set.
async fn check_host(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let config = gateway.shared.config.load_full();
    if clients::required(&config) {
        return next.run(request).await;
    }
    let listen = gateway.shared.listen.load().as_deref().copied();
    let given = request.headers().get(header::HOST).map(HeaderValue::as_bytes);
    if host::allowed(given, listen, &config.allowed_hosts) {
        return next.run(request).await;
    }
    // The value is the client's: not logged (it may be long, and it is not ours).
    tracing::info!("request refused: its Host is not this gateway's");
    ServerError::HostNotAllowed.into_response()
}

async fn request_id(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            // An id goes into logs and back into a header: keep it short and printable.
            !value.is_empty()
                && value.len() <= 128
                && value.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(new_request_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    // A handler that had to give the request another id (see `chat_completions`) set it.
    if !response.headers().contains_key(REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes: [u8; 12] = rand::random();
    let mut id = String::with_capacity(4 + 2 * bytes.len());
    id.push_str("req-");
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

async fn authorize(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response {
    let config = gateway.shared.config.load_full();
    if !clients::required(&config) {
        request.extensions_mut().insert(clients::Identity::default());
        return next.run(request).await;
    }
    // Anthropic's SDKs send their token as `x-api-key`.
    let token = match clients::bearer(request.headers()) {
        b"" => request.headers().get(API_KEY).map_or(&b""[..], HeaderValue::as_bytes),
        token => token,
    };
    match clients::identify(&config, token) {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => inbound::Inbound::of_path(request.uri().path()).error(ServerError::Unauthorized),
    }
}

async fn readyz(State(gateway): State<Gateway>) -> Response {
    let stats = gateway.router().stats().await;
    if stats.available_providers.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false}))).into_response()
    } else {
        let providers: Vec<String> =
            stats.available_providers.iter().map(ToString::to_string).collect();
        Json(json!({"ready": true, "available_providers": providers})).into_response()
    }
}

async fn render_metrics(State(gateway): State<Gateway>) -> Response {
    let stats = gateway.router().stats().await;
    let shared = &gateway.shared;
    let extra = metrics::Extra {
        analytics: shared.events.as_ref().and_then(|events| events.analytics()).map(|writer| {
            metrics::AnalyticsCounts {
                written: writer.written(),
                dropped: writer.dropped(),
                write_errors: writer.write_errors(),
            }
        }),
        alerts: shared.outbox.as_ref().map(|outbox| metrics::AlertCounts {
            checks: outbox.checks.load(std::sync::atomic::Ordering::Relaxed),
            sent: outbox.sent.load(std::sync::atomic::Ordering::Relaxed),
            failed: outbox.failed.load(std::sync::atomic::Ordering::Relaxed),
            dropped: outbox.dropped.load(std::sync::atomic::Ordering::Relaxed),
        }),
    };
    let text = shared.metrics.render(&stats, &extra, &shared.labels.load());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn models(
    State(gateway): State<Gateway>,
    Extension(identity): Extension<clients::Identity>,
) -> Json<serde_json::Value> {
    let router = gateway.router();
    let allowed = |name: &str| identity.client.as_ref().is_none_or(|c| clients::allows(c, name));
    let mut data = Vec::new();
    for route in router.route_names() {
        if !allowed(&route) {
            continue;
        }
        let mut targets: Vec<String> = Vec::new();
        for candidate in router.candidates(&route).unwrap_or_default() {
            let target = format!("{}/{}", candidate.provider, candidate.model);
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        data.push(json!({
            "id": route, "object": "model", "created": 0, "owned_by": "switchyard",
            "targets": targets,
        }));
    }
    for provider in router.providers() {
        for model in router.models_of(&provider) {
            if !allowed(&format!("{provider}/{model}")) {
                continue;
            }
            data.push(json!({
                "id": format!("{provider}/{model}"), "object": "model", "created": 0,
                "owned_by": provider.to_string(),
            }));
        }
    }
    Json(json!({"object": "list", "data": data}))
}

async fn chat_completions(State(gateway): State<Gateway>, request: Request) -> Response {
    handle(gateway, request, Inbound::Chat).await
}

async fn messages(State(gateway): State<Gateway>, request: Request) -> Response {
    handle(gateway, request, Inbound::Messages).await
}

async fn responses(State(gateway): State<Gateway>, request: Request) -> Response {
    handle(gateway, request, Inbound::Responses).await
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens by the router's estimate; nothing is
/// routed.
async fn count_tokens(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let counted = match read_json_body(&gateway, &parts.headers, body).await {
        Ok(body) => inbound::messages::count_tokens(&body).map_err(ServerError::from),
        Err(error) => Err(error),
    };
    counted.unwrap_or_else(|error| Inbound::Messages.error(error))
}

/// Serves one request of any format.
async fn handle(gateway: Gateway, request: Request, format: Inbound) -> Response {
    let (headers, request_id, identity, body) = match read_request(&gateway, request).await {
        Ok(read) => read,
        Err(error) => return format.error(error),
    };
    // Analytics attribute the router's events to the client named in the request's options,
    // so ids (which come from clients) may repeat without mixing clients up.
    let request = Incoming { request_id, identity: &identity, headers: &headers, body: &body };
    respond(&gateway, request, format).await
}

/// Takes an API request apart: its headers, its id, who sent it and its JSON body (read
/// within the limits). Taken apart rather than extracted piece by piece: axum's `HeaderMap`
/// and `Extension` extractors clone what they hand out, on every request.
///
/// # Errors
/// Nobody identified the request (closed by default: never taken as anonymous), or its body
/// cannot be read.
pub(crate) async fn read_request(
    gateway: &Gateway,
    request: Request,
) -> Result<(HeaderMap, String, clients::Identity, Bytes), ServerError> {
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    // Both are set by this crate's layers, which every API request passes through.
    let request_id = parts
        .extensions
        .remove::<RequestId>()
        .map_or_else(new_request_id, |RequestId(request_id)| request_id);
    let identity =
        parts.extensions.remove::<clients::Identity>().ok_or(ServerError::Unauthorized)?;
    let body = read_json_body(gateway, &headers, body).await?;
    Ok((headers, request_id, identity, body))
}

/// One API request, read.
struct Incoming<'a> {
    request_id: String,
    identity: &'a clients::Identity,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// The body of a JSON API call: `application/json` only (a browser's form post or a
/// `text/plain` fetch cannot send that without a CORS preflight the gateway never answers),
/// read whole within the body limits.
async fn read_json_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, ServerError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ServerError::UnsupportedMediaType);
    }
    let limit_bytes = gateway.shared.config.load().body_limit_bytes;
    axum::body::to_bytes(body, limit_bytes).await.map_err(|error| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if current.is::<tower_http::timeout::TimeoutError>() {
                return ServerError::BodyTimeout;
            }
            // http-body-util's `LengthLimitError` (not a dependency of ours) says this.
            if current.to_string() == "length limit exceeded" {
                return ServerError::BodyTooLarge { limit_bytes };
            }
            cause = current.source();
        }
        ServerError::BodyUnreadable
    })
}

async fn respond(gateway: &Gateway, request: Incoming<'_>, format: Inbound) -> Response {
    let headers = request.headers;
    match answer(gateway, request, format).await {
        Ok(response) => response,
        Err(error) => {
            let trace = if let ServerError::Router { source, .. } = &error
                && wants_trace(headers)
            {
                source.trace().cloned()
            } else {
                None
            };
            let mut response = format.error(error);
            if let Some(trace) = trace {
                insert_trace(response.headers_mut(), &trace);
            }
            response
        }
    }
}

fn wants_trace(headers: &HeaderMap) -> bool {
    headers.get(&TRACE).is_some_and(|value| value.as_bytes() == b"1")
}

/// Admits a named client's request on `route`, or refuses it with its own code.
fn admit_client(
    gateway: &Gateway,
    identity: &clients::Identity,
    route: &str,
) -> Result<(), ServerError> {
    let Some(client) = &identity.client else { return Ok(()) };
    let shared = &gateway.shared;
    let admitted = shared.meters.admit(client, route, shared.clock.now(), shared.clock.utc());
    let error = match admitted {
        Ok(()) => {
            shared.metrics.client(&client.name, "admitted");
            return Ok(());
        }
        Err(clients::Refusal::RouteNotAllowed) => {
            ServerError::RouteNotAllowed { client: client.name.clone(), route: route.to_owned() }
        }
        Err(clients::Refusal::RateLimited { retry_after, limit }) => {
            ServerError::ClientRateLimited { client: client.name.clone(), limit, retry_after }
        }
        Err(clients::Refusal::BudgetExceeded { retry_after, budget, spent }) => {
            ServerError::ClientBudgetExceeded {
                client: client.name.clone(),
                budget,
                spent,
                retry_after,
            }
        }
    };
    shared.metrics.client(&client.name, error.code());
    tracing::info!(client = %client.name, route, code = error.code(), "client refused");
    Err(error)
}

async fn answer(
    gateway: &Gateway,
    request: Incoming<'_>,
    format: Inbound,
) -> Result<Response, ServerError> {
    let Incoming { request_id, identity, headers, body } = request;
    let mut parsed = format.parse(body)?;
    let router = gateway.router();
    let asked = inbound::options::ClientOptions::read(headers, &router)?;
    admit_client(gateway, identity, &parsed.model)?;
    let options = RequestOptions {
        request_id: Some(request_id.clone()),
        client: identity.name().map(Arc::from),
        timeout: asked.timeout(gateway.shared.config.load().request_timeout),
        trace: wants_trace(headers),
        max_wait: asked.max_wait,
        cache: asked.cache,
    };
    asked.tag(&mut parsed.request);
    let want_trace = options.trace;
    let clock = &gateway.shared.clock;
    let metrics = &gateway.shared.metrics;
    let started = clock.now();
    // Metrics name declared routes and targets only: any other name is `other`.
    let labels = gateway.shared.labels.load_full();
    let route = labels.route(&parsed.model);
    // Each attempt is logged once, by the router's event (`switchyard::attempt`, with the
    // request id, key id and fingerprint, error class and upstream request id).
    let routed_error = |source: switchyard::RouterError| {
        metrics.failed(&labels, &route, source.code(), source.trace());
        let failed = ui::Outcome::Failed(source.code());
        gateway.shared.ui.record(clock.utc(), &request_id, &route, source.trace(), &failed);
        ServerError::Router { source, now: clock.utc() }
    };
    if parsed.stream {
        let routed = router
            .chat_stream(&parsed.model, &parsed.request, options)
            .await
            .map_err(routed_error)?;
        let elapsed = clock.now().saturating_duration_since(started);
        let target = labels.target(&route, &routed.served_by);
        metrics.first_token(&labels, &target, &routed.trace, elapsed);
        let served = ui::Outcome::Served { cost: None, stream: true };
        gateway.shared.ui.record(clock.utc(), &request_id, &route, Some(&routed.trace), &served);
        let mut response_headers = served_headers(
            &routed.served_by,
            routed.fingerprint,
            routed.trace.attempts.len(),
            None,
        );
        // Streams are never served from the cache.
        response_headers.insert(CACHE, HeaderValue::from_static("miss"));
        if want_trace {
            insert_trace(&mut response_headers, &routed.trace);
        }
        return Ok(format.stream(inbound::StreamOut {
            routed,
            request_id,
            now_unix: clock.utc().timestamp(),
            include_usage: parsed.include_usage,
            account: (gateway.clone(), target, identity.client.clone(), started),
            headers: response_headers,
        }));
    }
    let answer =
        router.chat_with(&parsed.model, &parsed.request, options).await.map_err(routed_error)?;
    let elapsed = clock.now().saturating_duration_since(started);
    let target = labels.target(&route, &answer.served_by);
    let overhead = if answer.cached { elapsed } else { answer.overhead };
    metrics.answered(&labels, &target, &answer.trace, answer.cached, elapsed, overhead);
    let served = ui::Outcome::Served { cost: answer.cost, stream: false };
    gateway.shared.ui.record(clock.utc(), &request_id, &route, Some(&answer.trace), &served);
    metrics.tokens(&target, answer.response.usage);
    if let Some(dollars) = answer.cost {
        metrics.cost(&target, dollars);
        if let Some(client) = &identity.client {
            gateway.shared.meters.spend(client, dollars, clock.utc());
        }
    }
    let Answer { response, served_by, fingerprint, n_attempts, overhead, trace, cached, .. } =
        answer;
    let mut response_headers = served_headers(
        &served_by,
        fingerprint,
        usize::try_from(n_attempts).unwrap_or(usize::MAX),
        Some(overhead),
    );
    response_headers.insert(CACHE, HeaderValue::from_static(if cached { "hit" } else { "miss" }));
    if want_trace {
        insert_trace(&mut response_headers, &trace);
    }
    Ok(format.answer(&response, &request_id, clock.utc().timestamp(), response_headers))
}

fn served_headers(
    served_by: &switchyard_core::Candidate,
    fingerprint: switchyard_core::Fingerprint,
    n_attempts: usize,
    overhead: Option<Duration>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put(PROVIDER, served_by.provider.to_string());
    put(MODEL, served_by.model.to_string());
    put(KEY, fingerprint.to_string());
    put(ATTEMPTS, n_attempts.to_string());
    if let Some(overhead) = overhead {
        put(OVERHEAD, overhead.as_micros().to_string());
    }
    headers
}

fn insert_trace(headers: &mut HeaderMap, trace: &Trace) {
    let text = serde_json::to_string(trace).expect("invariant: a trace serializes");
    // A header carries visible ASCII only; a trace naming non-ASCII models is left out.
    if let Ok(value) = HeaderValue::from_str(&text) {
        headers.insert(TRACE, value);
    }
}
