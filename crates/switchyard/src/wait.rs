//! Waiting for capacity instead of answering an instant 429, and the router's overload cap.
//!
//! A request whose every candidate is momentarily out (cooling, or a window spent) but frees
//! before its deadline takes a [`Ticket`] in the router's [`WaitQueue`], sleeps on the clock
//! until the first candidate frees, then retries admission in ticket order: among the requests
//! awake at the same moment, the one that has waited longest goes first, so a newcomer never
//! takes the slot an older waiter was promised. A request that sleeps again (the slot went to
//! an older waiter) keeps its place. The queue has a size cap; beyond it a request is answered
//! at once with the typed quota error and the time of the first reset.
//!
//! [`LoadGauge`] caps the requests in flight per router; beyond it `OVERLOADED` at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use switchyard_core::Clock;
use tokio::sync::Notify;

/// Where one waiting request is.
#[derive(Clone, Copy, Default)]
struct Waiter {
    /// Awake and contending for admission.
    ready: bool,
    /// When it wakes, while asleep.
    wake: Option<Instant>,
}

/// The router's queue of requests waiting for a candidate to free.
pub(crate) struct WaitQueue {
    /// Ticket number to its state. Nothing awaits while this lock is held.
    tickets: Mutex<BTreeMap<u64, Waiter>>,
    notify: Notify,
    next: AtomicU64,
    capacity: usize,
}

impl WaitQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tickets: Mutex::new(BTreeMap::new()),
            notify: Notify::new(),
            next: AtomicU64::new(0),
            capacity,
        }
    }

    /// A place in the queue, or `None` when it is full.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<Ticket> {
        let mut tickets = self.tickets.lock();
        if tickets.len() >= self.capacity {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        tickets.insert(id, Waiter::default());
        Some(Ticket { queue: Arc::clone(self), id })
    }

    /// How many requests are waiting now.
    pub(crate) fn len(&self) -> usize {
        self.tickets.lock().len()
    }

    /// How many of them are asleep until a candidate frees after `now` (not those retrying
    /// admission, nor those due but not yet run).
    pub(crate) fn asleep(&self, now: Instant) -> usize {
        self.tickets
            .lock()
            .values()
            .filter(|waiter| !waiter.ready && waiter.wake.is_some_and(|wake| wake > now))
            .count()
    }
}

/// One request's place in the [`WaitQueue`]; dropping it leaves the queue.
pub(crate) struct Ticket {
    queue: Arc<WaitQueue>,
    id: u64,
}

impl Ticket {
    /// Waits until no older waiter is contending (awake, or due to wake by `clock`), then
    /// holds the turn until [`pause`](Self::pause) or drop. Counting the due ones matters:
    /// waiters woken at one instant run in any order, and the first to run must not take the
    /// slot of an older one that has not run yet.
    pub(crate) async fn turn(&self, clock: &dyn Clock) {
        self.set(Waiter { ready: true, wake: None });
        loop {
            // Registered before the check, so a wake between check and await is not lost.
            let notified = self.queue.notify.notified();
            let now = clock.now();
            let first = self
                .queue
                .tickets
                .lock()
                .iter()
                .find(|(_, waiter)| waiter.ready || waiter.wake.is_some_and(|wake| wake <= now))
                .map(|(id, _)| *id);
            if first.is_none_or(|first| first == self.id) {
                return;
            }
            notified.await;
        }
    }

    /// Gives the turn up while sleeping until `wake`, keeping the place.
    pub(crate) fn pause(&self, wake: Instant) {
        self.set(Waiter { ready: false, wake: Some(wake) });
        self.queue.notify.notify_waiters();
    }

    fn set(&self, waiter: Waiter) {
        if let Some(entry) = self.queue.tickets.lock().get_mut(&self.id) {
            *entry = waiter;
        }
        if waiter.ready {
            // A due waiter now contends: those behind it check again against it.
            self.queue.notify.notify_waiters();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue.tickets.lock().remove(&self.id);
        self.queue.notify.notify_waiters();
    }
}

/// Requests in flight on one router, against an optional cap.
#[derive(Default)]
pub(crate) struct LoadGauge {
    in_flight: Arc<AtomicU32>,
}

impl LoadGauge {
    /// Counts one more request, or says how many are in flight when `limit` is reached.
    pub(crate) fn enter(&self, limit: Option<u32>) -> Result<Option<LoadGuard>, u32> {
        let Some(limit) = limit else { return Ok(None) };
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if previous >= limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(previous);
        }
        Ok(Some(LoadGuard { in_flight: Arc::clone(&self.in_flight) }))
    }

    /// Requests in flight now (counted only when a cap is set).
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One request counted against the overload cap until dropped.
pub(crate) struct LoadGuard {
    in_flight: Arc<AtomicU32>,
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_refuses_beyond_its_capacity_and_frees_a_place_on_drop() {
        let queue = Arc::new(WaitQueue::new(2));
        let first = queue.enter().expect("room");
        let _second = queue.enter().expect("room");
        assert!(queue.enter().is_none(), "full");
        drop(first);
        assert_eq!(queue.len(), 1);
        assert!(queue.enter().is_some(), "a place freed");
    }

    #[tokio::test]
    async fn the_older_waiter_goes_first_even_when_the_newer_runs_first() {
        let clock = Arc::new(switchyard_core::ManualClock::default());
        let queue = Arc::new(WaitQueue::new(8));
        let older = queue.enter().expect("room");
        let newer = queue.enter().expect("room");
        let wake = clock.now() + std::time::Duration::from_secs(2);
        older.pause(wake);
        newer.pause(wake);
        clock.advance(std::time::Duration::from_secs(2));
        // Both are due; the newer asks for its turn first and must let the older go first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let (newer_order, newer_clock) = (Arc::clone(&order), Arc::clone(&clock));
        let waiter = tokio::spawn(async move {
            newer.turn(newer_clock.as_ref()).await;
            newer_order.lock().push("newer");
        });
        tokio::task::yield_now().await;
        assert!(order.lock().is_empty(), "the newer waits for the due older one");
        older.turn(clock.as_ref()).await;
        order.lock().push("older");
        tokio::task::yield_now().await;
        assert_eq!(*order.lock(), ["older"], "the older holds its turn");
        older.pause(clock.now() + std::time::Duration::from_secs(60));
        waiter.await.expect("joins");
        assert_eq!(*order.lock(), ["older", "newer"]);
    }

    #[test]
    fn the_gauge_caps_in_flight_requests() {
        let gauge = LoadGauge::default();
        assert!(gauge.enter(None).expect("no cap").is_none());
        let one = gauge.enter(Some(2)).expect("room");
        let _two = gauge.enter(Some(2)).expect("room");
        assert_eq!(gauge.enter(Some(2)).err(), Some(2));
        drop(one);
        assert!(gauge.enter(Some(2)).is_ok());
    }
}
