//! The [`Scorer`] boundary the facade holds as `Arc<dyn Scorer>`, what it is fed
//! ([`Outcome`]), and what a score is made of ([`Breakdown`]).

use std::cmp::Ordering;
use std::time::Duration;

use switchyard_core::{Candidate, ErrorKind};

use crate::{ScoreError, StatsSnapshot};

/// How one attempt of a candidate ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The candidate answered.
    Success {
        /// From sending the request to the last byte of the answer.
        latency: Duration,
        /// Tokens the call used, prompt and completion.
        tokens: u64,
    },
    /// The attempt failed.
    Failure {
        /// The classification; it decides how much the failure counts.
        kind: ErrorKind,
        /// How long the attempt took before it failed.
        latency: Duration,
    },
}

/// One candidate's score and the four components it is the weighted sum of, each in 0..=1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breakdown {
    /// The posterior mean of the success probability.
    pub reliability: f64,
    /// Latency relative to the fastest candidate compared (1 = the fastest).
    pub speed: f64,
    /// The quality estimate.
    pub quality: f64,
    /// How recent the last success is (1 = just now).
    pub recency: f64,
    /// The weighted sum, in 0..=1.
    pub score: f64,
}

/// Scores candidates from what happened to them, and learns from every outcome.
///
/// Scoring and recording run from many tasks at once; no method takes a global lock.
pub trait Scorer: Send + Sync + 'static {
    /// Learns from one attempt's outcome.
    fn record(&self, candidate: &Candidate, outcome: Outcome);

    /// Learns from a caller's judgement of an answer `candidate` gave, in 0..=1.
    ///
    /// # Errors
    /// [`ScoreError::QualityOutOfRange`] when `quality` is not within 0..=1; nothing is
    /// recorded then.
    fn record_quality(&self, candidate: &Candidate, quality: f64) -> Result<(), ScoreError>;

    /// The score of each candidate, in order, each in 0..=1. Deterministic: the same history
    /// at the same instant gives the same numbers. Speed is relative to the fastest of
    /// `candidates`, so a score is only comparable with the others of the same call.
    fn score(&self, candidates: &[Candidate]) -> Vec<f64>;

    /// One exploration draw per candidate: the score with its reliability drawn from its
    /// posterior instead of taken at the mean. Candidates with little evidence spread wide,
    /// so they sometimes win; the spread shrinks as evidence grows.
    fn explore(&self, candidates: &[Candidate]) -> Vec<f64>;

    /// Every candidate's statistics, in the JSON shape of [`StatsSnapshot`].
    fn export(&self) -> StatsSnapshot;

    /// Restores statistics, replacing those of every candidate in `snapshot` and keeping the
    /// others.
    ///
    /// # Errors
    /// [`ScoreError::InvalidSnapshot`] naming the first bad field; nothing is imported then.
    fn import(&self, snapshot: &StatsSnapshot) -> Result<(), ScoreError>;

    /// Indexes into `candidates`, best first by one [`explore`](Scorer::explore) draw.
    fn rank(&self, candidates: &[Candidate]) -> Vec<usize> {
        order_by_score(&self.explore(candidates))
    }

    /// The index of the candidate to try now (the best of one exploration draw), or `None`
    /// when `candidates` is empty.
    fn sample(&self, candidates: &[Candidate]) -> Option<usize> {
        best_index(&self.explore(candidates))
    }
}

fn _object_safe(_: &dyn Scorer) {} // the facade stores `Arc<dyn Scorer>`; keep that possible

/// Indexes of `scores`, highest first; equal scores keep their order.
pub fn order_by_score(scores: &[f64]) -> Vec<usize> {
    // Integer keys sort several times faster than float comparisons through a closure: the
    // score's descending total-order key, and the index to break ties stably. Up to 2^16
    // scores the index fits in the key's low bits, so the sort moves 64-bit words, not
    // 128-bit ones (half the bytes; 100 scores sort in about half the time). Scores that
    // differ only in those low bits then tie and stand by index; one pass puts such runs
    // (rare: scores a few ulps apart) back in the exact order.
    let Some(index_bits) = index_bits(scores.len()) else {
        let mut keys: Vec<u128> = scores
            .iter()
            .enumerate()
            .map(|(idx, &score)| (u128::from(descending_key(score)) << 64) | idx as u128)
            .collect();
        keys.sort_unstable();
        return keys.into_iter().map(|key| (key as u64) as usize).collect();
    };
    let low = (1u64 << index_bits) - 1;
    let mut keys: Vec<u64> = scores
        .iter()
        .enumerate()
        .map(|(idx, &score)| (descending_key(score) & !low) | idx as u64)
        .collect();
    keys.sort_unstable();
    let mut order: Vec<usize> = keys.iter().map(|&key| (key & low) as usize).collect();
    let mut start = 0;
    while start < keys.len() {
        let mut end = start + 1;
        while end < keys.len() && keys[end] & !low == keys[start] & !low {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_by_key(|&idx| (descending_key(scores[idx]), idx));
        }
        start = end;
    }
    order
}

/// The bits an index below `n` needs, when that leaves most of a 64-bit key to the score.
fn index_bits(n: usize) -> Option<u32> {
    let bits = usize::BITS - n.saturating_sub(1).leading_zeros();
    (bits <= 16).then_some(bits)
}

/// A key whose ascending order is `f64::total_cmp`'s descending order.
fn descending_key(score: f64) -> u64 {
    let bits = score.to_bits();
    // Total order as unsigned integers: negatives reversed below positives.
    let ascending = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    !ascending
}

/// The index of the highest score (the first of equals), or `None` when empty.
pub fn best_index(scores: &[f64]) -> Option<usize> {
    scores.iter().enumerate().min_by(|(_, a), (_, b)| descending(**a, **b)).map(|(idx, _)| idx)
}

fn descending(a: f64, b: f64) -> Ordering {
    b.total_cmp(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_matches_total_order_on_any_floats() {
        let scores = [0.5, -0.0, 0.0, f64::NAN, -1.0, 1.0, f64::INFINITY, -f64::NAN, 0.5];
        let mut expected: Vec<usize> = (0..scores.len()).collect();
        expected.sort_by(|&a, &b| descending(scores[a], scores[b]));
        assert_eq!(order_by_score(&scores), expected);
    }

    #[test]
    fn ranking_is_highest_first_and_stable() {
        assert_eq!(order_by_score(&[0.2, 0.9, 0.5, 0.9]), vec![1, 3, 2, 0]);
        assert_eq!(best_index(&[0.2, 0.9, 0.5, 0.9]), Some(1));
        assert_eq!(best_index(&[]), None);
        assert_eq!(order_by_score(&[]), Vec::<usize>::new());
        assert_eq!(order_by_score(&[0.3]), vec![0]);
    }

    /// The reference: a stable sort of the indexes by `f64::total_cmp`, highest first.
    fn reference_order(scores: &[f64]) -> Vec<usize> {
        let mut expected: Vec<usize> = (0..scores.len()).collect();
        expected.sort_by(|&a, &b| descending(scores[a], scores[b]));
        expected
    }

    #[test]
    fn scores_a_few_ulps_apart_keep_their_exact_order() {
        // 100 scores: values that differ only in the bits the index borrows, and exact ties.
        let base = 0.75f64.to_bits();
        let scores: Vec<f64> =
            (0..100u64).map(|idx| f64::from_bits(base + (idx * 37) % 11)).collect();
        assert_eq!(order_by_score(&scores), reference_order(&scores));
    }

    #[test]
    fn more_scores_than_the_short_keys_hold_sort_the_same() {
        let n = (1usize << 16) + 3;
        let scores: Vec<f64> = (0..n).map(|idx| ((idx * 7_919) % 1_000) as f64 / 999.0).collect();
        assert_eq!(index_bits(n), None);
        assert_eq!(order_by_score(&scores), reference_order(&scores));
    }

    proptest::proptest! {
        #[test]
        fn ranking_is_the_stable_total_order(
            bits in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..300),
            near in proptest::collection::vec(0u64..300, 0..300),
        ) {
            // Arbitrary floats (NaNs and infinities included) and clusters a few ulps apart.
            let mut scores: Vec<f64> = bits.into_iter().map(f64::from_bits).collect();
            scores.extend(near.into_iter().map(|ulps| f64::from_bits(0.5f64.to_bits() + ulps)));
            proptest::prop_assert_eq!(order_by_score(&scores), reference_order(&scores));
        }
    }
}
