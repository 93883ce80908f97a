//! `spread` ranks free candidates by headroom: the shared ledger reports it from what its own
//! admissions and observed headers returned, without a round trip.

use switchyard_core::{LimitReading, LimitScope, LimitUnit, ManualClock, RateLimitSnapshot, Usage};
use switchyard_quota::{Estimate, Limit, QuotaError, QuotaLedger, Refusal};

use crate::support::*;

async fn admit(ledger: &dyn QuotaLedger, key: &str) -> Result<(), QuotaError> {
    let permit = ledger.admit(&candidate(key), Estimate::new(1, 0)).await?;
    ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    Ok(())
}

#[tokio::test]
async fn headroom_follows_the_shared_count() {
    let prefix = fresh_prefix("headroom").await;
    let clock = ManualClock::default();
    let limits =
        || config(vec![Limit::requests_per(4, secs(60)), Limit::requests_per(10, secs(600))]);
    let first = ledger(&clock, &prefix, limits());
    let second = ledger(&clock, &prefix, limits());
    assert_eq!(first.headroom(&candidate("k")), None, "nothing admitted yet");

    admit(&first, "k").await.expect("admitted");
    assert_eq!(first.headroom(&candidate("k")), Some(0.75), "3 of 4 left beats 9 of 10");
    admit(&second, "k").await.expect("admitted");
    assert_eq!(second.headroom(&candidate("k")), Some(0.5), "the other process's call counted");
    assert_eq!(first.headroom(&candidate("k")), Some(0.75), "a process reports its own view");

    admit(&first, "k").await.expect("admitted");
    admit(&first, "k").await.expect("admitted");
    assert_eq!(first.headroom(&candidate("k")), Some(0.0));
    match admit(&first, "k").await {
        Err(QuotaError::Refused { reason: Refusal::Limit { .. }, .. }) => {}
        other => panic!("expected a limit refusal, got {other:?}"),
    }
    assert_eq!(first.headroom(&candidate("k")), Some(0.0), "a refusal says nothing is left");

    clock.advance(secs(62));
    assert_eq!(
        first.headroom(&candidate("k")),
        Some(0.6),
        "the minute has passed; the ten-minute window still holds 4 of 10"
    );
    clock.advance(secs(600));
    assert_eq!(first.headroom(&candidate("k")), None, "every figure has passed");
}

#[tokio::test]
async fn keys_sharing_nothing_report_their_own_headroom() {
    let prefix = fresh_prefix("headroom-keys").await;
    let clock = ManualClock::default();
    let ledger = ledger(&clock, &prefix, config(vec![Limit::per_minute(4)]));
    admit(&ledger, "a").await.expect("admitted");
    admit(&ledger, "a").await.expect("admitted");
    admit(&ledger, "b").await.expect("admitted");
    assert_eq!(ledger.headroom(&candidate("a")), Some(0.5));
    assert_eq!(ledger.headroom(&candidate("b")), Some(0.75));
    assert_eq!(ledger.headroom(&candidate("c")), None);
}

#[tokio::test]
async fn a_header_stating_its_limit_gives_headroom() {
    let prefix = fresh_prefix("headroom-header").await;
    let clock = ManualClock::default();
    let ledger = ledger(&clock, &prefix, config(vec![]));
    let reading = |remaining, limit| LimitReading {
        unit: LimitUnit::Tokens,
        scope: LimitScope::Minute,
        limit,
        remaining: Some(remaining),
        reset: None,
    };
    let snapshot = RateLimitSnapshot { readings: vec![reading(300, None)], ..Default::default() };
    ledger.observe(&candidate("k"), &snapshot).await.expect("observed");
    assert_eq!(ledger.headroom(&candidate("k")), None, "a remaining count without its limit");
    let snapshot =
        RateLimitSnapshot { readings: vec![reading(300, Some(1_000))], ..Default::default() };
    ledger.observe(&candidate("k"), &snapshot).await.expect("observed");
    assert_eq!(ledger.headroom(&candidate("k")), Some(0.3));
    clock.advance(secs(61));
    assert_eq!(ledger.headroom(&candidate("k")), None, "the header's minute has passed");
}
