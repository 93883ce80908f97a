//! `/ui`: the live status page. A small static page (HTML, CSS and one script, embedded in
//! the binary with `include_str!`) that polls the admin API with the admin token and draws
//! every provider, key and model, the routes, the alerts, the recent requests with their
//! decision traces, and the analytics charts as inline SVG.
//!
//! The page itself holds nothing secret: the data comes from `/admin/*` behind the admin
//! token, which the page keeps in the tab's `sessionStorage` and sends as a bearer header,
//! never in a URL. Every answer here carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline script, no other origin at all) and refuses to be
//! framed. With no admin token configured, `/ui` answers 404 like the admin API.
//!
//! Two things the admin API lacked are added here:
//! - `GET /admin/recent`: the last [`N_RECENT`] requests with their decision trace (skipped
//!   candidates and why, the attempts and what the served one cost), kept in a bounded ring
//!   fed by the chat handler;
//! - one-time login codes ([`Gateway::login_code`]): `switchyard demo` prints
//!   `/ui#code=<code>`; the fragment never reaches a server log, the page trades the code for
//!   the token with `POST /ui/login` (each code works once, for [`CODE_TTL`]) and removes it
//!   from the address bar.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use switchyard::{Candidate, Trace};

use crate::{Gateway, ServerError, clients};

/// Requests the recent list keeps.
pub(crate) const N_RECENT: usize = 50;
/// How long a login code works.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(600);
/// Login codes outstanding at once; a new one past this replaces the oldest.
const MAX_CODES: usize = 8;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Scripts, styles, images and fetches from this origin only; nothing inline (the SVG the
/// script draws is DOM, not markup), no plugin, no framing, forms post here only.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What the page needs that lives in the gateway: the recent requests and the login codes.
#[derive(Default)]
pub(crate) struct UiState {
    recent: Mutex<VecDeque<Entry>>,
    codes: Mutex<VecDeque<(String, Instant)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data, pushed and popped whole: a panic cannot leave it half-written. Nothing
    // awaits while it is held, hence a std mutex.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as the page lists it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RecentRequest {
    at: String,
    request_id: String,
    /// The route's metric label: a configured name, or `other`.
    route: String,
    /// `ok`, or the typed error code.
    outcome: String,
    served_by: Option<Candidate>,
    stream: bool,
    /// What the answer cost, in dollars, when known (a stream's is settled after it ends).
    cost: Option<f64>,
    waited_ms: u128,
    attempts: Vec<AttemptRow>,
    skipped: Vec<SkipRow>,
}

#[derive(Clone, Debug, Serialize)]
struct AttemptRow {
    candidate: Candidate,
    fingerprint: String,
    /// `ok`, or the failure's class (`rate_limited`, `invalid_key`, ...).
    result: String,
    status: Option<u16>,
    latency_ms: u128,
    /// The served attempt's cost; a failed attempt is not billed.
    cost: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
struct SkipRow {
    candidate: Candidate,
    /// The router's reason, as it serializes (`{"reason": "quota", "detail": ...}`).
    why: Value,
}

/// A request kept as it ended; formatted into a [`RecentRequest`] when read.
#[derive(Clone)]
struct Entry {
    at: DateTime<Utc>,
    request_id: String,
    route: String,
    code: &'static str,
    cost: Option<f64>,
    stream: bool,
    /// Its attempts and skipped candidates (the ranked ones are not kept).
    trace: Trace,
}

impl Entry {
    fn row(&self) -> RecentRequest {
        let Entry { at, request_id, route, code, cost, stream, trace } = self;
        let served_by =
            if *code == "ok" { trace.attempts.last().map(|a| a.candidate.clone()) } else { None };
        let n_attempts = trace.attempts.len();
        let attempts = trace
            .attempts
            .iter()
            .enumerate()
            .map(|(attempt_idx, attempt)| AttemptRow {
                candidate: attempt.candidate.clone(),
                fingerprint: attempt.fingerprint.to_string(),
                result: attempt.error.map_or("ok", |kind| kind.as_str()).to_owned(),
                status: attempt.status,
                latency_ms: attempt.latency.as_millis(),
                cost: if attempt.error.is_none() && attempt_idx + 1 == n_attempts {
                    *cost
                } else {
                    None
                },
            })
            .collect();
        let skipped = trace
            .considered
            .iter()
            .filter_map(|considered| {
                let skip = considered.skipped.as_ref()?;
                Some(SkipRow {
                    candidate: considered.candidate.clone(),
                    why: serde_json::to_value(skip).unwrap_or(Value::Null),
                })
            })
            .collect();
        RecentRequest {
            at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            request_id: request_id.clone(),
            route: route.clone(),
            outcome: (*code).to_owned(),
            served_by,
            stream: *stream,
            cost: *cost,
            waited_ms: trace.waited.as_millis(),
            attempts,
            skipped,
        }
    }
}

/// What ended a request, for [`UiState::record`].
pub(crate) enum Outcome {
    /// Served (the answer's cost, when known).
    Served { cost: Option<f64>, stream: bool },
    /// Failed with this code.
    Failed(&'static str),
}

impl UiState {
    /// Keeps a request that ended, dropping the oldest past [`N_RECENT`]. Only copies what
    /// it is given: the rows are formatted when `/admin/recent` is read, not per request.
    pub(crate) fn record(
        &self,
        at: DateTime<Utc>,
        request_id: &str,
        route: &str,
        trace: Option<&Trace>,
        outcome: &Outcome,
    ) {
        let (code, cost, stream) = match outcome {
            Outcome::Served { cost, stream } => ("ok", *cost, *stream),
            Outcome::Failed(code) => (*code, None, false),
        };
        let trace = trace.map(|trace| Trace {
            attempts: trace.attempts.clone(),
            considered: trace
                .considered
                .iter()
                .filter(|considered| considered.skipped.is_some())
                .cloned()
                .collect(),
            waited: trace.waited,
            ..Trace::default()
        });
        let entry = Entry {
            at,
            request_id: request_id.to_owned(),
            route: route.to_owned(),
            code,
            cost,
            stream,
            trace: trace.unwrap_or_default(),
        };
        let mut recent = lock(&self.recent);
        if recent.len() == N_RECENT {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// The recent requests, newest first.
    pub(crate) fn recent(&self) -> Vec<RecentRequest> {
        let entries: Vec<Entry> = lock(&self.recent).iter().rev().cloned().collect();
        entries.iter().map(Entry::row).collect()
    }

    fn new_code(&self, now: Instant) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes: [u8; 16] = rand::random();
        let code: String = bytes
            .iter()
            .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])
            .map(char::from)
            .collect();
        let mut codes = lock(&self.codes);
        if codes.len() == MAX_CODES {
            codes.pop_front();
        }
        codes.push_back((code.clone(), now));
        code
    }

    /// Takes a code if it is outstanding and fresh: it works once.
    fn redeem(&self, given: &str, now: Instant) -> bool {
        let mut codes = lock(&self.codes);
        codes.retain(|(_, made)| now.saturating_duration_since(*made) < CODE_TTL);
        let found =
            codes.iter().position(|(code, _)| bool::from(code.as_bytes().ct_eq(given.as_bytes())));
        found.and_then(|code_idx| codes.remove(code_idx)).is_some()
    }
}

impl Gateway {
    /// A one-time code that logs the status page in as the admin: open
    /// `<base>/ui#code=<code>`. It works once, within ten minutes. `None` when the admin API
    /// is closed (no admin token).
    pub fn login_code(&self) -> Option<String> {
        self.shared.config.load().admin_token.as_ref()?;
        Some(self.shared.ui.new_code(self.shared.clock.now()))
    }
}

/// The page's routes; `/admin/recent` behind the admin token.
pub(crate) fn routes(gateway: &Gateway) -> axum::Router<Gateway> {
    let admin = axum::Router::new()
        .route("/admin/recent", get(recent))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), authorize));
    axum::Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/login", post(login))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), open))
        .merge(admin)
}

/// The page exists only where the admin API does.
async fn open(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    if gateway.shared.config.load().admin_token.is_none() {
        return ServerError::AdminDisabled.into_response();
    }
    let mut response = next.run(request).await;
    harden(response.headers_mut());
    response
}

async fn authorize(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let config = gateway.shared.config.load_full();
    let Some(token) = &config.admin_token else {
        return ServerError::AdminDisabled.into_response();
    };
    if bool::from(token.as_bytes().ct_eq(clients::bearer(request.headers()))) {
        next.run(request).await
    } else {
        ServerError::AdminUnauthorized.into_response()
    }
}

/// The headers every answer of the page carries.
fn harden(headers: &mut HeaderMap) {
    let mut put = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    put(header::CONTENT_SECURITY_POLICY, CSP);
    put(header::X_FRAME_OPTIONS, "DENY");
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::REFERRER_POLICY, "no-referrer");
    put(header::CACHE_CONTROL, "no-store");
    put(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    put(HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn recent(State(gateway): State<Gateway>) -> Json<Value> {
    Json(serde_json::json!({ "requests": gateway.shared.ui.recent() }))
}

#[derive(Deserialize)]
struct LoginBody {
    code: String,
}

/// Trades a one-time code for the admin token. Same-origin only: a browser names the
/// page's origin in `Origin` and `Sec-Fetch-Site`; another site's script is refused (and
/// could not read the answer anyway: no CORS header is ever sent).
async fn login(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    parsed: Result<Json<LoginBody>, JsonRejection>,
) -> Response {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() != b"same-origin" && site.as_bytes() != b"none");
    let origin_differs = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.as_bytes();
            let bare = origin
                .strip_prefix(b"http://")
                .or_else(|| origin.strip_prefix(b"https://"))
                .unwrap_or(origin);
            bare != host.as_bytes()
        }
        (Some(_), None) => true,
        (None, _) => false,
    };
    if cross_site || origin_differs {
        return (StatusCode::FORBIDDEN, Json(serde_json::json!({"error": "cross-origin"})))
            .into_response();
    }
    let Ok(Json(body)) = parsed else {
        return ServerError::InvalidInput("expected {\"code\": \"...\"}".to_owned())
            .into_response();
    };
    let token = gateway.shared.config.load().admin_token.clone();
    match token {
        Some(token) if gateway.shared.ui.redeem(&body.code, gateway.shared.clock.now()) => {
            tracing::info!("status page logged in with a one-time code");
            Json(serde_json::json!({ "token": token })).into_response()
        }
        _ => ServerError::AdminUnauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::Clock as _;

    use super::*;

    #[test]
    fn a_code_works_once_and_not_after_its_time() {
        let state = UiState::default();
        let start = switchyard_core::ManualClock::default().now();
        let code = state.new_code(start);
        assert_eq!(code.len(), 32);
        assert!(!state.redeem("not-a-code", start));
        assert!(state.redeem(&code, start));
        assert!(!state.redeem(&code, start), "a code works once");
        let late = state.new_code(start);
        assert!(!state.redeem(&late, start + CODE_TTL), "expired");
    }

    #[test]
    fn the_recent_list_is_bounded_and_newest_first() {
        let state = UiState::default();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        for n in 0..N_RECENT + 5 {
            state.record(at, &format!("req-{n}"), "default", None, &Outcome::Failed("X"));
        }
        let recent = state.recent();
        assert_eq!(recent.len(), N_RECENT);
        assert_eq!(recent[0].request_id, format!("req-{}", N_RECENT + 4));
        assert_eq!(recent[N_RECENT - 1].request_id, "req-5");
    }
}
