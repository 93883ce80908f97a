//! A limit one ledger learns from a 429 is shared through Redis: the other ledger admits
//! against it and shows it, with its evidence.

use std::time::Duration;

use switchyard_core::{Clock, ErrorKind, LimitScope, ManualClock, ProviderError, Usage};
use switchyard_quota::{Estimate, LearnedKind, Limit, QuotaError, QuotaLedger, Refusal};

use crate::support::*;

fn one() -> Estimate {
    Estimate::new(1, 0)
}

/// Admits and settles one request on `ledger`; whether it was admitted.
async fn call(ledger: &dyn QuotaLedger, key: &str) -> bool {
    match ledger.admit(&candidate(key), one()).await {
        Ok(permit) => {
            ledger.settle(permit, &Usage::new(1, 0)).await.expect("settle");
            true
        }
        Err(QuotaError::Refused { .. }) => false,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn limited(retry_after: Option<Duration>) -> ProviderError {
    ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "p", "")
        .with_status(429)
        .with_retry_after(retry_after)
}

#[tokio::test]
async fn a_limit_learned_by_one_ledger_is_admitted_against_by_the_other() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("learned-shared").await;
    // Nothing declared for the provider's minute.
    let first = ledger(&clock, &prefix, config(Vec::new()));
    let second = ledger(&clock, &prefix, config(Vec::new()));
    let start = clock.now();
    for (idx, ledger) in [&first, &second, &first].into_iter().enumerate() {
        if idx > 0 {
            clock.advance(secs(1));
        }
        assert!(call(ledger, "k").await, "call {idx} admitted");
    }
    // At 2.5 s the provider refuses: the request of 0 s leaves its window at 10 s.
    clock.advance(Duration::from_millis(500));
    let attempt = first.admit(&candidate("k"), one()).await.expect("admitted before learning");
    first.fail(attempt, &limited(Some(Duration::from_millis(7_500)))).await.expect("recorded");

    let summary = second.summary(&"p".into()).await.expect("summary");
    // `second` knows the candidate once it has asked about it.
    let row = summary.keys.iter().find(|row| row.key.as_str() == "k").expect("k known");
    let learned = row.limits.iter().find(|limit| limit.learned.is_some()).expect("learned");
    assert_eq!(
        (learned.limit, learned.used, learned.limit_name.as_str()),
        (3, 3, "requests/learned-sliding-10000ms")
    );
    let evidence = learned.learned.as_ref().expect("evidence");
    assert_eq!((evidence.kind, evidence.from_accepted), (LearnedKind::Sliding, 3));

    // The cooldown holds both until 10 s; past it the shared meter still counts the three
    // served (it was seeded with them), so neither ledger hands their capacity out again.
    clock.set_utc(clock.utc() + chrono::Duration::milliseconds(7_600));
    assert!(clock.now() >= start + Duration::from_secs(10));
    match second.admit(&candidate("k"), one()).await {
        Err(QuotaError::Refused { reason: Refusal::Limit { limit, .. }, .. }) => {
            assert_eq!(limit, "requests/learned-sliding-10000ms");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("admitted past the learned limit"),
    }
}

#[tokio::test]
async fn with_no_hint_the_shared_cooldown_is_the_learned_windows_remaining_time() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("learned-cooldown").await;
    let ledger = ledger(&clock, &prefix, config(Vec::new()));
    let start = clock.utc();
    assert!(call(&ledger, "k").await);
    clock.advance(secs(1));
    assert!(call(&ledger, "k").await);
    let attempt = ledger.admit(&candidate("k"), one()).await.expect("admitted");
    ledger.fail(attempt, &limited(None)).await.expect("recorded");
    // No hint: the nominal minute, which frees when the request of 0 s leaves, at 60 s
    // (not the 90 s schedule).
    let status = ledger.status(&candidate("k")).await.expect("status");
    assert_eq!(
        status.state,
        switchyard_quota::KeyState::CoolingDown { until: start + chrono::Duration::seconds(60) }
    );
}

#[tokio::test]
async fn declared_limits_are_not_learned_over() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("learned-declared").await;
    let ledger = ledger(&clock, &prefix, config(vec![Limit::per_minute(50)]));
    assert!(call(&ledger, "k").await);
    let attempt = ledger.admit(&candidate("k"), one()).await.expect("admitted");
    ledger.fail(attempt, &limited(Some(secs(5)))).await.expect("recorded");
    let summary = ledger.summary(&"p".into()).await.expect("summary");
    assert!(summary.keys.iter().flat_map(|row| &row.limits).all(|limit| limit.learned.is_none()));
}

#[tokio::test]
async fn more_served_in_one_window_raises_the_shared_limit() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("learned-raise").await;
    let first = ledger(&clock, &prefix, config(Vec::new()));
    let second = ledger(&clock, &prefix, config(Vec::new()));
    let mut permits = Vec::new();
    for _ in 0..5 {
        permits.push(first.admit(&candidate("k"), one()).await.expect("admitted"));
    }
    let mut permits = permits.into_iter();
    for permit in permits.by_ref().take(3) {
        first.settle(permit, &Usage::new(1, 0)).await.expect("settle");
    }
    clock.advance(Duration::from_millis(200));
    let refused = permits.next().expect("fourth");
    first.fail(refused, &limited(Some(secs(10)))).await.expect("recorded");
    // The fifth, in flight when the limit was learned from three, is served: four fit.
    first.settle(permits.next().expect("fifth"), &Usage::new(1, 0)).await.expect("settle");
    drop(second.status(&candidate("k")).await.expect("status"));
    let summary = second.summary(&"p".into()).await.expect("summary");
    let row = summary.keys.iter().find(|row| row.key.as_str() == "k").expect("k known");
    let learned = row.limits.iter().find(|limit| limit.learned.is_some()).expect("learned");
    assert_eq!(learned.limit, 4);
    let evidence = learned.learned.as_ref().expect("evidence");
    assert!(evidence.source.starts_with("raised"), "{}", evidence.source);
}

/// The shared learned limit of `ledger`'s key `k`.
async fn learned_limit(ledger: &dyn QuotaLedger) -> u64 {
    let summary = ledger.summary(&"p".into()).await.expect("summary");
    let row = summary.keys.iter().find(|row| row.key.as_str() == "k").expect("k known");
    row.limits.iter().find(|limit| limit.learned.is_some()).expect("a learned limit").limit
}

#[tokio::test]
async fn a_herd_admitted_before_the_limit_was_learned_does_not_lower_it() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("learned-herd").await;
    let first = ledger(&clock, &prefix, config(Vec::new()));
    let second = ledger(&clock, &prefix, config(Vec::new()));
    let ledgers: [&dyn QuotaLedger; 2] = [&first, &second];
    // Eight in flight at once over two gateways before anything is known about the key.
    let mut herd = Vec::new();
    for n in 0..8 {
        let ledger = ledgers[n % 2];
        herd.push((ledger, ledger.admit(&candidate("k"), one()).await.expect("admitted blind")));
    }
    clock.advance(Duration::from_millis(200));
    // The upstream serves three; the first refusal teaches 3, the other four come from the
    // same herd and say nothing against it.
    let mut herd = herd.into_iter();
    for (ledger, permit) in herd.by_ref().take(3) {
        ledger.settle(permit, &Usage::new(1, 0)).await.expect("settle");
    }
    for (ledger, permit) in herd {
        ledger.fail(permit, &limited(Some(secs(10)))).await.expect("recorded");
        clock.advance(Duration::from_millis(10));
    }
    assert_eq!(learned_limit(&second).await, 3, "the herd's 429s left the limit as taught");

    // A window later, a 429 of an attempt admitted under the learned limit still lowers it.
    clock.advance(secs(11));
    for _ in 0..2 {
        assert!(call(&first, "k").await, "under the learned 3");
    }
    let attempt = second.admit(&candidate("k"), one()).await.expect("the third is admitted");
    second.fail(attempt, &limited(Some(secs(10)))).await.expect("recorded");
    // The other ledger reads it once its copy (trusted for a second) is stale.
    clock.advance(secs(2));
    assert_eq!(learned_limit(&first).await, 2, "a fresh 429 lowers it to what was served");
}
