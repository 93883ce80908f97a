//! One attempt's books, kept the same way whether it served or failed: what the ledger
//! learns from it ([`observe`], [`settle_failure`]), and the scorer, the circuit, the stats,
//! the trace and the attempt event ([`record`]). Also what a served attempt hands back.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{Candidate, ErrorKind, Fingerprint, ProviderError, RateLimitSnapshot, Usage};
use switchyard_quota::QuotaLedger;
use switchyard_score::Outcome;

use crate::budget::SpendHold;
use crate::circuit::CircuitBreaker;
use crate::events::{AttemptEvent, RouterEvent};
use crate::finish::{Ending, RequestMeta, finish, settle_spend};
use crate::guards::{AttemptGuard, PermitGuard};
use crate::state::{Inner, Slot};
use crate::trace::{Attempt, Trace};
use crate::wait::LoadGuard;

/// What one successful attempt hands back to the cascade.
pub(crate) struct Served<T> {
    pub(crate) value: T,
    pub(crate) rate_limits: RateLimitSnapshot,
    pub(crate) upstream_request_id: Option<String>,
    /// Usage known when the attempt ended (plain calls); a stream learns it later.
    pub(crate) usage: Option<Usage>,
}

/// The outcome of a cascade: the value, the slot that served it and its permit, still to
/// be settled by the caller.
pub(crate) struct Routed<T> {
    pub(crate) value: T,
    pub(crate) slot: Arc<Slot>,
    pub(crate) permit: PermitGuard,
    /// The call's estimated cost, held against the budgets until settled.
    pub(crate) spend: Option<SpendHold>,
    pub(crate) attempt: AttemptGuard,
    pub(crate) trace: Trace,
    pub(crate) meta: RequestMeta,
    pub(crate) upstream_time: Duration,
    /// What the call cost, computed once from the usage it reported (plain calls).
    pub(crate) cost: Option<f64>,
    /// Counts the request against the overload cap while it lives.
    pub(crate) load: Option<LoadGuard>,
}

/// A served plain call, settled: what the caller answers with.
pub(crate) struct Settled<T> {
    pub(crate) value: T,
    pub(crate) request_id: String,
    pub(crate) served_by: Candidate,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) n_attempts: u32,
    /// Time spent in the router itself, upstream calls and waits left out.
    pub(crate) overhead: Duration,
    pub(crate) trace: Trace,
    pub(crate) cost: Option<f64>,
}

impl<T> Routed<T> {
    /// Settles a served plain call (chat or embeddings) with the usage it reported: its permit
    /// and money, then one request event; the overload cap's count ends with it.
    pub(crate) async fn settle(self, inner: &Inner, usage: Usage) -> Settled<T> {
        let Routed { value, slot, permit, spend, attempt, trace, meta, upstream_time, cost, load } =
            self;
        permit.settle(&usage).await;
        drop(attempt);
        settle_spend(inner, spend, &meta.route, &slot, cost);
        let n_attempts = u32::try_from(trace.attempts.len()).unwrap_or(u32::MAX);
        let overhead = inner
            .clock()
            .now()
            .saturating_duration_since(meta.started)
            .saturating_sub(upstream_time);
        let ending = Ending::Served { candidate: slot.candidate(), n_attempts, usage };
        finish(inner, &meta, ending, cost, Some(&trace));
        drop(load);
        Settled {
            value,
            request_id: meta.request_id,
            served_by: slot.candidate().clone(),
            fingerprint: slot.fingerprint(),
            n_attempts,
            overhead,
            trace,
            cost,
        }
    }
}

/// What an attempt told, for the books.
pub(crate) struct Report<'a> {
    pub(crate) usage: Option<Usage>,
    pub(crate) cost: Option<f64>,
    pub(crate) error: Option<ErrorKind>,
    pub(crate) status: Option<u16>,
    pub(crate) upstream_request_id: Option<&'a str>,
}

/// The books of one attempt, success or failure alike: scorer, circuit, latency, stats,
/// trace and the attempt event.
pub(crate) fn record(
    inner: &Inner,
    meta: &RequestMeta,
    trace: &mut Trace,
    slot: &Slot,
    guard: &mut AttemptGuard,
    latency: Duration,
    report: &Report<'_>,
) {
    let candidate = slot.candidate();
    let now = inner.clock().now();
    match report.error {
        None => {
            let tokens = report.usage.map_or(0, |usage| u64::from(usage.total_tokens));
            inner.scorer().record(candidate, Outcome::Success { latency, tokens });
            slot.circuit().record_success(now);
            guard.judged();
            slot.observe_latency(latency);
        }
        Some(kind) => {
            inner.scorer().record(candidate, Outcome::Failure { kind, latency });
            if CircuitBreaker::counts(kind) {
                slot.circuit().record_failure(kind, now);
                guard.judged();
            }
        }
    }
    inner.counters().attempt(candidate, report.error);
    trace.attempts.push(Attempt {
        candidate: candidate.clone(),
        fingerprint: slot.fingerprint(),
        error: report.error,
        status: report.status,
        latency,
        upstream_request_id: report.upstream_request_id.map(str::to_owned),
    });
    if inner.wants_events() {
        inner.emit(RouterEvent::Attempt(AttemptEvent {
            request_id: meta.request_id.clone(),
            route: meta.route.name().to_owned(),
            client: meta.client.clone(),
            candidate: candidate.clone(),
            fingerprint: slot.fingerprint(),
            attempt: u32::try_from(trace.attempts.len()).unwrap_or(u32::MAX),
            latency,
            usage: report.usage,
            cost: report.cost,
            error: report.error,
            status: report.status,
            upstream_request_id: report.upstream_request_id.map(str::to_owned),
        }));
    }
}

/// A served attempt's rate-limit headers, to the ledger. With the attempt's permit the
/// ledger can tell a reading overtaken by later admissions from news.
pub(crate) async fn observe(
    ledger: &dyn QuotaLedger,
    slot: &Slot,
    permit: &PermitGuard,
    rate_limits: &RateLimitSnapshot,
) {
    if rate_limits.is_empty() {
        return;
    }
    let observed = match permit.held() {
        Some(held) => ledger.observe_attempt(held, rate_limits).await,
        None => ledger.observe(slot.candidate(), rate_limits).await,
    };
    if let Err(error) = observed {
        tracing::warn!(error = %error, candidate = %slot.candidate(), "recording rate-limit headers failed");
    }
}

/// A failed attempt's permit and money, settled by whether the provider may have counted it,
/// and its error and headers, to the ledger. An error the provider answered was not counted;
/// a call that timed out, broke or answered garbage may have been: it counts as spent.
pub(crate) async fn settle_failure(
    ledger: &dyn QuotaLedger,
    slot: &Slot,
    permit: PermitGuard,
    hold: Option<SpendHold>,
    error: &ProviderError,
) {
    // The ledger reads the error's own rate-limit readings itself: a limit only a 429 states
    // (Gemini's `quotaValue`) holds the key until its reset without standing for headers
    // that inform later calls, so the limit is still learned.
    let candidate = slot.candidate();
    if matches!(error.kind, ErrorKind::Timeout | ErrorKind::Network | ErrorKind::MalformedResponse)
    {
        let usage = permit.estimated_usage();
        permit.settle(&usage).await;
        // Dropped unsettled: the hold counts as spent.
        drop(hold);
        if let Err(ledger_error) = ledger.record_error(candidate, error).await {
            tracing::warn!(error = %ledger_error, candidate = %candidate, "recording an error in the ledger failed");
        }
    } else {
        if let Some(hold) = hold {
            hold.release();
        }
        // Released and recorded at once: a 429 of an attempt admitted before the ledger
        // learned a limit says nothing against that limit.
        permit.fail(candidate, error).await;
    }
}
