//! What a request learned about each candidate of its route ([`Verdicts`]), when those out for
//! quota free again, and the one error that says why nothing served ([`final_error`]).
//! Reset times come from upstreams: every one is cut to [`switchyard_core::MAX_HINT`] ahead.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use switchyard_core::{Classify, Clock, ErrorKind, ProviderError, clamp_hint};
use switchyard_quota::Refusal;

use crate::budget::Budgets;
use crate::error::RouterError;
use crate::state::Route;
use crate::trace::Trace;

/// How one candidate ended up for this request, for the final error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Verdict {
    /// Its key is out of quota for a window (until, if known).
    Spent(Option<DateTime<Utc>>),
    /// Its key has quota but could not take this request now.
    Busy(Option<DateTime<Utc>>),
    /// Its key is invalid or cannot pay.
    Invalid,
    /// It failed, or its provider or circuit is unhealthy.
    Failed,
    /// Its estimated cost does not fit a budget today.
    OverBudget,
}

impl Verdict {
    /// The verdict of a ledger's refusal.
    pub(crate) fn of_refusal(reason: &Refusal, until: Option<DateTime<Utc>>) -> Self {
        match reason {
            Refusal::CoolingDown
            | Refusal::Exhausted
            | Refusal::Limit { .. }
            | Refusal::ProviderRemaining { .. } => Self::Spent(until),
            Refusal::Concurrency { .. } | Refusal::TooLarge { .. } => Self::Busy(until),
            Refusal::Invalid | Refusal::BillingStopped => Self::Invalid,
        }
    }

    /// The verdict of a failure that says "try the next key".
    pub(crate) fn of_next_key(error: &ProviderError, clock: &dyn Clock) -> Self {
        match error.kind {
            ErrorKind::InvalidKey | ErrorKind::BillingStopped | ErrorKind::PermissionDenied => {
                Self::Invalid
            }
            _ => Self::Spent(spent_until(error, clock)),
        }
    }

    /// When a candidate out for quota frees, if known.
    fn frees_at(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Spent(until) | Self::Busy(until) => until,
            Self::Invalid | Self::Failed | Self::OverBudget => None,
        }
    }
}

/// The stable name of a ledger's refusal, for traces.
pub(crate) fn refusal_name(reason: &Refusal) -> &'static str {
    match reason {
        Refusal::CoolingDown => "cooling_down",
        Refusal::Exhausted => "exhausted",
        Refusal::Invalid => "invalid",
        Refusal::BillingStopped => "billing_stopped",
        Refusal::Limit { .. } => "limit",
        Refusal::ProviderRemaining { .. } => "provider_remaining",
        Refusal::Concurrency { .. } => "concurrency",
        Refusal::TooLarge { .. } => "too_large",
    }
}

/// One verdict per slot of the route, by position; `None` while a candidate is in play.
pub(crate) struct Verdicts(Vec<Option<Verdict>>);

impl Verdicts {
    pub(crate) fn new(n_slots: usize) -> Self {
        Self(vec![None; n_slots])
    }

    pub(crate) fn is_open(&self, idx: usize) -> bool {
        self.0[idx].is_none()
    }

    /// The positions still in play.
    pub(crate) fn open(&self) -> Vec<usize> {
        (0..self.0.len()).filter(|&idx| self.0[idx].is_none()).collect()
    }

    pub(crate) fn all_decided(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    pub(crate) fn set(&mut self, idx: usize, verdict: Verdict) {
        self.0[idx] = Some(verdict);
    }

    /// Sets a verdict where none is yet; true when it did.
    pub(crate) fn rule_out(&mut self, idx: usize, verdict: Verdict) -> bool {
        let was_open = self.0[idx].is_none();
        if was_open {
            self.0[idx] = Some(verdict);
        }
        was_open
    }

    /// After a wait: the candidates that were out for quota are in play again.
    pub(crate) fn reopen_spent(&mut self) {
        for verdict in &mut self.0 {
            if matches!(verdict, Some(Verdict::Spent(_) | Verdict::Busy(_))) {
                *verdict = None;
            }
        }
    }

    /// When the first candidate refused for quota frees, as an instant on the clock; `None`
    /// when no refusal said when.
    pub(crate) fn wake_at(&self, now: Instant, utc: DateTime<Utc>) -> Option<Instant> {
        let earliest = self.0.iter().flatten().filter_map(|verdict| verdict.frees_at()).min()?;
        Some(instant_of(earliest, now, utc))
    }

    /// When a free candidate refused for quota frees, if one does in time for a call that
    /// takes about as long as its last ones: the wait a route that prefers cost makes instead
    /// of paying.
    pub(crate) fn free_wake(
        &self,
        route: &Route,
        now: Instant,
        utc: DateTime<Utc>,
        deadline: Instant,
    ) -> Option<Instant> {
        route
            .slots()
            .iter()
            .zip(&self.0)
            .filter(|(slot, _)| !slot.is_paid())
            .filter_map(|(slot, verdict)| {
                let wake = instant_of(verdict.and_then(Verdict::frees_at)?, now, utc);
                let call = slot.latency().unwrap_or(Duration::ZERO);
                wake.checked_add(call).is_some_and(|done| done < deadline).then_some(wake)
            })
            .min()
    }

    /// The one error that says why nothing served. A quota error wins over `INVALID_KEYS`
    /// as long as one key is merely out of quota; any unhealthy candidate makes it
    /// `ALL_PROVIDERS_FAILED`, with every attempt in the trace.
    pub(crate) fn final_error(
        &self,
        route: &Route,
        trace: Trace,
        budgets: Option<(&Budgets, DateTime<Utc>)>,
    ) -> RouterError {
        let n_keys = self.0.len();
        let (mut n_spent, mut n_busy, mut n_invalid, mut n_failed, mut n_over) = (0, 0, 0, 0, 0);
        let mut earliest: Option<DateTime<Utc>> = None;
        for verdict in &self.0 {
            match verdict {
                Some(Verdict::Spent(_)) => n_spent += 1,
                Some(Verdict::Busy(_)) => n_busy += 1,
                Some(Verdict::Invalid) => n_invalid += 1,
                Some(Verdict::OverBudget) => n_over += 1,
                // Not reached: the attempt bound ran out first.
                Some(Verdict::Failed) | None => n_failed += 1,
            }
            if let Some(until) = verdict.and_then(Verdict::frees_at) {
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
            }
        }
        let route_name = route.name().to_owned();
        // Over budget with nothing tried and nothing merely waiting for quota: the budget is
        // why.
        if let Some((budgets, utc)) = budgets
            && n_over > 0
            && n_spent + n_busy == 0
            && trace.attempts.is_empty()
        {
            return over_budget(budgets, route, trace, utc);
        }
        let n_failed = n_failed + n_over;
        let trace = Box::new(trace);
        if n_failed > 0 || n_keys == 0 {
            RouterError::AllProvidersFailed { route: route_name, trace }
        } else if n_busy > 0 {
            RouterError::PartialQuota {
                route: route_name,
                n_busy,
                n_keys,
                next_free: earliest,
                trace,
            }
        } else if n_spent > 0 {
            RouterError::QuotaExceeded {
                route: route_name,
                n_keys: n_spent,
                earliest_reset: earliest,
                trace,
            }
        } else {
            debug_assert_eq!(n_invalid, n_keys);
            RouterError::InvalidKeys { route: route_name, n_keys, trace }
        }
    }
}

/// `BUDGET_EXCEEDED` for `route`, with when its budget day resets.
pub(crate) fn over_budget(
    budgets: &Budgets,
    route: &Route,
    trace: Trace,
    utc: DateTime<Utc>,
) -> RouterError {
    let (spent, budget) = budgets.route_status(route.name(), utc);
    RouterError::BudgetExceeded {
        route: route.name().to_owned(),
        spent,
        budget,
        resets_at: budgets.resets_at(utc),
        trace: Box::new(trace),
    }
}

/// When a candidate that just answered "spent" is usable again, as far as the error says.
fn spent_until(error: &ProviderError, clock: &dyn Clock) -> Option<DateTime<Utc>> {
    let utc = clock.utc();
    match error.resets_at {
        Some(resets_at) => Some(clamp_at(resets_at, utc)),
        None => Classify::retry_after(error).map(|after| after_hint(utc, after)),
    }
}

/// `utc + after`, with `after` cut to [`switchyard_core::MAX_HINT`]; never panics.
pub(crate) fn after_hint(utc: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(clamp_hint(after))
        .ok()
        .and_then(|after| utc.checked_add_signed(after))
        .unwrap_or(utc)
}

/// A reset time from outside, no further ahead of `utc` than [`switchyard_core::MAX_HINT`].
pub(crate) fn clamp_at(at: DateTime<Utc>, utc: DateTime<Utc>) -> DateTime<Utc> {
    at.min(after_hint(utc, switchyard_core::MAX_HINT))
}

/// The instant `until` falls on, given that `utc` is `now`: at least a millisecond ahead (so
/// a reset rounded down never spins), at most [`switchyard_core::MAX_HINT`]; never panics.
fn instant_of(until: DateTime<Utc>, now: Instant, utc: DateTime<Utc>) -> Instant {
    let ahead = clamp_hint((until - utc).to_std().unwrap_or(Duration::ZERO));
    now.checked_add(ahead.max(Duration::from_millis(1))).unwrap_or(now)
}
