//! How a request ends, in one place for plain calls, failures and streams: its money settled
//! against the budgets, its outcome counted in the stats, what served it remembered for
//! feedback, and one [`RequestEvent`] emitted with the client and candidate it concerns.

use std::sync::Arc;
use std::time::Instant;

use switchyard_core::{Candidate, Usage};

use crate::budget::SpendHold;
use crate::events::{MAX_SKIPPED, RequestEvent, RouterEvent, SkippedEvent};
use crate::state::{Inner, Route, Slot};
use crate::trace::Trace;

/// Who asked what, kept from routing to the request's end.
pub(crate) struct RequestMeta {
    pub(crate) request_id: String,
    /// The client that asked ([`RequestOptions::client`](crate::RequestOptions::client)).
    pub(crate) client: Option<Arc<str>>,
    /// The request's tags ([`ChatRequest::tags`](switchyard_core::ChatRequest::tags)).
    pub(crate) tags: Vec<String>,
    pub(crate) route: Arc<Route>,
    pub(crate) started: Instant,
}

impl RequestMeta {
    pub(crate) fn new(
        request_id: String,
        options: &crate::RequestOptions,
        request: &switchyard_core::ChatRequest,
        route: Arc<Route>,
        started: Instant,
    ) -> Self {
        Self {
            request_id,
            client: options.client.clone(),
            tags: request.tags.clone(),
            route,
            started,
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy)]
pub(crate) enum Ending<'a> {
    /// Served (a stream: served to its end).
    Served { candidate: &'a Candidate, n_attempts: u32, usage: Usage },
    /// Nothing served; `attempted` is the candidate of the last attempt, if any was made.
    Failed { code: &'static str, n_attempts: u32, attempted: Option<&'a Candidate> },
    /// A stream that reached its caller ended before its end: broken or timed out upstream
    /// (`counted`: a failed request in the stats), or dropped by its caller (not counted: no
    /// one failed). Its event names what served it, its usage so far and its cost, so
    /// analytics see the money a cut stream spent.
    Cut {
        candidate: &'a Candidate,
        n_attempts: u32,
        usage: Usage,
        code: &'static str,
        counted: bool,
    },
}

/// Counts the request's end and emits its event. `cost` was computed once, by the caller;
/// `trace` names the candidates skipped (a stream keeps only those, see [`skips_only`]).
pub(crate) fn finish(
    inner: &Inner,
    meta: &RequestMeta,
    ending: Ending<'_>,
    cost: Option<f64>,
    trace: Option<&Trace>,
) {
    let counters = inner.counters();
    match ending {
        Ending::Served { candidate, n_attempts, usage } => {
            counters.request_served(n_attempts, usage);
            inner.recent().insert(&meta.request_id, candidate);
        }
        Ending::Failed { code, .. } | Ending::Cut { code, counted: true, .. } => {
            counters.request_failed(code);
        }
        Ending::Cut { counted: false, .. } => {}
    }
    if !inner.wants_events() {
        return;
    }
    let (served_by, attempted, n_attempts, usage, error) = match ending {
        Ending::Served { candidate, n_attempts, usage } => {
            (Some(candidate), Some(candidate), n_attempts, Some(usage), None)
        }
        Ending::Failed { code, n_attempts, attempted } => {
            (None, attempted, n_attempts, None, Some(code))
        }
        Ending::Cut { candidate, n_attempts, usage, code, .. } => {
            (Some(candidate), Some(candidate), n_attempts, Some(usage), Some(code))
        }
    };
    inner.emit(RouterEvent::Request(RequestEvent {
        request_id: meta.request_id.clone(),
        route: meta.route.name().to_owned(),
        client: meta.client.clone(),
        tags: meta.tags.clone(),
        served_by: served_by.cloned(),
        attempted: attempted.cloned(),
        n_attempts,
        latency: inner.clock().now().saturating_duration_since(meta.started),
        usage,
        cost,
        error,
        skipped: trace.map_or_else(Vec::new, skipped),
    }));
}

fn skipped(trace: &Trace) -> Vec<SkippedEvent> {
    trace
        .considered
        .iter()
        .filter_map(|considered| {
            let skip = considered.skipped.as_ref()?;
            Some(SkippedEvent { candidate: considered.candidate.clone(), reason: skip.reason() })
        })
        .take(MAX_SKIPPED)
        .collect()
}

/// What a stream keeps of its trace for its request's event: the skipped candidates, when
/// events are wanted (nothing otherwise).
pub(crate) fn skips_only(inner: &Inner, trace: &Trace) -> Trace {
    if !inner.wants_events() {
        return Trace::default();
    }
    let considered = trace
        .considered
        .iter()
        .filter(|considered| considered.skipped.is_some())
        .take(MAX_SKIPPED)
        .cloned()
        .collect();
    Trace { considered, ..Trace::default() }
}

/// Settles a served call's money: its hold when it reserved one, a plain record when not.
pub(crate) fn settle_spend(
    inner: &Inner,
    hold: Option<SpendHold>,
    route: &Route,
    slot: &Slot,
    cost: Option<f64>,
) {
    match (hold, inner.budgets()) {
        (Some(hold), _) => hold.settle(cost.unwrap_or(0.0)),
        (None, Some(budgets)) => {
            if let Some(cost) = cost {
                budgets.record(route.name(), &slot.candidate().provider, cost);
            }
        }
        (None, None) => {}
    }
}
