//! Many threads recording and scoring at once lose no update.

use std::sync::Arc;
use std::thread;

use switchyard_core::{ErrorKind, ManualClock};
use switchyard_score::Scorer;

use crate::support::{candidate, failure, scorer, success};

#[test]
fn concurrent_records_and_scores_lose_nothing() {
    const THREADS: usize = 4;
    const CALLS: usize = 5_000;
    let clock = ManualClock::default();
    let scorer: Arc<dyn Scorer> = Arc::new(scorer(&clock));
    let candidates: Vec<_> = (0..8).map(candidate).collect();
    thread::scope(|scope| {
        for thread_idx in 0..THREADS {
            let (scorer, candidates) = (Arc::clone(&scorer), candidates.clone());
            scope.spawn(move || {
                for call in 0..CALLS {
                    let who = &candidates[(call + thread_idx) % candidates.len()];
                    if call % 10 == 0 {
                        scorer.record(who, failure(ErrorKind::Timeout, 5_000));
                    } else {
                        scorer.record(who, success(100));
                    }
                    if call % 50 == 0 {
                        let scores = scorer.score(&candidates);
                        assert!(scores.iter().all(|score| (0.0..=1.0).contains(score)));
                        assert!(scorer.rank(&candidates).len() == candidates.len());
                    }
                }
            });
        }
    });
    let snapshot = scorer.export();
    let (successes, failures, tokens) = snapshot.entries().fold((0, 0, 0), |sum, (_, model)| {
        (sum.0 + model.success_count, sum.1 + model.fail_count, sum.2 + model.total_tokens_used)
    });
    let total = (THREADS * CALLS) as u64;
    assert_eq!(successes + failures, total);
    assert_eq!(failures, total / 10);
    assert_eq!(tokens, successes * 100);
}
