//! One candidate's statistics and the arithmetic on them: exponentially decayed evidence,
//! the peak-sensitive latency EWMA, and the view of them a score is computed from.
//!
//! Times are `i64` nanoseconds since the owning scorer's epoch (its clock's `now()` when it
//! was made). Integers, not `Instant`s, so a snapshot can carry them through wall-clock
//! timestamps and back without losing a nanosecond, and so an imported time older than the
//! process still has a value.

use switchyard_core::ErrorKind;

use crate::config::{FailureWeights, Prior, ScoreConfig};

/// Nanoseconds since the scorer's epoch.
pub(crate) type Ticks = i64;

/// What the arithmetic needs from the configuration, in the units it uses.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    /// 1 / half-life, per nanosecond.
    inv_half_life: f64,
    /// 1 / recency half-life, per nanosecond.
    inv_recency_half_life: f64,
    /// 1 / latency half-life, per nanosecond.
    inv_latency_half_life: f64,
    pub(crate) latency_spread: f64,
    latency_rise: f64,
    latency_fall: f64,
    pub(crate) max_evidence: f64,
    failure_weights: FailureWeights,
    pub(crate) prior: Prior,
}

impl Params {
    pub(crate) fn new(config: &ScoreConfig) -> Self {
        let per_nano = |duration: std::time::Duration| 1.0 / duration.as_nanos() as f64;
        Self {
            inv_half_life: per_nano(config.half_life),
            inv_recency_half_life: per_nano(config.recency_half_life),
            inv_latency_half_life: per_nano(config.latency_half_life),
            latency_spread: config.latency_spread,
            latency_rise: config.latency_rise,
            latency_fall: config.latency_fall,
            max_evidence: config.max_evidence,
            failure_weights: config.failure_weights,
            prior: config.prior,
        }
    }

    /// The share of evidence left after `elapsed` nanoseconds: 1 at 0, ½ at one half-life.
    pub(crate) fn decay(&self, elapsed: Ticks) -> f64 {
        halvings(elapsed, self.inv_half_life)
    }

    fn recency(&self, elapsed: Ticks) -> f64 {
        halvings(elapsed, self.inv_recency_half_life)
    }

    /// The share of latency evidence left after `elapsed`.
    fn latency_decay(&self, elapsed: Ticks) -> f64 {
        halvings(elapsed, self.inv_latency_half_life)
    }
}

/// Evidence below this is none. Flushing it to zero keeps the arithmetic out of subnormal
/// floats, which cost a hundred cycles an operation (a candidate that has not failed in ten
/// thousand calls would otherwise carry a subnormal failure count), and moves no score by
/// more than 1e-12.
const NEGLIGIBLE: f64 = 1e-12;

/// More halvings than this leave less than [`NEGLIGIBLE`] (2^-40 ≈ 9.1e-13): zero.
const MAX_HALVINGS: f64 = 40.0;

fn flush(value: f64) -> f64 {
    if value < NEGLIGIBLE { 0.0 } else { value }
}

/// `2^(-elapsed · per_nano)`: 1 at 0 (and for a time that runs back), 0 past 40 halvings.
fn halvings(elapsed: Ticks, per_nano: f64) -> f64 {
    let halvings = elapsed as f64 * per_nano;
    if elapsed <= 0 {
        1.0
    } else if halvings >= MAX_HALVINGS {
        0.0
    } else {
        (-halvings).exp2()
    }
}

/// The latency estimate, a peak-sensitive EWMA: a slower sample pulls it up by a large share
/// (`latency_rise`), a faster one down by a small share (`latency_fall`), and either share
/// grows toward 1 with the time since the previous sample. Per sample rather than per second,
/// so the estimate's bias is the same for a candidate called ten times a second and one
/// called once a minute, and the two compare fairly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LatencyEwma {
    pub(crate) ms: f64,
    pub(crate) at: Ticks,
}

impl LatencyEwma {
    /// The estimate moved toward a sample `ms` by `share` of the gap, or by more when the
    /// estimate is stale (`stale` is the latency decay since its last move).
    fn toward(self, now: Ticks, ms: f64, share: f64, stale: f64) -> Self {
        let keep = (1.0 - share) * stale;
        Self { ms: self.ms * keep + ms * (1.0 - keep), at: now }
    }
}

/// The time since a candidate's previous record, and its latency decay: the latency estimate
/// usually last moved at that record, and then reuses it instead of another `exp2`.
#[derive(Clone, Copy, Debug)]
struct Gap {
    since: Ticks,
    latency_keep: f64,
}

impl Gap {
    fn latency_keep_since(self, at: Ticks, now: Ticks, params: &Params) -> f64 {
        if at == self.since { self.latency_keep } else { params.latency_decay(now - at) }
    }
}

/// One candidate's statistics.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stats {
    /// When the decayed sums below were last brought to date.
    pub(crate) at: Ticks,
    /// Decayed successes.
    pub(crate) successes: f64,
    /// Decayed failures, each weighted by its kind.
    pub(crate) failures: f64,
    /// Decayed sum of quality judgements.
    pub(crate) quality_sum: f64,
    /// Decayed number of quality judgements.
    pub(crate) quality_weight: f64,
    /// Decayed number of latency samples: the evidence behind the speed component.
    pub(crate) latency_samples: f64,
    pub(crate) latency: Option<LatencyEwma>,
    /// Plain totals, for people reading an export.
    pub(crate) success_count: u64,
    pub(crate) fail_count: u64,
    pub(crate) tokens: u64,
    pub(crate) total_latency_ms: f64,
    /// When the candidate was first seen: the prior's recency fades from here until a real
    /// success replaces it.
    pub(crate) first_seen: Ticks,
    pub(crate) last_success: Option<Ticks>,
    pub(crate) last_error: Option<Ticks>,
    pub(crate) last_error_kind: Option<ErrorKind>,
}

/// What a score is computed from, at one instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    /// Beta posterior over reliability: prior plus decayed successes.
    pub(crate) alpha: f64,
    /// Prior plus decayed weighted failures.
    pub(crate) beta: f64,
    pub(crate) quality: f64,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) latency_samples: f64,
    pub(crate) recency: f64,
}

/// Scales `a` and `b` down together so their sum is at most `max`.
fn cap_pair(a: &mut f64, b: &mut f64, max: f64) {
    let sum = *a + *b;
    if sum > max {
        let scale = max / sum;
        *a = flush(*a * scale);
        *b = flush(*b * scale);
    }
}

impl Stats {
    pub(crate) fn new(now: Ticks) -> Self {
        Self {
            at: now,
            successes: 0.0,
            failures: 0.0,
            quality_sum: 0.0,
            quality_weight: 0.0,
            latency_samples: 0.0,
            latency: None,
            success_count: 0,
            fail_count: 0,
            tokens: 0,
            total_latency_ms: 0.0,
            first_seen: now,
            last_success: None,
            last_error: None,
            last_error_kind: None,
        }
    }

    /// Decays every evidence sum to `now`; returns what the latency update can reuse.
    fn bring_to(&mut self, now: Ticks, params: &Params) -> Gap {
        let gap = Gap { since: self.at, latency_keep: params.latency_decay(now - self.at) };
        if now > self.at {
            let keep = params.decay(now - self.at);
            self.successes = flush(self.successes * keep);
            self.failures = flush(self.failures * keep);
            self.quality_sum = flush(self.quality_sum * keep);
            self.quality_weight = flush(self.quality_weight * keep);
            self.latency_samples = flush(self.latency_samples * gap.latency_keep);
            self.at = now;
        }
        gap
    }

    fn observe_latency(&mut self, now: Ticks, ms: f64, gap: Gap, params: &Params) {
        match self.latency {
            None => self.latency = Some(LatencyEwma { ms, at: now }),
            Some(old) if ms >= old.ms => self.raise_latency(now, old, ms, gap, params),
            Some(old) => {
                let stale = gap.latency_keep_since(old.at, now, params);
                self.latency = Some(old.toward(now, ms, params.latency_fall, stale));
            }
        }
        // Latency evidence decays with the rest (`bring_to` ran first) and is capped alike.
        self.latency_samples = (self.latency_samples + 1.0).min(params.max_evidence);
    }

    fn raise_latency(&mut self, now: Ticks, old: LatencyEwma, ms: f64, gap: Gap, params: &Params) {
        let stale = gap.latency_keep_since(old.at, now, params);
        self.latency = Some(old.toward(now, ms, params.latency_rise, stale));
    }

    pub(crate) fn record_success(
        &mut self,
        now: Ticks,
        latency_ms: f64,
        tokens: u64,
        params: &Params,
    ) {
        let gap = self.bring_to(now, params);
        self.successes += 1.0;
        cap_pair(&mut self.successes, &mut self.failures, params.max_evidence);
        self.observe_latency(now, latency_ms, gap, params);
        self.success_count += 1;
        self.tokens = self.tokens.saturating_add(tokens);
        self.total_latency_ms += latency_ms;
        self.last_success = Some(now);
    }

    pub(crate) fn record_failure(
        &mut self,
        now: Ticks,
        kind: ErrorKind,
        latency_ms: f64,
        params: &Params,
    ) {
        let gap = self.bring_to(now, params);
        self.failures += params.failure_weights.weight(kind);
        cap_pair(&mut self.successes, &mut self.failures, params.max_evidence);
        // A slow failure is evidence of slowness; a fast one (a 429 in 40 ms) is no evidence
        // of speed. So a failure only raises the estimate, only a timeout starts one, and
        // neither counts as a latency sample (more samples would pull the speed away from
        // the prior, which a faster history must never do to a score).
        match self.latency {
            Some(old) if latency_ms > old.ms => {
                self.raise_latency(now, old, latency_ms, gap, params);
            }
            None if kind == ErrorKind::Timeout => {
                self.latency = Some(LatencyEwma { ms: latency_ms, at: now });
            }
            Some(_) | None => {}
        }
        self.fail_count += 1;
        self.last_error = Some(now);
        self.last_error_kind = Some(kind);
    }

    pub(crate) fn record_quality(&mut self, now: Ticks, quality: f64, params: &Params) {
        let _ = self.bring_to(now, params);
        self.quality_sum += quality;
        self.quality_weight += 1.0;
        // Bound the number of judgements, keeping their mean.
        if self.quality_weight > params.max_evidence {
            let scale = params.max_evidence / self.quality_weight;
            self.quality_sum = flush(self.quality_sum * scale);
            self.quality_weight = params.max_evidence;
        }
    }

    /// The statistics as seen at `now`, without changing them.
    pub(crate) fn view(&self, now: Ticks, params: &Params) -> View {
        let keep = params.decay(now - self.at);
        let prior = &params.prior;
        let quality_weight = self.quality_weight * keep;
        let quality = (self.quality_sum * keep + prior.strength * prior.quality)
            / (quality_weight + prior.strength);
        // The prior counts as one success at first sight: a new candidate whose first call
        // hit a rate limit is not marked stale at once, and one that never succeeds fades.
        let observed = match self.last_success {
            Some(at) => params.recency(now - at),
            None => prior.recency * params.recency(now - self.first_seen),
        };
        // Recency is blended with its prior by the evidence still held, as speed and quality
        // are: a candidate left alone until its outcomes have faded is again as fresh as a
        // new one, so exploration tries it again. Without this a stale candidate could
        // never outscore a busy, reliable one (recency alone outweighs any reliability
        // draw), and a provider that recovered would never get traffic back.
        let alpha = prior.successes + self.successes * keep;
        let beta = prior.failures + self.failures * keep;
        let evidence = (self.successes + self.failures) * keep;
        let held = evidence / (evidence + prior.strength);
        let recency = held * observed + (1.0 - held) * prior.recency;
        View {
            alpha,
            beta,
            quality: quality.clamp(0.0, 1.0),
            latency_ms: self.latency.map(|latency| latency.ms),
            latency_samples: self.latency_samples * params.latency_decay(now - self.at),
            recency: recency.clamp(0.0, 1.0),
        }
    }
}

impl View {
    /// A candidate nothing is known about.
    pub(crate) fn untried(prior: &Prior) -> Self {
        Self {
            alpha: prior.successes,
            beta: prior.failures,
            quality: prior.quality,
            latency_ms: None,
            latency_samples: 0.0,
            recency: prior.recency,
        }
    }

    /// The posterior mean of reliability.
    pub(crate) fn reliability(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// Speed among candidates whose lowest latency estimate is `fastest_ms`: the observed
    /// ratio fastest/own, pulled toward the prior by how little latency evidence there is.
    pub(crate) fn speed(&self, fastest_ms: f64, prior: &Prior) -> f64 {
        speed_with(self.latency_samples, self.latency_ms, fastest_ms, prior)
    }
}

/// Speed from `latency_ms` (an estimate or an exploration draw) among candidates whose lowest
/// is `fastest_ms`: the observed ratio fastest/own, pulled toward the prior by how little
/// latency evidence (`latency_samples`) there is.
pub(crate) fn speed_with(
    latency_samples: f64,
    latency_ms: Option<f64>,
    fastest_ms: f64,
    prior: &Prior,
) -> f64 {
    let observed = match latency_ms {
        // Sub-microsecond latencies are clamped so a zero cannot divide.
        Some(ms) => fastest_ms.max(MIN_LATENCY_MS) / ms.max(MIN_LATENCY_MS),
        None => return prior.speed,
    };
    let speed = (latency_samples * observed + prior.strength * prior.speed)
        / (latency_samples + prior.strength);
    speed.clamp(0.0, 1.0)
}

/// Latencies below one microsecond count as one microsecond.
const MIN_LATENCY_MS: f64 = 1e-3;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use switchyard_core::LimitScope;

    use super::*;

    const SECOND: Ticks = 1_000_000_000;

    fn params() -> Params {
        Params::new(&ScoreConfig::default())
    }

    #[test]
    fn evidence_halves_in_one_half_life() {
        let params = params();
        let half_life = ScoreConfig::default().half_life.as_nanos() as Ticks;
        assert!((params.decay(half_life) - 0.5).abs() < 1e-12);
        assert_eq!(params.decay(0), 1.0);
        assert_eq!(params.decay(-5), 1.0, "time never runs back");
    }

    fn latency_ms(stats: &Stats) -> f64 {
        stats.latency.map_or(f64::NAN, |latency| latency.ms)
    }

    #[test]
    fn latency_rises_fast_on_a_spike_falls_slowly_and_forgets_after_a_silence() {
        let params = params();
        let mut stats = Stats::new(0);
        stats.record_success(0, 1_000.0, 10, &params);
        assert_eq!(latency_ms(&stats), 1_000.0, "the first sample is the estimate");
        stats.record_success(SECOND, 5_000.0, 10, &params);
        let spiked = latency_ms(&stats);
        assert!(spiked > 1_990.0 && spiked < 2_100.0, "a quarter of the gap at once: {spiked}");
        stats.record_success(2 * SECOND, 1_000.0, 10, &params);
        let fallen = latency_ms(&stats);
        assert!(fallen < spiked && fallen > 0.8 * spiked, "a tenth of the gap: {fallen}");
        stats.record_success(3_600 * SECOND, 1_000.0, 10, &params);
        assert!(stats.latency_samples < 2.0, "and its evidence is mostly gone");
        assert!(latency_ms(&stats) < 1_001.0, "an hour of silence forgets: {}", latency_ms(&stats));
        assert_eq!(stats.tokens, 40);
        assert_eq!(stats.success_count, 4);
        assert!((stats.total_latency_ms - 8_000.0).abs() < 1e-9);
    }

    #[test]
    fn fast_failures_say_nothing_of_speed_but_timeouts_do() {
        let params = params();
        let mut stats = Stats::new(0);
        stats.record_failure(
            0,
            ErrorKind::RateLimited { scope: LimitScope::Minute },
            40.0,
            &params,
        );
        assert_eq!(stats.latency, None);
        stats.record_failure(SECOND, ErrorKind::Timeout, 30_000.0, &params);
        assert_eq!(latency_ms(&stats), 30_000.0);
        stats.record_failure(2 * SECOND, ErrorKind::ServerError, 10.0, &params);
        assert_eq!(latency_ms(&stats), 30_000.0);
        assert_eq!(stats.fail_count, 3);
        assert!(
            (stats.failures - (0.1 * params.decay(2 * SECOND) + 0.8 * params.decay(SECOND) + 0.8))
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn long_gone_evidence_is_zero_not_subnormal() {
        let params = params();
        let half_life = ScoreConfig::default().half_life.as_nanos() as Ticks;
        assert_eq!(params.decay(40 * half_life), 0.0);
        assert!(params.decay(39 * half_life) > 0.0);
        let mut stats = Stats::new(0);
        stats.record_failure(0, ErrorKind::ServerError, 100.0, &params);
        // Ten thousand successes in a row scale the one failure down past 1e-12.
        for _ in 0..10_000 {
            stats.record_success(0, 100.0, 0, &params);
        }
        assert_eq!(stats.failures, 0.0);
        for value in [stats.successes, stats.quality_sum, stats.latency_samples] {
            assert!(value == 0.0 || value.is_normal(), "{value}");
        }
        let view = stats.view(100 * half_life, &params);
        assert_eq!((view.alpha, view.beta), (params.prior.successes, params.prior.failures));
    }

    #[test]
    fn evidence_is_capped_keeping_its_ratio() {
        let params = params();
        let mut stats = Stats::new(0);
        for _ in 0..300 {
            stats.record_success(0, 100.0, 0, &params);
        }
        for _ in 0..100 {
            stats.record_failure(0, ErrorKind::ServerError, 100.0, &params);
        }
        assert!((stats.successes + stats.failures - params.max_evidence).abs() < 1e-9);
        for _ in 0..500 {
            stats.record_quality(0, 0.25, &params);
        }
        assert!((stats.quality_weight - params.max_evidence).abs() < 1e-9);
        assert!((stats.quality_sum / stats.quality_weight - 0.25).abs() < 1e-12);
        assert!(stats.latency_samples <= params.max_evidence);
    }

    /// The recency the view should show: the observed recency blended with the prior by the
    /// evidence still held.
    fn blended(stats: &Stats, now: Ticks, observed: f64, params: &Params) -> f64 {
        let evidence = (stats.successes + stats.failures) * params.decay(now - stats.at);
        let held = evidence / (evidence + params.prior.strength);
        held * observed + (1.0 - held) * params.prior.recency
    }

    #[test]
    fn recency_fades_from_first_sight_until_a_success_then_from_the_last_success() {
        let params = params();
        let mut stats = Stats::new(0);
        assert_eq!(stats.view(0, &params).recency, params.prior.recency);
        stats.record_failure(0, ErrorKind::ServerError, 100.0, &params);
        assert_eq!(stats.view(0, &params).recency, params.prior.recency, "not stale at once");
        let half = ScoreConfig::default().recency_half_life.as_nanos() as Ticks;
        let fading = stats.view(half, &params).recency;
        let expected = blended(&stats, half, 0.5 * params.prior.recency, &params);
        assert!((fading - expected).abs() < 1e-12, "{fading} vs {expected}");
        assert!(fading < params.prior.recency);
        stats.record_success(half, 100.0, 0, &params);
        assert_eq!(stats.view(half, &params).recency, 1.0);
        let later = stats.view(2 * half, &params).recency;
        assert!((later - blended(&stats, 2 * half, 0.5, &params)).abs() < 1e-12, "{later}");
    }

    #[test]
    fn a_candidate_left_alone_until_its_evidence_fades_is_as_fresh_as_a_new_one() {
        let params = params();
        let mut stats = Stats::new(0);
        for _ in 0..40 {
            stats.record_failure(0, ErrorKind::ServerError, 100.0, &params);
        }
        let hour = 3_600 * SECOND;
        let dip = stats.view(hour, &params).recency;
        let faded = stats.view(12 * hour, &params).recency;
        assert!(dip < 0.7, "a failing candidate looks stale for a while: {dip}");
        assert!(faded > 0.99, "once its failures have faded it is fresh again: {faded}");
        let view = stats.view(12 * hour, &params);
        assert!(view.beta - params.prior.failures < 1e-3, "and its failures are gone");
    }

    proptest! {
        #[test]
        fn decay_is_monotone_in_elapsed_time(a in 0i64..10_000 * SECOND, b in 0i64..10_000 * SECOND) {
            let params = params();
            let (early, late) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(params.decay(late) <= params.decay(early));
            prop_assert!(params.recency(late) <= params.recency(early));
            let mut stats = Stats::new(0);
            stats.record_success(0, 500.0, 1, &params);
            stats.record_failure(0, ErrorKind::Overloaded, 500.0, &params);
            stats.record_quality(0, 0.9, &params);
            let (then, later) = (stats.view(early, &params), stats.view(late, &params));
            // Evidence only fades; the posterior drifts back toward the prior.
            prop_assert!(later.alpha <= then.alpha && later.beta <= then.beta);
            prop_assert!(later.latency_samples <= then.latency_samples);
            // Recency stays between what was observed and the prior it drifts back to.
            let observed_later = params.recency(late);
            let low = observed_later.min(params.prior.recency) - 1e-12;
            prop_assert!(later.recency >= low && later.recency <= params.prior.recency.max(1.0));
        }

        #[test]
        fn the_latency_estimate_never_leaves_the_range_of_its_samples(
            samples in proptest::collection::vec((1u64..60_000, 0u64..100), 1..50)
        ) {
            let params = params();
            let mut stats = Stats::new(0);
            let mut now = 0;
            for &(ms, gap_secs) in &samples {
                now += Duration::from_secs(gap_secs).as_nanos() as Ticks;
                stats.record_success(now, ms as f64, 0, &params);
            }
            let low = samples.iter().map(|sample| sample.0).min().unwrap_or(0) as f64;
            let high = samples.iter().map(|sample| sample.0).max().unwrap_or(0) as f64;
            let estimate = stats.latency.map_or(0.0, |latency| latency.ms);
            prop_assert!(estimate >= low - 1e-6 && estimate <= high + 1e-6);
        }
    }
}
