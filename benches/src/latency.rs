//! Latency samples and their summary, as the end-to-end client reports them: percentiles by
//! the nearest-rank method over every sample (no histogram buckets), so a p99 over 2,000
//! requests is the 1,980th fastest request, not an interpolation.

use std::time::Duration;

use serde_json::{Value, json};

/// The `q`-quantile (0.0..=1.0) of `sorted` by nearest rank: the smallest sample such that at
/// least `q` of all samples are at or below it. `None` for no samples.
///
/// # Panics
/// When `sorted` is not sorted ascending (checked in debug builds only).
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    debug_assert!(sorted.is_sorted(), "percentile needs sorted samples");
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    // Nearest rank: ceil(q * n), 1-based; q = 0 is the minimum.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "q * n is in 0..=n, far below 2^52"
    )]
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// The figures of one target's samples, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub n_samples: usize,
    /// The median.
    pub p50_us: f64,
    /// The 90th percentile.
    pub p90_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The mean.
    pub mean_us: f64,
    /// The slowest.
    pub max_us: f64,
}

impl Summary {
    /// Summarises `samples` (any order). `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let total: Duration = sorted.iter().sum();
        #[expect(clippy::cast_precision_loss, reason = "a sample count is far below 2^52")]
        let mean_us = micros(total) / sorted.len().max(1) as f64;
        Some(Self {
            n_samples: sorted.len(),
            p50_us: micros(percentile(&sorted, 0.50)?),
            p90_us: micros(percentile(&sorted, 0.90)?),
            p99_us: micros(percentile(&sorted, 0.99)?),
            mean_us,
            max_us: micros(*sorted.last()?),
        })
    }

    /// As JSON, the shape `cargo xtask bench e2e` reads.
    pub fn to_json(&self) -> Value {
        json!({
            "n_samples": self.n_samples,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "mean_us": self.mean_us,
            "max_us": self.max_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_micros(v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let sorted = us(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 0.50), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&sorted, 0.991), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_micros(1)));
        assert_eq!(percentile(&sorted, 1.0), Some(Duration::from_micros(100)));
    }

    #[test]
    fn p99_of_two_thousand_is_the_1980th() {
        let sorted = us(&(1..=2000).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_micros(1980)));
    }

    #[test]
    fn no_samples_no_percentile() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let summary = Summary::of(&us(&[40, 10, 30, 20])).expect("four samples");
        assert_eq!(summary.n_samples, 4);
        assert!((summary.p50_us - 20.0).abs() < 1e-9, "{summary:?}");
        assert!((summary.p99_us - 40.0).abs() < 1e-9, "{summary:?}");
        assert!((summary.mean_us - 25.0).abs() < 1e-9, "{summary:?}");
        assert!((summary.max_us - 40.0).abs() < 1e-9, "{summary:?}");
        assert_eq!(summary.to_json()["p90_us"], 40.0);
    }
}
