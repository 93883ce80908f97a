//! Windows: sliding minutes, calendar days in Los Angeles across DST, refilling buckets,
//! shared pools.

use chrono_tz::America::Los_Angeles;
use switchyard_core::{Clock, ManualClock, Usage};
use switchyard_quota::{Estimate, KeyState, Limit, QuotaConfig, Refusal, presets};

use crate::support::*;

#[track_caller]
fn check(per_minute: u64, calls_at_secs: &[u64], admitted: &[bool]) {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(per_minute)]);
    let key = candidate("p", "k", "m");
    let got: Vec<bool> = calls_at_secs
        .iter()
        .map(|&at_secs| {
            clock.set_elapsed(secs(at_secs));
            call(&ledger, &key, 1)
        })
        .collect();
    assert_eq!(got, admitted);
}

#[test]
fn window_reopens_after_60s() {
    check(2, &[0, 1, 2, 61], &[true, true, false, true]);
}

#[test]
fn minute_window_slides_rather_than_resetting_on_the_minute() {
    // A fixed window would admit again at 60; a sliding one frees the t=0 call at 61 and the
    // t=30 call only at 91.
    check(
        2,
        &[0, 30, 45, 60, 61, 62, 90, 91],
        &[true, true, false, false, true, false, false, true],
    );
}

#[test]
fn a_refused_call_says_when_the_window_has_room() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(1)]);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    assert!(call(&ledger, &key, 1));
    clock.advance(secs(10));
    let (reason, until) = refusal(ledger.try_admit(&key, one()));
    assert!(matches!(reason, Refusal::Limit { .. }), "{reason}");
    assert_eq!(until, Some(start + chrono::Duration::seconds(61)));
}

#[test]
fn windows_of_any_length() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::requests_per(3, secs(10))]);
    let key = candidate("p", "k", "m");
    let first: Vec<bool> = (0..4).map(|_| call(&ledger, &key, 1)).collect();
    assert_eq!(first, [true, true, true, false]);
    clock.advance(secs(11));
    assert!(call(&ledger, &key, 1));
}

#[test]
fn token_limits_charge_the_estimate_then_the_real_usage() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::tokens_per(1_000, secs(60))]);
    let key = candidate("p", "k", "m");
    let permit = ledger.try_admit(&key, Estimate::new(200, 600)).expect("fits");
    assert!(ledger.try_admit(&key, Estimate::new(100, 150)).is_err(), "800 reserved + 250 > 1000");
    ledger.settle_now(permit, &Usage::new(200, 100));
    assert!(ledger.try_admit(&key, Estimate::new(100, 150)).is_ok(), "300 used + 250 fits");
}

#[test]
fn refill_bucket_refills_continuously() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::requests_refill(60, secs(60))]);
    let key = candidate("p", "k", "m");
    for _ in 0..60 {
        assert!(call(&ledger, &key, 1));
    }
    assert!(!call(&ledger, &key, 1));
    clock.advance(secs(1));
    assert!(call(&ledger, &key, 1), "one request refills a second");
    assert!(!call(&ledger, &key, 1));
}

/// Exhausts a Gemini daily quota on the day starting `day_start` and checks it comes back at
/// the next Los Angeles midnight, `day_hours` later.
#[track_caller]
fn gemini_day(day_start: &str, day_hours: i64) {
    let start = at(day_start);
    let clock = ManualClock::starting_at(start + chrono::Duration::hours(1));
    let mut preset = presets::gemini_free("gemini");
    preset.models = vec![switchyard_quota::ModelQuota::model(
        "gemini-2.5-flash",
        vec![Limit::requests_per_day(3, Los_Angeles)],
    )];
    let ledger =
        ledger_config(&clock, QuotaConfig { providers: vec![preset], ..QuotaConfig::default() });
    let key = candidate("gemini", "g1", "gemini-2.5-flash");
    for _ in 0..3 {
        assert!(call(&ledger, &key, 1));
    }
    let (_, until) = refusal(ledger.try_admit(&key, one()));
    let next = start + chrono::Duration::hours(day_hours);
    assert_eq!(until, Some(next), "day of {day_start}");
    clock.set_utc(next - chrono::Duration::seconds(1));
    assert!(!call(&ledger, &key, 1), "still the same Pacific day");
    clock.set_utc(next);
    assert!(call(&ledger, &key, 1), "a new Pacific day");
}

#[test]
fn gemini_day_ends_at_midnight_los_angeles_on_an_ordinary_day() {
    gemini_day("2026-01-15T08:00:00Z", 24);
    gemini_day("2026-07-15T07:00:00Z", 24);
}

#[test]
fn gemini_day_is_23_hours_when_dst_starts() {
    gemini_day("2026-03-08T08:00:00Z", 23);
}

#[test]
fn gemini_day_is_25_hours_when_dst_ends() {
    gemini_day("2026-11-01T07:00:00Z", 25);
}

#[test]
fn openrouter_free_models_share_one_daily_counter_until_utc_midnight() {
    let clock = ManualClock::starting_at(at("2026-01-15T22:00:00Z"));
    let ledger = ledger_config(
        &clock,
        QuotaConfig {
            providers: vec![presets::openrouter_free("openrouter", false)],
            ..QuotaConfig::default()
        },
    );
    let first = candidate("openrouter", "or1", "meta-llama/llama-3.3-70b-instruct:free");
    let second = candidate("openrouter", "or1", "deepseek/deepseek-r1:free");
    let mut admitted = 0;
    for idx in 0..60 {
        clock.advance(secs(61)); // stay under 20 a minute
        let which = if idx % 2 == 0 { &first } else { &second };
        admitted += u32::from(call(&ledger, which, 1));
    }
    assert_eq!(admitted, 50, "50 a day across all free models");
    let (_, until) = refusal(ledger.try_admit(&second, one()));
    assert_eq!(until, Some(at("2026-01-16T00:00:00Z")));
    clock.set_utc(at("2026-01-16T00:00:00Z"));
    assert!(call(&ledger, &first, 1));
    assert!(matches!(ledger.status_now(&first).state, KeyState::Available));
}

#[test]
fn a_settlement_corrects_the_count_where_the_reservation_was_made() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::tokens_per(1_000, secs(60))]);
    let key = candidate("p", "k", "m");
    let long = ledger.try_admit(&key, Estimate::new(100, 300)).expect("fits");
    clock.advance(secs(30));
    let short = ledger.try_admit(&key, Estimate::new(100, 100)).expect("fits");
    // The first call used more than estimated: the extra counts from t=0, not t=30.
    ledger.settle_now(long, &Usage::new(100, 600));
    ledger.settle_now(short, &Usage::new(100, 0));
    let used = |ledger: &switchyard_quota::MemoryLedger| {
        ledger.summary_now(&"p".into()).keys[0].limits[0].used
    };
    assert_eq!(used(&ledger), 800);
    clock.set_elapsed(secs(61));
    assert_eq!(used(&ledger), 100, "the t=0 call's 700 left with its reservation");
    // A permit settled after its window passed has nothing left to give back.
    let late = ledger.try_admit(&key, Estimate::new(400, 0)).expect("fits");
    clock.set_elapsed(secs(200));
    ledger.settle_now(late, &Usage::new(10, 0));
    assert_eq!(used(&ledger), 0);
}
