//! What the scorer does with particular histories: the prior, failure weights, exploration.

use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope, ManualClock};
use switchyard_score::{AdaptiveScorer, ScoreConfig, Scorer};

use crate::support::{candidate, failure, scorer, scorer_with, success};

fn variance(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / values.len() as f64
}

#[test]
fn an_untried_candidate_scores_above_a_mediocre_one() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    for call in 0..40 {
        let outcome =
            if call % 4 == 0 { failure(ErrorKind::ServerError, 900) } else { success(900) };
        scorer.record(&candidate(0), outcome);
        clock.advance(Duration::from_secs(1));
    }
    let scores = scorer.score(&[candidate(0), candidate(1)]);
    assert!(scores[1] > scores[0], "{scores:?}");
}

#[test]
fn failures_count_by_kind() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    let kinds = [
        ErrorKind::BadRequest,
        ErrorKind::RateLimited { scope: LimitScope::Minute },
        ErrorKind::ServerError,
        ErrorKind::InvalidKey,
    ];
    for (idx, kind) in kinds.into_iter().enumerate() {
        for _ in 0..5 {
            scorer.record(&candidate(idx), success(500));
            scorer.record(&candidate(idx), failure(kind, 500));
        }
    }
    let candidates: Vec<_> = (0..kinds.len()).map(candidate).collect();
    let reliability: Vec<f64> =
        scorer.explain(&candidates).iter().map(|breakdown| breakdown.reliability).collect();
    assert!(reliability.windows(2).all(|pair| pair[0] > pair[1]), "{reliability:?}");
    let untouched = ScoreConfig::default().prior;
    let only_successes =
        (untouched.successes + 5.0) / (untouched.successes + untouched.failures + 5.0);
    assert!((reliability[0] - only_successes).abs() < 1e-12, "a bad request is the caller's fault");
}

#[test]
fn speed_is_relative_to_the_candidates_compared() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    for (idx, ms) in [(0, 1_000), (1, 2_000), (2, 20_000)] {
        for _ in 0..40 {
            scorer.record(&candidate(idx), success(ms));
        }
    }
    let pair = scorer.explain(&[candidate(1), candidate(2)]);
    let trio = scorer.explain(&[candidate(0), candidate(1), candidate(2)]);
    assert!(pair[0].speed > 0.99, "fastest of the two: {:?}", pair[0]);
    assert!((trio[1].speed - (40.0 * 0.5 + 1.0) / 41.0).abs() < 1e-9, "{:?}", trio[1]);
    assert!(trio[2].speed < 0.1, "{:?}", trio[2]);
}

#[test]
fn recency_rewards_a_recent_success_and_fades() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    scorer.record(&candidate(0), success(500));
    scorer.record(&candidate(1), success(500));
    clock.advance(Duration::from_secs(3_600));
    scorer.record(&candidate(1), success(500));
    let breakdown = scorer.explain(&[candidate(0), candidate(1)]);
    // One recency half-life (1 h) since candidate 0's only success: observed recency 0.5,
    // blended with the prior (1.0) by the evidence still held — one success decayed by two
    // 30-minute half-lives, 0.25, against the prior's strength of 1.
    let held = 0.25 / 1.25;
    let expected = held * 0.5 + (1.0 - held) * 1.0;
    assert!((breakdown[0].recency - expected).abs() < 1e-12, "{breakdown:?}");
    assert_eq!(breakdown[1].recency, 1.0);
    assert!(breakdown[1].score > breakdown[0].score);
}

#[test]
fn the_same_seed_explores_alike_and_another_seed_differently() {
    let draw = |seed: u64| {
        let clock = ManualClock::default();
        let scorer = AdaptiveScorer::try_new(
            std::sync::Arc::new(clock.clone()),
            ScoreConfig { seed: Some(seed), ..ScoreConfig::default() },
        )
        .expect("valid");
        let candidates: Vec<_> = (0..6).map(candidate).collect();
        for candidate in &candidates[..3] {
            scorer.record(candidate, success(700));
        }
        (0..20).map(|_| scorer.explore(&candidates)).collect::<Vec<_>>()
    };
    assert_eq!(draw(11), draw(11));
    assert_ne!(draw(11), draw(12));
}

#[test]
fn exploration_narrows_as_evidence_grows() {
    let clock = ManualClock::default();
    let scorer = scorer_with(&clock, ScoreConfig::default());
    for _ in 0..2 {
        scorer.record(&candidate(0), success(800));
    }
    for _ in 0..40 {
        scorer.record(&candidate(1), success(800));
    }
    // Each alone, so its speed is 1 in every draw and only the reliability draw varies.
    let little: Vec<f64> = (0..2_000).map(|_| scorer.explore(&[candidate(0)])[0]).collect();
    let much: Vec<f64> = (0..2_000).map(|_| scorer.explore(&[candidate(1)])[0]).collect();
    assert!(
        variance(&little) > 10.0 * variance(&much),
        "{} vs {}",
        variance(&little),
        variance(&much)
    );
    let candidates = [candidate(0), candidate(1)];
    // Deterministic scores do not move between draws.
    assert_eq!(scorer.score(&candidates), scorer.score(&candidates));
}

#[test]
fn rank_and_sample_agree_on_an_obvious_winner() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    for _ in 0..40 {
        scorer.record(&candidate(0), success(300));
        scorer.record(&candidate(1), failure(ErrorKind::InvalidKey, 300));
    }
    let candidates = [candidate(1), candidate(0)];
    for _ in 0..50 {
        assert_eq!(scorer.rank(&candidates), vec![1, 0]);
        assert_eq!(scorer.sample(&candidates), Some(1));
    }
    assert_eq!(scorer.sample(&[]), None);
}

#[test]
fn a_rate_limit_on_a_new_key_barely_moves_it_and_an_invalid_key_sinks_it() {
    let clock = ManualClock::default();
    let scorer = scorer(&clock);
    let untried = scorer.score(&[candidate(0)])[0];
    scorer.record(&candidate(1), failure(ErrorKind::RateLimited { scope: LimitScope::Minute }, 30));
    scorer.record(&candidate(2), failure(ErrorKind::InvalidKey, 30));
    let limited = scorer.score(&[candidate(1)])[0];
    let invalid = scorer.score(&[candidate(2)])[0];
    assert!(untried - limited < 0.02, "{untried} -> {limited}");
    assert!(untried - invalid > 0.1, "{untried} -> {invalid}");
}
