//! What the tests share: candidates, a scorer on a manual clock, outcomes by shorthand.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{Candidate, ErrorKind, ManualClock};
use switchyard_score::{AdaptiveScorer, Outcome, ScoreConfig};

/// The `n`th test candidate.
pub(crate) fn candidate(n: usize) -> Candidate {
    Candidate::new(format!("provider-{}", n % 3), format!("key-{n}"), format!("model-{}", n % 2))
}

/// A scorer on `clock` with `config` and a fixed exploration seed.
pub(crate) fn scorer_with(clock: &ManualClock, config: ScoreConfig) -> AdaptiveScorer {
    AdaptiveScorer::try_new(Arc::new(clock.clone()), ScoreConfig { seed: Some(7), ..config })
        .expect("valid config")
}

/// A default scorer on `clock`.
pub(crate) fn scorer(clock: &ManualClock) -> AdaptiveScorer {
    scorer_with(clock, ScoreConfig::default())
}

/// A success after `ms` milliseconds.
pub(crate) fn success(ms: u64) -> Outcome {
    Outcome::Success { latency: Duration::from_millis(ms), tokens: 100 }
}

/// A failure of `kind` after `ms` milliseconds.
pub(crate) fn failure(kind: ErrorKind, ms: u64) -> Outcome {
    Outcome::Failure { kind, latency: Duration::from_millis(ms) }
}
