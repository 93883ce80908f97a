//! What errors do to keys: cooldowns, the backoff schedule, exhaustion, invalid keys,
//! billing, quota groups.

use chrono_tz::America::Los_Angeles;
use switchyard_core::{Clock, ErrorKind, LimitScope, ManualClock, ProviderError};
use switchyard_quota::{
    DayBoundary, KeyState, Limit, ModelQuota, ProviderQuota, QuotaConfig, QuotaGroup, Refusal,
};

use crate::support::*;

fn plain() -> (ManualClock, switchyard_quota::MemoryLedger) {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(100)]);
    (clock, ledger)
}

#[test]
fn retry_after_cools_the_key_down_for_exactly_that_long() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(7))));
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(reason, Refusal::CoolingDown);
    assert_eq!(until, Some(start + chrono::Duration::seconds(7)));
    assert_eq!(
        ledger.status_now(&key).state,
        KeyState::CoolingDown { until: start + chrono::Duration::seconds(7) }
    );
    clock.advance(secs(6));
    assert!(!call(&ledger, &key, 1));
    clock.advance(secs(1));
    assert!(call(&ledger, &key, 1));
}

#[test]
fn retry_after_in_the_headers_counts_too() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let mut error = rate_limited(LimitScope::Minute, None);
    error.rate_limits.retry_after = Some(secs(12));
    ledger.record_error_now(&key, &error);
    clock.advance(secs(11));
    assert!(!call(&ledger, &key, 1));
    clock.advance(secs(1));
    assert!(call(&ledger, &key, 1));
}

/// The cooldowns the ledger applies to successive 429s without a delay.
fn schedule(ledger: &switchyard_quota::MemoryLedger, clock: &ManualClock, n: usize) -> Vec<u64> {
    let key = candidate("p", "k", "m");
    (0..n)
        .map(|_| {
            let start = clock.utc();
            ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, None));
            let (_, until) = refusal(ledger.try_admit(&key, one()));
            let until = until.expect("a cooldown ends");
            clock.set_utc(until);
            u64::try_from((until - start).num_seconds()).expect("positive")
        })
        .collect()
}

#[test]
fn repeated_429s_without_a_delay_escalate_90_120_180() {
    let (clock, ledger) = plain();
    assert_eq!(schedule(&ledger, &clock, 5), [90, 120, 180, 180, 180]);
}

#[test]
fn a_success_resets_the_backoff_schedule() {
    let (clock, ledger) = plain();
    assert_eq!(schedule(&ledger, &clock, 2), [90, 120]);
    assert!(call(&ledger, &candidate("p", "k", "m"), 1));
    assert_eq!(schedule(&ledger, &clock, 1), [90]);
}

#[test]
fn the_backoff_schedule_is_configurable() {
    let clock = ManualClock::default();
    let ledger = ledger_config(
        &clock,
        QuotaConfig { backoff: vec![secs(5), secs(30)], ..QuotaConfig::default() },
    );
    assert_eq!(schedule(&ledger, &clock, 3), [5, 30, 30]);
}

#[test]
fn a_new_cooldown_never_shortens_one_in_force() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(60))));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(5))));
    let (_, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(until, Some(start + chrono::Duration::seconds(60)), "the later deadline wins");
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(100))));
    let (_, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!(until, Some(start + chrono::Duration::seconds(100)), "a later one extends it");
}

#[test]
fn daily_exhaustion_lasts_until_the_providers_midnight() {
    let clock = ManualClock::starting_at(at("2026-03-08T06:30:00Z")); // 22:30 PST, 7 March
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            providers: vec![ProviderQuota {
                provider: "gemini".into(),
                day: DayBoundary::Midnight(Los_Angeles),
                models: vec![],
            }],
            ..QuotaConfig::default()
        },
    );
    let key = candidate("gemini", "g1", "gemini-2.5-flash");
    let error =
        ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Day }, "gemini", "PerDay")
            .with_status(429)
            .with_retry_after(Some(secs(30)));
    ledger.record_error_now(&key, &error);
    let reset = at("2026-03-08T08:00:00Z");
    let status = ledger.status_now(&key);
    assert_eq!(status.state, KeyState::Exhausted { until: Some(reset) });
    assert_eq!(status.reason.as_deref(), Some("rate_limited_day (HTTP 429)"));
    assert_eq!(status.changed_at, Some(at("2026-03-08T06:30:00Z")));
    clock.advance(secs(31));
    assert!(!call(&ledger, &key, 1), "a retry delay does not end a daily exhaustion");
    clock.set_utc(reset - chrono::Duration::seconds(1));
    assert!(!call(&ledger, &key, 1));
    clock.set_utc(reset);
    assert!(call(&ledger, &key, 1), "available at the reset");
    let status = ledger.status_now(&key);
    assert_eq!(status.state, KeyState::Available);
    assert_eq!(status.changed_at, Some(reset), "the change time is the reset");
}

#[test]
fn a_429_on_one_member_cools_the_whole_group_and_no_other() {
    let clock = ManualClock::default();
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            groups: vec![QuotaGroup {
                name: "org-1".into(),
                provider: "p".into(),
                keys: vec!["a".into(), "b".into()],
            }],
            ..QuotaConfig::default()
        },
    );
    ledger.record_error_now(
        &candidate("p", "a", "m"),
        &rate_limited(LimitScope::Minute, Some(secs(30))),
    );
    assert!(!call(&ledger, &candidate("p", "b", "m"), 1), "b shares a's organization");
    assert!(call(&ledger, &candidate("p", "c", "m"), 1), "c is its own group");
    assert!(call(&ledger, &candidate("p", "a", "other-model"), 1), "limits are per model");
    clock.advance(secs(30));
    assert!(call(&ledger, &candidate("p", "b", "m"), 1));
}

#[test]
fn group_members_share_their_limits() {
    let clock = ManualClock::default();
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            providers: vec![ProviderQuota {
                provider: "p".into(),
                day: DayBoundary::Rolling,
                models: vec![ModelQuota::every_model(vec![Limit::per_minute(3)])],
            }],
            groups: vec![QuotaGroup {
                name: "proj".into(),
                provider: "p".into(),
                keys: vec!["a".into(), "b".into()],
            }],
            ..QuotaConfig::default()
        },
    );
    let admitted: Vec<bool> = ["a", "b", "a", "b"]
        .iter()
        .map(|key| call(&ledger, &candidate("p", key, "m"), 1))
        .collect();
    assert_eq!(admitted, [true, true, true, false]);
}

#[test]
fn an_invalid_key_stays_invalid_until_reenabled() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let error = ProviderError::new(ErrorKind::InvalidKey, "p", "Invalid API Key").with_status(401);
    ledger.record_error_now(&key, &error);
    clock.advance(secs(86_400 * 30));
    assert_eq!(refusal(ledger.try_admit(&key, one())).0, Refusal::Invalid);
    assert_eq!(
        ledger.status_now(&candidate("p", "k", "other")).state,
        KeyState::Invalid,
        "every model"
    );
    assert!(call(&ledger, &candidate("p", "other-key", "m"), 1));
    ledger.reenable_now(&"p".into(), &"k".into());
    assert!(call(&ledger, &key, 1));
}

#[test]
fn billing_stopped_until_the_named_date_stops_the_whole_group() {
    let clock = ManualClock::starting_at(at("2026-11-23T10:00:00Z"));
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            groups: vec![QuotaGroup {
                name: "acct".into(),
                provider: "anthropic".into(),
                keys: vec!["a1".into(), "a2".into()],
            }],
            ..QuotaConfig::default()
        },
    );
    let mut error =
        ProviderError::new(ErrorKind::BillingStopped, "anthropic", "usage limits").with_status(400);
    let back = at("2026-12-01T00:00:00Z");
    error.resets_at = Some(back);
    ledger.record_error_now(&candidate("anthropic", "a1", "claude"), &error);
    let other = candidate("anthropic", "a2", "claude");
    let (reason, until) = refusal(ledger.try_admit(&other, one()));
    assert_eq!((reason, until), (Refusal::BillingStopped, Some(back)));
    assert_eq!(ledger.status_now(&other).state, KeyState::BillingStopped { until: Some(back) });
    clock.set_utc(back);
    assert!(call(&ledger, &other, 1));
}

#[test]
fn billing_stopped_without_a_date_waits_for_reenable() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    ledger.record_error_now(
        &key,
        &ProviderError::new(ErrorKind::BillingStopped, "p", "").with_status(402),
    );
    clock.advance(secs(86_400 * 400));
    assert_eq!(refusal(ledger.try_admit(&key, one())).0, Refusal::BillingStopped);
    ledger.reenable_now(&"p".into(), &"k".into());
    assert!(call(&ledger, &key, 1));
}

#[test]
fn errors_about_the_request_leave_the_key_alone() {
    let (_clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    for kind in [
        ErrorKind::BadRequest,
        ErrorKind::ServerError,
        ErrorKind::ContextTooLong,
        ErrorKind::Timeout,
    ] {
        ledger.record_error_now(&key, &ProviderError::new(kind, "p", ""));
    }
    assert_eq!(ledger.status_now(&key).state, KeyState::Available);
}

#[test]
fn a_model_without_quota_in_this_tier_is_exhausted_until_reenabled() {
    let (clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let error = ProviderError::new(
        ErrorKind::QuotaExhausted { scope: LimitScope::Unknown },
        "p",
        "limit: 0",
    );
    ledger.record_error_now(&key, &error);
    clock.advance(secs(86_400 * 3));
    assert_eq!(ledger.status_now(&key).state, KeyState::Exhausted { until: None });
}

#[test]
fn reenabling_a_key_ends_an_open_ended_exhaustion_of_its_group() {
    let (_clock, ledger) = plain();
    let key = candidate("p", "k", "m");
    let error = ProviderError::new(
        ErrorKind::QuotaExhausted { scope: LimitScope::Unknown },
        "p",
        "limit: 0",
    );
    ledger.record_error_now(&key, &error);
    ledger.reenable_now(&"p".into(), &"k".into());
    assert!(call(&ledger, &key, 1));
}

#[test]
fn an_exhaustion_is_reported_over_a_shorter_cooldown() {
    let clock = ManualClock::starting_at(at("2026-01-15T20:00:00Z"));
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            providers: vec![ProviderQuota {
                provider: "p".into(),
                day: DayBoundary::Midnight(chrono_tz::UTC),
                models: vec![],
            }],
            ..QuotaConfig::default()
        },
    );
    let key = candidate("p", "k", "m");
    ledger.record_error_now(&key, &rate_limited(LimitScope::Minute, Some(secs(30))));
    ledger.record_error_now(&key, &rate_limited(LimitScope::Day, None));
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert_eq!((reason, until), (Refusal::Exhausted, Some(at("2026-01-16T00:00:00Z"))));
    clock.advance(secs(31));
    assert_eq!(refusal(ledger.try_admit(&key, one())).0, Refusal::Exhausted);
}
