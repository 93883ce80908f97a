//! Hostile numbers from upstreams: delays of `Duration::MAX`, resets at the end of chrono's
//! range, limits and remainders of `u64::MAX`, usage of `u32::MAX`. None may panic, no hold may
//! reach past now + `MAX_HINT`, and no count may wrap. See: issue 16.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_core::{
    Clock, ErrorKind, LimitReading, LimitScope, LimitUnit, MAX_HINT, ManualClock, ProviderError,
    RateLimitSnapshot, Reset, Usage,
};
use switchyard_quota::{
    Estimate, KeyState, Limit, MemoryLedger, Permit, QuotaError, Refusal, Unit,
};

use crate::support::*;

fn ledger(clock: &ManualClock) -> MemoryLedger {
    ledger_with(
        clock,
        vec![
            Limit::per_minute(50),
            Limit::tokens_per(u64::MAX, secs(60)),
            Limit::tokens_refill(1_000_000, secs(60)),
            Limit::requests_per_day(u64::MAX - 1, chrono_tz::America::Los_Angeles),
        ],
    )
}

fn horizon(clock: &ManualClock) -> DateTime<Utc> {
    clock.utc() + chrono::Duration::from_std(MAX_HINT).expect("31 days")
}

fn huge_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::from_secs(100_000_000_000_000)),
        Just(Duration::from_secs(u64::MAX)),
        (0u64..120).prop_map(Duration::from_secs),
    ]
}

fn far_date() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        Just(DateTime::<Utc>::MAX_UTC),
        Just(DateTime::<Utc>::MIN_UTC),
        (0i64..400_000_000_000).prop_map(|secs| {
            DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
        }),
    ]
}

fn huge_count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(0u64), 0u64..100, any::<u64>()]
}

fn reset() -> impl Strategy<Value = Option<Reset>> {
    prop_oneof![
        Just(None),
        huge_duration().prop_map(|after| Some(Reset::After(after))),
        far_date().prop_map(|at| Some(Reset::At(at))),
    ]
}

fn reading() -> impl Strategy<Value = LimitReading> {
    (
        prop_oneof![
            Just(LimitUnit::Requests),
            Just(LimitUnit::Tokens),
            Just(LimitUnit::InputTokens)
        ],
        prop_oneof![Just(LimitScope::Minute), Just(LimitScope::Day), Just(LimitScope::Month)],
        proptest::option::of(huge_count()),
        proptest::option::of(huge_count()),
        reset(),
    )
        .prop_map(|(unit, scope, limit, remaining, reset)| LimitReading {
            unit,
            scope,
            limit,
            remaining,
            reset,
        })
}

fn snapshot() -> impl Strategy<Value = RateLimitSnapshot> {
    (vec(reading(), 0..4), proptest::option::of(huge_duration()))
        .prop_map(|(readings, retry_after)| RateLimitSnapshot { readings, retry_after })
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    let scope = || {
        prop_oneof![
            Just(LimitScope::Minute),
            Just(LimitScope::Day),
            Just(LimitScope::Month),
            Just(LimitScope::Unknown)
        ]
    };
    prop_oneof![
        scope().prop_map(|scope| ErrorKind::RateLimited { scope }),
        scope().prop_map(|scope| ErrorKind::QuotaExhausted { scope }),
        Just(ErrorKind::BillingStopped),
        Just(ErrorKind::ServerError),
    ]
}

fn provider_error() -> impl Strategy<Value = ProviderError> {
    (
        error_kind(),
        proptest::option::of(huge_duration()),
        proptest::option::of(far_date()),
        snapshot(),
    )
        .prop_map(|(kind, retry_after, resets_at, rate_limits)| {
            let mut error = ProviderError::new(kind, "p", "hostile").with_retry_after(retry_after);
            error.resets_at = resets_at;
            error.rate_limits = rate_limits;
            error
        })
}

#[derive(Clone, Debug)]
enum Step {
    Admit(u64, u64),
    Settle(u32, u32),
    Release,
    Observe(RateLimitSnapshot),
    Fail(ProviderError),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (huge_count(), huge_count()).prop_map(|(prompt, output)| Step::Admit(prompt, output)),
        2 => (any::<u32>(), prop_oneof![Just(u32::MAX), any::<u32>()])
            .prop_map(|(prompt, output)| Step::Settle(prompt, output)),
        1 => Just(Step::Release),
        2 => snapshot().prop_map(Step::Observe),
        2 => provider_error().prop_map(Step::Fail),
        2 => prop_oneof![0u64..120, Just(86_400), Just(40 * 86_400)].prop_map(Step::Wait),
    ]
}

/// The counts of each limit of the one candidate, as the summary reports them.
fn counts(ledger: &MemoryLedger) -> Vec<u64> {
    let summary = ledger.summary_now(&"p".into());
    summary.keys.iter().flat_map(|key| key.limits.iter().map(|limit| limit.used)).collect()
}

/// Whatever the ledger says now keeps within now + `MAX_HINT`.
fn check_bounded(ledger: &MemoryLedger, clock: &ManualClock) -> Result<(), TestCaseError> {
    let horizon = horizon(clock);
    let key = candidate("p", "k", "m");
    let status = ledger.status_now(&key);
    if let Some(until) = status.state.until() {
        prop_assert!(until <= horizon, "{:?} ends past the horizon", status.state);
    }
    for summary in ledger.summary_now(&"p".into()).keys {
        if let Some(at) = summary.available_at {
            prop_assert!(at <= horizon, "available only at {at}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_numbers_never_panic_nor_push_holds_past_max_hint(steps in vec(step(), 1..80)) {
        let clock = ManualClock::default();
        let ledger = ledger(&clock);
        let key = candidate("p", "k", "m");
        let mut open: Vec<Permit> = Vec::new();
        for step in steps {
            match step {
                Step::Admit(prompt, output) => {
                    let before = counts(&ledger);
                    match ledger.try_admit(&key, Estimate::new(prompt, output)) {
                        Ok(permit) => {
                            open.push(permit);
                            let after = counts(&ledger);
                            // An admission only adds: a wrapped count would come out smaller.
                            for (before, after) in before.iter().zip(&after) {
                                prop_assert!(after >= before, "a count went from {before} to {after}");
                            }
                        }
                        Err(QuotaError::Refused { retry_after, until, reason, .. }) => {
                            if let Some(after) = retry_after {
                                prop_assert!(after <= MAX_HINT, "{reason}: retry after {after:?}");
                            }
                            if let Some(until) = until {
                                prop_assert!(until <= horizon(&clock), "{reason} until {until}");
                            }
                        }
                        Err(other) => prop_assert!(false, "untyped refusal {other}"),
                    }
                }
                Step::Settle(prompt, output) => {
                    if let Some(permit) = open.pop() {
                        let usage = Usage::new(prompt, output);
                        ledger.settle_now(permit, &usage);
                    }
                }
                Step::Release => {
                    if let Some(permit) = open.pop() {
                        ledger.release_now(permit);
                    }
                }
                Step::Observe(snapshot) => ledger.observe_now(&key, &snapshot),
                Step::Fail(error) => ledger.record_error_now(&key, &error),
                Step::Wait(by) => clock.advance(secs(by)),
            }
            check_bounded(&ledger, &clock)?;
        }
        // However hostile the past, a re-enabled key serves a small request again once its
        // windows have passed.
        for permit in open.drain(..) {
            ledger.release_now(permit);
        }
        ledger.reenable_now(&"p".into(), &"k".into());
        clock.advance(MAX_HINT + secs(86_400));
        prop_assert!(ledger.try_admit(&key, one()).is_ok(), "{:?}", ledger.status_now(&key));
    }
}

#[test]
fn a_retry_after_of_duration_max_cools_the_key_for_max_hint() {
    let clock = ManualClock::default();
    let ledger = ledger(&clock);
    let key = candidate("p", "k", "m");
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(Duration::MAX)));
    let state = ledger.status_now(&key).state;
    assert_eq!(state, KeyState::CoolingDown { until: horizon(&clock) });
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!((reason, until), (Refusal::CoolingDown, Some(horizon(&clock))));
    clock.advance(MAX_HINT);
    assert!(ledger.try_admit(&key, one()).is_ok(), "the cooldown ends after MAX_HINT");
}

#[test]
fn a_reset_at_the_end_of_time_exhausts_the_key_for_max_hint() {
    let clock = ManualClock::default();
    let ledger = ledger(&clock);
    let key = candidate("p", "k", "m");
    let mut error =
        ProviderError::new(ErrorKind::QuotaExhausted { scope: LimitScope::Month }, "p", "");
    error.resets_at = Some(DateTime::<Utc>::MAX_UTC);
    ledger.record_error_now(&key, &error);
    assert_eq!(ledger.status_now(&key).state, KeyState::Exhausted { until: Some(horizon(&clock)) });
}

#[test]
fn a_header_of_u64_max_with_an_endless_reset_is_a_bounded_gate() {
    let clock = ManualClock::default();
    let ledger = ledger(&clock);
    let key = candidate("p", "k", "m");
    let reading = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Minute,
        limit: Some(u64::MAX),
        remaining: Some(0),
        reset: Some(Reset::After(Duration::MAX)),
    };
    ledger.observe_now(&key, &RateLimitSnapshot { readings: vec![reading], retry_after: None });
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(
        reason,
        Refusal::ProviderRemaining {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            remaining: 0
        }
    );
    assert_eq!(until, Some(horizon(&clock)));
}

#[test]
fn counts_saturate_instead_of_wrapping() {
    let clock = ManualClock::default();
    let limit = u64::MAX - 1;
    let ledger = ledger_with(&clock, vec![Limit::tokens_per(limit, secs(60))]);
    let key = candidate("p", "k", "m");
    // The provider says the whole of a huge limit is used...
    let reading = LimitReading {
        unit: LimitUnit::Tokens,
        scope: LimitScope::Minute,
        limit: Some(limit),
        remaining: Some(0),
        reset: None,
    };
    ledger.observe_now(&key, &RateLimitSnapshot { readings: vec![reading], retry_after: None });
    assert_eq!(counts(&ledger), vec![limit]);
    // ...then a settlement adds 2 * u32::MAX tokens more than reserved: the count stops at
    // the top instead of wrapping round to a small number.
    let permit = ledger.try_admit(&key, Estimate::new(0, 0)).expect("nothing needed");
    ledger.settle_now(permit, &Usage::new(u32::MAX, u32::MAX));
    assert_eq!(counts(&ledger), vec![u64::MAX]);
    let (reason, _) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(
        reason,
        Refusal::Limit { unit: Unit::Tokens, limit: "tokens/sliding-60000ms".into() }
    );
    // And the window still forgets it.
    clock.advance(secs(62));
    assert!(ledger.try_admit(&key, one()).is_ok());
}

#[test]
fn a_refill_bucket_said_to_hold_u64_max_refills_within_its_window() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::tokens_refill(600, secs(60))]);
    let key = candidate("p", "k", "m");
    let reading = LimitReading {
        unit: LimitUnit::Tokens,
        scope: LimitScope::Minute,
        limit: Some(u64::MAX),
        remaining: Some(0),
        reset: Some(Reset::After(secs(1))),
    };
    ledger.observe_now(&key, &RateLimitSnapshot { readings: vec![reading], retry_after: None });
    assert_eq!(counts(&ledger), vec![600]);
    clock.advance(secs(60));
    assert!(ledger.try_admit(&key, Estimate::new(600, 0)).is_ok());
}
