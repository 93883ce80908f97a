//! One structured event per attempt and per request, through `tracing` and to any subscribed
//! [`EventSink`] (the gateway stores them for analytics). Events name keys by id and
//! fingerprint; they never carry a secret or a prompt.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use switchyard_core::{Candidate, ErrorKind, Fingerprint, Usage};

/// One call of one candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptEvent {
    /// The request it belongs to.
    pub request_id: String,
    /// The route.
    pub route: String,
    /// The client that asked, when the caller named one ([`RequestOptions::client`]).
    ///
    /// [`RequestOptions::client`]: crate::RequestOptions::client
    #[serde(serialize_with = "opt_str")]
    pub client: Option<Arc<str>>,
    /// The candidate called.
    pub candidate: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// 1 for the first attempt of the request.
    pub attempt: u32,
    /// How long it took.
    #[serde(serialize_with = "micros")]
    pub latency: Duration,
    /// Tokens, on success.
    pub usage: Option<Usage>,
    /// Its cost in dollars, when the model's price is known.
    pub cost: Option<f64>,
    /// How it failed, if it did.
    pub error: Option<ErrorKind>,
    /// The HTTP status of a failure, when there was one.
    pub status: Option<u16>,
    /// The upstream's request id.
    pub upstream_request_id: Option<String>,
}

/// One request, once it has ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestEvent {
    /// The request's id.
    pub request_id: String,
    /// The route.
    pub route: String,
    /// The client that asked, when the caller named one ([`RequestOptions::client`]).
    ///
    /// [`RequestOptions::client`]: crate::RequestOptions::client
    #[serde(serialize_with = "opt_str")]
    pub client: Option<Arc<str>>,
    /// The request's tags ([`ChatRequest::tags`](switchyard_core::ChatRequest::tags): the
    /// gateway's `x-switchyard-tags`), for a sink to record.
    pub tags: Vec<String>,
    /// What served it, on success.
    pub served_by: Option<Candidate>,
    /// The candidate of the last attempt made: what served it, or for a request that failed
    /// what it last tried (a stream cut short: what was streaming). `None` when no attempt
    /// was made.
    pub attempted: Option<Candidate>,
    /// Attempts made.
    pub n_attempts: u32,
    /// From routing to the answer (or the error).
    #[serde(serialize_with = "micros")]
    pub latency: Duration,
    /// Tokens of the answer.
    pub usage: Option<Usage>,
    /// What it cost in dollars, computed once by the router: by the usage reported (for a
    /// stream cut short or dropped, what it generated, the estimate when no usage was seen).
    /// `None` when the model has no price, or nothing was served.
    pub cost: Option<f64>,
    /// The error code, on failure (`QUOTA_EXCEEDED`, ...).
    pub error: Option<&'static str>,
    /// The candidates it did not call, and why (at most [`MAX_SKIPPED`]: a route's first
    /// ones in the order ranked).
    pub skipped: Vec<SkippedEvent>,
}

/// The most skipped candidates a [`RequestEvent`] names.
pub const MAX_SKIPPED: usize = 32;

/// A candidate a request did not call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedEvent {
    /// The candidate.
    pub candidate: Candidate,
    /// Why, by [`Skip::reason`](crate::Skip::reason): `cooling`, `exhausted`, `limit`,
    /// `circuit_open`, `disabled`, ...
    pub reason: &'static str,
}

/// An event of the router.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RouterEvent {
    /// An attempt ended.
    Attempt(AttemptEvent),
    /// A request ended.
    Request(RequestEvent),
}

/// Receives every event. Called on the request's task: keep it quick (queue and return).
pub trait EventSink: Send + Sync + 'static {
    /// One event.
    fn record(&self, event: &RouterEvent);
}

fn opt_str<S: serde::Serializer>(
    value: &Option<Arc<str>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.as_deref().serialize(serializer)
}

fn micros<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(value.as_micros())
}

pub(crate) fn trace_event(event: &RouterEvent) {
    match event {
        RouterEvent::Attempt(attempt) => tracing::info!(
            target: "switchyard::attempt",
            request_id = %attempt.request_id,
            route = %attempt.route,
            client = attempt.client.as_deref(),
            provider = %attempt.candidate.provider,
            model = %attempt.candidate.model,
            key = %attempt.candidate.key,
            fingerprint = %attempt.fingerprint,
            attempt = attempt.attempt,
            latency_us = attempt.latency.as_micros() as u64,
            tokens = attempt.usage.map(|usage| usage.total_tokens),
            cost = attempt.cost,
            error = attempt.error.map(ErrorKind::as_str),
            status = attempt.status,
            upstream_request_id = attempt.upstream_request_id.as_deref(),
            "attempt"
        ),
        RouterEvent::Request(request) => tracing::info!(
            target: "switchyard::request",
            request_id = %request.request_id,
            route = %request.route,
            client = request.client.as_deref(),
            served_by = request.served_by.as_ref().map(tracing::field::display),
            attempted = request.attempted.as_ref().map(tracing::field::display),
            attempts = request.n_attempts,
            latency_us = request.latency.as_micros() as u64,
            tokens = request.usage.map(|usage| usage.total_tokens),
            cost = request.cost,
            error = request.error,
            skipped = request.skipped.len(),
            "request"
        ),
    }
}
