//! The in-memory ledger: one lock per quota bucket (a quota group's model or shared pool),
//! never a global one. Admission looks the candidate up in a sharded map, takes that
//! bucket's lock for a few hundred nanoseconds of arithmetic and allocates nothing once the
//! candidate has been seen.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use parking_lot::Mutex;
use switchyard_core::{
    Candidate, Clock, ErrorKind, KeyId, LimitScope, LimitUnit, ProviderError, ProviderId,
    RateLimitSnapshot, Reset, Usage, clamp_hint,
};

use crate::bucket::{
    Bucket, BucketKey, BucketState, Gate, Hold, KeyCell, KeyCellState, Lane, later, scope_bit,
};
use crate::config::{DayBoundary, QuotaConfig};
use crate::error::{QuotaError, Refusal};
use crate::estimate::Estimate;
use crate::learned::{AcceptLog, Learned, learn, learned_scope, lesson};
use crate::ledger::QuotaLedger;
use crate::limit::{Unit, Window, day_start};
use crate::meter::{Meter, duration_ticks, ticks_of, utc_of};
use crate::permit::Permit;
use crate::persist::{
    BucketRecord, HoldRecord, KeyHoldKind, KeyRecord, LedgerSnapshot, MeterRecord,
};
use crate::policy::{Verdict, clamp_until, reason, verdict};
use crate::state::{KeyState, KeyStatus};
use crate::summary::{KeySummary, LimitSummary, ProviderStatus, ProviderSummary};

/// FxHash-style multiplicative hashing. The maps are keyed by configured ids, not by
/// attacker-chosen text, so SipHash's flood resistance buys nothing here and its cost is a
/// third of an admission.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u8(&mut self, byte: u8) {
        // A `str` ends its hash with one 0xff byte: fold it in without a pass through `write`.
        self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("invariant: 8-byte chunk"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        let n = rest.len();
        // The last 1-7 bytes as one word, read in registers (overlapping reads are fine for a
        // hash; the length goes in the top byte).
        let tail = if n >= 4 {
            let low = u32::from_le_bytes(rest[..4].try_into().expect("invariant: 4 bytes"));
            let high = u32::from_le_bytes(rest[n - 4..].try_into().expect("invariant: 4 bytes"));
            u64::from(low) | u64::from(high) << 32
        } else if n > 0 {
            u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16
        } else {
            return;
        };
        let tail = tail ^ (n as u64) << 56;
        self.0 = (self.0.rotate_left(5) ^ tail).wrapping_mul(K);
    }
}

/// How far back the ledger's timeline reaches before it was made: 400 days, in nanoseconds.
const HISTORY_TICKS: u64 = 400 * 86_400 * 1_000_000_000;

type FastMap<K, V> = DashMap<K, V, BuildHasherDefault<FastHasher>>;

fn scope_ticks(scope: LimitScope) -> u64 {
    crate::bucket::scope_length(scope)
}

/// A candidate resolved to its counters in one [`MemoryLedger`]: see
/// [`MemoryLedger::handle`].
#[derive(Clone, Debug)]
pub struct QuotaHandle(Arc<Lane>);

impl QuotaHandle {
    /// The candidate.
    pub fn candidate(&self) -> &Candidate {
        &self.0.candidate
    }
}

/// The in-memory [`QuotaLedger`]: exact within one process, durable with a
/// [`crate::WriteBehind`] store, shared between processes only through a Redis ledger.
pub struct MemoryLedger {
    clock: Arc<dyn Clock>,
    anchor: Instant,
    anchor_utc: DateTime<Utc>,
    config: QuotaConfig,
    lanes: FastMap<Candidate, Arc<Lane>>,
    buckets: FastMap<BucketKey, Arc<Bucket>>,
    keys: FastMap<(ProviderId, KeyId), Arc<KeyCell>>,
    /// Whether any limit is known: declared, or stated by a header once. Until then
    /// [`QuotaLedger::headroom`] answers `None` without a lookup or a clock read.
    limits_known: AtomicBool,
}

impl std::fmt::Debug for MemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLedger")
            .field("candidates", &self.lanes.len())
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl MemoryLedger {
    /// A ledger with `config`, on `clock`.
    pub fn new(clock: Arc<dyn Clock>, config: QuotaConfig) -> Self {
        let anchor = clock.now();
        // The timeline starts `HISTORY_TICKS` before now, so times restored from an earlier
        // process (a hold's start, a window's slots) keep their exact place on it.
        let anchor_utc = clock
            .utc()
            .checked_sub_signed(chrono::Duration::nanoseconds(HISTORY_TICKS as i64))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let declared = config
            .providers
            .iter()
            .any(|provider| provider.models.iter().any(|rule| !rule.limits.is_empty()));
        Self {
            clock,
            anchor,
            anchor_utc,
            config,
            lanes: FastMap::default(),
            buckets: FastMap::default(),
            keys: FastMap::default(),
            limits_known: AtomicBool::new(declared),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    fn ticks(&self) -> u64 {
        duration_ticks(self.clock.now().saturating_duration_since(self.anchor)) + HISTORY_TICKS
    }

    fn utc(&self, ticks: u64) -> DateTime<Utc> {
        utc_of(self.anchor_utc, ticks)
    }

    fn lane(&self, candidate: &Candidate) -> Arc<Lane> {
        if let Some(lane) = self.lanes.get(candidate) {
            return Arc::clone(lane.value());
        }
        self.new_lane(candidate)
    }

    #[cold]
    fn new_lane(&self, candidate: &Candidate) -> Arc<Lane> {
        let placement = self.config.place(candidate);
        let key = BucketKey {
            provider: candidate.provider.clone(),
            group: Arc::from(placement.group.as_str()),
            pool: placement.pool,
        };
        let bucket = self.bucket(key);
        let key = Arc::clone(
            self.keys
                .entry((candidate.provider.clone(), candidate.key.clone()))
                .or_insert_with(|| {
                    Arc::new(KeyCell {
                        provider: candidate.provider.clone(),
                        key: candidate.key.clone(),
                        blocked: AtomicBool::new(false),
                        dirty: AtomicBool::new(false),
                        state: Mutex::new(KeyCellState::default()),
                    })
                })
                .value(),
        );
        let lane = Arc::new(Lane { candidate: candidate.clone(), key, bucket });
        Arc::clone(self.lanes.entry(candidate.clone()).or_insert(lane).value())
    }

    fn bucket(&self, key: BucketKey) -> Arc<Bucket> {
        let rule = self.config.rule_for_pool(&key.provider, key.pool.as_str());
        let day = self
            .config
            .provider(&key.provider)
            .map_or(DayBoundary::Midnight(chrono_tz::UTC), |quota| quota.day);
        let entry = self.buckets.entry(key.clone()).or_insert_with(|| {
            Arc::new(Bucket {
                key,
                day,
                dirty: AtomicBool::new(false),
                state: Mutex::new(BucketState {
                    meters: rule
                        .map(|rule| {
                            let transit = duration_ticks(self.config.transit);
                            let meter = |limit| Meter::with_transit(limit, transit);
                            rule.limits.iter().copied().map(meter).collect()
                        })
                        .unwrap_or_default(),
                    gates: Vec::new(),
                    in_flight: 0,
                    max_concurrent: rule.and_then(|rule| rule.max_concurrent),
                    cooldown: None,
                    exhausted: None,
                    strikes: 0,
                    changed_at: None,
                    last_taken: 0,
                    log: AcceptLog::default(),
                    learned: Vec::new(),
                    stated: 0,
                }),
            })
        });
        Arc::clone(entry.value())
    }

    /// Makes the ledger know `candidate` before its first admission, so summaries list it.
    pub fn register(&self, candidate: &Candidate) {
        drop(self.lane(candidate));
    }

    fn refused(
        &self,
        candidate: &Candidate,
        reason: Refusal,
        until: Option<u64>,
        now: u64,
    ) -> QuotaError {
        QuotaError::Refused {
            candidate: candidate.clone(),
            reason,
            until: until.map(|until| self.utc(until)),
            retry_after: until.map(|until| Duration::from_nanos(until.saturating_sub(now))),
        }
    }

    fn key_refusal(&self, cell: &KeyCell, now: u64) -> Option<(Refusal, Option<u64>)> {
        let mut state = cell.state.lock();
        match &state.hold {
            Some((_, Hold { until: Some(until), .. })) if now >= *until => {
                state.changed_at = Some(*until);
                state.hold = None;
                cell.blocked.store(false, Ordering::Release);
                cell.dirty.store(true, Ordering::Relaxed);
                None
            }
            Some((KeyHoldKind::Invalid, hold)) => Some((Refusal::Invalid, hold.until)),
            Some((KeyHoldKind::BillingStopped, hold)) => {
                Some((Refusal::BillingStopped, hold.until))
            }
            None => None,
        }
    }

    /// Reserves `estimate` for `candidate`: the synchronous, allocation-free core of
    /// [`QuotaLedger::admit`].
    ///
    /// # Errors
    /// [`QuotaError::Refused`] with the reason and, when known, the time it ends.
    pub fn try_admit(
        &self,
        candidate: &Candidate,
        estimate: Estimate,
    ) -> Result<Permit, QuotaError> {
        self.admit_lane(self.lane(candidate), estimate)
    }

    /// `candidate` resolved to its counters once, for callers that admit it often: admitting
    /// through a handle skips the map lookup.
    pub fn handle(&self, candidate: &Candidate) -> QuotaHandle {
        QuotaHandle(self.lane(candidate))
    }

    /// [`MemoryLedger::try_admit`] through a handle from this ledger.
    ///
    /// # Errors
    /// [`QuotaError::Refused`] with the reason and, when known, the time it ends.
    pub fn try_admit_handle(
        &self,
        handle: &QuotaHandle,
        estimate: Estimate,
    ) -> Result<Permit, QuotaError> {
        self.admit_lane(Arc::clone(&handle.0), estimate)
    }

    fn admit_lane(&self, lane: Arc<Lane>, estimate: Estimate) -> Result<Permit, QuotaError> {
        let now = self.ticks();
        if lane.key.blocked.load(Ordering::Acquire)
            && let Some((reason, until)) = self.key_refusal(&lane.key, now)
        {
            return Err(self.refused(&lane.candidate, reason, until, now));
        }
        let mut state = lane.bucket.state.lock();
        if let Err((reason, until)) = state.check(now, estimate, self.anchor_utc) {
            drop(state);
            return Err(self.refused(&lane.candidate, reason, until, now));
        }
        state.take(now, estimate);
        let overlapped = state.in_flight > 1;
        drop(state);
        lane.bucket.mark_dirty();
        Ok(Permit::local(lane, estimate, now, overlapped))
    }

    fn finish(&self, permit: Permit, usage: Option<&Usage>) {
        match permit.into_local() {
            Ok((lane, estimate, taken_at)) => {
                lane.bucket.state.lock().finish(taken_at, estimate, usage);
                lane.bucket.mark_dirty();
            }
            Err(permit) => {
                // A permit from a shared ledger holds nothing here.
                tracing::warn!(candidate = %permit.candidate(), "foreign permit ignored by the in-memory ledger");
            }
        }
    }

    /// Settles `permit` with the real usage: the synchronous core of [`QuotaLedger::settle`].
    pub fn settle_now(&self, permit: Permit, usage: &Usage) {
        self.finish(permit, Some(usage));
    }

    /// Gives `permit`'s reservation back: the synchronous core of [`QuotaLedger::release`].
    pub fn release_now(&self, permit: Permit) {
        self.finish(permit, None);
    }

    /// Learns from rate-limit headers: the synchronous core of [`QuotaLedger::observe`].
    pub fn observe_now(&self, candidate: &Candidate, snapshot: &RateLimitSnapshot) {
        self.observe_since(candidate, snapshot, None, Informs::Later);
    }

    /// Learns from the headers of the attempt `permit` admitted: the synchronous core of
    /// [`QuotaLedger::observe_attempt`]. Knowing when that attempt was admitted, a reading
    /// that would lower the local count is ignored when the attempt's flight overlapped
    /// another of the same bucket (admitted before it and still in flight then, or admitted
    /// after it): the provider may not have counted that one when it answered (calls and
    /// answers overtake each other when latencies vary).
    pub fn observe_attempt_now(&self, permit: &Permit, snapshot: &RateLimitSnapshot) {
        let admission = Admission { at: permit.taken_at(), overlapped: permit.overlapped() };
        self.observe_since(permit.candidate(), snapshot, Some(admission), Informs::Later);
    }

    fn observe_since(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
        admission: Option<Admission>,
        informs: Informs,
    ) {
        if snapshot.readings.is_empty() {
            return;
        }
        self.limits_known.store(true, Ordering::Relaxed);
        let lane = self.lane(candidate);
        let now = self.ticks();
        let received = self.utc(now);
        let mut state = lane.bucket.state.lock();
        // The headers describe the key as of the answered call. Attempts that overlapped it may
        // not be in them yet: those in flight now, those admitted after it, and those in flight
        // when it was admitted (one of those may have reached the provider after it, answered
        // first and settled, so that nothing is in flight now). Then a header may only make the
        // local view stricter: a stale "9 remaining" must not hand their capacity out again.
        // (The caller observes before it settles, so its own attempt is one of `in_flight`.)
        let others_in_flight = state.in_flight > 1;
        let overlapped = admission
            .is_some_and(|admission| admission.overlapped || state.last_taken > admission.at);
        let stale_if_lower = others_in_flight || overlapped;
        for reading in &snapshot.readings {
            let Some(remaining) = reading.remaining else { continue };
            // A reset from outside is clamped to `MAX_HINT` before any arithmetic.
            let until = match reading.reset {
                None => now.saturating_add(scope_ticks(reading.scope)),
                Some(Reset::After(after)) => now.saturating_add(duration_ticks(clamp_hint(after))),
                Some(Reset::At(at)) => ticks_of(self.anchor_utc, clamp_until(received, at)),
            };
            // A header that states its limit describes the declared meter of that limit when
            // there is one: two windows of one scope (ten seconds and a compressed day, both
            // "minute" by length) must not both take the short one's count.
            let named = reading.limit.filter(|&limit| {
                state.meters.iter().any(|meter| {
                    meter.limit.unit.matches(reading.unit)
                        && meter.limit.window.scope() == reading.scope
                        && meter.limit.amount == limit
                })
            });
            if named.is_none() {
                let gate = Gate {
                    unit: reading.unit,
                    scope: reading.scope,
                    remaining,
                    // A limit only a 429 stated holds the key until its reset but does not
                    // stand for the key's limit: the window's count is learned instead.
                    limit: reading.limit.filter(|_| informs == Informs::Later),
                    until,
                };
                match state
                    .gates
                    .iter_mut()
                    .find(|g| g.unit == reading.unit && g.scope == reading.scope)
                {
                    Some(existing) if stale_if_lower && existing.remaining < remaining => {}
                    Some(existing) => {
                        // A limit a successful answer stated stays known through a 429's
                        // reading, which names none: the next window starts with it.
                        let stated = existing.limit;
                        *existing = gate;
                        existing.limit = existing.limit.or(stated);
                    }
                    None => state.gates.push(gate),
                }
            }
            for meter in &mut state.meters {
                if meter.limit.unit.matches(reading.unit)
                    && meter.limit.window.scope() == reading.scope
                    && named.is_none_or(|limit| meter.limit.amount == limit)
                {
                    meter.roll(now, self.anchor_utc);
                    let limit = reading.limit.unwrap_or(meter.limit.amount);
                    let used = limit.saturating_sub(remaining);
                    if stale_if_lower && used < meter.used() {
                        continue;
                    }
                    meter.set_used(now, used);
                }
            }
            if reading.unit == LimitUnit::Requests
                && reading.limit.is_some()
                && informs == Informs::Later
            {
                state.stated |= scope_bit(learned_scope(reading.scope));
            }
            if reading.unit == LimitUnit::Requests && !state.learned.is_empty() {
                let state = &mut *state;
                let scope = learned_scope(reading.scope);
                for learned in state.learned.iter_mut().filter(|learned| learned.scope == scope) {
                    let room = match reading.limit {
                        Some(limit) => limit,
                        // A stale reading may not hand out capacity newer admissions took.
                        None if stale_if_lower => continue,
                        None => learned.used(&state.log, now).saturating_add(remaining),
                    };
                    let why = "raised: the provider's headers show more room".to_owned();
                    learned.raise_to(room, now, why);
                }
            }
        }
        drop(state);
        lane.bucket.mark_dirty();
    }

    /// Learns a limit from a 429 for a window nothing declares (see `learned`): the count
    /// of requests the bucket saw served in that window.
    fn learn_from(&self, lane: &Lane, error: &ProviderError, now: u64, admitted: Option<u64>) {
        let Some(lesson) = lesson(error, lane.bucket.day, self.utc(now)) else { return };
        let mut evidence = lesson.evidence(self.anchor_utc);
        evidence.admitted = admitted;
        let mut guard = lane.bucket.state.lock();
        let state = &mut *guard;
        if state.declares(lesson.scope) {
            return;
        }
        state.expire(now);
        if learn(&mut state.learned, &state.log, now, &evidence) {
            self.limits_known.store(true, Ordering::Relaxed);
        }
    }

    /// Records an attempt's error: the synchronous core of [`QuotaLedger::record_error`].
    pub fn record_error_now(&self, candidate: &Candidate, error: &ProviderError) {
        self.record_error_admitted(candidate, error, None);
    }

    /// Ends a failed attempt: the synchronous core of [`QuotaLedger::fail`]. Knowing when the
    /// attempt was admitted, a 429 of an attempt admitted before a limit was learned does not
    /// lower that limit.
    pub fn fail_now(&self, permit: Permit, error: &ProviderError) {
        let (candidate, admitted) = (permit.candidate().clone(), permit.taken_at());
        self.release_now(permit);
        self.record_error_admitted(&candidate, error, Some(admitted));
    }

    fn record_error_admitted(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
        admitted: Option<u64>,
    ) {
        // A limit stated only by the 429 itself (Gemini's `QuotaFailure` names its
        // `quotaValue`; its successes carry no header) will not inform the later calls: the
        // limit is still learned from what the window served.
        self.observe_since(candidate, &error.rate_limits, None, Informs::NotAfter);
        let lane = self.lane(candidate);
        let now = self.ticks();
        let why = reason(error);
        let scope = match error.kind {
            ErrorKind::RateLimited { scope } | ErrorKind::QuotaExhausted { scope } => {
                Some(learned_scope(scope)).filter(|scope| *scope != LimitScope::Month)
            }
            _ => None,
        };
        if scope.is_some() {
            self.learn_from(&lane, error, now, admitted);
        }
        match verdict(error, lane.bucket.day, self.utc(now)) {
            Verdict::Cooldown { after } => {
                let mut state = lane.bucket.state.lock();
                state.expire(now);
                // With no delay stated, a learned window's remaining time is the evidence;
                // only a key whose window is unknown follows the configured schedule.
                let learned_wait = state
                    .learned
                    .iter()
                    .find(|learned| Some(learned.scope) == scope)
                    .map(|learned| learned.free_at(&state.log, now).saturating_sub(now))
                    .filter(|&wait| wait > 0)
                    .map(Duration::from_nanos);
                // `verdict` clamped the provider's delay; the configured schedule is clamped too.
                let wait = clamp_hint(
                    after
                        .or(learned_wait)
                        .unwrap_or_else(|| self.config.backoff_for(state.strikes)),
                );
                state.strikes = state.strikes.saturating_add(1);
                let until = Some(now.saturating_add(duration_ticks(wait)));
                // A new cooldown never shortens one in force: the later deadline wins.
                if later(state.cooldown.as_ref(), until) {
                    state.cooldown = Some(Hold { until, reason: why, since: now });
                    state.changed_at = Some(now);
                }
            }
            Verdict::Exhausted { until } => {
                let until = until.map(|until| ticks_of(self.anchor_utc, until));
                let mut state = lane.bucket.state.lock();
                state.expire(now);
                if later(state.exhausted.as_ref(), until) {
                    state.exhausted = Some(Hold { until, reason: why, since: now });
                    state.changed_at = Some(now);
                }
            }
            Verdict::Invalid => self.hold_key(&lane.key, KeyHoldKind::Invalid, None, why, now),
            Verdict::BillingStopped { until } => {
                let until = until.map(|until| ticks_of(self.anchor_utc, until));
                // An account that cannot pay stops every key of its group.
                for member in self.config.group_members(&candidate.provider, &candidate.key) {
                    let cell = self.key_cell(&candidate.provider, &member);
                    self.hold_key(&cell, KeyHoldKind::BillingStopped, until, why.clone(), now);
                }
            }
            Verdict::Nothing => return,
        }
        lane.bucket.mark_dirty();
    }

    fn key_cell(&self, provider: &ProviderId, key: &KeyId) -> Arc<KeyCell> {
        Arc::clone(
            self.keys
                .entry((provider.clone(), key.clone()))
                .or_insert_with(|| {
                    Arc::new(KeyCell {
                        provider: provider.clone(),
                        key: key.clone(),
                        blocked: AtomicBool::new(false),
                        dirty: AtomicBool::new(false),
                        state: Mutex::new(KeyCellState::default()),
                    })
                })
                .value(),
        )
    }

    fn hold_key(
        &self,
        cell: &KeyCell,
        kind: KeyHoldKind,
        until: Option<u64>,
        why: String,
        now: u64,
    ) {
        let mut state = cell.state.lock();
        state.hold = Some((kind, Hold { until, reason: why, since: now }));
        state.changed_at = Some(now);
        cell.blocked.store(true, Ordering::Release);
        cell.dirty.store(true, Ordering::Relaxed);
    }

    /// Makes `key` usable again: the synchronous core of [`QuotaLedger::reenable`].
    pub fn reenable_now(&self, provider: &ProviderId, key: &KeyId) {
        let cell = self.key_cell(provider, key);
        let mut state = cell.state.lock();
        if state.hold.take().is_some() {
            state.changed_at = Some(self.ticks());
        }
        cell.blocked.store(false, Ordering::Release);
        cell.dirty.store(true, Ordering::Relaxed);
        drop(state);
        // The operator vouches for the key: holds on its group's buckets end too.
        let now = self.ticks();
        let buckets: Vec<Arc<Bucket>> = self
            .lanes
            .iter()
            .filter(|lane| &lane.candidate.provider == provider && &lane.candidate.key == key)
            .map(|lane| Arc::clone(&lane.bucket))
            .collect();
        for bucket in buckets {
            let mut state = bucket.state.lock();
            if state.cooldown.take().is_some() | state.exhausted.take().is_some() {
                state.changed_at = Some(now);
                state.strikes = 0;
            }
            drop(state);
            bucket.mark_dirty();
        }
    }

    /// Whether any limit is known: declared, or stated by a provider's header once. Until
    /// one is, [`QuotaLedger::headroom`] answers `None` for every candidate.
    pub fn knows_limits(&self) -> bool {
        self.limits_known.load(Ordering::Relaxed)
    }

    /// [`QuotaLedger::headroom`] here: declared limits count, and so do limits a provider's
    /// headers stated (remaining out of limit). Keys of one quota group share one bucket and
    /// so read the same headroom.
    ///
    /// Cheap enough to ask for every candidate of every request: nothing at all while no
    /// limit is known; otherwise one map lookup and the bucket's uncontended lock, no
    /// allocation. A candidate never admitted nor registered answers `None`.
    fn headroom_now(&self, candidate: &Candidate) -> Option<f64> {
        if !self.limits_known.load(Ordering::Relaxed) {
            return None;
        }
        let lane = self.lanes.get(candidate)?;
        let mut state = lane.bucket.state.lock();
        if state.meters.is_empty() && state.gates.is_empty() && state.learned.is_empty() {
            return None;
        }
        let now = self.ticks();
        let mut least: Option<f64> = None;
        let mut note = |fraction: f64| {
            least = Some(least.map_or(fraction, |least: f64| least.min(fraction)));
        };
        for meter in &mut state.meters {
            meter.roll(now, self.anchor_utc);
            let amount = meter.limit.amount;
            if amount > 0 {
                note(amount.saturating_sub(meter.used()) as f64 / amount as f64);
            } else {
                note(0.0);
            }
        }
        for gate in &state.gates {
            if now < gate.until
                && let Some(limit) = gate.limit.filter(|&limit| limit > 0)
            {
                note(gate.remaining.min(limit) as f64 / limit as f64);
            }
        }
        for learned in &state.learned {
            let used = learned.used(&state.log, now);
            note(learned.limit.saturating_sub(used) as f64 / learned.limit.max(1) as f64);
        }
        least
    }

    /// The candidate's state now: the synchronous core of [`QuotaLedger::status`].
    pub fn status_now(&self, candidate: &Candidate) -> KeyStatus {
        let lane = self.lane(candidate);
        let now = self.ticks();
        self.lane_status(&lane, now)
    }

    fn lane_status(&self, lane: &Lane, now: u64) -> KeyStatus {
        drop(self.key_refusal(&lane.key, now));
        {
            let state = lane.key.state.lock();
            if let Some((kind, hold)) = &state.hold {
                let until = hold.until.map(|until| self.utc(until));
                let key_state = match kind {
                    KeyHoldKind::Invalid => KeyState::Invalid,
                    KeyHoldKind::BillingStopped => KeyState::BillingStopped { until },
                };
                return KeyStatus {
                    state: key_state,
                    reason: Some(hold.reason.clone()),
                    changed_at: Some(self.utc(hold.since)),
                };
            }
        }
        let key_changed = lane.key.state.lock().changed_at;
        let mut state = lane.bucket.state.lock();
        state.expire(now);
        let held = |hold: &Hold, key_state| KeyStatus {
            state: key_state,
            reason: Some(hold.reason.clone()),
            changed_at: Some(self.utc(hold.since)),
        };
        if let Some(hold) = &state.exhausted {
            return held(hold, KeyState::Exhausted { until: hold.until.map(|u| self.utc(u)) });
        }
        if let Some(hold) = &state.cooldown {
            let until = self.utc(hold.until.unwrap_or(now));
            return held(hold, KeyState::CoolingDown { until });
        }
        let changed = state.changed_at.max(key_changed);
        KeyStatus {
            state: KeyState::Available,
            reason: None,
            changed_at: changed.map(|t| self.utc(t)),
        }
    }

    fn lane_summary(&self, lane: &Lane, now: u64) -> KeySummary {
        let status = self.lane_status(lane, now);
        let one = Estimate::new(1, 0);
        let mut state = lane.bucket.state.lock();
        let check = state.check(now, one, self.anchor_utc);
        // `check` stops at the first refusal (a hold, a gate) before rolling every meter: roll
        // them all, so the summary never shows a count that has already left its window.
        for meter in &mut state.meters {
            meter.roll(now, self.anchor_utc);
        }
        let mut limits: Vec<LimitSummary> = state
            .meters
            .iter()
            .map(|meter| {
                let used = meter.used();
                let limit = meter.limit.amount;
                LimitSummary {
                    unit: meter.limit.unit,
                    limit_name: meter.limit.name(),
                    used,
                    limit,
                    remaining: limit.saturating_sub(used),
                    percent: if limit == 0 { 100.0 } else { used as f64 * 100.0 / limit as f64 },
                    resets_at: meter.resets_at(now).map(|t| self.utc(t)),
                    learned: None,
                }
            })
            .collect();
        for learned in &state.learned {
            let used = learned.used(&state.log, now);
            let limit = learned.limit;
            limits.push(LimitSummary {
                unit: Unit::Requests,
                limit_name: learned.name(),
                used,
                limit,
                remaining: limit.saturating_sub(used),
                percent: used as f64 * 100.0 / limit.max(1) as f64,
                resets_at: learned.resets_at(&state.log, now).map(|t| self.utc(t)),
                learned: Some(learned.record(self.anchor_utc)),
            });
        }
        drop(state);
        let (available, available_at) = match (&status.state, check) {
            (KeyState::Available, Ok(())) => (true, None),
            (KeyState::Available, Err((_, until))) => (false, until.map(|t| self.utc(t))),
            (other, _) => (false, other.until()),
        };
        KeySummary {
            key: lane.candidate.key.clone(),
            model: lane.candidate.model.clone(),
            group: lane.bucket.key.group.to_string(),
            pool: lane.bucket.key.pool.clone(),
            status,
            available,
            available_at,
            limits,
        }
    }

    /// Every known candidate of `provider`: the synchronous core of
    /// [`QuotaLedger::summary`].
    pub fn summary_now(&self, provider: &ProviderId) -> ProviderSummary {
        let now = self.ticks();
        let lanes: Vec<Arc<Lane>> = self
            .lanes
            .iter()
            .filter(|entry| &entry.key().provider == provider)
            .map(|entry| Arc::clone(entry.value()))
            .collect();
        let mut keys: Vec<KeySummary> =
            lanes.iter().map(|lane| self.lane_summary(lane, now)).collect();
        keys.sort_by(|a, b| (&a.key, &a.model).cmp(&(&b.key, &b.model)));
        ProviderSummary { provider: provider.clone(), status: ProviderStatus::of(&keys), keys }
    }

    fn hold_record(&self, hold: &Hold) -> HoldRecord {
        HoldRecord {
            until: hold.until.map(|t| self.utc(t)),
            reason: hold.reason.clone(),
            since: self.utc(hold.since),
        }
    }

    fn bucket_record(&self, bucket: &Bucket, now: u64) -> BucketRecord {
        let mut state = bucket.state.lock();
        state.expire(now);
        let as_of = self.utc(now);
        let meters = state
            .meters
            .iter_mut()
            .map(|meter| {
                meter.roll(now, self.anchor_utc);
                MeterRecord {
                    name: meter.limit.name(),
                    used: meter.used(),
                    as_of,
                    day_started: meter.day_started().map(|t| self.utc(t)),
                    slots: meter.slots().into_iter().map(|(t, n)| (self.utc(t), n)).collect(),
                }
            })
            .collect();
        BucketRecord {
            provider: bucket.key.provider.clone(),
            group: bucket.key.group.to_string(),
            pool: bucket.key.pool.clone(),
            meters,
            cooldown: state.cooldown.as_ref().map(|hold| self.hold_record(hold)),
            exhausted: state.exhausted.as_ref().map(|hold| self.hold_record(hold)),
            strikes: state.strikes,
            changed_at: state.changed_at.map(|t| self.utc(t)),
            learned: state.learned.iter().map(|learned| learned.record(self.anchor_utc)).collect(),
        }
    }

    fn key_record(&self, cell: &KeyCell) -> KeyRecord {
        let state = cell.state.lock();
        KeyRecord {
            provider: cell.provider.clone(),
            key: cell.key.clone(),
            hold: state.hold.as_ref().map(|(kind, hold)| (*kind, self.hold_record(hold))),
            changed_at: state.changed_at.map(|t| self.utc(t)),
        }
    }

    /// What changed since the last export (every bucket and key when `all`), clearing the
    /// change marks. A store that fails to save it calls [`MemoryLedger::mark_changed`].
    pub fn export(&self, all: bool) -> LedgerSnapshot {
        let now = self.ticks();
        let buckets = self
            .buckets
            .iter()
            .filter(|entry| entry.dirty.swap(false, Ordering::AcqRel) || all)
            .map(|entry| Arc::clone(entry.value()))
            .collect::<Vec<_>>();
        let keys = self
            .keys
            .iter()
            .filter(|entry| entry.dirty.swap(false, Ordering::AcqRel) || all)
            .map(|entry| Arc::clone(entry.value()))
            .collect::<Vec<_>>();
        LedgerSnapshot {
            taken_at: self.utc(now),
            buckets: buckets.iter().map(|bucket| self.bucket_record(bucket, now)).collect(),
            keys: keys.iter().map(|cell| self.key_record(cell)).collect(),
        }
    }

    /// Marks everything changed, so the next export carries it all again.
    pub fn mark_changed(&self) {
        for entry in &self.buckets {
            entry.dirty.store(true, Ordering::Relaxed);
        }
        for entry in &self.keys {
            entry.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Loads counts and states saved by an earlier process. Counts of limits no longer
    /// configured, and states already over, are dropped; a sliding window's saved counts
    /// keep their place in their window.
    pub fn restore(&self, snapshot: &LedgerSnapshot) {
        let now = self.ticks();
        let now_utc = self.utc(now);
        for record in &snapshot.buckets {
            let key = BucketKey {
                provider: record.provider.clone(),
                group: Arc::from(record.group.as_str()),
                pool: record.pool.clone(),
            };
            let bucket = self.bucket(key);
            let mut state = bucket.state.lock();
            for meter in &mut state.meters {
                let Some(saved) =
                    record.meters.iter().find(|saved| saved.name == meter.limit.name())
                else {
                    continue;
                };
                meter.roll(now, self.anchor_utc);
                let used = match meter.limit.window {
                    Window::Sliding(_) => {
                        for &(start, count) in &saved.slots {
                            meter.take_at(ticks_of(self.anchor_utc, start), count);
                        }
                        continue;
                    }
                    Window::Day(tz) => {
                        if saved.as_of >= day_start(tz, now_utc) {
                            saved.used
                        } else {
                            0
                        }
                    }
                    Window::Refill(length) => {
                        let elapsed = (now_utc - saved.as_of).to_std().unwrap_or(Duration::ZERO);
                        let drained = meter.limit.amount as f64 * elapsed.as_secs_f64()
                            / length.as_secs_f64().max(1e-9);
                        (saved.used as f64 - drained).max(0.0).ceil() as u64
                    }
                };
                meter.set_used(now, used.max(meter.used()));
            }
            let restore = |hold: &Option<HoldRecord>| {
                hold.as_ref().filter(|hold| hold.until.is_none_or(|until| until > now_utc)).map(
                    |hold| Hold {
                        until: hold
                            .until
                            .map(|until| ticks_of(self.anchor_utc, clamp_until(now_utc, until))),
                        reason: hold.reason.clone(),
                        since: ticks_of(self.anchor_utc, hold.since),
                    },
                )
            };
            if let Some(hold) = restore(&record.cooldown)
                && later(state.cooldown.as_ref(), hold.until)
            {
                state.cooldown = Some(hold);
            }
            if let Some(hold) = restore(&record.exhausted)
                && later(state.exhausted.as_ref(), hold.until)
            {
                state.exhausted = Some(hold);
            }
            for saved in &record.learned {
                let Some(learned) = Learned::from_record(saved, self.anchor_utc) else { continue };
                if state.declares(learned.scope) {
                    continue;
                }
                match state.learned.iter_mut().find(|known| known.scope == learned.scope) {
                    Some(known) => *known = learned,
                    None => state.learned.push(learned),
                }
                self.limits_known.store(true, Ordering::Relaxed);
            }
            state.strikes = state.strikes.max(record.strikes);
            state.changed_at =
                state.changed_at.or(record.changed_at.map(|t| ticks_of(self.anchor_utc, t)));
        }
        for record in &snapshot.keys {
            let cell = self.key_cell(&record.provider, &record.key);
            let mut state = cell.state.lock();
            if let Some((kind, hold)) = &record.hold
                && hold.until.is_none_or(|until| until > now_utc)
            {
                state.hold = Some((
                    *kind,
                    Hold {
                        until: hold
                            .until
                            .map(|until| ticks_of(self.anchor_utc, clamp_until(now_utc, until))),
                        reason: hold.reason.clone(),
                        since: ticks_of(self.anchor_utc, hold.since),
                    },
                ));
                cell.blocked.store(true, Ordering::Release);
            }
            state.changed_at = record.changed_at.map(|t| ticks_of(self.anchor_utc, t));
        }
    }
}

#[async_trait]
impl QuotaLedger for MemoryLedger {
    async fn admit(&self, candidate: &Candidate, estimate: Estimate) -> Result<Permit, QuotaError> {
        self.try_admit(candidate, estimate)
    }

    async fn settle(&self, permit: Permit, usage: &Usage) -> Result<(), QuotaError> {
        self.settle_now(permit, usage);
        Ok(())
    }

    async fn release(&self, permit: Permit) -> Result<(), QuotaError> {
        self.release_now(permit);
        Ok(())
    }

    async fn observe(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError> {
        self.observe_now(candidate, snapshot);
        Ok(())
    }

    async fn record_error(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
    ) -> Result<(), QuotaError> {
        self.record_error_now(candidate, error);
        Ok(())
    }

    async fn status(&self, candidate: &Candidate) -> Result<KeyStatus, QuotaError> {
        Ok(self.status_now(candidate))
    }

    async fn fail(&self, permit: Permit, error: &ProviderError) -> Result<(), QuotaError> {
        self.fail_now(permit, error);
        Ok(())
    }

    async fn reenable(&self, provider: &ProviderId, key: &KeyId) -> Result<(), QuotaError> {
        self.reenable_now(provider, key);
        Ok(())
    }

    async fn summary(&self, provider: &ProviderId) -> Result<ProviderSummary, QuotaError> {
        Ok(self.summary_now(provider))
    }

    async fn observe_attempt(
        &self,
        permit: &Permit,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError> {
        self.observe_attempt_now(permit, snapshot);
        Ok(())
    }

    fn headroom(&self, candidate: &Candidate) -> Option<f64> {
        self.headroom_now(candidate)
    }
}

/// Whether a reading's source will describe the key's later calls too (a success's headers
/// come with every answer), or only this one (a 429's body).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Informs {
    Later,
    NotAfter,
}

/// When an attempt whose headers are read was admitted, and whether another attempt of its
/// bucket was in flight then.
#[derive(Clone, Copy)]
struct Admission {
    at: u64,
    overlapped: bool,
}
