//! The counters behind each [`Limit`]: a sliding window of sub-slots, a continuously
//! refilling bucket and a calendar day. Each works on "ticks", nanoseconds since the ledger's
//! anchor instant, so a meter is plain arithmetic with no clock, lock or allocation of its
//! own; the bucket that owns it holds the lock.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::limit::{Limit, Unit, Window, day_start, next_midnight};

/// Sub-slots per sliding window. A window keeps one slot more than this, so an admission is
/// counted for at least the full window length (never less) and at most one slot longer.
pub(crate) const SLOTS: u64 = 60;
const RING: usize = SLOTS as usize + 1;

/// Ticks (nanoseconds since the anchor) to a wall-clock time.
pub(crate) fn utc_of(anchor_utc: DateTime<Utc>, ticks: u64) -> DateTime<Utc> {
    anchor_utc
        .checked_add_signed(chrono::Duration::nanoseconds(i64::try_from(ticks).unwrap_or(i64::MAX)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A wall-clock time to ticks; times before the anchor are tick 0.
pub(crate) fn ticks_of(anchor_utc: DateTime<Utc>, utc: DateTime<Utc>) -> u64 {
    (utc - anchor_utc).num_nanoseconds().map_or_else(
        || if utc > anchor_utc { u64::MAX } else { 0 },
        |nanos| u64::try_from(nanos).unwrap_or(0),
    )
}

#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) limit: Limit,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sliding {
        slot_ticks: u64,
        slots: Box<[u64; RING]>,
        /// The newest slot's number, its index in `slots` and the tick it ends: admission
        /// divides only when time has left the newest slot.
        head: u64,
        head_idx: usize,
        head_end: u64,
        total: u64,
        /// Counted in the slot after the newest: admissions this close to the newest slot's
        /// end (`guard` ticks), which the provider may count only in the next.
        ahead: u64,
        guard: u64,
    },
    Refill {
        used: f64,
        as_of: u64,
        per_tick: f64,
    },
    Day {
        tz: Tz,
        used: u64,
        start: u64,
        end: u64,
    },
}

impl Meter {
    #[cfg(test)]
    pub(crate) fn new(limit: Limit) -> Self {
        Self::with_transit(limit, 0)
    }

    /// A meter whose sliding window counts an admission from `transit` ticks after it is
    /// made: the provider counts a call when it receives it, a little after we admit it, and
    /// its capacity must never return here before it returns there.
    pub(crate) fn with_transit(limit: Limit, transit: u64) -> Self {
        let kind = match limit.window {
            Window::Sliding(length) => Kind::Sliding {
                slot_ticks: duration_ticks(length).div_ceil(SLOTS).max(1),
                slots: Box::new([0; RING]),
                head: 0,
                head_idx: 0,
                head_end: 0,
                total: 0,
                ahead: 0,
                guard: transit,
            },
            Window::Refill(length) => Kind::Refill {
                used: 0.0,
                as_of: 0,
                // Guard a zero-length window: it refills at once.
                per_tick: limit.amount as f64 / duration_ticks(length).max(1) as f64,
            },
            Window::Day(tz) => Kind::Day { tz, used: 0, start: 0, end: 0 },
        };
        Self { limit, kind }
    }

    /// What an attempt of `tokens` estimated tokens costs on this meter.
    pub(crate) fn need(&self, tokens: u64) -> u64 {
        match self.limit.unit {
            Unit::Requests => 1,
            Unit::Tokens => tokens,
        }
    }

    /// Brings the meter to `now`: expired slots cleared, the bucket drained, a new day
    /// started.
    pub(crate) fn roll(&mut self, now: u64, anchor_utc: DateTime<Utc>) {
        match &mut self.kind {
            Kind::Sliding { slot_ticks, slots, head, head_idx, head_end, total, ahead, .. } => {
                if now < *head_end {
                    return;
                }
                // At the end of the timeline (`head_end` saturated) the slot may not advance.
                let slot = (now / *slot_ticks).max(*head);
                let n_clear = (slot - *head).min(RING as u64);
                for step in 1..=n_clear {
                    let idx = ((*head).wrapping_add(step) % RING as u64) as usize;
                    *total = total.saturating_sub(slots[idx]);
                    slots[idx] = 0;
                }
                if *ahead > 0 {
                    // The counts made just before the old head's end belong to the slot after it.
                    let next = head.saturating_add(1);
                    if slot.saturating_sub(next) < RING as u64 {
                        let idx = (next % RING as u64) as usize;
                        slots[idx] = slots[idx].saturating_add(*ahead);
                    } else {
                        *total = total.saturating_sub(*ahead);
                    }
                    *ahead = 0;
                }
                *head = slot;
                *head_idx = (slot % RING as u64) as usize;
                *head_end = (slot + 1).saturating_mul(*slot_ticks);
            }
            Kind::Refill { used, as_of, per_tick } => {
                if now > *as_of {
                    *used = (*used - (now - *as_of) as f64 * *per_tick).max(0.0);
                    *as_of = now;
                }
            }
            Kind::Day { tz, used, start, end } => {
                if now >= *end {
                    let utc = utc_of(anchor_utc, now);
                    *used = 0;
                    *start = ticks_of(anchor_utc, day_start(*tz, utc)).min(now);
                    *end = ticks_of(anchor_utc, next_midnight(*tz, utc)).max(now.saturating_add(1));
                }
            }
        }
    }

    /// What is counted now (after [`Meter::roll`]).
    pub(crate) fn used(&self) -> u64 {
        match &self.kind {
            Kind::Sliding { total, .. } => *total,
            Kind::Refill { used, .. } => used.ceil() as u64,
            Kind::Day { used, .. } => *used,
        }
    }

    /// Whether `need` more fits now (after [`Meter::roll`]).
    pub(crate) fn fits(&self, need: u64) -> bool {
        match &self.kind {
            Kind::Refill { used, .. } => *used + need as f64 <= self.limit.amount as f64,
            Kind::Sliding { .. } | Kind::Day { .. } => {
                self.used().saturating_add(need) <= self.limit.amount
            }
        }
    }

    /// Counts `amount` now. NOTE: assumes [`Meter::roll`] ran at the same `now`, so the
    /// newest slot is now's slot.
    pub(crate) fn take(&mut self, now: u64, amount: u64) {
        match &mut self.kind {
            Kind::Sliding { slots, total, head_idx, head_end, ahead, guard, .. } => {
                if now.saturating_add(*guard) >= *head_end {
                    *ahead = ahead.saturating_add(amount);
                } else {
                    slots[*head_idx] = slots[*head_idx].saturating_add(amount);
                }
                *total = total.saturating_add(amount);
            }
            Kind::Refill { used, .. } => *used += amount as f64,
            Kind::Day { used, .. } => *used = used.saturating_add(amount),
        }
    }

    /// Counts `amount` as taken at `at` (no later than the last roll): a settlement's
    /// correction or a restored count. It lands in `at`'s own slot or day while that is still
    /// counted, and is dropped once it has left the window.
    pub(crate) fn take_at(&mut self, at: u64, amount: u64) {
        match &mut self.kind {
            Kind::Sliding { slot_ticks, slots, head, head_idx, head_end, total, ahead, guard } => {
                if at >= head_end.saturating_sub(*slot_ticks) {
                    if at.saturating_add(*guard) >= *head_end {
                        *ahead = ahead.saturating_add(amount);
                    } else {
                        slots[*head_idx] = slots[*head_idx].saturating_add(amount);
                    }
                    *total = total.saturating_add(amount);
                    return;
                }
                let slot = at / *slot_ticks;
                if slot <= *head && *head - slot < RING as u64 {
                    let idx = (slot % RING as u64) as usize;
                    slots[idx] = slots[idx].saturating_add(amount);
                    *total = total.saturating_add(amount);
                }
            }
            Kind::Refill { used, .. } => *used += amount as f64,
            Kind::Day { used, start, .. } => {
                if at >= *start {
                    *used = used.saturating_add(amount);
                }
            }
        }
    }

    /// Takes back `amount` counted at `taken_at`, if that count is still in the window (a
    /// count that has already expired has nothing left to give back).
    pub(crate) fn give_back(&mut self, taken_at: u64, amount: u64) {
        match &mut self.kind {
            Kind::Sliding { slot_ticks, slots, head, head_idx, head_end, total, ahead, guard } => {
                // A count made within `guard` of its slot's end went to the next slot (or to
                // `ahead`, while that slot is not the newest yet).
                let stamped = taken_at.saturating_add(*guard);
                if stamped >= *head_end {
                    let back = amount.min(*ahead);
                    *ahead -= back;
                    *total = total.saturating_sub(back);
                    return;
                }
                // Most settlements come within the slot they were taken in: no division.
                let slot = if stamped >= head_end.saturating_sub(*slot_ticks) {
                    *head
                } else {
                    stamped / *slot_ticks
                };
                if slot <= *head && *head - slot < RING as u64 {
                    let idx = if slot == *head { *head_idx } else { (slot % RING as u64) as usize };
                    let back = amount.min(slots[idx]);
                    slots[idx] -= back;
                    *total = total.saturating_sub(back);
                }
            }
            Kind::Refill { used, .. } => *used = (*used - amount as f64).max(0.0),
            Kind::Day { used, start, .. } => {
                if taken_at >= *start {
                    *used = used.saturating_sub(amount);
                }
            }
        }
    }

    /// Makes the meter say `used`, as the provider reported it: more is added as of now, less
    /// is taken from the oldest counts first (they would have left the window first).
    pub(crate) fn set_used(&mut self, now: u64, used_now: u64) {
        let current = self.used();
        if used_now >= current && !matches!(self.kind, Kind::Refill { .. }) {
            self.take(now, used_now - current);
            return;
        }
        match &mut self.kind {
            Kind::Sliding { slots, head, total, .. } => {
                let mut excess = current - used_now;
                for age in (0..RING as u64).rev() {
                    if excess == 0 || age > *head {
                        continue;
                    }
                    let idx = ((*head - age) % RING as u64) as usize;
                    let back = excess.min(slots[idx]);
                    slots[idx] -= back;
                    *total = total.saturating_sub(back);
                    excess -= back;
                }
            }
            Kind::Day { used, .. } => *used = used_now,
            // A bucket said to hold more than it can is full: it refills from there within
            // its window, not over the ages a reading of `u64::MAX` would take to drain.
            Kind::Refill { used, .. } => *used = used_now.min(self.limit.amount) as f64,
        }
    }

    /// The earliest tick at which `need` fits, or `None` if it never will (more than the
    /// limit).
    pub(crate) fn free_at(&self, now: u64, need: u64) -> Option<u64> {
        if need > self.limit.amount {
            return None;
        }
        if self.fits(need) {
            return Some(now);
        }
        match &self.kind {
            Kind::Sliding { slot_ticks, slots, head, total, .. } => {
                let mut left = *total;
                for age in (0..RING as u64).rev() {
                    if age > *head {
                        continue;
                    }
                    let slot = *head - age;
                    left = left.saturating_sub(slots[(slot % RING as u64) as usize]);
                    if left.saturating_add(need) <= self.limit.amount {
                        return Some(slot.saturating_add(RING as u64).saturating_mul(*slot_ticks));
                    }
                }
                Some(head.saturating_add(1).saturating_mul(*slot_ticks))
            }
            Kind::Refill { used, per_tick, .. } => {
                let excess = *used + need as f64 - self.limit.amount as f64;
                // A float-to-int `as` saturates (and maps NaN to 0).
                Some(now.saturating_add((excess / *per_tick).ceil() as u64))
            }
            Kind::Day { end, .. } => Some(*end),
        }
    }

    /// When the meter is next empty: the end of the day, the full refill, the last count
    /// leaving the sliding window. `None` when nothing is counted.
    pub(crate) fn resets_at(&self, now: u64) -> Option<u64> {
        if self.used() == 0 {
            return None;
        }
        match &self.kind {
            Kind::Sliding { slot_ticks, head, .. } => {
                Some(head.saturating_add(RING as u64).saturating_mul(*slot_ticks))
            }
            Kind::Refill { used, per_tick, .. } => {
                Some(now.saturating_add((*used / *per_tick).ceil() as u64))
            }
            Kind::Day { end, .. } => Some(*end),
        }
    }

    /// The sliding window's non-empty slots as (start tick, count), oldest first; empty for
    /// other meters. What is persisted for a sliding window.
    pub(crate) fn slots(&self) -> Vec<(u64, u64)> {
        match &self.kind {
            Kind::Sliding { slot_ticks, slots, head, .. } => (0..RING as u64)
                .rev()
                .filter(|&age| age <= *head)
                .map(|age| *head - age)
                .map(|slot| {
                    (slot.saturating_mul(*slot_ticks), slots[(slot % RING as u64) as usize])
                })
                .filter(|&(_, count)| count > 0)
                .collect(),
            Kind::Refill { .. } | Kind::Day { .. } => Vec::new(),
        }
    }

    /// The start of the current calendar day, for a day meter.
    pub(crate) fn day_started(&self) -> Option<u64> {
        match &self.kind {
            Kind::Day { start, end, .. } if *end > 0 => Some(*start),
            Kind::Day { .. } | Kind::Sliding { .. } | Kind::Refill { .. } => None,
        }
    }
}

pub(crate) fn duration_ticks(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn anchor() -> DateTime<Utc> {
        DateTime::from_timestamp(1_768_478_400, 0).expect("date")
    }

    fn try_take(meter: &mut Meter, now: u64, amount: u64) -> bool {
        meter.roll(now, anchor());
        let fits = meter.fits(amount);
        if fits {
            meter.take(now, amount);
        }
        fits
    }

    #[test]
    fn an_admission_near_a_slots_end_is_counted_from_the_next_slot() {
        // 60 s window, 1 s slots, a 20 ms transit.
        let mut meter = Meter::with_transit(Limit::per_minute(1), 20_000_000);
        assert!(try_take(&mut meter, 10 * SEC - 10_000_000, 1), "10 ms before slot 10 ends");
        // Without the transit it would leave when slot 70 begins; the provider, receiving it
        // up to 20 ms later, frees it only at 70.01 s or so: here it leaves with slot 71.
        assert!(!try_take(&mut meter, 70 * SEC, 1));
        assert!(try_take(&mut meter, 71 * SEC, 1));
        // Far from a slot's end nothing changes.
        let mut meter = Meter::with_transit(Limit::per_minute(1), 20_000_000);
        assert!(try_take(&mut meter, 10 * SEC + 500_000_000, 1));
        assert!(try_take(&mut meter, 71 * SEC, 1));
    }

    #[test]
    fn a_count_moved_to_the_next_slot_is_given_back_from_there() {
        let mut meter = Meter::with_transit(Limit::per_minute(2), 20_000_000);
        let taken_at = 10 * SEC - 10_000_000;
        assert!(try_take(&mut meter, taken_at, 1));
        assert!(try_take(&mut meter, 10 * SEC - 500_000_000, 1));
        meter.give_back(taken_at, 1);
        assert_eq!(meter.used(), 1);
        // And after the slot it went to has become the newest.
        assert!(try_take(&mut meter, taken_at, 1));
        meter.roll(10 * SEC + 100, anchor());
        meter.give_back(taken_at, 1);
        assert_eq!(meter.used(), 1);
        assert!(try_take(&mut meter, 70 * SEC, 1), "the other count left at 70 s");
    }

    #[test]
    fn sliding_window_forgets_each_count_one_window_later() {
        let mut meter = Meter::new(Limit::per_minute(2));
        assert!(try_take(&mut meter, 0, 1));
        assert!(try_take(&mut meter, 30 * SEC, 1));
        assert!(!try_take(&mut meter, 45 * SEC, 1));
        assert_eq!(meter.free_at(45 * SEC, 1), Some(61 * SEC), "the t=0 count leaves at 61s");
        assert!(!try_take(&mut meter, 60 * SEC, 1), "counted at least a full minute");
        assert!(try_take(&mut meter, 61 * SEC, 1));
        assert!(!try_take(&mut meter, 62 * SEC, 1), "the t=30 count is still in the window");
        assert!(try_take(&mut meter, 91 * SEC, 1));
    }

    #[test]
    fn refill_bucket_drains_continuously() {
        let mut meter = Meter::new(Limit::tokens_refill(600, Duration::from_secs(60)));
        assert!(try_take(&mut meter, 0, 600));
        assert!(!try_take(&mut meter, SEC, 20), "10 tokens a second refill");
        assert!(try_take(&mut meter, 2 * SEC, 20));
        assert_eq!(meter.resets_at(2 * SEC), Some(62 * SEC));
    }

    #[test]
    fn set_used_takes_from_the_oldest_counts() {
        let mut meter = Meter::new(Limit::per_minute(10));
        assert!(try_take(&mut meter, 0, 3));
        assert!(try_take(&mut meter, 30 * SEC, 3));
        meter.set_used(30 * SEC, 4);
        assert_eq!(meter.used(), 4);
        meter.roll(61 * SEC, anchor());
        assert_eq!(meter.used(), 3, "the t=0 count had been reduced to 1");
    }

    proptest! {
        #[test]
        fn sliding_never_admits_past_the_limit_in_any_window(
            limit in 1u64..50,
            steps in vec((0u64..5_000, 1u64..5), 1..300),
        ) {
            let mut meter = Meter::new(Limit::requests_per(limit, Duration::from_secs(10)));
            let mut now = 0;
            let mut admitted = Vec::new();
            for (gap_ms, amount) in steps {
                now += gap_ms * 1_000_000;
                if try_take(&mut meter, now, amount) {
                    admitted.push((now, amount));
                }
            }
            // Every real 10 s window holds at most `limit`.
            for &(start, _) in &admitted {
                let in_window: u64 = admitted.iter()
                    .filter(|&&(at, _)| at >= start && at < start + 10 * SEC)
                    .map(|&(_, amount)| amount).sum();
                prop_assert!(in_window <= limit, "{in_window} > {limit} from {start}");
            }
        }

        #[test]
        fn with_a_transit_no_provider_window_overflows_whenever_it_receives(
            limit in 1u64..20,
            steps in vec((0u64..2_000, 1u64..3), 1..300),
        ) {
            // The provider receives each admission up to 20 ms after it is made: whatever it
            // sees within any window started by a reception lies within the window plus
            // the transit of our admissions.
            let transit = 20_000_000;
            let mut meter =
                Meter::with_transit(Limit::requests_per(limit, Duration::from_secs(10)), transit);
            let mut now = 0;
            let mut admitted = Vec::new();
            for (gap_ms, amount) in steps {
                now += gap_ms * 1_000_000;
                if try_take(&mut meter, now, amount) {
                    admitted.push((now, amount));
                }
            }
            for &(start, _) in &admitted {
                let in_window: u64 = admitted.iter()
                    .filter(|&&(at, _)| at >= start && at < start + 10 * SEC + transit)
                    .map(|&(_, amount)| amount).sum();
                prop_assert!(in_window <= limit, "{in_window} > {limit} from {start}");
            }
        }

        #[test]
        fn give_back_restores_exactly_what_was_taken(
            limit in 1u64..1_000,
            takes in vec(1u64..50, 1..40),
            window in 0usize..3,
        ) {
            let window = [
                Window::Sliding(Duration::from_secs(60)),
                Window::Refill(Duration::from_secs(60)),
                Window::Day(chrono_tz::UTC),
            ][window];
            let mut meter = Meter::new(Limit { unit: Unit::Tokens, amount: limit, window });
            meter.roll(0, anchor());
            let before = meter.used();
            let taken: Vec<u64> = takes.into_iter().filter(|&amount| try_take(&mut meter, 0, amount)).collect();
            prop_assert!(meter.used() <= limit);
            for amount in taken {
                meter.give_back(0, amount);
            }
            prop_assert_eq!(meter.used(), before);
        }
    }
}
