//! [`AdaptiveScorer`]: the in-memory [`Scorer`], sharded so that many tasks record and score
//! at once.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rustc_hash::FxBuildHasher;
use switchyard_core::{Candidate, Clock};

use crate::ScoreError;
use crate::config::{ScoreConfig, Weights};
use crate::draw;
use crate::scorer::{Breakdown, Outcome, Scorer};
use crate::snapshot::{self, StatsSnapshot};
use crate::stats::{Params, Stats, Ticks, View, speed_with};

/// The learning scorer: per-candidate statistics with exponential decay, a peak-sensitive
/// latency EWMA, optimistic priors and Thompson-sampling exploration. See `docs/scoring.md`.
///
/// Statistics live in a sharded map: recording locks one shard for a few arithmetic
/// operations, scoring takes shard read locks one candidate at a time, and nothing locks
/// the whole map.
pub struct AdaptiveScorer {
    clock: Arc<dyn Clock>,
    /// `clock.now()` when the scorer was made: tick 0.
    epoch: Instant,
    weights: Weights,
    params: Params,
    // FxHash: candidate ids come from the operator's configuration, not from clients, so
    // hash flooding is not a threat, and hashing three strings is a large part of a lookup.
    stats: DashMap<Candidate, Stats, FxBuildHasher>,
    seed: u64,
    /// How many exploration draws were made: each draw gets its own RNG stream
    /// (seed, draw number), so concurrent draws need no lock and a seeded run repeats.
    draws: AtomicU64,
}

impl fmt::Debug for AdaptiveScorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveScorer")
            .field("candidates", &self.stats.len())
            .field("weights", &self.weights)
            .finish_non_exhaustive()
    }
}

impl AdaptiveScorer {
    /// A scorer with the default configuration and an exploration RNG seeded by the
    /// operating system.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::build(clock, &ScoreConfig::default())
    }

    /// A scorer with `config`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidConfig`] when a field is out of range.
    pub fn try_new(clock: Arc<dyn Clock>, config: ScoreConfig) -> Result<Self, ScoreError> {
        config.validate()?;
        Ok(Self::build(clock, &config))
    }

    fn build(clock: Arc<dyn Clock>, config: &ScoreConfig) -> Self {
        let epoch = clock.now();
        Self {
            clock,
            epoch,
            weights: config.weights,
            params: Params::new(config),
            // More shards than DashMap's default (4 per CPU): two tasks recording at once
            // rarely share a shard lock's cache line.
            stats: DashMap::with_hasher_and_shard_amount(FxBuildHasher, SHARDS),
            seed: config.seed.unwrap_or_else(rand::random),
            draws: AtomicU64::new(0),
        }
    }

    /// How many candidates have statistics.
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    /// Whether no candidate has statistics yet.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// Each candidate's score with the components it is made of.
    pub fn explain(&self, candidates: &[Candidate]) -> Vec<Breakdown> {
        let (views, fastest_ms) = self.views(candidates);
        views.iter().map(|view| self.breakdown(view, fastest_ms)).collect()
    }

    /// Like [`Scorer::explore`], drawing from `rng` instead of the scorer's own stream.
    pub fn explore_with<R: Rng + ?Sized>(&self, candidates: &[Candidate], rng: &mut R) -> Vec<f64> {
        let now = self.now();
        let prior = &self.params.prior;
        let weights = &self.weights;
        // One pass over the statistics draws everything; the second only needs the fastest
        // latency drawn, to turn each latency into a speed. `scores` holds the part of each
        // score that is known after the first pass.
        let mut scores = Vec::with_capacity(candidates.len());
        let mut latencies = Vec::with_capacity(candidates.len());
        let mut fastest_ms = f64::INFINITY;
        for candidate in candidates {
            let view = match self.stats.get(candidate) {
                Some(stats) => stats.view(now, &self.params),
                None => View::untried(prior),
            };
            // Reliability from its Beta posterior; latency from a log-normal around the
            // estimate whose width shrinks with the square root of the latency evidence.
            let reliability = draw::beta(view.alpha, view.beta, rng);
            let latency_ms = view.latency_ms.map(|ms| {
                let z: f64 = StandardNormal.sample(rng);
                let spread =
                    self.params.latency_spread / (view.latency_samples + prior.strength).sqrt();
                ms * (spread * z).exp()
            });
            if let Some(ms) = latency_ms {
                fastest_ms = fastest_ms.min(ms);
            }
            scores.push(
                weights.reliability() * reliability
                    + weights.quality() * view.quality
                    + weights.recency() * view.recency,
            );
            latencies.push((latency_ms, view.latency_samples));
        }
        for (score, (latency_ms, latency_samples)) in scores.iter_mut().zip(latencies) {
            let speed = speed_with(latency_samples, latency_ms, fastest_ms, prior);
            // The weights sum to 1 and each component is in 0..=1; the clamp only absorbs
            // rounding.
            *score = (*score + weights.speed() * speed).clamp(0.0, 1.0);
        }
        scores
    }

    fn now(&self) -> Ticks {
        ticks(self.clock.now().saturating_duration_since(self.epoch))
    }

    /// The statistics of each candidate at one instant, and the lowest latency among them.
    fn views(&self, candidates: &[Candidate]) -> (Vec<View>, f64) {
        let now = self.now();
        let mut fastest_ms = f64::INFINITY;
        let views = candidates
            .iter()
            .map(|candidate| {
                let view = match self.stats.get(candidate) {
                    Some(stats) => stats.view(now, &self.params),
                    None => View::untried(&self.params.prior),
                };
                if let Some(ms) = view.latency_ms {
                    fastest_ms = fastest_ms.min(ms);
                }
                view
            })
            .collect();
        (views, fastest_ms)
    }

    fn combine(&self, reliability: f64, speed: f64, view: &View) -> f64 {
        let weights = &self.weights;
        let score = weights.reliability() * reliability
            + weights.speed() * speed
            + weights.quality() * view.quality
            + weights.recency() * view.recency;
        // The weights sum to 1 and each component is in 0..=1; the clamp only absorbs
        // rounding.
        score.clamp(0.0, 1.0)
    }

    fn breakdown(&self, view: &View, fastest_ms: f64) -> Breakdown {
        let reliability = view.reliability();
        let speed = view.speed(fastest_ms, &self.params.prior);
        Breakdown {
            reliability,
            speed,
            quality: view.quality,
            recency: view.recency,
            score: self.combine(reliability, speed, view),
        }
    }

    fn with_stats(&self, candidate: &Candidate, update: impl FnOnce(&mut Stats, Ticks)) {
        let now = self.now();
        // The common case finds the candidate and clones nothing.
        if let Some(mut stats) = self.stats.get_mut(candidate) {
            update(&mut stats, now);
            return;
        }
        let mut stats = self.stats.entry(candidate.clone()).or_insert_with(|| Stats::new(now));
        update(&mut stats, now);
    }

    /// The wall-clock time of tick `at`, read against the clock now.
    fn utc_of(&self, at: Ticks, now: Ticks, now_utc: DateTime<Utc>) -> DateTime<Utc> {
        now_utc - chrono::Duration::nanoseconds(now.saturating_sub(at))
    }
}

/// Shards of the statistics map (a power of two, as DashMap requires).
const SHARDS: usize = 64;

/// Nanoseconds in `elapsed`, saturating (292 years).
fn ticks(elapsed: Duration) -> Ticks {
    Ticks::try_from(elapsed.as_nanos()).unwrap_or(Ticks::MAX)
}

impl Scorer for AdaptiveScorer {
    fn record(&self, candidate: &Candidate, outcome: Outcome) {
        let params = &self.params;
        self.with_stats(candidate, |stats, now| match outcome {
            Outcome::Success { latency, tokens } => {
                stats.record_success(now, latency.as_secs_f64() * 1e3, tokens, params);
            }
            Outcome::Failure { kind, latency } => {
                stats.record_failure(now, kind, latency.as_secs_f64() * 1e3, params);
            }
        });
    }

    fn record_quality(&self, candidate: &Candidate, quality: f64) -> Result<(), ScoreError> {
        if !(0.0..=1.0).contains(&quality) {
            return Err(ScoreError::QualityOutOfRange {
                candidate: candidate.clone(),
                value: quality,
            });
        }
        self.with_stats(candidate, |stats, now| stats.record_quality(now, quality, &self.params));
        Ok(())
    }

    fn score(&self, candidates: &[Candidate]) -> Vec<f64> {
        let (views, fastest_ms) = self.views(candidates);
        let prior = &self.params.prior;
        views
            .iter()
            .map(|view| self.combine(view.reliability(), view.speed(fastest_ms, prior), view))
            .collect()
    }

    fn explore(&self, candidates: &[Candidate]) -> Vec<f64> {
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        // Golden-ratio spacing keeps the streams of consecutive draws apart before the
        // generator's own seeding mixes them further.
        let mut rng = SmallRng::seed_from_u64(self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.explore_with(candidates, &mut rng)
    }

    fn export(&self) -> StatsSnapshot {
        let now = self.now();
        let now_utc = self.clock.utc();
        let mut entries: Vec<(Candidate, Stats)> =
            self.stats.iter().map(|entry| (entry.key().clone(), entry.value().clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let exported = entries.iter().map(|(candidate, stats)| {
            let view = stats.view(now, &self.params);
            (candidate, snapshot::export_stats(stats, &view, |at| self.utc_of(at, now, now_utc)))
        });
        StatsSnapshot::from_entries(now_utc, exported)
    }

    fn import(&self, snapshot: &StatsSnapshot) -> Result<(), ScoreError> {
        let now = self.now();
        let now_utc = self.clock.utc();
        let to_ticks = |utc: DateTime<Utc>| {
            let ago = (now_utc - utc).num_nanoseconds().unwrap_or(Ticks::MAX);
            // A time ahead of this clock (another machine's skew) counts as now.
            now.saturating_sub(ago.max(0))
        };
        // Everything is checked before anything is replaced.
        let restored = snapshot
            .entries()
            .map(|(candidate, model)| {
                snapshot::import_stats(&candidate, model, now, &self.params, to_ticks)
                    .map(|stats| (candidate, stats))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (candidate, stats) in restored {
            self.stats.insert(candidate, stats);
        }
        Ok(())
    }
}
