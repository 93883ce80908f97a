//! The cascade, shared by plain and streamed calls: rank the candidates still in play, admit
//! the first the circuit, the budgets and the quota ledger let through, call it, and on
//! failure let the error's class decide what is tried next. One [`Cascade`] value per request
//! owns what the request learned (verdicts, retries, trace), its place in the wait queue and
//! its random source; each step of the loop is one of its methods.
//!
//! Which candidates a request may use at all, and the tiers a ranking is put in, are the
//! routing rules of [`crate::rules`]; how a request ends is [`crate::finish`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::{
    Candidate, ChatRequest, Classify, ErrorKind, NextStep, ProviderError, ProviderId,
};
use switchyard_quota::{Estimate, Permit, QuotaError};

use crate::attempt::{self, Report, Routed, Served};
use crate::backoff::Backoff;
use crate::budget::SpendHold;
use crate::circuit::Gate;
use crate::config::{MAX_TIMEOUT, Prefer, RequestOptions};
use crate::error::RouterError;
use crate::finish::{Ending, RequestMeta, finish};
use crate::guards::{AttemptGuard, PermitGuard};
use crate::rules;
use crate::state::{Inner, Slot};
use crate::strategy::{CandidateView, RankContext, SplitMix64};
use crate::trace::{Attempt, Considered, Skip, Trace};
use crate::verdict::{Verdict, Verdicts, after_hint, clamp_at, over_budget, refusal_name};
use crate::wait::{LoadGuard, Ticket};

/// The candidate the walk of a ranking admitted, with what it holds.
struct Admission {
    idx: usize,
    slot: Arc<Slot>,
    permit: Permit,
    /// Whether this call is a half-open circuit's probe.
    probe: bool,
    hold: Option<SpendHold>,
}

/// What a walk of the ranking found.
enum Pick {
    Admitted(Admission),
    /// A paid candidate is next, and a free one frees at this instant, in time.
    WaitForFree(Instant),
    /// Nothing admitted this round.
    Nothing,
}

/// Runs the cascade for one request: `call` makes one attempt of a slot.
pub(crate) async fn run<T, F, Fut>(
    inner: &Inner,
    route_name: &str,
    request: &ChatRequest,
    options: &RequestOptions,
    call: F,
) -> Result<Routed<T>, RouterError>
where
    F: Fn(Arc<Slot>) -> Fut,
    Fut: Future<Output = Result<Served<T>, ProviderError>>,
{
    let mut cascade = Cascade::start(inner, route_name, request, options)?;
    let clock = inner.clock();
    loop {
        let counted = cascade.trace.attempts.len() - cascade.teaching;
        if counted >= cascade.meta.route.max_attempts() as usize {
            return Err(cascade.exhausted());
        }
        let now = clock.now();
        if now >= cascade.deadline {
            return Err(cascade.deadline_exceeded());
        }
        let open = cascade.verdicts.open();
        if open.is_empty() {
            // Everything is out. Wait for the first to free if it frees in time and the queue
            // has room; otherwise answer now with the first reset.
            match cascade.wake_in_time(now) {
                Some(wake) if cascade.wait_for_capacity(wake, now).await => continue,
                _ => return Err(cascade.exhausted()),
            }
        }
        let order = cascade.rank(&open);
        let admission = match cascade.admit_next(&open, &order, now).await? {
            Pick::Admitted(admission) => admission,
            Pick::WaitForFree(wake) => {
                if !cascade.wait_for_capacity(wake, now).await {
                    // The wait queue is full: pay rather than fail.
                    cascade.may_wait_for_free = false;
                }
                continue;
            }
            Pick::Nothing => {
                // Slots the strategy left out are not tried this round; when it ranked none,
                // none is tried again. When every one is out, the next round waits or ends.
                if order.is_empty() {
                    for &idx in &open {
                        cascade.verdicts.rule_out(idx, Verdict::Failed);
                    }
                }
                continue;
            }
        };
        // Admitted: the place in the queue goes to the next waiter.
        drop(cascade.ticket.take());
        let Admission { idx, slot, permit, probe, hold } = admission;
        let permit = PermitGuard::new(Arc::clone(inner.ledger()), permit, cascade.estimate);
        let guard = AttemptGuard::new(Arc::clone(&slot), probe);
        let attempt_started = clock.now();
        // The call first: one that is ready at once never arms the deadline's timer.
        let result = tokio::select! {
            biased;
            result = call(Arc::clone(&slot)) => Some(result),
            () = clock.sleep_until(cascade.deadline) => None,
        };
        let latency = clock.now().saturating_duration_since(attempt_started);
        cascade.upstream_time += latency;
        match result {
            Some(Ok(served)) => {
                return Ok(cascade.on_success(slot, served, latency, permit, hold, guard).await);
            }
            Some(Err(error)) => {
                cascade.on_failure(idx, &slot, error, latency, permit, hold, guard).await?;
            }
            None => {
                // The deadline passed mid-call: the call is dropped (cancelled upstream), its
                // permit and money settled as spent by their guards, and the caller told.
                drop((permit, hold, guard));
                cascade.trace.attempts.push(Attempt {
                    candidate: slot.candidate().clone(),
                    fingerprint: slot.fingerprint(),
                    error: Some(ErrorKind::Timeout),
                    status: None,
                    latency,
                    upstream_request_id: None,
                });
                return Err(cascade.deadline_exceeded());
            }
        }
    }
}

/// One request's way through its route.
struct Cascade<'a> {
    inner: &'a Inner,
    request: &'a ChatRequest,
    options: &'a RequestOptions,
    meta: RequestMeta,
    timeout: Duration,
    deadline: Instant,
    max_wait: Duration,
    estimate: Estimate,
    verdicts: Verdicts,
    /// Retries of the same candidate, by slot.
    retries: Vec<u32>,
    trace: Trace,
    ticket: Option<Ticket>,
    rng: SplitMix64,
    /// Time spent upstream and waiting, which is not the router's overhead.
    upstream_time: Duration,
    first_ranking: bool,
    may_wait_for_free: bool,
    /// Providers that failed this request: ranked after every other.
    shunned: Vec<ProviderId>,
    load: Option<LoadGuard>,
    /// Attempts that were a candidate's first 429 of the request: not counted.
    teaching: usize,
}

impl<'a> Cascade<'a> {
    /// Checks the overload cap, resolves the route and applies the routing rules.
    fn start(
        inner: &'a Inner,
        route_name: &str,
        request: &'a ChatRequest,
        options: &'a RequestOptions,
    ) -> Result<Self, RouterError> {
        let clock = inner.clock();
        let started = clock.now();
        let limit = inner.config().max_in_flight;
        let load = inner.load().enter(limit).map_err(|in_flight| {
            inner.counters().request_failed("OVERLOADED");
            RouterError::Overloaded { in_flight, limit: limit.unwrap_or(0) }
        })?;
        let route = inner.resolve(route_name)?;
        let mut rng = inner.rng();
        let request_id =
            options.request_id.clone().unwrap_or_else(|| format!("req_{:016x}", rng.next_u64()));
        let timeout = options.timeout.unwrap_or(route.timeout()).min(MAX_TIMEOUT);
        let n_slots = route.slots().len();
        let mut cascade = Self {
            inner,
            request,
            options,
            timeout,
            deadline: started.checked_add(timeout).unwrap_or(started),
            max_wait: options.max_wait.unwrap_or(route.max_wait()),
            estimate: Estimate::of(request, inner.config().default_max_tokens),
            verdicts: Verdicts::new(n_slots),
            retries: vec![0; n_slots],
            trace: Trace {
                route: route.name().to_owned(),
                strategy: route.strategy_name().to_owned(),
                ..Trace::default()
            },
            ticket: None,
            rng,
            upstream_time: Duration::ZERO,
            first_ranking: true,
            may_wait_for_free: route.prefer() == Prefer::Cost,
            shunned: Vec::new(),
            load,
            teaching: 0,
            meta: RequestMeta::new(request_id, options, request, route, started),
        };
        let budgets = inner.budgets().map(|budgets| (budgets.as_ref(), clock.utc()));
        let context =
            rules::Context { disabled: inner.disabled(), budgets, estimate: cascade.estimate };
        let route = Arc::clone(&cascade.meta.route);
        let none_fits =
            rules::rule_out(&route, request, &context, &mut cascade.verdicts, &mut cascade.trace);
        if let (true, Some((budgets, utc))) = (none_fits, budgets) {
            let error = over_budget(budgets, &route, std::mem::take(&mut cascade.trace), utc);
            return Err(cascade.fail(error, None));
        }
        Ok(cascade)
    }

    /// Ranks the candidates in play (positions in `open`) by the route's strategy, in the
    /// rules' tiers. Returns indexes into `open`.
    fn rank(&mut self, open: &[usize]) -> Vec<usize> {
        let route = Arc::clone(&self.meta.route);
        // The common case ranks the route's own candidate list without copying it.
        let filtered: Vec<Candidate>;
        let candidates: &[Candidate] = if open.len() == route.slots().len() {
            route.candidates()
        } else {
            filtered = open.iter().map(|&idx| route.candidates()[idx].clone()).collect();
            &filtered
        };
        let views: Vec<CandidateView<'_>> = open
            .iter()
            .zip(candidates)
            .map(|(&idx, candidate)| {
                let slot = &route.slots()[idx];
                CandidateView {
                    candidate,
                    position: idx,
                    in_flight: slot.in_flight(),
                    latency: slot.latency(),
                    weight: slot.facts().weight.unwrap_or(1),
                    estimated_cost: slot.estimated_cost(self.estimate),
                }
            })
            .collect();
        let scorer = self.inner.scorer().as_ref();
        let context =
            RankContext { request: self.request, scorer, candidates, roll: self.rng.next_u64() };
        let mut order = route.strategy().rank(&views, &context);
        // NOTE: the spread's headroom reads the in-memory ledger only (Redis has none yet).
        let ledger = self.inner.ledger().as_ref();
        rules::tier(&route, self.request, open, &self.shunned, &mut order, ledger);
        self.inner.pins().promote(self.inner.clock().as_ref(), candidates, &mut order);
        if std::mem::take(&mut self.first_ranking) && self.options.trace {
            let scores = scorer.score(candidates);
            let mut considered: Vec<Considered> = order
                .iter()
                .filter_map(|&rank_idx| {
                    Some(Considered {
                        candidate: candidates.get(rank_idx)?.clone(),
                        score: scores.get(rank_idx).copied(),
                        skipped: None,
                    })
                })
                .collect();
            considered.append(&mut self.trace.considered);
            self.trace.considered = considered;
        }
        order
    }

    /// Walks the ranking: the first candidate its circuit, the budgets and the ledger admit
    /// is the one to call. Those refused get their verdict on the way.
    async fn admit_next(
        &mut self,
        open: &[usize],
        order: &[usize],
        now: Instant,
    ) -> Result<Pick, RouterError> {
        let inner = self.inner;
        let mut seen = vec![false; open.len()];
        for &rank_idx in order {
            if rank_idx >= open.len() || std::mem::replace(&mut seen[rank_idx], true) {
                continue;
            }
            let idx = open[rank_idx];
            let slot = Arc::clone(&self.meta.route.slots()[idx]);
            if self.may_wait_for_free && slot.is_paid() {
                let (utc, deadline) = (inner.clock().utc(), self.deadline);
                // Every free candidate ranked above is spent and one frees in time: wait.
                if let Some(wake) = self.verdicts.free_wake(&self.meta.route, now, utc, deadline) {
                    return Ok(Pick::WaitForFree(wake));
                }
            }
            let Some(probe) = self.pass_circuit(idx, &slot, now) else { continue };
            let Ok(hold) = self.reserve(idx, &slot) else {
                if probe {
                    slot.circuit().release_probe();
                }
                continue;
            };
            let refusal = match inner.ledger().admit(slot.candidate(), self.estimate).await {
                Ok(permit) => {
                    return Ok(Pick::Admitted(Admission { idx, slot, permit, probe, hold }));
                }
                Err(refusal) => refusal,
            };
            if let Some(hold) = hold {
                hold.release();
            }
            if probe {
                slot.circuit().release_probe();
            }
            let QuotaError::Refused { reason, until, retry_after, .. } = refusal else {
                return Err(self.fail(RouterError::QuotaBackend(refusal), Some(&self.trace)));
            };
            let utc = inner.clock().utc();
            let until = until
                .map(|until| clamp_at(until, utc))
                .or_else(|| retry_after.map(|after| after_hint(utc, after)));
            self.verdicts.set(idx, Verdict::of_refusal(&reason, until));
            let kind = refusal_name(&reason);
            let skip = Skip::Quota { detail: reason.to_string(), kind, until };
            self.trace.skip(slot.candidate(), skip);
        }
        Ok(Pick::Nothing)
    }

    /// Whether the slot's circuit lets a call through: `Some(is a probe)`, or `None` with the
    /// slot ruled out.
    fn pass_circuit(&mut self, idx: usize, slot: &Slot, now: Instant) -> Option<bool> {
        let skip = match slot.circuit().gate(now, self.rng.next_unit()) {
            Gate::Pass => return Some(false),
            Gate::Probe => return Some(true),
            Gate::Open { until } => {
                Skip::CircuitOpen { remaining: until.saturating_duration_since(now) }
            }
            Gate::Ramping { share } => Skip::Ramping { share },
        };
        self.verdicts.set(idx, Verdict::Failed);
        self.trace.skip(slot.candidate(), skip);
        None
    }

    /// Holds the call's estimated cost against the budgets, in the same step as the check,
    /// so concurrent calls cannot overshoot together. `Err` with the slot ruled out when it
    /// does not fit.
    fn reserve(&mut self, idx: usize, slot: &Slot) -> Result<Option<SpendHold>, ()> {
        let Some(budgets) = self.inner.budgets() else { return Ok(None) };
        let (route, provider) = (self.meta.route.name(), &slot.candidate().provider);
        let cost = slot.estimated_cost(self.estimate);
        budgets.try_reserve(route, provider, cost, self.inner.clock().utc()).map_err(|over| {
            self.verdicts.set(idx, Verdict::OverBudget);
            let detail = over.detail(route, provider);
            self.trace.skip(slot.candidate(), Skip::Unsuitable { detail });
        })
    }

    /// When every candidate is out, the instant to wait for: the first reset, if it comes
    /// within the request's wait limit.
    fn wake_in_time(&self, now: Instant) -> Option<Instant> {
        if self.max_wait.is_zero() {
            return None;
        }
        let limit = (self.meta.started.checked_add(self.max_wait))
            .map_or(self.deadline, |at| self.deadline.min(at));
        let wake = self.verdicts.wake_at(now, self.inner.clock().utc())?;
        (wake <= limit).then_some(wake)
    }

    /// Waits in the fair queue until `wake` and our turn (or the deadline), then puts the
    /// candidates out for quota back in play. False when the queue has no room.
    async fn wait_for_capacity(&mut self, wake: Instant, now: Instant) -> bool {
        if self.ticket.is_none() {
            self.ticket = self.inner.waiting().enter();
        }
        let Some(ticket) = self.ticket.as_ref() else { return false };
        let clock = self.inner.clock();
        ticket.pause(wake);
        self.trace.waited += wake.saturating_duration_since(now);
        clock.sleep_until(wake).await;
        tokio::select! {
            () = ticket.turn(clock.as_ref()) => {}
            () = clock.sleep_until(self.deadline) => {}
        }
        self.upstream_time += clock.now().saturating_duration_since(now);
        self.verdicts.reopen_spent();
        true
    }

    /// The attempt served: the ledger reads its headers, the books are kept, and the caller
    /// gets what it needs to settle.
    async fn on_success<T>(
        mut self,
        slot: Arc<Slot>,
        served: Served<T>,
        latency: Duration,
        permit: PermitGuard,
        hold: Option<SpendHold>,
        mut guard: AttemptGuard,
    ) -> Routed<T> {
        attempt::observe(self.inner.ledger().as_ref(), &slot, &permit, &served.rate_limits).await;
        let usage = served.usage;
        let cost = usage.and_then(|usage| {
            slot.cost(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens))
        });
        let upstream_request_id = served.upstream_request_id.as_deref();
        let report = Report { usage, cost, error: None, status: None, upstream_request_id };
        attempt::record(
            self.inner,
            &self.meta,
            &mut self.trace,
            &slot,
            &mut guard,
            latency,
            &report,
        );
        Routed {
            value: served.value,
            slot,
            permit,
            spend: hold,
            attempt: guard,
            trace: std::mem::take(&mut self.trace),
            meta: self.meta,
            upstream_time: self.upstream_time,
            cost,
            load: self.load,
        }
    }

    /// The attempt failed: its permit and money are settled by whether the provider may have
    /// counted it, the books are kept, and the error's class decides what is tried next.
    /// `Err` when the request ends here.
    #[expect(clippy::too_many_arguments, reason = "an attempt's parts, each consumed here")]
    async fn on_failure(
        &mut self,
        idx: usize,
        slot: &Slot,
        error: ProviderError,
        latency: Duration,
        permit: PermitGuard,
        hold: Option<SpendHold>,
        mut guard: AttemptGuard,
    ) -> Result<(), RouterError> {
        attempt::settle_failure(self.inner.ledger().as_ref(), slot, permit, hold, &error).await;
        self.teaching += usize::from(self.trace.first_limit(slot.candidate(), error.kind));
        let report = Report {
            usage: None,
            cost: None,
            error: Some(error.kind),
            status: error.status,
            upstream_request_id: error.upstream_request_id.as_deref(),
        };
        attempt::record(
            self.inner,
            &self.meta,
            &mut self.trace,
            slot,
            &mut guard,
            latency,
            &report,
        );
        drop(guard);
        tracing::warn!(
            request_id = %self.meta.request_id,
            candidate = %slot.candidate(),
            fingerprint = %slot.fingerprint(),
            error = %error,
            "attempt failed"
        );
        self.next_after(idx, slot, error).await
    }

    /// What the failure's class says to try next.
    async fn next_after(
        &mut self,
        idx: usize,
        slot: &Slot,
        error: ProviderError,
    ) -> Result<(), RouterError> {
        let kind = error.kind;
        let failed = slot.candidate();
        match error.next_step() {
            NextStep::Stop => {
                let trace = Box::new(std::mem::take(&mut self.trace));
                Err(self.fail(RouterError::BadRequest { source: Box::new(error), trace }, None))
            }
            NextStep::RetrySame => {
                if self.retry_same(idx, &error).await {
                    return Ok(());
                }
                self.verdicts.set(idx, Verdict::Failed);
                // The provider failed this request: its other keys go after the other
                // providers' for the rest of it.
                if !self.shunned.contains(&failed.provider) {
                    self.shunned.push(failed.provider.clone());
                }
                Ok(())
            }
            NextStep::NextKey => {
                self.verdicts.set(idx, Verdict::of_next_key(&error, self.inner.clock().as_ref()));
                Ok(())
            }
            NextStep::NextModel => {
                let window = slot.facts().context_window;
                self.rule_out_after(idx, kind, |other| {
                    let same_model = other.candidate().provider == failed.provider
                        && other.candidate().model == failed.model;
                    // A prompt too long for this window is too long for any window no larger.
                    let too_small = kind == ErrorKind::ContextTooLong
                        && matches!((window, other.facts().context_window), (Some(w), Some(o)) if o <= w);
                    same_model || too_small
                });
                Ok(())
            }
            NextStep::NextProvider => {
                if kind == ErrorKind::ContentFiltered && !self.meta.route.content_filter_fallback()
                {
                    let trace = Box::new(std::mem::take(&mut self.trace));
                    let error = RouterError::ContentFiltered { source: Box::new(error), trace };
                    return Err(self.fail(error, None));
                }
                self.rule_out_after(idx, kind, |other| {
                    other.candidate().provider == failed.provider
                });
                Ok(())
            }
        }
    }

    /// Sleeps the backoff and returns true when the same candidate may be tried again within
    /// the deadline.
    async fn retry_same(&mut self, idx: usize, error: &ProviderError) -> bool {
        let config = self.inner.config();
        let hint = Classify::retry_after(error);
        let delay = config.backoff.delay(self.retries[idx], hint, self.rng.next_unit());
        let clock = self.inner.clock();
        if self.retries[idx] >= config.retries_same
            || Backoff::within_deadline(delay, clock.now(), self.deadline).is_none()
        {
            return false;
        }
        self.retries[idx] += 1;
        clock.sleep(delay).await;
        self.upstream_time += delay;
        true
    }

    /// Rules out every candidate still in play that `matches`, the failed one included,
    /// naming the failure in the trace.
    fn rule_out_after(&mut self, idx: usize, by: ErrorKind, matches: impl Fn(&Slot) -> bool) {
        let route = Arc::clone(&self.meta.route);
        for (other_idx, other) in route.slots().iter().enumerate() {
            if matches(other)
                && self.verdicts.rule_out(other_idx, Verdict::Failed)
                && other_idx != idx
            {
                self.trace.skip(other.candidate(), Skip::RuledOut { by });
            }
        }
    }

    fn deadline_exceeded(&mut self) -> RouterError {
        let route = self.meta.route.name().to_owned();
        let trace = Box::new(std::mem::take(&mut self.trace));
        self.fail(RouterError::DeadlineExceeded { route, after: self.timeout, trace }, None)
    }

    /// The cascade is spent (attempts, candidates or the wait): the error says why.
    fn exhausted(&mut self) -> RouterError {
        let utc = self.inner.clock().utc();
        let budgets = self.inner.budgets().map(|budgets| (budgets.as_ref(), utc));
        let trace = std::mem::take(&mut self.trace);
        let error = self.verdicts.final_error(&self.meta.route, trace, budgets);
        self.fail(error, None)
    }

    /// Ends the request with `error`. `held`: the trace, for an error that does not carry it.
    fn fail(&self, error: RouterError, held: Option<&Trace>) -> RouterError {
        let trace = error.trace().or(held);
        let attempts = trace.map_or(&[][..], |trace| &trace.attempts[..]);
        let n_attempts = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        let attempted = attempts.last().map(|attempt| &attempt.candidate);
        let ending = Ending::Failed { code: error.code(), n_attempts, attempted };
        finish(self.inner, &self.meta, ending, None, trace);
        error
    }
}
