//! Limits nobody declared, learned from the provider's 429s.
//!
//! Every bucket keeps a short log of the attempts it admitted (bounded: [`LOG_CAP`] entries,
//! two days). When a key of the bucket answers 429 for a window the configuration does not
//! declare, the number of attempts that succeeded in that window is, to a very good first
//! guess, the key's limit: the bucket keeps it as a learned limit and admits against it. The
//! window's length comes from the provider's hint (the reset is when the oldest counted
//! attempt leaves a sliding window), or is the nominal minute or day when there is none.
//! A fixed window (counted per calendar minute, or from boundaries of the provider's own)
//! shows itself by resets that fall on one grid: a reset on a calendar boundary, or two
//! resets a whole number of windows apart.
//!
//! A learned limit is corrected both ways: raised when more attempts succeed within one
//! window than it allows or a header says more remains, lowered on a further 429. Declared
//! limits always win: no limit is learned for a window a declared limit or a header's
//! stated limit already covers.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_core::LimitScope;

use switchyard_core::{Classify, ErrorKind, LimitUnit, ProviderError, Reset};

use crate::config::DayBoundary;
use crate::limit::next_midnight;
use crate::meter::{ticks_of, utc_of};
use crate::policy::{after_now, clamp_until};

/// The most admissions a bucket remembers. A learned limit above it is learned as this much
/// (a lower bound that a header or more successes raise).
pub(crate) const LOG_CAP: usize = 2048;
const SEC: u64 = 1_000_000_000;
/// The nominal windows: what a scope means when no hint says how long its window is.
const MINUTE: u64 = 60 * SEC;
const DAY: u64 = 86_400 * SEC;
/// How far back the log reaches.
const RETENTION: u64 = 2 * DAY;
/// The most a learned limit allows per window, whatever a header claims.
pub const MAX_LEARNED: u64 = 1_000_000;

/// How a learned window counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnedKind {
    /// What happened in the last window's length.
    Sliding,
    /// Counts start again at fixed boundaries (a calendar minute or day, or the provider's
    /// own grid).
    Fixed,
}

impl LearnedKind {
    /// The kind as text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sliding => "sliding",
            Self::Fixed => "fixed",
        }
    }
}

/// A limit the ledger learned rather than was told, with its evidence: the durable record
/// and what status pages show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRecord {
    /// The window's scope: a minute limit or a daily one.
    pub scope: LimitScope,
    /// Requests allowed per window.
    pub limit: u64,
    /// Sliding or fixed.
    pub kind: LearnedKind,
    /// The window's length in milliseconds.
    pub window_ms: u64,
    /// For a fixed window: one of its boundaries.
    pub boundary: Option<DateTime<Utc>>,
    /// The reset the last 429 reported, if it reported one.
    pub last_reset: Option<DateTime<Utc>>,
    /// When the limit was last set.
    pub learned_at: DateTime<Utc>,
    /// How many accepted requests it was set from.
    pub from_accepted: u64,
    /// The hint that set its window, as text (`retry after 2.5s`), if there was one.
    pub hint: Option<String>,
    /// What set it last: `429`, `lowered on a further 429`, `raised: ...`.
    pub source: String,
    /// How many times it was corrected since first learned.
    pub corrections: u32,
}

/// One admission remembered: when, and whether the provider has served it yet.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: u64,
    served: bool,
}

/// The bucket's recent admissions, oldest first.
#[derive(Debug, Default)]
pub(crate) struct AcceptLog {
    entries: VecDeque<Entry>,
}

impl AcceptLog {
    /// Remembers an admission at `now`.
    pub(crate) fn push(&mut self, now: u64) {
        while self.entries.len() >= LOG_CAP
            || self.entries.front().is_some_and(|e| e.at.saturating_add(RETENTION) < now)
        {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { at: now, served: false });
    }

    /// Ends the admission made at `taken_at`: served, or forgotten when it did not count.
    pub(crate) fn finish(&mut self, taken_at: u64, served: bool) {
        let found = self.entries.iter().rposition(|e| e.at == taken_at && !e.served);
        if let Some(idx) = found {
            if served {
                self.entries[idx].served = true;
            } else {
                self.entries.remove(idx);
            }
        }
    }

    /// Admissions at or after `start` (`served` only: those the provider answered).
    fn count_since(&self, start: u64, served_only: bool) -> u64 {
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.at >= start)
            .filter(|e| e.served || !served_only)
            .count() as u64
    }

    /// The oldest served admission at or after `start`.
    fn oldest_served_since(&self, start: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.at >= start && e.served).map(|e| e.at)
    }

    /// The admission times at or after `start`, oldest first.
    fn since(&self, start: u64) -> impl Iterator<Item = u64> + '_ {
        let skip = self.entries.partition_point(|e| e.at < start);
        self.entries.iter().skip(skip).map(|e| e.at)
    }
}

/// One learned limit inside a bucket (at most one per scope: minute and day).
#[derive(Clone, Debug)]
pub(crate) struct Learned {
    pub(crate) scope: LimitScope,
    pub(crate) limit: u64,
    pub(crate) length: u64,
    /// `Some`: a fixed window with a boundary at this tick.
    pub(crate) boundary: Option<u64>,
    pub(crate) last_reset: Option<u64>,
    pub(crate) learned_at: u64,
    pub(crate) from_accepted: u64,
    pub(crate) hint: Option<String>,
    pub(crate) source: String,
    pub(crate) corrections: u32,
}

/// What a 429 told: its scope, when its window frees (if it said) and the hint as text.
#[derive(Clone, Debug)]
pub(crate) struct Evidence {
    pub(crate) scope: LimitScope,
    pub(crate) reset: Option<u64>,
    pub(crate) hint: Option<String>,
    /// Whether the reset is a calendar boundary the provider named (a date, not a delay).
    pub(crate) aligned: bool,
    /// When the refused attempt was admitted, when the ledger knows.
    pub(crate) admitted: Option<u64>,
}

/// The nominal length of a scope's window, or `None` for scopes nothing is learned for.
pub(crate) fn nominal(scope: LimitScope) -> Option<u64> {
    match scope {
        LimitScope::Minute | LimitScope::Unknown => Some(MINUTE),
        LimitScope::Day => Some(DAY),
        LimitScope::Month => None,
    }
}

/// The scope a 429's scope is learned under: an unknown window is a minute one.
pub(crate) fn learned_scope(scope: LimitScope) -> LimitScope {
    match scope {
        LimitScope::Unknown => LimitScope::Minute,
        other => other,
    }
}

impl Learned {
    /// Where the window that counts at `now` starts (inclusive).
    fn window_start(&self, now: u64) -> u64 {
        let length = self.length.max(1);
        match self.boundary {
            None => now.saturating_sub(length).saturating_add(1),
            Some(boundary) if now >= boundary => now - (now - boundary) % length,
            Some(boundary) => {
                let back = (boundary - now).div_ceil(length).saturating_mul(length);
                boundary.saturating_sub(back)
            }
        }
    }

    /// Admissions counted now (served or in flight).
    pub(crate) fn used(&self, log: &AcceptLog, now: u64) -> u64 {
        log.count_since(self.window_start(now), false)
    }

    /// Whether one more request fits now.
    pub(crate) fn fits(&self, log: &AcceptLog, now: u64) -> bool {
        self.used(log, now) < self.limit
    }

    /// When one more request fits.
    pub(crate) fn free_at(&self, log: &AcceptLog, now: u64) -> u64 {
        let start = self.window_start(now);
        match self.boundary {
            Some(_) => start.saturating_add(self.length),
            None => {
                let used = log.count_since(start, false);
                if used < self.limit {
                    return now;
                }
                // The oldest `used - limit + 1` must leave the window.
                let idx = usize::try_from(used - self.limit).unwrap_or(usize::MAX);
                log.since(start).nth(idx).map_or(now, |at| at.saturating_add(self.length)).max(now)
            }
        }
    }

    /// When the count is next zero, if anything is counted.
    pub(crate) fn resets_at(&self, log: &AcceptLog, now: u64) -> Option<u64> {
        let start = self.window_start(now);
        let newest = log.since(start).last()?;
        Some(match self.boundary {
            Some(_) => start.saturating_add(self.length),
            None => newest.saturating_add(self.length),
        })
    }

    /// The limit's name in summaries and refusals (`requests/learned-sliding-5000ms`).
    pub(crate) fn name(&self) -> String {
        let kind = if self.boundary.is_some() { "fixed" } else { "sliding" };
        format!("requests/learned-{kind}-{}ms", self.length / 1_000_000)
    }

    /// A further 429 of this scope: lowers the limit to what the window held, and learns the
    /// window's kind from where the resets fall. Resets of a fixed window lie a whole number
    /// of windows apart; a sliding window's follow its traffic. Two resets between half and
    /// twice the learned length apart are read as a fixed window of that spacing (a first
    /// guess from one reset and the oldest served request overestimates a fixed window that
    /// began between them); a fixed window whose next reset is off its grid was sliding after
    /// all.
    fn correct(&mut self, log: &AcceptLog, now: u64, evidence: &Evidence) {
        let mut remodelled = false;
        if let Some(reset) = evidence.reset {
            match (self.boundary, self.last_reset) {
                (Some(boundary), _) if !on_grid(reset, boundary, self.length, true) => {
                    self.boundary = None;
                    self.source = "sliding: a reset off the fixed grid".to_owned();
                    remodelled = true;
                }
                (None, Some(previous)) => {
                    let apart = reset.abs_diff(previous);
                    if on_grid(reset, previous, self.length, false) {
                        self.boundary = Some(reset);
                        remodelled = true;
                    } else if apart >= self.length / 2 && apart <= self.length.saturating_mul(2) {
                        self.boundary = Some(reset);
                        self.length = apart;
                        remodelled = true;
                    }
                    if remodelled {
                        self.source = "fixed: resets a whole number of windows apart".to_owned();
                    }
                }
                _ => {}
            }
            self.last_reset = Some(reset);
        }
        let served = log.count_since(self.window_start(now), true);
        if remodelled {
            // The new model explains the 429: the limit is what its window served.
            self.limit = served.max(1);
        } else {
            let lowered = served.min(self.limit.saturating_sub(1)).max(1);
            if lowered < self.limit {
                self.limit = lowered;
                self.source = "lowered on a further 429".to_owned();
            }
        }
        self.from_accepted = served;
        self.learned_at = now;
        self.hint.clone_from(&evidence.hint);
        self.corrections = self.corrections.saturating_add(1);
    }

    /// More room shown: `served` requests succeeded within one window.
    pub(crate) fn raise_to(&mut self, limit: u64, now: u64, source: String) {
        let limit = limit.min(MAX_LEARNED);
        if limit > self.limit {
            self.limit = limit;
            self.learned_at = now;
            self.from_accepted = limit;
            self.source = source;
            self.corrections = self.corrections.saturating_add(1);
        }
    }

    /// Served requests in the window that counts at `now`.
    pub(crate) fn served(&self, log: &AcceptLog, now: u64) -> u64 {
        log.count_since(self.window_start(now), true)
    }

    pub(crate) fn record(&self, anchor_utc: DateTime<Utc>) -> LearnedRecord {
        LearnedRecord {
            scope: self.scope,
            limit: self.limit,
            kind: if self.boundary.is_some() { LearnedKind::Fixed } else { LearnedKind::Sliding },
            window_ms: self.length / 1_000_000,
            boundary: self.boundary.map(|t| utc_of(anchor_utc, t)),
            last_reset: self.last_reset.map(|t| utc_of(anchor_utc, t)),
            learned_at: utc_of(anchor_utc, self.learned_at),
            from_accepted: self.from_accepted,
            hint: self.hint.clone(),
            source: self.source.clone(),
            corrections: self.corrections,
        }
    }

    /// A saved record back on this ledger's timeline; `None` for a record that makes no
    /// sense (no requests, no window, a window longer than two days, a month scope).
    pub(crate) fn from_record(record: &LearnedRecord, anchor_utc: DateTime<Utc>) -> Option<Self> {
        let scope = learned_scope(record.scope);
        nominal(scope)?;
        let length = record.window_ms.saturating_mul(1_000_000);
        if record.limit == 0 || length == 0 || length > RETENTION {
            return None;
        }
        Some(Self {
            scope,
            limit: record.limit.min(MAX_LEARNED),
            length,
            boundary: match record.kind {
                LearnedKind::Fixed => record.boundary.map(|at| ticks_of(anchor_utc, at)),
                LearnedKind::Sliding => None,
            },
            last_reset: record.last_reset.map(|at| ticks_of(anchor_utc, at)),
            learned_at: ticks_of(anchor_utc, record.learned_at),
            from_accepted: record.from_accepted,
            hint: record.hint.as_ref().map(|hint| hint.chars().take(120).collect()),
            source: record.source.chars().take(120).collect(),
            corrections: record.corrections,
        })
    }
}

/// Whether two resets lie a whole number of `length`s apart (at least one unless `same_ok`),
/// give or take a fiftieth of the window (hints come rounded).
fn on_grid(reset: u64, previous: u64, length: u64, same_ok: bool) -> bool {
    let tolerance = (length / 50).max(50_000_000);
    let apart = reset.abs_diff(previous);
    if !same_ok && apart + tolerance < length {
        return false;
    }
    let off = apart % length.max(1);
    off <= tolerance || length - off <= tolerance
}

/// Learns from a 429 at `now`: corrects the scope's learned limit, or learns a new one from
/// the served admissions of its window. Returns whether anything was learned.
pub(crate) fn learn(
    learned: &mut Vec<Learned>,
    log: &AcceptLog,
    now: u64,
    evidence: &Evidence,
) -> bool {
    let scope = learned_scope(evidence.scope);
    let Some(nominal_length) = nominal(scope) else { return false };
    if let Some(existing) = learned.iter_mut().find(|l| l.scope == scope) {
        if evidence.admitted.is_some_and(|at| at <= existing.learned_at) {
            // Admitted before the limit was last set (a herd already in flight when the first
            // 429 taught it): its 429 says nothing against the limit.
            return false;
        }
        existing.correct(log, now, evidence);
        return true;
    }
    let lookback = now.saturating_sub(nominal_length);
    let Some(oldest) = log.oldest_served_since(lookback) else { return false };
    // A sliding window frees when its oldest counted request leaves: the reset is that
    // request's time plus the window. With no reset, the nominal window.
    let (length, boundary) = match evidence.reset {
        Some(reset) if evidence.aligned => (nominal_length, Some(reset)),
        Some(reset) => {
            let length = reset.saturating_sub(oldest).clamp(SEC / 10, nominal_length);
            // A reset further off than the nominal window says no more about its length.
            (length.max(reset.saturating_sub(now)).min(nominal_length), None)
        }
        None => (nominal_length, None),
    };
    let mut fresh = Learned {
        scope,
        limit: 1,
        length,
        boundary,
        last_reset: evidence.reset,
        learned_at: now,
        from_accepted: 0,
        hint: evidence.hint.clone(),
        source: if boundary.is_some() {
            "429 at a calendar boundary".to_owned()
        } else {
            "429".to_owned()
        },
        corrections: 0,
    };
    let served = fresh.served(log, now);
    if served == 0 {
        return false;
    }
    fresh.limit = served;
    fresh.from_accepted = served;
    learned.push(fresh);
    true
}

/// What a 429 teaches, on the wall clock: for ledgers that keep no [`AcceptLog`] of their
/// own (the Redis ledger keeps the served times in Redis) and learn through
/// [`learn_shared`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lesson {
    /// The window's scope (minute or day).
    pub scope: LimitScope,
    /// When the provider said the window frees, if it said.
    pub reset: Option<DateTime<Utc>>,
    /// The hint as text, for the evidence.
    pub hint: Option<String>,
    /// Whether the reset is a calendar boundary (a fixed window at once).
    pub aligned: bool,
    /// When the refused attempt was admitted, when the ledger knows: a 429 of an attempt
    /// admitted no later than the limit was last set (a herd in flight when the first 429
    /// taught it) does not lower it. [`lesson`] leaves it `None`; a ledger that ends the
    /// attempt with its permit fills it in.
    pub admitted: Option<DateTime<Utc>>,
}

/// The lesson of `error` at `now` for a provider whose day ends at `day`, or `None` when it
/// is no 429 a limit can be learned from (another error, a monthly allowance).
pub fn lesson(error: &ProviderError, day: DayBoundary, now: DateTime<Utc>) -> Option<Lesson> {
    let scope = match error.kind {
        ErrorKind::RateLimited { scope } | ErrorKind::QuotaExhausted { scope } => {
            learned_scope(scope)
        }
        _ => return None,
    };
    nominal(scope)?;
    let retry_after = Classify::retry_after(error);
    let mut resets_at = error.resets_at.map(|at| clamp_until(now, at));
    let mut aligned = resets_at.is_some_and(|at| calendar_aligned(scope, at));
    if retry_after.is_none()
        && resets_at.is_none()
        && scope == LimitScope::Day
        && let DayBoundary::Midnight(tz) = day
    {
        // A daily quota without a stated reset ends at the provider's midnight.
        resets_at = Some(next_midnight(tz, now));
        aligned = true;
    }
    let header_reset = error
        .rate_limits
        .readings
        .iter()
        .filter(|r| r.unit == LimitUnit::Requests && learned_scope(r.scope) == scope)
        .find_map(|r| r.reset);
    let reset = match (retry_after, resets_at, header_reset) {
        (Some(after), _, _) => Some(after_now(now, after)),
        (None, Some(at), _) => Some(at),
        (None, None, Some(Reset::After(after))) => Some(after_now(now, after)),
        (None, None, Some(Reset::At(at))) => Some(clamp_until(now, at)),
        (None, None, None) => None,
    };
    Some(Lesson {
        scope,
        reset,
        hint: hint_text(retry_after, resets_at),
        aligned: aligned && retry_after.is_none(),
        admitted: None,
    })
}

impl Lesson {
    /// The lesson on a ledger's tick timeline.
    pub(crate) fn evidence(&self, anchor_utc: DateTime<Utc>) -> Evidence {
        Evidence {
            scope: self.scope,
            reset: self.reset.map(|at| ticks_of(anchor_utc, at)),
            hint: self.hint.clone(),
            aligned: self.aligned,
            admitted: self.admitted.map(|at| ticks_of(anchor_utc, at)),
        }
    }
}

/// Learns from `lesson` at `now` given the times of the requests the bucket saw served
/// (oldest first) and the limit it learned before for that scope: the corrected or new
/// learned limit, or `None` when nothing can be inferred (nothing served).
pub fn learn_shared(
    existing: Option<&LearnedRecord>,
    served: &[DateTime<Utc>],
    now: DateTime<Utc>,
    lesson: &Lesson,
) -> Option<LearnedRecord> {
    // A timeline that starts well before anything counted.
    let anchor =
        now.checked_sub_signed(chrono::Duration::days(3)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut log = AcceptLog::default();
    for &at in served {
        let tick = ticks_of(anchor, at);
        log.push(tick);
        log.finish(tick, true);
    }
    let mut learned: Vec<Learned> =
        existing.and_then(|record| Learned::from_record(record, anchor)).into_iter().collect();
    let now_tick = ticks_of(anchor, now);
    if !learn(&mut learned, &log, now_tick, &lesson.evidence(anchor)) {
        return None;
    }
    learned.iter().find(|l| l.scope == lesson.scope).map(|l| l.record(anchor))
}

/// How long until `record`'s window has room for one more request, given the times of the
/// requests the bucket saw served (oldest first); `None` when it has room now. What a
/// shared ledger cools a key down for when a 429 names no delay.
pub fn learned_wait(
    record: &LearnedRecord,
    served: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    let anchor =
        now.checked_sub_signed(chrono::Duration::days(3)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let learned = Learned::from_record(record, anchor)?;
    let mut log = AcceptLog::default();
    for &at in served {
        let tick = ticks_of(anchor, at);
        log.push(tick);
        log.finish(tick, true);
    }
    let now_tick = ticks_of(anchor, now);
    let wait = learned.free_at(&log, now_tick).saturating_sub(now_tick);
    (wait > 0).then(|| std::time::Duration::from_nanos(wait))
}

/// Where the fixed window of `record` that counts at `now` starts and ends; `None` for a
/// sliding window.
pub fn fixed_window(
    record: &LearnedRecord,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let anchor =
        now.checked_sub_signed(chrono::Duration::days(3)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let learned = Learned::from_record(record, anchor)?;
    learned.boundary?;
    let start = learned.window_start(ticks_of(anchor, now));
    Some((utc_of(anchor, start), utc_of(anchor, start.saturating_add(learned.length))))
}

/// A hint as text for the evidence: the delay or the date.
pub(crate) fn hint_text(
    after: Option<std::time::Duration>,
    at: Option<DateTime<Utc>>,
) -> Option<String> {
    match (after, at) {
        (Some(after), _) => Some(format!("retry after {:.1}s", after.as_secs_f64())),
        (None, Some(at)) => Some(format!("resets at {}", at.to_rfc3339())),
        (None, None) => None,
    }
}

/// Whether `at` is on a calendar boundary of `scope` in UTC: a whole minute, or midnight.
pub(crate) fn calendar_aligned(scope: LimitScope, at: DateTime<Utc>) -> bool {
    use chrono::Timelike;
    let whole_minute = at.second() == 0 && at.nanosecond() < 1_000_000;
    match learned_scope(scope) {
        LimitScope::Minute => whole_minute,
        LimitScope::Day => whole_minute && at.hour() == 0 && at.minute() == 0,
        LimitScope::Month | LimitScope::Unknown => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(times: &[u64]) -> AcceptLog {
        let mut log = AcceptLog::default();
        for &at in times {
            log.push(at * SEC);
            log.finish(at * SEC, true);
        }
        log
    }

    fn evidence(reset_secs: Option<u64>) -> Evidence {
        Evidence {
            scope: LimitScope::Minute,
            reset: reset_secs.map(|s| s * SEC),
            hint: None,
            aligned: false,
            admitted: None,
        }
    }

    #[test]
    fn a_429_after_four_teaches_four_over_the_window_the_reset_implies() {
        let log = log_of(&[100, 101, 102, 103]);
        let mut learned = Vec::new();
        assert!(learn(&mut learned, &log, 104 * SEC, &evidence(Some(105))));
        assert_eq!(learned[0].limit, 4);
        assert_eq!(learned[0].length, 5 * SEC);
        assert!(!learned[0].fits(&log, 104 * SEC));
        assert_eq!(learned[0].free_at(&log, 104 * SEC), 105 * SEC);
    }

    #[test]
    fn a_429_of_an_attempt_admitted_before_the_limit_was_set_does_not_lower_it() {
        let log = log_of(&[100, 101, 102, 103]);
        let mut learned = Vec::new();
        assert!(learn(&mut learned, &log, 104 * SEC, &evidence(Some(105))));
        let stale = Evidence { admitted: Some(103 * SEC), ..evidence(Some(105)) };
        assert!(!learn(&mut learned, &log, 104 * SEC + 1, &stale));
        assert_eq!(learned[0].limit, 4);
        let fresh = Evidence { admitted: Some(104 * SEC + 2), ..evidence(Some(105)) };
        assert!(learn(&mut learned, &log, 104 * SEC + 3, &fresh));
        assert_eq!(learned[0].limit, 3, "a 429 admitted under the limit lowers it");
    }

    #[test]
    fn resets_a_window_apart_make_the_window_fixed() {
        assert!(on_grid(20 * SEC, 10 * SEC, 10 * SEC, false));
        assert!(on_grid(40 * SEC, 10 * SEC, 10 * SEC, false));
        assert!(!on_grid(17 * SEC, 10 * SEC, 10 * SEC, false));
        assert!(!on_grid(12 * SEC, 10 * SEC, 10 * SEC, false));
        assert!(on_grid(10 * SEC, 10 * SEC, 10 * SEC, true));
    }

    #[test]
    fn a_fixed_window_counts_from_its_boundary() {
        let log = log_of(&[8, 9, 11, 12]);
        let fixed = Learned {
            scope: LimitScope::Minute,
            limit: 2,
            length: 10 * SEC,
            boundary: Some(10 * SEC),
            last_reset: None,
            learned_at: 0,
            from_accepted: 2,
            hint: None,
            source: String::new(),
            corrections: 0,
        };
        assert_eq!(fixed.used(&log, 12 * SEC), 2);
        assert_eq!(fixed.free_at(&log, 12 * SEC), 20 * SEC);
    }
}
