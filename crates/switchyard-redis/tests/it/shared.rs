//! Two ledgers on two connections share counts, cooldowns and key states.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono_tz::America::Los_Angeles;
use switchyard_core::{
    Clock, ErrorKind, LimitReading, LimitScope, LimitUnit, ManualClock, ProviderError,
    RateLimitSnapshot, Reset, Usage,
};
use switchyard_quota::{
    DayBoundary, Estimate, KeyState, Limit, ModelQuota, ProviderQuota, QuotaConfig, QuotaError,
    QuotaLedger, Refusal,
};

use crate::support::*;

fn one() -> Estimate {
    Estimate::new(1, 0)
}

async fn refusal(
    ledger: &dyn QuotaLedger,
    key: &str,
) -> (Refusal, Option<chrono::DateTime<chrono::Utc>>) {
    match ledger.admit(&candidate(key), one()).await {
        Err(QuotaError::Refused { reason, until, .. }) => (reason, until),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("admitted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ledgers_racing_admit_exactly_the_limit() {
    let prefix = fresh_prefix("race").await;
    let clock = ManualClock::default();
    let ledgers = [
        Arc::new(ledger(&clock, &prefix, config(vec![Limit::per_minute(200)]))),
        Arc::new(ledger(&clock, &prefix, config(vec![Limit::per_minute(200)]))),
    ];
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for idx in 0..8 {
        let ledger = Arc::clone(&ledgers[idx % 2]);
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                match ledger.admit(&candidate("k"), one()).await {
                    Ok(permit) => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
                    }
                    Err(QuotaError::Refused { .. }) => {}
                    Err(other) => panic!("backend failed: {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 200);
    let (reason, _) = refusal(ledgers[0].as_ref(), "k").await;
    assert!(matches!(reason, Refusal::Limit { .. }), "{reason}");
    clock.advance(secs(61));
    assert!(
        ledgers[1].admit(&candidate("k"), one()).await.is_ok(),
        "the window slid on the shared clock"
    );
}

#[tokio::test]
async fn a_cooldown_set_by_one_is_seen_by_the_other() {
    let prefix = fresh_prefix("cooldown").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(vec![]));
    let second = ledger(&clock, &prefix, config(vec![]));
    let start = clock.utc();
    let error = ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "p", "")
        .with_status(429)
        .with_retry_after(Some(secs(20)));
    first.record_error(&candidate("k"), &error).await.expect("recorded");
    let (reason, until) = refusal(&second, "k").await;
    assert_eq!(reason, Refusal::CoolingDown);
    assert_eq!(until, Some(start + chrono::Duration::seconds(20)));
    let status = second.status(&candidate("k")).await.expect("status");
    assert_eq!(
        status.state,
        KeyState::CoolingDown { until: start + chrono::Duration::seconds(20) }
    );
    assert_eq!(status.reason.as_deref(), Some("rate_limited (HTTP 429)"));
    // A shorter cooldown from the other process does not shorten it.
    second
        .record_error(&candidate("k"), &error.clone().with_retry_after(Some(secs(2))))
        .await
        .expect("recorded");
    clock.advance(secs(19));
    assert!(first.admit(&candidate("k"), one()).await.is_err());
    clock.advance(secs(1));
    assert!(first.admit(&candidate("k"), one()).await.is_ok(), "time from the Clock, not Redis");
}

#[tokio::test]
async fn the_backoff_schedule_is_shared_and_escalates() {
    let prefix = fresh_prefix("backoff").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(vec![]));
    let second = ledger(&clock, &prefix, config(vec![]));
    let error = ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "p", "")
        .with_status(429);
    let mut waits = Vec::new();
    for idx in 0..4 {
        let ledger = if idx % 2 == 0 { &first } else { &second };
        let start = clock.utc();
        ledger.record_error(&candidate("k"), &error).await.expect("recorded");
        let (_, until) = refusal(ledger, "k").await;
        let until = until.expect("ends");
        waits.push((until - start).num_seconds());
        clock.set_utc(until);
    }
    assert_eq!(waits, [90, 120, 180, 180]);
}

#[tokio::test]
async fn key_states_are_shared_until_reenabled() {
    let prefix = fresh_prefix("keys").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(vec![]));
    let second = ledger(&clock, &prefix, config(vec![]));
    let invalid = ProviderError::new(ErrorKind::InvalidKey, "p", "").with_status(401);
    first.record_error(&candidate("k"), &invalid).await.expect("recorded");
    assert_eq!(refusal(&second, "k").await.0, Refusal::Invalid);
    assert_eq!(second.status(&candidate("k")).await.expect("status").state, KeyState::Invalid);
    second.reenable(&"p".into(), &"k".into()).await.expect("reenabled");
    assert!(first.admit(&candidate("k"), one()).await.is_ok());
}

#[tokio::test]
async fn settle_and_release_return_capacity_to_everyone() {
    let prefix = fresh_prefix("settle").await;
    let clock = ManualClock::default();
    let limits = vec![Limit::tokens_per(1_000, secs(60))];
    let first = ledger(&clock, &prefix, config(limits.clone()));
    let second = ledger(&clock, &prefix, config(limits));
    let permit = first.admit(&candidate("k"), Estimate::new(200, 600)).await.expect("fits");
    assert!(second.admit(&candidate("k"), Estimate::new(100, 150)).await.is_err());
    first.settle(permit, &Usage::new(200, 100)).await.expect("settled");
    let permit =
        second.admit(&candidate("k"), Estimate::new(100, 150)).await.expect("300 used + 250 fits");
    second.release(permit).await.expect("released");
    let summary = first.summary(&"p".into()).await.expect("summary");
    assert_eq!(summary.keys[0].limits[0].used, 300, "a release gives back its whole estimate");
}

#[tokio::test]
async fn headers_seen_by_one_refuse_on_the_other_before_a_429() {
    let prefix = fresh_prefix("headers").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(vec![Limit::requests_refill(1_000, secs(86_400))]));
    let second = ledger(&clock, &prefix, config(vec![Limit::requests_refill(1_000, secs(86_400))]));
    let snapshot = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Day,
            limit: Some(1_000),
            remaining: Some(1),
            reset: Some(Reset::After(secs(30))),
        }],
        retry_after: None,
    };
    first.observe(&candidate("k"), &snapshot).await.expect("observed");
    let permit = second.admit(&candidate("k"), one()).await.expect("one remains");
    let (reason, _) = refusal(&first, "k").await;
    assert!(matches!(reason, Refusal::ProviderRemaining { remaining: 0, .. }), "{reason}");
    second.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    let summary = second.summary(&"p".into()).await.expect("summary");
    assert_eq!(
        summary.keys[0].limits[0].used, 1_000,
        "the provider's count replaced the local one"
    );
}

#[tokio::test]
async fn a_daily_quota_resets_at_midnight_los_angeles_for_everyone() {
    let prefix = fresh_prefix("daily").await;
    let clock = ManualClock::starting_at(
        chrono::DateTime::parse_from_rfc3339("2026-03-08T07:00:00Z").expect("date").to_utc(),
    );
    let config = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "p".into(),
            day: DayBoundary::Midnight(Los_Angeles),
            models: vec![ModelQuota::every_model(vec![Limit::requests_per_day(2, Los_Angeles)])],
        }],
        ..QuotaConfig::default()
    };
    let first = ledger(&clock, &prefix, config.clone());
    let second = ledger(&clock, &prefix, config);
    assert!(first.admit(&candidate("k"), one()).await.is_ok());
    assert!(second.admit(&candidate("k"), one()).await.is_ok());
    let (_, until) = refusal(&first, "k").await;
    let reset =
        chrono::DateTime::parse_from_rfc3339("2026-03-08T08:00:00Z").expect("date").to_utc();
    assert_eq!(until, Some(reset), "midnight PST, the night DST starts");
    clock.set_utc(reset);
    assert!(second.admit(&candidate("k"), one()).await.is_ok());
}

#[tokio::test]
async fn a_settlement_corrects_the_count_where_the_reservation_was_made() {
    let prefix = fresh_prefix("correction").await;
    let clock = ManualClock::default();
    let ledger = ledger(&clock, &prefix, config(vec![Limit::tokens_per(1_000, secs(60))]));
    let used =
        || async { ledger.summary(&"p".into()).await.expect("summary").keys[0].limits[0].used };
    let permit = ledger.admit(&candidate("k"), Estimate::new(100, 0)).await.expect("fits");
    clock.advance(secs(30));
    ledger.settle(permit, &Usage::new(100, 500)).await.expect("settled");
    assert_eq!(used().await, 600);
    clock.set_elapsed(secs(61));
    assert_eq!(used().await, 0, "the extra 500 left with the t=0 reservation");
    let late = ledger.admit(&candidate("k"), Estimate::new(100, 0)).await.expect("fits");
    clock.set_elapsed(secs(200));
    ledger.settle(late, &Usage::new(100, 800)).await.expect("settled");
    assert_eq!(used().await, 0, "a correction whose window passed is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_header_never_gives_back_capacity_held_by_attempts_in_flight_elsewhere() {
    let prefix = fresh_prefix("stale").await;
    let clock = ManualClock::default();
    let limits = vec![Limit::requests_refill(5, secs(60))];
    let first = ledger(&clock, &prefix, config(limits.clone()));
    let second = ledger(&clock, &prefix, config(limits));
    let mut permits = Vec::new();
    for ledger in [&first, &first, &second, &second, &second] {
        permits.push(ledger.admit(&candidate("k"), one()).await.expect("within 5"));
    }
    // The first call's answer says 4 remain: the provider had counted only that call, while
    // four more (three on the other instance) are on their way.
    let stale = RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: Some(5),
            remaining: Some(4),
            reset: None,
        }],
        retry_after: None,
    };
    first.observe(&candidate("k"), &stale).await.expect("observed");
    let (reason, _) = refusal(&second, "k").await;
    assert!(matches!(reason, Refusal::Limit { .. }), "no capacity handed out twice: {reason}");
    let summary = second.summary(&"p".into()).await.expect("summary");
    assert_eq!(summary.keys[0].limits[0].used, 5);

    // Once nothing else is in flight, the provider's word may lower the count again.
    let last = permits.pop().expect("five permits");
    for permit in permits {
        first.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    }
    let fresh = RateLimitSnapshot {
        readings: vec![LimitReading { remaining: Some(3), ..stale.readings[0] }],
        retry_after: None,
    };
    second.observe(&candidate("k"), &fresh).await.expect("observed");
    let summary = first.summary(&"p".into()).await.expect("summary");
    assert_eq!(summary.keys[0].limits[0].used, 2);
    second.release(last).await.expect("released");
}

/// How many attempts the key admits now; their permits are released afterwards.
async fn admits_now(ledger: &dyn QuotaLedger, key: &str) -> usize {
    let mut permits = Vec::new();
    while let Ok(permit) = ledger.admit(&candidate(key), one()).await {
        permits.push(permit);
        assert!(permits.len() <= 10, "the gate refuses at some point");
    }
    let admitted = permits.len();
    for permit in permits {
        ledger.release(permit).await.expect("released");
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_whose_flight_overlapped_another_cannot_hand_its_capacity_out_again() {
    let prefix = fresh_prefix("overlap").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(Vec::new()));
    let second = ledger(&clock, &prefix, config(Vec::new()));
    let left = |remaining| RateLimitSnapshot {
        readings: vec![LimitReading {
            unit: LimitUnit::Requests,
            scope: LimitScope::Minute,
            limit: Some(6),
            remaining: Some(remaining),
            reset: Some(Reset::After(secs(60))),
        }],
        retry_after: None,
    };
    let served = Usage::new(1, 0);

    // Admitted while another was in flight: the earlier attempt's call reached the provider
    // second, and its answer, counting both, comes back first.
    let earlier = first.admit(&candidate("k"), one()).await.expect("admitted");
    let later = second.admit(&candidate("k"), one()).await.expect("admitted");
    first.observe_attempt(&earlier, &left(4)).await.expect("observed");
    first.settle(earlier, &served).await.expect("settled");
    // The later attempt is alone in flight now and nothing was admitted after it, but its
    // answer was written before the provider received the earlier call: "5 left" misses it.
    second.observe_attempt(&later, &left(5)).await.expect("observed");
    second.settle(later, &served).await.expect("settled");
    assert_eq!(admits_now(&first, "k").await, 4, "the earlier answer's 4 stand");

    // Next window. An attempt admitted alone, overtaken by one admitted after it on the other
    // instance, answered and settled first: the first answer misses the second call.
    clock.advance(secs(61));
    let alone = first.admit(&candidate("k"), one()).await.expect("admitted");
    let after = second.admit(&candidate("k"), one()).await.expect("admitted");
    second.observe_attempt(&after, &left(4)).await.expect("observed");
    second.settle(after, &served).await.expect("settled");
    first.observe_attempt(&alone, &left(5)).await.expect("observed");
    first.settle(alone, &served).await.expect("settled");
    assert_eq!(admits_now(&second, "k").await, 4, "the later answer's 4 stand");

    // An attempt that flew alone is taken at its word, up as well as down.
    clock.advance(secs(61));
    let lone = second.admit(&candidate("k"), one()).await.expect("admitted");
    second.observe_attempt(&lone, &left(5)).await.expect("observed");
    second.settle(lone, &served).await.expect("settled");
    assert_eq!(admits_now(&first, "k").await, 5);
}

fn two_per_window(unit: LimitUnit, remaining: u64) -> RateLimitSnapshot {
    RateLimitSnapshot {
        readings: vec![LimitReading {
            unit,
            scope: LimitScope::Minute,
            limit: Some(2),
            remaining: Some(remaining),
            reset: Some(Reset::After(secs(4))),
        }],
        retry_after: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stated_request_limit_meters_the_next_window_on_every_instance() {
    let prefix = fresh_prefix("carry").await;
    let clock = ManualClock::default();
    let first = ledger(&clock, &prefix, config(Vec::new()));
    let second = ledger(&clock, &prefix, config(Vec::new()));
    first.observe(&candidate("k"), &two_per_window(LimitUnit::Requests, 0)).await.expect("seen");
    let (reason, _) = refusal(&second, "k").await;
    assert!(matches!(reason, Refusal::ProviderRemaining { remaining: 0, .. }), "{reason}");
    // The window resets: it holds the stated 2 again, not an unknown number. A herd waiting
    // for the key gets 2 through, not all of it.
    clock.advance(secs(4));
    assert_eq!(admits_now(&second, "k").await, 2, "the stated 2 in the next window");

    // A 429 (another client spent the window) carries the same headers, whose limit a 429
    // alone is not trusted for: it replaces the count and the reset, and the limit an answer
    // stated stays.
    let mut error =
        ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "p", "")
            .with_status(429)
            .with_retry_after(Some(secs(4)));
    error.rate_limits = two_per_window(LimitUnit::Requests, 0);
    second.record_error(&candidate("k"), &error).await.expect("recorded");
    clock.advance(secs(4));
    assert_eq!(admits_now(&first, "k").await, 2, "still the stated 2 after a 429");

    // A token gate ends with its window: a request estimated above it is tried again.
    first.observe(&candidate("t"), &two_per_window(LimitUnit::Tokens, 0)).await.expect("seen");
    assert!(first.admit(&candidate("t"), one()).await.is_err(), "spent until the reset");
    clock.advance(secs(4));
    let permits = [
        first.admit(&candidate("t"), one()).await.expect("after the reset"),
        second.admit(&candidate("t"), one()).await.expect("after the reset"),
        first.admit(&candidate("t"), one()).await.expect("no gate left to count against"),
    ];
    for permit in permits {
        first.release(permit).await.expect("released");
    }
}
