//! One quota bucket (a quota group's model or shared pool) and one key, as the in-memory
//! ledger keeps them: the counts, header gates and holds behind each bucket's lock, and the
//! [`Lane`] that resolves a candidate to its key and bucket once. The arithmetic of
//! admission and settlement lives here; the maps, the clock and the policy live in
//! `memory`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use switchyard_core::{Candidate, KeyId, LimitScope, LimitUnit, ModelId, ProviderId, Usage};

use crate::config::DayBoundary;
use crate::error::Refusal;
use crate::estimate::Estimate;
use crate::learned::{AcceptLog, Learned};
use crate::limit::Unit;
use crate::meter::Meter;
use crate::persist::KeyHoldKind;

/// Where one bucket's counts live.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BucketKey {
    pub(crate) provider: ProviderId,
    pub(crate) group: Arc<str>,
    pub(crate) pool: ModelId,
}

/// One candidate, resolved to its key and bucket once.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) candidate: Candidate,
    pub(crate) key: Arc<KeyCell>,
    pub(crate) bucket: Arc<Bucket>,
}

#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) key: BucketKey,
    pub(crate) day: DayBoundary,
    pub(crate) dirty: AtomicBool,
    pub(crate) state: Mutex<BucketState>,
}

/// Everything behind one bucket's lock. `parking_lot::Mutex`: nothing awaits while it is
/// held, and uncontended it is one atomic operation each way.
#[derive(Debug)]
pub(crate) struct BucketState {
    pub(crate) meters: Vec<Meter>,
    pub(crate) gates: Vec<Gate>,
    pub(crate) in_flight: u32,
    pub(crate) max_concurrent: Option<u32>,
    pub(crate) cooldown: Option<Hold>,
    pub(crate) exhausted: Option<Hold>,
    /// Successive 429s since the last success: the backoff schedule's step.
    pub(crate) strikes: u32,
    /// When the last hold ended or began.
    pub(crate) changed_at: Option<u64>,
    /// When the newest admission was made.
    pub(crate) last_taken: u64,
    /// Recent admissions, for learning limits nobody declared.
    pub(crate) log: AcceptLog,
    /// Limits learned from 429s (at most one per scope).
    pub(crate) learned: Vec<Learned>,
    /// Scopes whose request limit a provider's header has stated: its headers inform the
    /// bucket, so nothing is learned for them even after the header's gate has passed.
    pub(crate) stated: u8,
}

#[derive(Clone, Debug)]
pub(crate) struct Hold {
    /// `None`: until re-enabled.
    pub(crate) until: Option<u64>,
    pub(crate) reason: String,
    pub(crate) since: u64,
}

/// What a provider's header said remains, decremented by what is admitted until the next
/// header replaces it or its reset passes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gate {
    pub(crate) unit: LimitUnit,
    pub(crate) scope: LimitScope,
    pub(crate) remaining: u64,
    /// The limit the header stated alongside, when it did (for headroom).
    pub(crate) limit: Option<u64>,
    pub(crate) until: u64,
}

#[derive(Debug)]
pub(crate) struct KeyCell {
    pub(crate) provider: ProviderId,
    pub(crate) key: KeyId,
    /// Set while a hold exists, so admission skips the lock for healthy keys.
    pub(crate) blocked: AtomicBool,
    pub(crate) dirty: AtomicBool,
    pub(crate) state: Mutex<KeyCellState>,
}

#[derive(Debug, Default)]
pub(crate) struct KeyCellState {
    pub(crate) hold: Option<(KeyHoldKind, Hold)>,
    pub(crate) changed_at: Option<u64>,
}

pub(crate) fn gate_need(unit: LimitUnit, estimate: Estimate) -> u64 {
    match unit {
        LimitUnit::Requests => 1,
        LimitUnit::Tokens => estimate.tokens(),
        LimitUnit::InputTokens => estimate.prompt_tokens,
        LimitUnit::OutputTokens => estimate.output_tokens,
    }
}

/// A scope's bit in [`BucketState::stated`].
pub(crate) fn scope_bit(scope: LimitScope) -> u8 {
    match scope {
        LimitScope::Minute | LimitScope::Unknown => 1,
        LimitScope::Day => 2,
        LimitScope::Month => 4,
    }
}

/// The nominal length of a header's scope in ticks (an unknown scope is taken as a minute).
pub(crate) fn scope_length(scope: LimitScope) -> u64 {
    let secs = match scope {
        LimitScope::Minute | LimitScope::Unknown => 60,
        LimitScope::Day => 86_400,
        LimitScope::Month => 30 * 86_400,
    };
    secs * 1_000_000_000
}

pub(crate) fn later(current: Option<&Hold>, until: Option<u64>) -> bool {
    match (current, until) {
        (None, _) => true,
        (Some(Hold { until: None, .. }), _) => false,
        (Some(_), None) => true,
        (Some(Hold { until: Some(current), .. }), Some(until)) => until > *current,
    }
}

impl BucketState {
    /// Whether a declared limit, or a header's stated limit, covers requests in `scope`: then
    /// nothing is learned for it (declared limits win).
    pub(crate) fn declares(&self, scope: LimitScope) -> bool {
        self.meters
            .iter()
            .any(|meter| meter.limit.unit == Unit::Requests && meter.limit.window.scope() == scope)
            || self.stated & scope_bit(scope) != 0
            || self.gates.iter().any(|gate| {
                gate.unit == LimitUnit::Requests && gate.scope == scope && gate.limit.is_some()
            })
    }

    /// Ends holds whose time has passed.
    pub(crate) fn expire(&mut self, now: u64) {
        for slot in [&mut self.cooldown, &mut self.exhausted] {
            if let Some(Hold { until: Some(until), .. }) = slot
                && now >= *until
            {
                self.changed_at = Some(*until);
                *slot = None;
            }
        }
        for gate in &mut self.gates {
            // A header that stated its request limit still describes the key once its window
            // has reset: the next window starts with that limit, until the next answer's
            // headers say more. Forgetting it would let every request waiting for the key
            // through at once, a herd the provider refuses all but the limit of. (A stated
            // limit of 0 says nothing of the next window, and token gates just end: a request
            // estimated above a token limit is still tried once the window resets.)
            if now >= gate.until
                && gate.unit == LimitUnit::Requests
                && let Some(limit) = gate.limit.filter(|&limit| limit > 0)
            {
                gate.remaining = limit;
                gate.until = now.saturating_add(scope_length(gate.scope));
            }
        }
        self.gates.retain(|gate| now < gate.until);
    }

    pub(crate) fn check(
        &mut self,
        now: u64,
        estimate: Estimate,
        anchor_utc: DateTime<Utc>,
    ) -> Result<(), (Refusal, Option<u64>)> {
        self.expire(now);
        // Exhaustion first: it outlasts any cooldown, so its end is the one to report.
        if let Some(hold) = &self.exhausted {
            return Err((Refusal::Exhausted, hold.until));
        }
        if let Some(hold) = &self.cooldown {
            return Err((Refusal::CoolingDown, hold.until));
        }
        if let Some(max) = self.max_concurrent
            && self.in_flight >= max
        {
            return Err((Refusal::Concurrency { max }, None));
        }
        for gate in &self.gates {
            if gate.remaining < gate_need(gate.unit, estimate) {
                let refusal = Refusal::ProviderRemaining {
                    unit: gate.unit,
                    scope: gate.scope,
                    remaining: gate.remaining,
                };
                return Err((refusal, Some(gate.until)));
            }
        }
        for meter in &mut self.meters {
            meter.roll(now, anchor_utc);
            let need = meter.need(estimate.tokens());
            if !meter.fits(need) {
                let at = meter.free_at(now, need);
                let refusal = match at {
                    Some(_) => Refusal::Limit { unit: meter.limit.unit, limit: meter.limit.name() },
                    None => Refusal::TooLarge { limit: meter.limit.name() },
                };
                return Err((refusal, at));
            }
        }
        for learned in &self.learned {
            if !learned.fits(&self.log, now) {
                let refusal = Refusal::Limit { unit: Unit::Requests, limit: learned.name() };
                return Err((refusal, Some(learned.free_at(&self.log, now))));
            }
        }
        Ok(())
    }

    pub(crate) fn take(&mut self, now: u64, estimate: Estimate) {
        for meter in &mut self.meters {
            let need = meter.need(estimate.tokens());
            meter.take(now, need);
        }
        for gate in &mut self.gates {
            gate.remaining = gate.remaining.saturating_sub(gate_need(gate.unit, estimate));
        }
        self.in_flight = self.in_flight.saturating_add(1);
        self.last_taken = self.last_taken.max(now);
        self.log.push(now);
    }

    /// Ends an attempt. The correction lands where the reservation was made (at `taken_at`),
    /// so settling needs no clock read; a correction whose window has passed is dropped.
    pub(crate) fn finish(&mut self, taken_at: u64, estimate: Estimate, used: Option<&Usage>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for meter in &mut self.meters {
            let reserved = meter.need(estimate.tokens());
            let spent = match (used, meter.limit.unit) {
                (None, _) => 0,
                (Some(_), Unit::Requests) => 1,
                (Some(usage), Unit::Tokens) => u64::from(usage.total_tokens),
            };
            if spent > reserved {
                meter.take_at(taken_at, spent - reserved);
            } else if spent < reserved {
                meter.give_back(taken_at, reserved - spent);
            }
        }
        for gate in &mut self.gates {
            let reserved = gate_need(gate.unit, estimate);
            let spent = match (used, gate.unit) {
                (None, _) => 0,
                (Some(_), LimitUnit::Requests) => 1,
                (Some(usage), LimitUnit::Tokens) => u64::from(usage.total_tokens),
                (Some(usage), LimitUnit::InputTokens) => u64::from(usage.prompt_tokens),
                (Some(usage), LimitUnit::OutputTokens) => u64::from(usage.completion_tokens),
            };
            gate.remaining = gate.remaining.saturating_add(reserved).saturating_sub(spent);
        }
        self.log.finish(taken_at, used.is_some());
        if used.is_some() {
            self.strikes = 0;
            // More served within one window than the learned limit allows (requests in flight
            // when it was learned, or another process's): there is more room.
            let now = self.last_taken.max(taken_at);
            for learned in &mut self.learned {
                let served = learned.served(&self.log, now);
                if served > learned.limit {
                    let why = format!("raised: {served} served in one window");
                    learned.raise_to(served, now, why);
                }
            }
        }
    }
}

impl Bucket {
    pub(crate) fn mark_dirty(&self) {
        // Reading first keeps a hot bucket's cache line shared when the flag is already set.
        if !self.dirty.load(Ordering::Relaxed) {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }
}
