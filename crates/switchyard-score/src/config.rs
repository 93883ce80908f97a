//! What a scorer is told: the weights of the four score components, how fast evidence fades,
//! the prior an untried candidate starts from, and how much each kind of failure counts.
//!
//! Every number here is explained in `docs/scoring.md`; the defaults are the ones the learning
//! simulation in `tests/it/simulation.rs` runs with.

use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope};

use crate::ScoreError;

/// The four weights of the score, normalized to sum to 1.
///
/// Only their ratios matter: `Weights::new(4.0, 3.0, 2.0, 1.0)` and the defaults
/// (0.4 / 0.3 / 0.2 / 0.1) are the same weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    reliability: f64,
    speed: f64,
    quality: f64,
    recency: f64,
}

impl Weights {
    /// Weights in any scale; they are divided by their sum.
    ///
    /// # Errors
    /// [`ScoreError::InvalidWeights`] when a weight is negative or not finite, or all are zero.
    pub fn new(
        reliability: f64,
        speed: f64,
        quality: f64,
        recency: f64,
    ) -> Result<Self, ScoreError> {
        let raw = [reliability, speed, quality, recency];
        let sum: f64 = raw.iter().sum();
        if raw.iter().any(|weight| !weight.is_finite() || *weight < 0.0)
            || !sum.is_finite()
            || sum <= 0.0
        {
            return Err(ScoreError::InvalidWeights { reliability, speed, quality, recency });
        }
        Ok(Self {
            reliability: reliability / sum,
            speed: speed / sum,
            quality: quality / sum,
            recency: recency / sum,
        })
    }

    /// The normalized reliability weight.
    pub fn reliability(&self) -> f64 {
        self.reliability
    }

    /// The normalized speed weight.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The normalized quality weight.
    pub fn quality(&self) -> f64 {
        self.quality
    }

    /// The normalized recency weight.
    pub fn recency(&self) -> f64 {
        self.recency
    }
}

impl Default for Weights {
    /// 0.4 reliability, 0.3 speed, 0.2 quality, 0.1 recency.
    fn default() -> Self {
        Self { reliability: 0.4, speed: 0.3, quality: 0.2, recency: 0.1 }
    }
}

/// What an untried candidate is believed to be, and how much that belief weighs against
/// evidence. The defaults are optimistic on purpose: a new key or model scores as a good
/// candidate until its first outcomes say otherwise, so it gets tried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    /// Pseudo-successes of the Beta prior over reliability (α₀).
    pub successes: f64,
    /// Pseudo-failures of the Beta prior over reliability (β₀).
    pub failures: f64,
    /// The speed (0..=1) assumed before any latency is known.
    pub speed: f64,
    /// The quality (0..=1) assumed before any judgement.
    pub quality: f64,
    /// The recency (0..=1) of a candidate with no outcome at all.
    pub recency: f64,
    /// How many observations the speed and quality priors are worth.
    pub strength: f64,
}

impl Default for Prior {
    /// Beta(1.8, 0.2) (mean 0.9, worth two outcomes), speed 1 and quality 0.75 worth one
    /// observation, recency 1.
    fn default() -> Self {
        Self {
            successes: 1.8,
            failures: 0.2,
            speed: 1.0,
            quality: 0.75,
            recency: 1.0,
            strength: 1.0,
        }
    }
}

/// How much one failure of each kind counts against reliability, from 0 (says nothing about
/// the candidate) to 1 (as much as any failure can). See `docs/scoring.md` for the reasons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureWeights {
    /// A per-minute (or unknown-window) rate limit: the key is busy, not bad. The quota
    /// ledger decides admission; this only nudges.
    pub rate_limited: f64,
    /// A daily or monthly rate limit.
    pub rate_limited_long: f64,
    /// A quota beyond the rate windows is spent.
    pub quota_exhausted: f64,
    /// The account cannot pay.
    pub billing_stopped: f64,
    /// The key is wrong or revoked.
    pub invalid_key: f64,
    /// The key may not do this.
    pub permission_denied: f64,
    /// The model does not exist for this key.
    pub model_not_found: f64,
    /// The prompt did not fit: the request's fault.
    pub context_too_long: f64,
    /// The request is too large for this key's per-minute limit: the request's size.
    pub request_too_large: f64,
    /// The provider refused the content.
    pub content_filtered: f64,
    /// The request itself is wrong: the caller's fault.
    pub bad_request: f64,
    /// The provider is overloaded.
    pub overloaded: f64,
    /// The provider failed.
    pub server_error: f64,
    /// No answer in time.
    pub timeout: f64,
    /// The connection failed.
    pub network: f64,
    /// The answer could not be read.
    pub malformed_response: f64,
}

impl FailureWeights {
    /// The weight of one failure of `kind`.
    pub fn weight(&self, kind: ErrorKind) -> f64 {
        match kind {
            ErrorKind::RateLimited { scope: LimitScope::Minute | LimitScope::Unknown } => {
                self.rate_limited
            }
            ErrorKind::RateLimited { scope: LimitScope::Day | LimitScope::Month } => {
                self.rate_limited_long
            }
            ErrorKind::QuotaExhausted { .. } => self.quota_exhausted,
            ErrorKind::BillingStopped => self.billing_stopped,
            ErrorKind::InvalidKey => self.invalid_key,
            ErrorKind::PermissionDenied => self.permission_denied,
            ErrorKind::ModelNotFound => self.model_not_found,
            ErrorKind::ContextTooLong => self.context_too_long,
            ErrorKind::RequestTooLarge => self.request_too_large,
            ErrorKind::ContentFiltered => self.content_filtered,
            ErrorKind::BadRequest => self.bad_request,
            ErrorKind::Overloaded => self.overloaded,
            ErrorKind::ServerError => self.server_error,
            ErrorKind::Timeout => self.timeout,
            ErrorKind::Network => self.network,
            ErrorKind::MalformedResponse => self.malformed_response,
        }
    }

    fn all(&self) -> [f64; 16] {
        [
            self.rate_limited,
            self.rate_limited_long,
            self.quota_exhausted,
            self.billing_stopped,
            self.invalid_key,
            self.permission_denied,
            self.model_not_found,
            self.context_too_long,
            self.request_too_large,
            self.content_filtered,
            self.bad_request,
            self.overloaded,
            self.server_error,
            self.timeout,
            self.network,
            self.malformed_response,
        ]
    }
}

impl Default for FailureWeights {
    fn default() -> Self {
        Self {
            rate_limited: 0.1,
            rate_limited_long: 0.2,
            quota_exhausted: 0.3,
            billing_stopped: 1.0,
            invalid_key: 1.0,
            permission_denied: 1.0,
            model_not_found: 1.0,
            context_too_long: 0.0,
            request_too_large: 0.0,
            content_filtered: 0.2,
            bad_request: 0.0,
            overloaded: 0.6,
            server_error: 0.8,
            timeout: 0.8,
            network: 0.6,
            malformed_response: 1.0,
        }
    }
}

/// Everything a scorer is configured with. Plain data: change a field of
/// [`ScoreConfig::default`], then [`AdaptiveScorer::try_new`](crate::AdaptiveScorer::try_new)
/// checks it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreConfig {
    /// The weights of reliability, speed, quality and recency.
    pub weights: Weights,
    /// Evidence (successes, failures, quality judgements, latency samples) loses half its
    /// weight in this time.
    pub half_life: Duration,
    /// The most evidence a candidate's reliability (and, separately, its quality and latency
    /// sample count) may hold; beyond it older evidence is scaled down, so a busy candidate
    /// that starts failing is noticed within tens of calls, not after a half-life.
    pub max_evidence: f64,
    /// The recency reward of a success halves in this time.
    pub recency_half_life: Duration,
    /// The share of the gap to a latency sample above the estimate that the estimate closes
    /// at once: high, so a spike shows in the next score.
    pub latency_rise: f64,
    /// The share of the gap to a sample below the estimate that it closes: low, so one fast
    /// answer does not hide a slow provider.
    pub latency_fall: f64,
    /// Latency evidence halves in this time without a sample, so a candidate left alone
    /// drifts back toward the speed prior and gets measured again; and a sample after a
    /// silence this long closes at least half the gap to the estimate, even when lower.
    pub latency_half_life: Duration,
    /// The spread (standard deviation of the natural log) assumed for one latency sample. An
    /// exploration draw varies a latency estimate by this over the square root of its
    /// evidence, so a rarely measured candidate's speed is uncertain and gets explored.
    pub latency_spread: f64,
    /// What an untried candidate is believed to be.
    pub prior: Prior,
    /// How much each kind of failure counts.
    pub failure_weights: FailureWeights,
    /// Seed of the exploration RNG; `None` seeds it from the operating system. Set it in tests
    /// and simulations to make every exploration draw repeatable.
    pub seed: Option<u64>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            half_life: Duration::from_secs(30 * 60),
            max_evidence: 40.0,
            recency_half_life: Duration::from_secs(60 * 60),
            latency_rise: 0.25,
            latency_fall: 0.1,
            latency_half_life: Duration::from_secs(2 * 60),
            latency_spread: 0.5,
            prior: Prior::default(),
            failure_weights: FailureWeights::default(),
            seed: None,
        }
    }
}

impl ScoreConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ScoreError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ScoreError> {
        let invalid = |field: &'static str, reason: &'static str| {
            Err(ScoreError::InvalidConfig { field, reason })
        };
        for (field, duration) in [
            ("half_life", self.half_life),
            ("recency_half_life", self.recency_half_life),
            ("latency_half_life", self.latency_half_life),
        ] {
            if duration.is_zero() {
                return invalid(field, "must be longer than zero");
            }
        }
        if !(self.latency_spread.is_finite() && self.latency_spread >= 0.0) {
            return invalid("latency_spread", "must be a finite number of at least 0");
        }
        if !(self.max_evidence.is_finite() && self.max_evidence >= 1.0) {
            return invalid("max_evidence", "must be a finite number of at least 1");
        }
        let prior = &self.prior;
        for (field, count) in [
            ("prior.successes", prior.successes),
            ("prior.failures", prior.failures),
            ("prior.strength", prior.strength),
        ] {
            if !(count.is_finite() && count > 0.0) {
                return invalid(field, "must be a finite number above zero");
            }
        }
        for (field, share) in
            [("latency_rise", self.latency_rise), ("latency_fall", self.latency_fall)]
        {
            if !(share > 0.0 && share <= 1.0) {
                return invalid(field, "must be within 0 (excluded) and 1");
            }
        }
        for (field, share) in [
            ("prior.speed", prior.speed),
            ("prior.quality", prior.quality),
            ("prior.recency", prior.recency),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return invalid(field, "must be within 0..=1");
            }
        }
        if !self.failure_weights.all().iter().all(|weight| (0.0..=1.0).contains(weight)) {
            return invalid("failure_weights", "every weight must be within 0..=1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalized() {
        let weights = Weights::new(4.0, 3.0, 2.0, 1.0).unwrap();
        assert!((weights.reliability() - 0.4).abs() < 1e-15);
        assert!((weights.recency() - 0.1).abs() < 1e-15);
        let sum = weights.reliability() + weights.speed() + weights.quality() + weights.recency();
        assert!((sum - 1.0).abs() < 1e-15);
    }

    #[test]
    fn bad_weights_are_refused() {
        for raw in [
            [0.0; 4],
            [-1.0, 1.0, 1.0, 1.0],
            [f64::NAN, 1.0, 1.0, 1.0],
            [f64::INFINITY, 0.0, 0.0, 0.0],
        ] {
            let result = Weights::new(raw[0], raw[1], raw[2], raw[3]);
            assert!(matches!(result, Err(ScoreError::InvalidWeights { .. })), "{raw:?}");
        }
    }

    #[test]
    fn config_checks_name_the_field() {
        let mut config = ScoreConfig { half_life: Duration::ZERO, ..ScoreConfig::default() };
        assert!(matches!(
            config.validate(),
            Err(ScoreError::InvalidConfig { field: "half_life", .. })
        ));
        config.half_life = Duration::from_secs(1);
        config.prior.quality = 1.5;
        assert!(matches!(
            config.validate(),
            Err(ScoreError::InvalidConfig { field: "prior.quality", .. })
        ));
        config.prior.quality = 0.5;
        config.failure_weights.timeout = -0.1;
        assert!(matches!(
            config.validate(),
            Err(ScoreError::InvalidConfig { field: "failure_weights", .. })
        ));
        assert!(ScoreConfig::default().validate().is_ok());
    }

    #[test]
    fn a_rate_limit_counts_less_than_an_invalid_key() {
        let weights = FailureWeights::default();
        let minute = weights.weight(ErrorKind::RateLimited { scope: LimitScope::Minute });
        assert!(minute < weights.weight(ErrorKind::ServerError));
        assert!(minute < weights.weight(ErrorKind::InvalidKey));
        assert_eq!(weights.weight(ErrorKind::BadRequest), 0.0, "the caller's fault");
    }
}
