//! Admission is atomic: threads racing for the last units never both get one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_core::ManualClock;
use switchyard_quota::{
    DayBoundary, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig, Refusal,
};

use crate::support::*;

#[test]
fn eight_threads_of_10000_admissions_admit_exactly_the_limit() {
    let clock = ManualClock::default();
    let ledger = Arc::new(ledger_with(&clock, vec![Limit::per_minute(1_000)]));
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let ledger = Arc::clone(&ledger);
            let admitted = Arc::clone(&admitted);
            std::thread::spawn(move || {
                let key = candidate("p", "k", "m");
                for _ in 0..10_000 {
                    if let Ok(permit) = ledger.try_admit(&key, one()) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        ledger.settle_now(permit, &switchyard_core::Usage::new(1, 0));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 1_000);
}

#[test]
fn concurrent_requests_are_capped_and_freed_by_settle_or_release() {
    let clock = ManualClock::default();
    let mut rule = ModelQuota::every_model(vec![]);
    rule.max_concurrent = Some(2);
    let ledger = MemoryLedger::new(
        Arc::new(clock.clone()),
        QuotaConfig {
            providers: vec![ProviderQuota {
                provider: "p".into(),
                day: DayBoundary::Rolling,
                models: vec![rule],
            }],
            ..QuotaConfig::default()
        },
    );
    let key = candidate("p", "k", "m");
    let first = ledger.try_admit(&key, one()).expect("first");
    let second = ledger.try_admit(&key, one()).expect("second");
    assert_eq!(refusal(ledger.try_admit(&key, one())).0, Refusal::Concurrency { max: 2 });
    ledger.release_now(first);
    let third = ledger.try_admit(&key, one()).expect("a slot was released");
    ledger.settle_now(second, &switchyard_core::Usage::new(1, 1));
    ledger.settle_now(third, &switchyard_core::Usage::new(1, 1));
    assert!(ledger.try_admit(&key, one()).is_ok());
}
