//! Learned scores survive a restart through the SQLite store.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{Candidate, ErrorKind, ManualClock};
use switchyard_score::{AdaptiveScorer, Outcome, Scorer, StatsStore};
use switchyard_store::SqliteStore;

fn candidates() -> Vec<Candidate> {
    vec![
        Candidate::new("groq", "groq-1", "llama-3.3-70b-versatile"),
        Candidate::new("groq", "groq-2", "llama-3.3-70b-versatile"),
        Candidate::new("gemini", "g1", "gemini-2.0-flash"),
    ]
}

#[test]
fn scores_are_identical_after_the_store_is_reopened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::default();
    let scorer = AdaptiveScorer::new(Arc::new(clock.clone()));
    let candidates = candidates();
    for round in 0..30u64 {
        scorer.record(
            &candidates[0],
            Outcome::Success { latency: Duration::from_millis(900 + round), tokens: 40 },
        );
        if round % 3 == 0 {
            scorer.record(
                &candidates[1],
                Outcome::Failure {
                    kind: ErrorKind::ServerError,
                    latency: Duration::from_millis(300),
                },
            );
        } else {
            scorer.record(
                &candidates[1],
                Outcome::Success { latency: Duration::from_millis(1_400), tokens: 40 },
            );
        }
        clock.advance(Duration::from_secs(7));
    }
    scorer.record_quality(&candidates[0], 0.8).expect("quality in range");
    let before = scorer.score(&candidates);

    {
        let mut store = SqliteStore::open(&path).expect("store opens");
        assert_eq!(store.load().expect("loads"), None, "nothing saved yet");
        assert_eq!(store.save_from(&scorer).expect("saves"), 2);
    }
    drop(scorer);

    // Another process: a fresh scorer on a clock showing the same time.
    let restarted = ManualClock::default();
    restarted.set_elapsed(clock.elapsed());
    let restored = AdaptiveScorer::new(Arc::new(restarted.clone()));
    let mut store = SqliteStore::open(&path).expect("store reopens");
    assert_eq!(store.restore_into(&restored).expect("restores"), 2);
    assert_eq!(restored.score(&candidates), before, "bit-identical scores");

    // A second save replaces the first.
    restored.record(
        &candidates[2],
        Outcome::Success { latency: Duration::from_millis(500), tokens: 10 },
    );
    store.save_from(&restored).expect("saves again");
    let reloaded = store.load().expect("loads").expect("a snapshot");
    assert_eq!(reloaded.len(), 3);
}

#[test]
fn a_damaged_snapshot_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).expect("store opens"));
    let conn = rusqlite::Connection::open(&path).expect("raw connection");
    conn.execute(
        "INSERT INTO score_snapshot (id, snapshot, n_candidates) VALUES (1, '{not json', 0)",
        [],
    )
    .expect("raw insert");
    drop(conn);
    let mut store = SqliteStore::open(&path).expect("store opens");
    let error = store.load().expect_err("damaged");
    assert!(
        matches!(
            error,
            switchyard_score::ScoreError::Json { .. }
                | switchyard_score::ScoreError::InvalidSnapshot { .. }
        ),
        "{error:?}"
    );
}
