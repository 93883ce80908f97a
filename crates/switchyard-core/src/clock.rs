//! All time goes through [`Clock`], so windows, resets, cooldowns, backoffs and bounded waits
//! are tested end to end on a [`ManualClock`] instead of with real sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A source of time that can also sleep.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for latencies, windows and cooldowns.
    fn now(&self) -> Instant;
    /// Wall-clock time, for provider resets such as "midnight Pacific".
    fn utc(&self) -> DateTime<Utc>;
    /// Sleeps until `deadline`; a [`ManualClock`] wakes sleepers when it is advanced.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Sleeps for `duration`; one past the end of time sleeps [`crate::MAX_HINT`] instead of
    /// panicking, so a delay read from outside can never take a task down here.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let now = self.now();
        let deadline = now.checked_add(duration).unwrap_or_else(|| now + crate::MAX_HINT);
        self.sleep_until(deadline)
    }
}

fn _object_safe(_: &dyn Clock) {} // the facade stores `Arc<dyn Clock>`; keep that possible

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the one place that reads real time")]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[expect(clippy::disallowed_methods, reason = "the one place that reads real time")]
    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// A clock that moves only when told. Clones share one time, so a test, a mock upstream and
/// the code under test all see the same instant; advancing it wakes every sleeper whose
/// deadline has passed.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    origin: Instant,
    utc_origin: DateTime<Utc>,
    elapsed: watch::Sender<Duration>,
}

impl Default for ManualClock {
    /// Starts at 2026-01-15 12:00:00 UTC, a date far from any daylight-saving change.
    fn default() -> Self {
        let start = DateTime::from_timestamp(1_768_478_400, 0).expect("invariant: a valid date");
        Self::starting_at(start)
    }
}

impl ManualClock {
    /// A clock whose wall-clock time starts at `utc`.
    pub fn starting_at(utc: DateTime<Utc>) -> Self {
        #[expect(
            clippy::disallowed_methods,
            reason = "an Instant can only be made from now(); only differences from it are read"
        )]
        let origin = Instant::now();
        let (elapsed, _) = watch::channel(Duration::ZERO);
        Self { inner: Arc::new(ManualInner { origin, utc_origin: utc, elapsed }) }
    }

    /// Time passed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        *self.inner.elapsed.borrow()
    }

    /// Moves time forward by `by` and wakes the sleepers now due.
    pub fn advance(&self, by: Duration) {
        self.inner.elapsed.send_modify(|elapsed| *elapsed += by);
    }

    /// Sets the time passed since the clock was made. Time never goes back: an earlier
    /// value is ignored.
    pub fn set_elapsed(&self, elapsed: Duration) {
        self.inner.elapsed.send_if_modified(|current| {
            if elapsed > *current {
                *current = elapsed;
                true
            } else {
                false
            }
        });
    }

    /// Moves wall-clock (and monotonic) time forward to `utc`; an earlier time is ignored.
    pub fn set_utc(&self, utc: DateTime<Utc>) {
        if let Ok(elapsed) = (utc - self.inner.utc_origin).to_std() {
            self.set_elapsed(elapsed);
        }
    }

    /// How many tasks are sleeping on this clock now; lets a test wait until the code under
    /// test has gone to sleep before it advances time.
    pub fn sleepers(&self) -> usize {
        self.inner.elapsed.receiver_count()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }

    fn utc(&self) -> DateTime<Utc> {
        self.inner.utc_origin
            + chrono::Duration::from_std(self.elapsed()).expect("invariant: test time fits")
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let target = deadline.saturating_duration_since(self.inner.origin);
        let mut elapsed = self.inner.elapsed.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which this future borrows, so `changed`
            // cannot fail while we wait.
            while *elapsed.borrow_and_update() < target {
                if elapsed.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::default();
        let start = clock.now();
        let start_utc = clock.utc();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - start, Duration::from_secs(90));
        assert_eq!((clock.utc() - start_utc).num_seconds(), 90);
        clock.set_elapsed(Duration::from_secs(10));
        assert_eq!(clock.elapsed(), Duration::from_secs(90), "time never goes back");
    }

    #[tokio::test]
    async fn sleepers_wake_when_the_clock_passes_their_deadline() {
        let clock = ManualClock::default();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep(Duration::from_secs(30)).await;
                clock.elapsed()
            })
        };
        // Bounded in real time, so a sleeper that never registers fails instead of hanging.
        let registered = tokio::time::timeout(Duration::from_secs(20), async {
            while clock.sleepers() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(registered.is_ok(), "the sleeper never went to sleep");
        clock.advance(Duration::from_secs(29));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_secs(1));
        let woke_at = sleeper.await.expect("sleeper task");
        assert_eq!(woke_at, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once() {
        let clock = ManualClock::default();
        clock.advance(Duration::from_secs(5));
        let past = clock.now() - Duration::from_secs(1);
        clock.sleep_until(past).await;
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn a_sleep_past_the_end_of_time_wakes_after_max_hint() {
        // See: issue 16 (a delay read from outside reached `now + duration` and panicked).
        let clock = ManualClock::default();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep(Duration::MAX).await;
                clock.elapsed()
            })
        };
        // Real time bounds the wait for the other task, so a busy machine fails with a message.
        let registered = tokio::time::timeout(Duration::from_secs(20), async {
            while clock.sleepers() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(registered.is_ok(), "the sleeper never went to sleep");
        clock.advance(crate::MAX_HINT - Duration::from_secs(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before MAX_HINT");
        clock.advance(Duration::from_secs(1));
        assert_eq!(sleeper.await.expect("sleeper task"), crate::MAX_HINT);
    }
}
