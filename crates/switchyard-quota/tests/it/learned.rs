//! Limits nobody declared, learned from 429s: inferred from what the window served,
//! admitted against, corrected both ways, shared by a quota group, saved and restored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{
    Clock, LimitReading, LimitScope, LimitUnit, ManualClock, RateLimitSnapshot, Usage,
};
use switchyard_quota::{
    DayBoundary, KeyState, LearnedKind, Limit, LimitSummary, MemoryLedger, ModelQuota,
    ProviderQuota, QuotaConfig, QuotaGroup, Refusal,
};

use crate::support::*;

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A ledger that is told no limits at all.
fn undeclared(clock: &ManualClock) -> MemoryLedger {
    ledger_with(clock, Vec::new())
}

/// The learned limits of candidate (`key`, `m`) of provider `p`.
fn learned_of(ledger: &MemoryLedger, key: &str) -> Vec<LimitSummary> {
    ledger
        .summary_now(&"p".into())
        .keys
        .into_iter()
        .filter(|summary| summary.key.as_str() == key)
        .flat_map(|summary| summary.limits)
        .filter(|limit| limit.learned.is_some())
        .collect()
}

/// `n` calls one second apart, each served; the clock ends at the last.
fn serve(ledger: &MemoryLedger, clock: &ManualClock, key: &str, n: usize) {
    let candidate = candidate("p", key, "m");
    for idx in 0..n {
        if idx > 0 {
            clock.advance(secs(1));
        }
        assert!(call(ledger, &candidate, 1), "call on {key} admitted");
    }
}

fn after(start: DateTime<Utc>, elapsed: Duration) -> DateTime<Utc> {
    start + chrono::Duration::from_std(elapsed).expect("small")
}

#[test]
fn the_first_429_after_four_served_teaches_four_over_the_window_its_reset_implies() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let start = clock.utc();
    serve(&ledger, &clock, "k", 4); // at 0, 1, 2, 3 s
    clock.set_utc(after(start, millis(3_500)));
    // The oldest served request (at 0 s) leaves the provider's window at 5 s.
    ledger.record_error_now(
        &candidate("p", "k", "m"),
        &rate_limited(LimitScope::Minute, Some(millis(1_500))),
    );
    let learned = learned_of(&ledger, "k");
    assert_eq!(learned.len(), 1);
    let limit = &learned[0];
    assert_eq!((limit.limit, limit.used), (4, 4));
    assert_eq!(limit.limit_name, "requests/learned-sliding-5000ms");
    let evidence = limit.learned.as_ref().expect("learned");
    assert_eq!(evidence.kind, LearnedKind::Sliding);
    assert_eq!(evidence.from_accepted, 4);
    assert_eq!(evidence.window_ms, 5_000);
    assert_eq!(evidence.hint.as_deref(), Some("retry after 1.5s"));
    assert_eq!(evidence.learned_at, after(start, millis(3_500)));
}

#[test]
fn a_key_is_not_retried_before_its_learned_window_frees() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    serve(&ledger, &clock, "k", 4);
    clock.set_utc(after(start, millis(3_500)));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(millis(1_500))));
    clock.set_utc(after(start, millis(4_900)));
    assert!(!call(&ledger, &key, 1), "the cooldown and the window hold it until 5 s");
    clock.set_utc(after(start, millis(5_001)));
    assert!(call(&ledger, &key, 1), "the request of 0 s has left the window");
    // Four in the window again (1, 2, 3 and 5 s): the next room is when 1 s leaves, at 6 s.
    clock.set_utc(after(start, millis(5_500)));
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(
        reason,
        Refusal::Limit {
            unit: switchyard_quota::Unit::Requests,
            limit: "requests/learned-sliding-5000ms".into()
        }
    );
    assert_eq!(until, Some(after(start, millis(6_000))));
    clock.set_utc(after(start, millis(6_001)));
    assert!(call(&ledger, &key, 1));
}

#[test]
fn with_no_hint_the_cooldown_is_the_learned_windows_remaining_time_not_90s() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    serve(&ledger, &clock, "k", 3); // at 0, 1, 2 s
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, None));
    // Nothing says how long the window is: the nominal minute, which frees at 60 s.
    assert_eq!(
        ledger.status_now(&key).state,
        KeyState::CoolingDown { until: after(start, secs(60)) }
    );
    let learned = learned_of(&ledger, "k");
    assert_eq!(
        (learned[0].limit, learned[0].limit_name.as_str()),
        (3, "requests/learned-sliding-60000ms")
    );
    // A key that served nothing has no window to infer: the configured schedule (90 s).
    let fresh = candidate("p", "fresh", "m");
    let now = clock.utc();
    ledger.record_error_now(&fresh, &rate_limited(LimitScope::Minute, None));
    assert_eq!(
        ledger.status_now(&fresh).state,
        KeyState::CoolingDown { until: after(now, secs(90)) }
    );
    assert!(learned_of(&ledger, "fresh").is_empty());
}

#[test]
fn a_learned_limit_is_raised_by_more_successes_in_a_window_and_by_headers() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    // Five admitted together; three served, the fourth answers 429, the fifth is in flight.
    let permits: Vec<_> =
        (0..5).map(|_| ledger.try_admit(&key, one()).expect("admitted")).collect();
    let mut permits = permits.into_iter();
    for permit in permits.by_ref().take(3) {
        ledger.settle_now(permit, &Usage::new(1, 0));
    }
    clock.advance(millis(200));
    let failed = permits.next().expect("fourth");
    ledger.release_now(failed);
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(10))));
    assert_eq!(learned_of(&ledger, "k")[0].limit, 3);
    // The fifth succeeds: four were served in one window, so the limit is at least four.
    ledger.settle_now(permits.next().expect("fifth"), &Usage::new(1, 0));
    let raised = &learned_of(&ledger, "k")[0];
    assert_eq!(raised.limit, 4);
    assert!(raised.learned.as_ref().expect("learned").source.starts_with("raised"));
    // A header says six more remain beside the four counted: room for ten.
    let snapshot = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: None,
            remaining: Some(6),
            reset: None,
        }],
        retry_after: None,
    };
    ledger.observe_now(&key, &snapshot);
    assert_eq!(learned_of(&ledger, "k")[0].limit, 10);
}

#[test]
fn a_further_429_lowers_the_learned_limit() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    serve(&ledger, &clock, "k", 4);
    clock.set_utc(after(start, millis(3_500)));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(millis(1_500))));
    // A fresh window: at 20 s the provider refuses the third (someone else spends the key).
    clock.set_utc(after(start, secs(20)));
    serve(&ledger, &clock, "k", 2); // at 20, 21 s
    // Its reset (24.5 s) is on no grid with the first (5 s): the window stays sliding.
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(millis(2_500))));
    let learned = &learned_of(&ledger, "k")[0];
    assert_eq!(learned.limit, 2);
    let evidence = learned.learned.as_ref().expect("learned");
    assert_eq!(evidence.corrections, 1);
}

#[test]
fn keys_of_one_quota_group_learn_one_limit() {
    let clock = ManualClock::default();
    let config = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "p".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(Vec::new())],
        }],
        groups: vec![QuotaGroup {
            name: "org".into(),
            provider: "p".into(),
            keys: vec!["a".into(), "b".into()],
        }],
        ..QuotaConfig::default()
    };
    let ledger = ledger_config(&clock, config);
    serve(&ledger, &clock, "a", 2);
    serve(&ledger, &clock, "b", 2);
    ledger.record_error_now(
        &candidate("p", "b", "m"),
        &rate_limited(LimitScope::Minute, Some(secs(1))),
    );
    let (a, b) = (learned_of(&ledger, "a"), learned_of(&ledger, "b"));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!((a[0].limit, b[0].limit), (4, 4), "the group served four: one limit for both");
}

#[test]
fn declared_limits_win_over_learning() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(100)]);
    serve(&ledger, &clock, "k", 4);
    let start = clock.utc();
    ledger.record_error_now(&candidate("p", "k", "m"), &rate_limited(LimitScope::Minute, None));
    assert!(learned_of(&ledger, "k").is_empty());
    // The schedule's first step, as before learning existed.
    assert_eq!(
        ledger.status_now(&candidate("p", "k", "m")).state,
        KeyState::CoolingDown { until: after(start, secs(90)) }
    );
    // A daily 429 is still learned: nothing declares a day.
    ledger.record_error_now(
        &candidate("p", "k", "m"),
        &rate_limited(LimitScope::Day, Some(secs(600))),
    );
    let day = learned_of(&ledger, "k");
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].learned.as_ref().expect("learned").scope, LimitScope::Day);
}

#[test]
fn a_learned_limit_survives_a_restart() {
    let clock = ManualClock::default();
    let before = undeclared(&clock);
    let start = clock.utc();
    serve(&before, &clock, "k", 4);
    clock.set_utc(after(start, millis(3_500)));
    before.record_error_now(
        &candidate("p", "k", "m"),
        &rate_limited(LimitScope::Minute, Some(millis(1_500))),
    );
    let snapshot = before.export(true);
    let saved = &snapshot.buckets[0].learned;
    assert_eq!(saved.len(), 1);
    drop(before);
    clock.advance(secs(30));
    let after_restart = undeclared(&clock);
    after_restart.restore(&snapshot);
    after_restart.register(&candidate("p", "k", "m"));
    let learned = learned_of(&after_restart, "k");
    assert_eq!(learned.len(), 1, "restored: {learned:?}");
    assert_eq!(learned[0].limit, 4);
    assert_eq!(learned[0].learned.as_ref(), Some(&saved[0]));
    serve(&after_restart, &clock, "k", 4);
    clock.advance(secs(1));
    assert!(
        !call(&after_restart, &candidate("p", "k", "m"), 1),
        "admits against the restored limit"
    );
    // A restored learned limit yields to one declared since.
    let declared = ledger_with(&clock, vec![Limit::per_minute(50)]);
    declared.restore(&snapshot);
    declared.register(&candidate("p", "k", "m"));
    assert!(learned_of(&declared, "k").is_empty());
}

#[test]
fn resets_a_window_apart_teach_an_unaligned_fixed_window() {
    // The provider counts 2 requests per fixed 4 s window, boundaries at 2.7 s + 4k.
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    let at = |ms: u64| after(start, millis(ms));
    for ms in [3_000, 3_500] {
        clock.set_utc(at(ms));
        assert!(call(&ledger, &key, 1));
    }
    clock.set_utc(at(3_600));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(millis(3_100))));
    let first = &learned_of(&ledger, "k")[0];
    assert_eq!(first.learned.as_ref().expect("learned").kind, LearnedKind::Sliding);
    // Sliding 2 per 3.7 s admits at 6.7 and 7.2 s; the provider's window [6.7, 10.7) takes
    // both, then refuses at 10.4 s with a reset at 10.7 s: 4 s after the first reset.
    for ms in [6_700, 7_200] {
        clock.set_utc(at(ms));
        assert!(call(&ledger, &key, 1), "admitted at {ms} ms");
    }
    clock.set_utc(at(10_400));
    let refused = ledger.try_admit(&key, one()).expect("the sliding model admits at 10.4 s");
    ledger.release_now(refused);
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(millis(300))));
    let fixed = &learned_of(&ledger, "k")[0];
    let evidence = fixed.learned.as_ref().expect("learned");
    assert_eq!(evidence.kind, LearnedKind::Fixed);
    assert_eq!(evidence.window_ms, 4_000);
    assert_eq!(fixed.limit, 2);
    assert_eq!(evidence.boundary, Some(at(10_700)));
    // At the boundary the whole window's capacity is there at once.
    clock.set_utc(at(10_700));
    assert!(call(&ledger, &key, 1));
    assert!(call(&ledger, &key, 1));
    assert!(!call(&ledger, &key, 1));
}

#[test]
fn a_reset_on_a_calendar_minute_is_a_fixed_window_at_once() {
    let clock = ManualClock::default();
    clock.set_utc(at("2026-03-02T10:00:20Z"));
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    serve(&ledger, &clock, "k", 3);
    let mut error = rate_limited(LimitScope::Minute, None);
    error.resets_at = Some(at("2026-03-02T10:01:00Z"));
    ledger.record_error_now(&key, &error);
    let learned = &learned_of(&ledger, "k")[0];
    let evidence = learned.learned.as_ref().expect("learned");
    assert_eq!((evidence.kind, evidence.window_ms, learned.limit), (LearnedKind::Fixed, 60_000, 3));
    clock.set_utc(at("2026-03-02T10:01:00Z"));
    for _ in 0..3 {
        assert!(call(&ledger, &key, 1), "a new calendar minute");
    }
    assert!(!call(&ledger, &key, 1));
}

#[test]
fn a_header_claiming_endless_room_raises_a_learned_limit_only_to_the_cap() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    serve(&ledger, &clock, "k", 2);
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(1_000_000))));
    let learned = &learned_of(&ledger, "k")[0];
    // A reset far beyond the nominal minute says nothing more: the window stays a minute.
    assert_eq!(learned.limit_name, "requests/learned-sliding-60000ms");
    let snapshot = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: None,
            remaining: Some(u64::MAX),
            reset: None,
        }],
        retry_after: None,
    };
    ledger.observe_now(&key, &snapshot);
    assert_eq!(learned_of(&ledger, "k")[0].limit, switchyard_quota::MAX_LEARNED);
}

#[test]
fn a_key_whose_headers_stated_its_limit_learns_nothing_from_a_later_429() {
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    serve(&ledger, &clock, "k", 2);
    let stated = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: Some(2),
            remaining: Some(0),
            reset: Some(switchyard_core::Reset::After(secs(2))),
        }],
        retry_after: None,
    };
    ledger.observe_now(&key, &stated);
    // The header's gate has passed; a 429 now is for the headers to explain, not to learn.
    clock.advance(secs(3));
    assert!(call(&ledger, &key, 1));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(1))));
    assert!(learned_of(&ledger, "k").is_empty());
}

#[test]
fn a_limit_stated_only_by_the_429_itself_is_still_learned_and_admitted_against() {
    // Gemini's 429 body names its quota (`QuotaFailure.quotaValue`) and its successes carry
    // no header: nothing will inform the next calls, so the window's count is learned.
    let clock = ManualClock::default();
    let ledger = undeclared(&clock);
    let key = candidate("p", "k", "m");
    serve(&ledger, &clock, "k", 5); // at 0, 1, 2, 3, 4 s
    clock.advance(secs(1));
    let mut error = rate_limited(LimitScope::Minute, Some(secs(40)));
    error.rate_limits = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: Some(5),
            remaining: Some(0),
            reset: Some(switchyard_core::Reset::After(secs(40))),
        }],
        retry_after: Some(secs(40)),
    };
    ledger.record_error_now(&key, &error);
    let learned = learned_of(&ledger, "k");
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert_eq!(learned[0].limit, 5);
    // The window frees at 45 s (the 429's reset): the first served request leaves it.
    assert_eq!(learned[0].learned.as_ref().map(|evidence| evidence.window_ms), Some(45_000));
    clock.advance(secs(39));
    assert!(!call(&ledger, &key, 1), "held until the reset");
    clock.advance(millis(1_500)); // 45.5 s: the call at 0 s left the window, 1..4 s are in it
    assert!(call(&ledger, &key, 1), "one place freed");
    assert!(!call(&ledger, &key, 1), "no burst past the learned five once the hold ended");
}
