//! A circuit breaker per candidate: it opens after a run of failures that say the candidate
//! is unhealthy, stays open for a while, lets a few probe calls through when half-open, and
//! after closing ramps the candidate back up instead of handing it its full share at once.
//!
//! Rate limits, spent quotas, invalid keys and bad requests never move the breaker: the quota
//! ledger and the key states handle the first three, and the last says nothing about the
//! candidate.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use switchyard_core::ErrorKind;

/// How a breaker behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// How many probe calls a half-open circuit lets through at once; that many successes
    /// close it.
    pub half_open_probes: u32,
    /// How long a closed circuit takes to ramp from `ramp_floor` back to full share.
    pub ramp_for: Duration,
    /// The share of calls let through right after closing, in `(0, 1]`.
    pub ramp_floor: f64,
}

impl Default for CircuitConfig {
    /// Opens after 5 failures, for 60 s; 3 probes; ramps from 10% to full over 30 s.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
            half_open_probes: 3,
            ramp_for: Duration::from_secs(30),
            ramp_floor: 0.1,
        }
    }
}

/// A breaker's state, for status pages and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// No calls until the timeout.
    Open {
        /// Time left until probes are let through.
        #[serde(with = "millis")]
        remaining: Duration,
    },
    /// A few probe calls decide.
    HalfOpen,
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u128(value.as_millis())
    }
}

/// What the breaker says about one call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    /// Call it.
    Pass,
    /// Call it as one of the half-open probes; report its outcome.
    Probe,
    /// Skip it: the circuit is open until this instant.
    Open {
        /// When probes are let through.
        until: Instant,
    },
    /// Skip it this time: the circuit closed recently and lets through only this share.
    Ramping {
        /// The share let through now.
        share: f64,
    },
}

impl Gate {
    /// Whether the call may go ahead.
    pub fn admits(&self) -> bool {
        matches!(self, Self::Pass | Self::Probe)
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed { failures: u32, closed_at: Option<Instant> },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// One candidate's breaker. Each has its own small lock; nothing awaits while it is held.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: CircuitConfig,
    phase: Mutex<Phase>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: CircuitConfig) -> Self {
        Self { config, phase: Mutex::new(Phase::Closed { failures: 0, closed_at: None }) }
    }

    /// Whether a call may go ahead now. `roll` in `[0, 1)` decides ramp-up admission.
    /// A [`Gate::Probe`] must be followed by [`record_success`](Self::record_success),
    /// [`record_failure`](Self::record_failure) or [`release_probe`](Self::release_probe).
    pub fn gate(&self, now: Instant, roll: f64) -> Gate {
        let mut phase = self.phase.lock();
        match *phase {
            Phase::Closed { closed_at: Some(closed_at), .. } => {
                let share = self.ramp_share(now.saturating_duration_since(closed_at));
                if share >= 1.0 || roll < share { Gate::Pass } else { Gate::Ramping { share } }
            }
            Phase::Closed { closed_at: None, .. } => Gate::Pass,
            Phase::Open { until } if now < until => Gate::Open { until },
            Phase::Open { .. } => {
                *phase = Phase::HalfOpen { in_flight: 1, successes: 0 };
                Gate::Probe
            }
            Phase::HalfOpen { in_flight, successes } => {
                if in_flight + successes < self.config.half_open_probes {
                    *phase = Phase::HalfOpen { in_flight: in_flight + 1, successes };
                    Gate::Probe
                } else {
                    Gate::Open { until: now }
                }
            }
        }
    }

    /// Records a successful call.
    pub fn record_success(&self, now: Instant) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Closed { closed_at, .. } => Phase::Closed { failures: 0, closed_at },
            // A late success from before the circuit opened changes nothing.
            open @ Phase::Open { .. } => open,
            Phase::HalfOpen { in_flight, successes } => {
                let successes = successes + 1;
                if successes >= self.config.half_open_probes {
                    Phase::Closed { failures: 0, closed_at: Some(now) }
                } else {
                    Phase::HalfOpen { in_flight: in_flight.saturating_sub(1), successes }
                }
            }
        };
    }

    /// Closes the circuit at once, without a ramp: an operator says the candidate is fine.
    pub fn reset(&self) {
        *self.phase.lock() = Phase::Closed { failures: 0, closed_at: None };
    }

    /// Records a failed call. Returns whether this failure opened the circuit.
    pub fn record_failure(&self, kind: ErrorKind, now: Instant) -> bool {
        if !Self::counts(kind) {
            return false;
        }
        let mut phase = self.phase.lock();
        // `open_for` comes from configuration: cut to `MAX_HINT` and added without overflow.
        let open_for = switchyard_core::clamp_hint(self.config.open_for);
        let open = Phase::Open { until: now.checked_add(open_for).unwrap_or(now) };
        let (next, opened) = match *phase {
            Phase::Closed { failures, closed_at } => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    (open, true)
                } else {
                    (Phase::Closed { failures, closed_at }, false)
                }
            }
            current @ Phase::Open { .. } => (current, false),
            // One failed probe sends it back to open for another full timeout.
            Phase::HalfOpen { .. } => (open, true),
        };
        *phase = next;
        opened
    }

    /// Gives back a probe slot whose call ended without an outcome that says anything about
    /// the candidate (a rate limit, a bad request, a cancelled call).
    pub fn release_probe(&self) {
        let mut phase = self.phase.lock();
        if let Phase::HalfOpen { in_flight, successes } = *phase {
            *phase = Phase::HalfOpen { in_flight: in_flight.saturating_sub(1), successes };
        }
    }

    /// The state now, for status and traces.
    pub fn state(&self, now: Instant) -> CircuitState {
        match *self.phase.lock() {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { until } if now < until => {
                CircuitState::Open { remaining: until.saturating_duration_since(now) }
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a failure of this kind counts against the candidate's health.
    pub fn counts(kind: ErrorKind) -> bool {
        match kind {
            ErrorKind::ServerError
            | ErrorKind::Overloaded
            | ErrorKind::Timeout
            | ErrorKind::Network
            | ErrorKind::MalformedResponse => true,
            ErrorKind::RateLimited { .. }
            | ErrorKind::QuotaExhausted { .. }
            | ErrorKind::BillingStopped
            | ErrorKind::InvalidKey
            | ErrorKind::PermissionDenied
            | ErrorKind::ModelNotFound
            | ErrorKind::ContextTooLong
            | ErrorKind::RequestTooLarge
            | ErrorKind::ContentFiltered
            | ErrorKind::BadRequest => false,
        }
    }

    fn ramp_share(&self, since_close: Duration) -> f64 {
        if self.config.ramp_for.is_zero() {
            return 1.0;
        }
        let progress = (since_close.as_secs_f64() / self.config.ramp_for.as_secs_f64()).min(1.0);
        let floor = self.config.ramp_floor.clamp(f64::MIN_POSITIVE, 1.0);
        floor + (1.0 - floor) * progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{Clock, LimitScope, ManualClock};

    fn breaker() -> (CircuitBreaker, ManualClock) {
        (CircuitBreaker::new(CircuitConfig::default()), ManualClock::default())
    }

    #[test]
    fn opens_after_five_server_errors_and_not_before() {
        let (breaker, clock) = breaker();
        for n in 1..=4 {
            assert!(!breaker.record_failure(ErrorKind::ServerError, clock.now()), "failure {n}");
            assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Pass);
        }
        assert!(breaker.record_failure(ErrorKind::ServerError, clock.now()));
        assert!(matches!(breaker.gate(clock.now(), 0.5), Gate::Open { .. }));
        assert_eq!(
            breaker.state(clock.now()),
            CircuitState::Open { remaining: Duration::from_secs(60) }
        );
    }

    #[test]
    fn a_success_resets_the_failure_run() {
        let (breaker, clock) = breaker();
        for _ in 0..4 {
            breaker.record_failure(ErrorKind::Timeout, clock.now());
        }
        breaker.record_success(clock.now());
        for _ in 0..4 {
            assert!(!breaker.record_failure(ErrorKind::Timeout, clock.now()));
        }
        assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Pass);
    }

    #[test]
    fn rate_limits_and_key_problems_never_open_it() {
        let (breaker, clock) = breaker();
        for kind in [
            ErrorKind::RateLimited { scope: LimitScope::Minute },
            ErrorKind::InvalidKey,
            ErrorKind::BadRequest,
            ErrorKind::BillingStopped,
        ] {
            for _ in 0..10 {
                assert!(!breaker.record_failure(kind, clock.now()));
            }
        }
        assert_eq!(breaker.state(clock.now()), CircuitState::Closed);
    }

    #[test]
    fn half_opens_after_the_timeout_and_closes_after_good_probes() {
        let (breaker, clock) = breaker();
        for _ in 0..5 {
            breaker.record_failure(ErrorKind::ServerError, clock.now());
        }
        clock.advance(Duration::from_secs(59));
        assert!(!breaker.gate(clock.now(), 0.5).admits());
        clock.advance(Duration::from_secs(1));
        assert_eq!(breaker.state(clock.now()), CircuitState::HalfOpen);
        let gates: Vec<Gate> = (0..4).map(|_| breaker.gate(clock.now(), 0.5)).collect();
        assert_eq!(&gates[..3], &[Gate::Probe, Gate::Probe, Gate::Probe]);
        assert!(!gates[3].admits(), "only three probes at once");
        for _ in 0..3 {
            breaker.record_success(clock.now());
        }
        assert_eq!(breaker.state(clock.now()), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_timeout() {
        let (breaker, clock) = breaker();
        for _ in 0..5 {
            breaker.record_failure(ErrorKind::Overloaded, clock.now());
        }
        clock.advance(Duration::from_secs(60));
        assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Probe);
        assert!(breaker.record_failure(ErrorKind::Overloaded, clock.now()));
        assert_eq!(
            breaker.state(clock.now()),
            CircuitState::Open { remaining: Duration::from_secs(60) }
        );
    }

    #[test]
    fn a_recovered_candidate_ramps_back_up() {
        let (breaker, clock) = breaker();
        for _ in 0..5 {
            breaker.record_failure(ErrorKind::ServerError, clock.now());
        }
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Probe);
        }
        for _ in 0..3 {
            breaker.record_success(clock.now());
        }
        // Right after closing only 10% pass; halfway through the ramp 55%; then all.
        let admitted = |rolls: &[f64]| {
            rolls.iter().filter(|&&roll| breaker.gate(clock.now(), roll).admits()).count()
        };
        let rolls: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        assert_eq!(admitted(&rolls), 10);
        clock.advance(Duration::from_secs(15));
        assert_eq!(admitted(&rolls), 55);
        clock.advance(Duration::from_secs(15));
        assert_eq!(admitted(&rolls), 100);
    }

    #[test]
    fn a_released_probe_frees_its_slot() {
        let (breaker, clock) = breaker();
        for _ in 0..5 {
            breaker.record_failure(ErrorKind::ServerError, clock.now());
        }
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Probe);
        }
        assert!(!breaker.gate(clock.now(), 0.5).admits());
        breaker.release_probe();
        assert_eq!(breaker.gate(clock.now(), 0.5), Gate::Probe);
    }

    #[test]
    fn a_huge_open_for_is_cut_to_the_longest_hint() {
        let config = CircuitConfig { open_for: Duration::MAX, ..CircuitConfig::default() };
        let (breaker, clock) = (CircuitBreaker::new(config), ManualClock::default());
        for _ in 0..config.failure_threshold {
            breaker.record_failure(ErrorKind::ServerError, clock.now());
        }
        assert_eq!(
            breaker.state(clock.now()),
            CircuitState::Open { remaining: switchyard_core::MAX_HINT }
        );
    }
}
