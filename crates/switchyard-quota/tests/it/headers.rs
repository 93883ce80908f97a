//! Learning from the provider's headers: its numbers override the local count, and a key the
//! headers call spent is refused before it earns a 429.

use std::time::Duration;

use switchyard_core::{
    Clock, LimitReading, LimitScope, LimitUnit, ManualClock, RateLimitSnapshot, Reset,
};
use switchyard_quota::{Estimate, Limit, QuotaConfig, Refusal, presets};

use crate::support::*;

fn reading(
    unit: LimitUnit,
    scope: LimitScope,
    limit: u64,
    remaining: u64,
    reset: Option<Reset>,
) -> LimitReading {
    LimitReading { unit, scope, limit: Some(limit), remaining: Some(remaining), reset }
}

fn snapshot(readings: Vec<LimitReading>) -> RateLimitSnapshot {
    RateLimitSnapshot { readings, retry_after: None }
}

#[test]
fn headers_override_the_local_count() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::requests_refill(100, secs(86_400))]);
    let key = candidate("p", "k", "m");
    assert!(call(&ledger, &key, 1));
    // Another client of the same key has spent 97 of today's 100.
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(LimitUnit::Requests, LimitScope::Day, 100, 3, None)]),
    );
    let summary = ledger.summary_now(&"p".into());
    assert_eq!(summary.keys[0].limits[0].used, 97);
    let admitted: Vec<bool> = (0..4).map(|_| call(&ledger, &key, 1)).collect();
    assert_eq!(admitted, [true, true, true, false]);
}

#[test]
fn headers_can_also_lower_the_local_count() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(5)]);
    let key = candidate("p", "k", "m");
    for _ in 0..5 {
        assert!(call(&ledger, &key, 1));
    }
    assert!(!call(&ledger, &key, 1));
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(
            LimitUnit::Requests,
            LimitScope::Minute,
            5,
            3,
            Some(Reset::After(secs(20))),
        )]),
    );
    assert!(call(&ledger, &key, 1), "the provider says 3 remain");
}

#[test]
fn a_stale_header_never_gives_back_capacity_held_by_attempts_in_flight() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(5)]);
    let key = candidate("p", "k", "m");
    let estimate = Estimate::new(10, 10);
    let permits: Vec<_> =
        (0..5).map(|_| ledger.try_admit(&key, estimate).expect("admitted")).collect();
    // The first call's answer says 4 remain: the provider had counted only that call, while
    // four more are on their way. Believing it would admit four calls the key cannot take.
    let stale = snapshot(vec![reading(LimitUnit::Requests, LimitScope::Minute, 5, 4, None)]);
    ledger.observe_now(&key, &stale);
    assert!(ledger.try_admit(&key, estimate).is_err(), "no capacity was handed out twice");
    assert_eq!(ledger.summary_now(&"p".into()).keys[0].limits[0].used, 5);
    // Once nothing else is in flight, the provider's word may lower the count again.
    let mut permits = permits.into_iter();
    for permit in permits.by_ref().take(4) {
        ledger.settle_now(permit, &switchyard_core::Usage::new(10, 10));
    }
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(LimitUnit::Requests, LimitScope::Minute, 5, 3, None)]),
    );
    assert_eq!(ledger.summary_now(&"p".into()).keys[0].limits[0].used, 2);
    for permit in permits {
        ledger.release_now(permit);
    }
}

#[test]
fn admission_refuses_before_the_429_when_headers_say_too_little_remains() {
    let clock = ManualClock::default();
    // No configured limits at all: only the provider's word.
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("openai", "o1", "gpt-4o-mini");
    let start = clock.utc();
    ledger.observe_now(
        &key,
        &snapshot(vec![
            reading(LimitUnit::Requests, LimitScope::Minute, 500, 2, Some(Reset::After(secs(6)))),
            reading(
                LimitUnit::Tokens,
                LimitScope::Minute,
                30_000,
                1_500,
                Some(Reset::After(secs(3))),
            ),
        ]),
    );
    let (reason, until) = refusal(ledger.try_admit(&key, Estimate::new(1_000, 1_000)));
    assert_eq!(
        reason,
        Refusal::ProviderRemaining {
            unit: LimitUnit::Tokens,
            scope: LimitScope::Minute,
            remaining: 1_500
        }
    );
    assert_eq!(until, Some(start + chrono::Duration::seconds(3)));
    let small = Estimate::new(100, 100);
    assert!(ledger.try_admit(&key, small).is_ok());
    assert!(ledger.try_admit(&key, small).is_ok());
    let (reason, _) = refusal(ledger.try_admit(&key, small));
    assert!(
        matches!(
            reason,
            Refusal::ProviderRemaining { unit: LimitUnit::Requests, remaining: 0, .. }
        ),
        "{reason}"
    );
    clock.advance(secs(6));
    assert!(
        ledger.try_admit(&key, Estimate::new(1_000, 1_000)).is_ok(),
        "the headers' resets passed"
    );
}

#[test]
fn anthropic_resets_are_absolute_times() {
    let clock = ManualClock::default();
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("anthropic", "a1", "claude-sonnet-4-5");
    let reset = clock.utc() + chrono::Duration::seconds(40);
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(
            LimitUnit::OutputTokens,
            LimitScope::Minute,
            8_000,
            100,
            Some(Reset::At(reset)),
        )]),
    );
    let (reason, until) = refusal(ledger.try_admit(&key, Estimate::new(10, 1_024)));
    assert!(matches!(reason, Refusal::ProviderRemaining { unit: LimitUnit::OutputTokens, .. }));
    assert_eq!(until, Some(reset));
    assert!(ledger.try_admit(&key, Estimate::new(10, 50)).is_ok(), "a short answer fits");
}

#[test]
fn groq_requests_headers_count_the_day_and_tokens_headers_the_minute() {
    let clock = ManualClock::default();
    let ledger = ledger_config(
        &clock,
        QuotaConfig { providers: vec![presets::groq_free("groq")], ..QuotaConfig::default() },
    );
    let key = candidate("groq", "g1", "llama-3.3-70b-versatile");
    assert!(call(&ledger, &key, 10));
    // As the Groq adapter reads them: x-ratelimit-*-requests per day, *-tokens per minute.
    ledger.observe_now(
        &key,
        &snapshot(vec![
            reading(
                LimitUnit::Requests,
                LimitScope::Day,
                1_000,
                990,
                Some(Reset::After(Duration::from_millis(179_560))),
            ),
            reading(
                LimitUnit::Tokens,
                LimitScope::Minute,
                12_000,
                11_000,
                Some(Reset::After(Duration::from_millis(7_660))),
            ),
        ]),
    );
    let summary = ledger.summary_now(&"groq".into());
    let used: Vec<(String, u64)> =
        summary.keys[0].limits.iter().map(|limit| (limit.limit_name.clone(), limit.used)).collect();
    assert_eq!(
        used,
        [
            ("requests/sliding-60000ms".to_owned(), 1),
            ("requests/refill-86400000ms".to_owned(), 10),
            ("tokens/refill-60000ms".to_owned(), 1_000),
            ("tokens/refill-86400000ms".to_owned(), 10),
        ]
    );
}

/// A successful answer's headers: 2 requests a window of 4 s, `remaining` of them left.
fn two_per_window(remaining: u64) -> RateLimitSnapshot {
    snapshot(vec![reading(
        LimitUnit::Requests,
        LimitScope::Minute,
        2,
        remaining,
        Some(Reset::After(secs(4))),
    )])
}

#[test]
fn a_stated_request_limit_meters_the_next_window_until_new_headers_come() {
    let clock = ManualClock::default();
    // Nothing declared: the provider's headers are all the ledger knows.
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("openai", "o1", "gpt-4o-mini");
    ledger.observe_now(&key, &two_per_window(0));
    let (reason, _) = refusal(ledger.try_admit(&key, one()));
    assert!(matches!(reason, Refusal::ProviderRemaining { remaining: 0, .. }), "{reason}");

    // The window resets: it holds the stated 2 again, not an unknown number. A herd of waiting
    // requests gets 2 of them through, not all.
    clock.advance(secs(4));
    let first = ledger.try_admit(&key, one()).expect("the new window's first");
    let second = ledger.try_admit(&key, one()).expect("the new window's second");
    let (reason, _) = refusal(ledger.try_admit(&key, one()));
    assert!(
        matches!(
            reason,
            Refusal::ProviderRemaining { unit: LimitUnit::Requests, remaining: 0, .. }
        ),
        "{reason}"
    );
    // A failed attempt gives its place back; an answer's headers take over from the guess.
    ledger.release_now(first);
    let third = ledger.try_admit(&key, one()).expect("the released place");
    ledger.settle_now(third, &switchyard_core::Usage::new(1, 1));
    // The last attempt in flight answers with headers of a larger limit: they take over.
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(
            LimitUnit::Requests,
            LimitScope::Minute,
            10,
            7,
            Some(Reset::After(secs(4))),
        )]),
    );
    ledger.settle_now(second, &switchyard_core::Usage::new(1, 1));
    for n in 0..7 {
        assert!(ledger.try_admit(&key, one()).is_ok(), "the 7 the headers say remain: {n}");
    }
    assert!(ledger.try_admit(&key, one()).is_err(), "and no more");
}

#[test]
fn a_token_gate_ends_with_its_window() {
    let clock = ManualClock::default();
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("anthropic", "a1", "claude-sonnet-4-5");
    ledger.observe_now(
        &key,
        &snapshot(vec![reading(
            LimitUnit::OutputTokens,
            LimitScope::Minute,
            8_000,
            0,
            Some(Reset::After(secs(10))),
        )]),
    );
    assert!(ledger.try_admit(&key, Estimate::new(10, 16_000)).is_err(), "spent until the reset");
    clock.advance(secs(10));
    // An answer estimated above the stated limit is still tried once the window resets.
    assert!(ledger.try_admit(&key, Estimate::new(10, 16_000)).is_ok());
}

#[test]
fn a_429s_reading_keeps_the_limit_an_answer_stated_for_the_next_window() {
    let clock = ManualClock::default();
    let ledger = ledger_config(&clock, QuotaConfig::default());
    let key = candidate("openai", "o1", "gpt-4o-mini");
    // An answer states the limit; then a 429 (another client spent the window) carries the
    // same headers, whose limit a 429 alone is not trusted for.
    ledger.observe_now(&key, &two_per_window(1));
    let mut error = rate_limited(LimitScope::Minute, Some(secs(4)));
    error.rate_limits = two_per_window(0);
    ledger.record_error_now(&key, &error);
    clock.advance(secs(4));
    assert!(ledger.try_admit(&key, one()).is_ok());
    assert!(ledger.try_admit(&key, one()).is_ok());
    assert!(ledger.try_admit(&key, one()).is_err(), "the stated 2, not every waiting request");
}
