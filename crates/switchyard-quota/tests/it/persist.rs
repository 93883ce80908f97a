//! Export and restore: what a durable store keeps across a restart.

use std::sync::Arc;

use chrono_tz::America::Los_Angeles;
use switchyard_core::{ErrorKind, LimitScope, ManualClock, ProviderError};
use switchyard_quota::{KeyState, Limit, MemoryLedger};

use crate::support::*;

fn limits() -> Vec<Limit> {
    vec![
        Limit::per_minute(10),
        Limit::requests_per_day(20, Los_Angeles),
        Limit::tokens_refill(1_000, secs(100)),
    ]
}

#[test]
fn a_restored_ledger_keeps_counts_and_states() {
    let clock = ManualClock::default();
    let before = ledger_with(&clock, limits());
    let key = candidate("p", "k", "m");
    for _ in 0..4 {
        assert!(call(&before, &key, 100));
    }
    let cooled = candidate("p", "cool", "m");
    before.record_error_now(&cooled, &rate_limited(LimitScope::Minute, Some(secs(300))));
    let invalid = candidate("p", "bad", "m");
    before.record_error_now(
        &invalid,
        &ProviderError::new(ErrorKind::InvalidKey, "p", "").with_status(401),
    );
    let snapshot = before.export(false);
    assert!(before.export(false).buckets.is_empty(), "an export clears the change marks");
    drop(before);

    clock.advance(secs(10));
    let after = ledger_with(&clock, limits());
    after.restore(&snapshot);
    // A restarted gateway registers its configured candidates; their counts are waiting.
    after.register(&key);
    let summary = after.summary_now(&"p".into());
    let row = summary.keys.iter().find(|row| row.key.as_str() == "k").expect("k restored");
    let used: Vec<u64> = row.limits.iter().map(|limit| limit.used).collect();
    // 400 tokens drain at 10 a second: 100 left after 10 s.
    assert_eq!(used, [4, 4, 300]);
    assert!(matches!(after.status_now(&cooled).state, KeyState::CoolingDown { .. }));
    assert_eq!(after.status_now(&invalid).state, KeyState::Invalid);
    let admitted: Vec<bool> = (0..7).map(|_| call(&after, &key, 1)).collect();
    assert_eq!(
        admitted,
        [true, true, true, true, true, true, false],
        "10 a minute, 4 already used"
    );
}

#[test]
fn a_restore_on_a_new_day_drops_yesterdays_count() {
    let clock = ManualClock::starting_at(at("2026-01-16T07:59:00Z")); // 23:59 Pacific
    let before =
        MemoryLedger::new(Arc::new(clock.clone()), switchyard_quota::QuotaConfig::default());
    drop(before);
    let before = ledger_with(&clock, vec![Limit::requests_per_day(5, Los_Angeles)]);
    let key = candidate("p", "k", "m");
    for _ in 0..5 {
        assert!(call(&before, &key, 1));
    }
    let snapshot = before.export(true);
    clock.set_utc(at("2026-01-16T08:00:01Z"));
    let after = ledger_with(&clock, vec![Limit::requests_per_day(5, Los_Angeles)]);
    after.restore(&snapshot);
    assert!(call(&after, &key, 1), "a new Pacific day");
}

#[test]
fn restored_sliding_counts_keep_their_place_in_the_window() {
    let clock = ManualClock::default();
    let before = ledger_with(&clock, vec![Limit::per_minute(3)]);
    let key = candidate("p", "k", "m");
    for _ in 0..3 {
        assert!(call(&before, &key, 1));
    }
    let snapshot = before.export(false);
    clock.advance(secs(30));
    let after = ledger_with(&clock, vec![Limit::per_minute(3)]);
    after.restore(&snapshot);
    assert!(!call(&after, &key, 1), "the minute is still full after the restart");
    clock.set_elapsed(secs(61));
    assert!(call(&after, &key, 1), "the counts leave when they would have without a restart");
}
