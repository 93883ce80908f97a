//! Jittered exponential backoff that honours a provider's stated retry delay and never sleeps
//! past a request's deadline.
//!
//! The random part comes in as a `roll` in `[0, 1)` so the schedule is a pure function: the
//! router draws the roll from its (seedable) RNG, tests pass fixed rolls.

use std::time::{Duration, Instant};

/// A retry schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry, before jitter.
    pub base: Duration,
    /// The largest delay the exponential part reaches.
    pub max: Duration,
    /// How much of a provider's stated delay is added on top as jitter, at most (0.1 = 10%),
    /// so that callers told "retry in 2 s" do not all come back in the same millisecond.
    pub stated_jitter: f64,
}

impl Default for Backoff {
    /// 250 ms doubling to 8 s; up to 10% jitter on a stated delay.
    fn default() -> Self {
        Self { base: Duration::from_millis(250), max: Duration::from_secs(8), stated_jitter: 0.1 }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first), given the provider's stated
    /// delay if any and a random `roll` in `[0, 1)`.
    ///
    /// Without a stated delay this is "equal jitter": half the exponential step plus a random
    /// share of the other half, so delays spread out but never collapse to zero. With one, the
    /// stated delay is a floor: we never come back sooner than the provider asked.
    pub fn delay(&self, retry: u32, stated: Option<Duration>, roll: f64) -> Duration {
        let roll = roll.clamp(0.0, 1.0);
        match stated {
            // The stated delay comes from the upstream: cut to `MAX_HINT` before the
            // multiplication, which would panic on a huge one.
            Some(stated) => {
                let jitter = if self.stated_jitter.is_finite() {
                    self.stated_jitter.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                switchyard_core::clamp_hint(stated).mul_f64(1.0 + jitter * roll)
            }
            None => {
                let step = self
                    .base
                    .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
                    .min(self.max);
                step / 2 + (step / 2).mul_f64(roll)
            }
        }
    }

    /// The delay if sleeping it still ends before `deadline`; `None` when it would not, so
    /// the caller moves on instead of sleeping into a timeout.
    pub fn within_deadline(delay: Duration, now: Instant, deadline: Instant) -> Option<Duration> {
        now.checked_add(delay).is_some_and(|wake| wake < deadline).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_the_base_up_to_the_max() {
        let backoff = Backoff::default();
        let lows: Vec<u64> =
            (0..8).map(|retry| backoff.delay(retry, None, 0.0).as_millis() as u64).collect();
        assert_eq!(lows, [125, 250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(backoff.delay(3, None, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn a_stated_delay_is_a_floor() {
        let backoff = Backoff::default();
        let stated = Some(Duration::from_secs(7));
        assert_eq!(backoff.delay(0, stated, 0.0), Duration::from_secs(7));
        assert_eq!(backoff.delay(0, stated, 1.0), Duration::from_millis(7700));
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let now = switchyard_core::Clock::now(&switchyard_core::ManualClock::default());
        let deadline = now + Duration::from_secs(2);
        assert_eq!(
            Backoff::within_deadline(Duration::from_secs(1), now, deadline),
            Some(Duration::from_secs(1))
        );
        assert_eq!(Backoff::within_deadline(Duration::from_secs(2), now, deadline), None);
    }

    #[test]
    fn a_huge_stated_delay_is_cut_and_never_overflows() {
        let backoff = Backoff { stated_jitter: f64::INFINITY, ..Backoff::default() };
        let huge = Some(Duration::from_secs(u64::MAX));
        assert_eq!(backoff.delay(0, huge, 1.0), switchyard_core::MAX_HINT);
        let now = switchyard_core::Clock::now(&switchyard_core::ManualClock::default());
        assert_eq!(
            Backoff::within_deadline(Duration::MAX, now, now + Duration::from_secs(1)),
            None
        );
    }

    proptest! {
        #[test]
        fn delays_stay_in_their_band(retry in 0u32..64, roll in 0.0f64..1.0, stated_ms in proptest::option::of(0u64..600_000)) {
            let backoff = Backoff::default();
            let delay = backoff.delay(retry, stated_ms.map(Duration::from_millis), roll);
            match stated_ms {
                Some(ms) => {
                    prop_assert!(delay >= Duration::from_millis(ms));
                    prop_assert!(delay <= Duration::from_millis(ms).mul_f64(1.1) + Duration::from_nanos(1));
                }
                None => {
                    prop_assert!(delay >= backoff.base / 2);
                    prop_assert!(delay <= backoff.max);
                }
            }
        }
    }
}
