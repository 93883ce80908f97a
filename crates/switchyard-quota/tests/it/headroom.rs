//! Headroom: the fraction of a candidate's tightest known limit still free, for ranking.

use switchyard_core::{LimitReading, LimitScope, LimitUnit, ManualClock, RateLimitSnapshot};
use switchyard_quota::{Limit, QuotaConfig, QuotaGroup, QuotaLedger};

use crate::support::*;

#[test]
fn headroom_is_the_tightest_declared_limit_left() {
    let clock = ManualClock::default();
    let ledger = ledger_with(
        &clock,
        vec![Limit::requests_per(4, secs(10)), Limit::requests_per(10, secs(100))],
    );
    let key = candidate("p", "k", "m");
    assert_eq!(ledger.headroom(&key), None, "a candidate never admitted nor registered");
    ledger.register(&key);
    assert_eq!(ledger.headroom(&key), Some(1.0));
    assert!(call(&ledger, &key, 1));
    assert_eq!(ledger.headroom(&key), Some(0.75), "3 of 4 left beats 9 of 10");
    for _ in 0..3 {
        assert!(call(&ledger, &key, 1));
    }
    assert_eq!(ledger.headroom(&key), Some(0.0));
    // The 10 s window slides past; the 100 s one now binds (6 of 10 left).
    clock.advance(secs(11));
    assert_eq!(ledger.headroom(&key), Some(0.6));
}

#[test]
fn headroom_is_unknown_without_limits_until_a_header_states_one() {
    let clock = ManualClock::default();
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("p", "k", "m");
    assert_eq!(ledger.headroom(&key), None);
    let reading = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Minute,
        limit: Some(20),
        remaining: Some(5),
        reset: None,
    };
    ledger.observe_now(&key, &RateLimitSnapshot { readings: vec![reading], retry_after: None });
    assert_eq!(ledger.headroom(&key), Some(0.25));
    // The header's window passes (a minute without a stated reset): nothing known again.
    clock.advance(secs(61));
    assert_eq!(ledger.headroom(&key), None);
}

#[test]
fn keys_of_one_quota_group_read_one_headroom() {
    let clock = ManualClock::default();
    let mut config = ledger_with(&clock, vec![Limit::requests_per(4, secs(10))]).config().clone();
    config.groups = vec![QuotaGroup {
        name: "org".into(),
        provider: "p".into(),
        keys: vec!["a".into(), "b".into()],
    }];
    let ledger = ledger_config(&clock, config);
    let (a, b, c) = (candidate("p", "a", "m"), candidate("p", "b", "m"), candidate("p", "c", "m"));
    assert!(call(&ledger, &a, 1));
    assert!(call(&ledger, &a, 1));
    ledger.register(&b);
    ledger.register(&c);
    assert_eq!(ledger.headroom(&b), Some(0.5), "b shares a's group: its calls are b's too");
    assert_eq!(ledger.headroom(&c), Some(1.0), "c is its own group");
}

#[test]
fn a_header_naming_its_limit_sets_only_the_meter_of_that_limit() {
    let clock = ManualClock::default();
    // Two windows of one scope: 4 per 10 s and 40 per 100 s (a compressed day).
    let ledger = ledger_with(
        &clock,
        vec![Limit::requests_per(4, secs(10)), Limit::requests_per(40, secs(100))],
    );
    let key = candidate("p", "k", "m");
    for _ in 0..10 {
        assert!(call(&ledger, &key, 1));
        clock.advance(secs(3));
    }
    // The short window's header: 3 of 4 left. The long meter keeps its 10.
    let reading = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Minute,
        limit: Some(4),
        remaining: Some(3),
        reset: None,
    };
    ledger.observe_now(&key, &RateLimitSnapshot { readings: vec![reading], retry_after: None });
    assert_eq!(ledger.headroom(&key), Some(0.75), "3 of 4 left; the long meter has 30 of 40");
    let summary = ledger.summary_now(&"p".into());
    let used: Vec<u64> = summary.keys[0].limits.iter().map(|limit| limit.used).collect();
    assert_eq!(used, [1, 10]);
}

#[test]
fn an_answer_overtaken_by_a_later_admission_cannot_lower_the_count() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::requests_per(4, secs(10))]);
    let key = candidate("p", "k", "m");
    let estimate = switchyard_quota::Estimate::new(1, 0);
    let first = ledger.try_admit(&key, estimate).expect("admitted");
    clock.advance(std::time::Duration::from_millis(5));
    let second = ledger.try_admit(&key, estimate).expect("admitted");
    let third = ledger.try_admit(&key, estimate).expect("admitted");
    // The later two answer first and settle.
    ledger.settle_now(second, &switchyard_core::Usage::new(1, 0));
    ledger.settle_now(third, &switchyard_core::Usage::new(1, 0));
    // The first's answer, the only attempt in flight now, says 3 of 4 remain: the provider
    // answered it before it received the later two. Stale, however alone it arrives.
    let reading = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Minute,
        limit: Some(4),
        remaining: Some(3),
        reset: None,
    };
    let stale = RateLimitSnapshot { readings: vec![reading], retry_after: None };
    ledger.observe_attempt_now(&first, &stale);
    ledger.settle_now(first, &switchyard_core::Usage::new(1, 0));
    assert_eq!(ledger.headroom(&key), Some(0.25), "three counted, one left");
    // Without the attempt, the same reading is taken at its word (the provider's count wins).
    ledger.observe_now(&key, &stale);
    assert_eq!(ledger.headroom(&key), Some(0.75));
}

#[test]
fn an_answer_whose_flight_overlapped_an_earlier_attempt_cannot_lower_the_count() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::requests_per(4, secs(10))]);
    let key = candidate("p", "k", "m");
    let estimate = switchyard_quota::Estimate::new(1, 0);
    let reading = |remaining| RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: Some(4),
            remaining: Some(remaining),
            reset: None,
        }],
        retry_after: None,
    };
    let earlier = ledger.try_admit(&key, estimate).expect("admitted");
    clock.advance(std::time::Duration::from_millis(5));
    let later = ledger.try_admit(&key, estimate).expect("admitted");
    // The earlier attempt's call reached the provider second: its answer counts both, and
    // comes back first.
    ledger.observe_attempt_now(&earlier, &reading(2));
    ledger.settle_now(earlier, &switchyard_core::Usage::new(1, 0));
    // The later attempt is alone in flight now and nothing was admitted after it, but the
    // provider answered it before it received the earlier call: its "3 left" misses one.
    ledger.observe_attempt_now(&later, &reading(3));
    ledger.settle_now(later, &switchyard_core::Usage::new(1, 0));
    assert_eq!(ledger.headroom(&key), Some(0.5), "two counted, two left");
    // An attempt that flew alone is taken at its word, down as well as up.
    let alone = ledger.try_admit(&key, estimate).expect("admitted");
    ledger.observe_attempt_now(&alone, &reading(3));
    ledger.settle_now(alone, &switchyard_core::Usage::new(1, 0));
    assert_eq!(ledger.headroom(&key), Some(0.75), "the provider counts one in this window");
}

#[test]
fn headroom_is_asked_through_the_trait() {
    let clock = ManualClock::default();
    let memory = ledger_with(&clock, vec![Limit::requests_per(4, secs(10))]);
    let key = candidate("p", "k", "m");
    assert!(call(&memory, &key, 1));
    let ledger: std::sync::Arc<dyn QuotaLedger> = std::sync::Arc::new(memory);
    assert_eq!(ledger.headroom(&key), Some(0.75), "the router holds `dyn QuotaLedger`");
}
