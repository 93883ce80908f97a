//! What once broke the shared ledger for days: counts of 1e14 and more written back by Lua as
//! `1e+14`, a garbage value in a hash, an in-flight slot whose holder died. See: issue 16.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use switchyard_core::{
    Clock, ErrorKind, LimitReading, LimitScope, LimitUnit, ManualClock, ProviderError,
    RateLimitSnapshot, Reset, Usage,
};
use switchyard_quota::{
    Estimate, KeyState, Limit, ModelQuota, ProviderQuota, QuotaConfig, QuotaError, QuotaLedger,
    Refusal,
};
use switchyard_redis::{OnUnavailable, RedisLedger, RedisOptions};

use crate::support::*;

const BIG: u64 = 1_000_000_000_000_000; // 1e15

async fn connection() -> MultiplexedConnection {
    let client = redis::Client::open(redis_url()).expect("url");
    client.get_multiplexed_async_connection().await.expect("test redis reachable")
}

async fn keys(prefix: &str, kind: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:{kind}:*"))
        .query_async(&mut connection().await)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

async fn hash(key: &str) -> Vec<(String, String)> {
    redis::cmd("HGETALL").arg(key).query_async(&mut connection().await).await.expect("HGETALL")
}

async fn hset(key: &str, field: &str, value: &str) {
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(&mut connection().await)
        .await
        .expect("HSET");
}

async fn used(ledger: &RedisLedger) -> Vec<u64> {
    let summary = ledger.summary(&"p".into()).await.expect("summary");
    summary.keys[0].limits.iter().map(|limit| limit.used).collect()
}

fn tokens(n: u64) -> Estimate {
    Estimate::new(n, 0)
}

#[tokio::test]
async fn a_reading_of_1e15_is_written_and_read_back_as_an_integer_and_still_admits() {
    let prefix = fresh_prefix("big").await;
    let clock = ManualClock::default();
    let limits = vec![
        Limit::tokens_per(4 * BIG, secs(60)),
        Limit::tokens_refill(4 * BIG, secs(60)),
        Limit::tokens_per_day(4 * BIG, chrono_tz::UTC),
    ];
    let ledger = ledger(&clock, &prefix, config(limits));
    let key = candidate("k");
    let permit = ledger.admit(&key, tokens(1)).await.expect("empty");
    let minute = LimitReading {
        unit: LimitUnit::Tokens,
        scope: LimitScope::Minute,
        limit: Some(4 * BIG),
        remaining: Some(3 * BIG),
        reset: Some(Reset::After(secs(30))),
    };
    let day = LimitReading { scope: LimitScope::Day, reset: None, ..minute };
    let snapshot = RateLimitSnapshot { readings: vec![minute, day], retry_after: None };
    ledger.observe(&key, &snapshot).await.expect("observed");
    ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    for _ in 0..3 {
        let permit = ledger.admit(&key, tokens(1_000)).await.expect("3e15 remain");
        ledger.settle(permit, &Usage::new(1_000, 0)).await.expect("settled");
    }
    assert_eq!(used(&ledger).await, vec![BIG + 3_000, BIG + 3_000, BIG + 3_000]);
    // Every stored number is an integer (the refill bucket's a plain decimal): no exponent.
    for key in [keys(&prefix, "g").await, keys(&prefix, "m").await].concat() {
        for (field, value) in hash(&key).await {
            assert!(!value.contains('e') && !value.contains('E'), "{key} {field} = {value}");
        }
    }
    let gates = hash(&keys(&prefix, "g").await[0]).await;
    let minute_gate = gates.iter().find(|(field, _)| field == "tokens|minute").expect("gate");
    assert!(minute_gate.1.starts_with("2999999999997000|"), "{gates:?}");
}

#[tokio::test]
async fn a_legacy_1e14_count_is_read_and_rewritten_as_an_integer() {
    let prefix = fresh_prefix("legacy").await;
    let clock = ManualClock::default();
    let ledger = ledger(&clock, &prefix, config(vec![Limit::tokens_per(2 * BIG, secs(60))]));
    let key = candidate("k");
    let permit = ledger.admit(&key, tokens(1)).await.expect("empty");
    ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    let meter = keys(&prefix, "m").await.remove(0);
    let (slot, _) = hash(&meter).await.remove(0);
    // What Lua's tostring wrote for 1e14 before: HINCRBY and the old scripts refused it.
    hset(&meter, &slot, "1e+14").await;
    let permit = ledger.admit(&key, tokens(5)).await.expect("1e14 of 2e15 used");
    ledger.settle(permit, &Usage::new(5, 0)).await.expect("settled");
    assert_eq!(hash(&meter).await, vec![(slot, "100000000000005".to_owned())]);
    assert_eq!(used(&ledger).await, vec![100_000_000_000_005]);
}

#[tokio::test]
async fn garbage_planted_in_every_hash_is_dropped_not_fatal() {
    let prefix = fresh_prefix("garbage").await;
    let clock = ManualClock::default();
    let ledger = ledger(
        &clock,
        &prefix,
        config(vec![Limit::per_minute(10), Limit::tokens_refill(1_000, secs(60))]),
    );
    let key = candidate("k");
    let permit = ledger.admit(&key, tokens(1)).await.expect("empty");
    let header = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Day,
        limit: Some(100),
        remaining: Some(90),
        reset: None,
    };
    let snapshot = RateLimitSnapshot { readings: vec![header], retry_after: None };
    ledger.observe(&key, &snapshot).await.expect("observed");
    ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    let gates = keys(&prefix, "g").await.remove(0);
    let meters = keys(&prefix, "m").await;
    let bucket = format!("{prefix}:b:{}", gates.trim_start_matches(&format!("{prefix}:g:")));
    assert!(keys(&prefix, "b").await.len() <= 1, "{bucket:?}");
    hset(&gates, "requests|day", "garbage").await;
    hset(&gates, "tokens|minute", "1|2|3|4").await;
    hset(&bucket, "cool_until", "soon").await;
    hset(&bucket, "exh_until", "NaN").await;
    hset(&bucket, "admits", "many").await;
    let [sliding, refill] = [&meters[0], &meters[1]];
    assert!(refill.contains("refill") && sliding.contains("sliding"), "{meters:?}");
    hset(sliding, "not-a-slot", "x").await;
    hset(sliding, "12", "many").await;
    hset(refill, "used", "lots").await;
    hset(&format!("{prefix}:k:p:k"), "hold", "invalid").await;
    hset(&format!("{prefix}:k:p:k"), "until", "later").await;

    // Status reads by field name: the garbage counts as absent, never a panic.
    let status = ledger.status(&key).await.expect("status");
    assert_eq!(status.state, KeyState::Available);
    // The next admission drops what it cannot read and admits.
    let permit = ledger.admit(&key, tokens(1)).await.expect("recovered");
    ledger.settle(permit, &Usage::new(1, 0)).await.expect("settled");
    assert_eq!(hash(&gates).await, Vec::<(String, String)>::new());
    let bucket_fields: Vec<String> = hash(&bucket).await.into_iter().map(|(f, _)| f).collect();
    assert!(!bucket_fields.iter().any(|f| f.ends_with("_until")), "{bucket_fields:?}");
    let admits = hash(&bucket).await.into_iter().find(|(field, _)| field == "admits");
    assert_eq!(admits.map(|(_, n)| n).as_deref(), Some("1"), "an unreadable count restarts");
    for meter in &meters {
        for (field, value) in hash(meter).await {
            assert!(value.parse::<f64>().is_ok(), "{meter} {field} = {value} kept");
            assert_ne!(field, "not-a-slot");
        }
    }
    // And it keeps working: holds set afterwards are honoured again.
    let error = ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "p", "")
        .with_status(429)
        .with_retry_after(Some(Duration::MAX));
    ledger.record_error(&key, &error).await.expect("recorded");
    match ledger.admit(&key, tokens(1)).await {
        Err(QuotaError::Refused { reason: Refusal::CoolingDown, until, .. }) => {
            let horizon = clock.utc() + chrono::Duration::days(31);
            assert_eq!(until, Some(horizon), "a retry-after of Duration::MAX is 31 days");
        }
        other => panic!("expected a cooldown, got {other:?}"),
    }
}

#[tokio::test]
async fn an_in_flight_slot_never_released_is_freed_when_its_lease_ends() {
    let prefix = fresh_prefix("lease").await;
    let clock = ManualClock::default();
    let config = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "p".into(),
            day: switchyard_quota::DayBoundary::Rolling,
            models: vec![ModelQuota { max_concurrent: Some(1), ..ModelQuota::every_model(vec![]) }],
        }],
        ..QuotaConfig::default()
    };
    let options = RedisOptions {
        inflight_lease: secs(30),
        connect_timeout: secs(5),
        response_timeout: secs(5),
        ..options(&prefix, OnUnavailable::FailClosed)
    };
    let key = candidate("k");
    let dying =
        RedisLedger::new(&redis_url(), config.clone(), Arc::new(clock.clone()), options.clone())
            .expect("ledger");
    let permit = dying.admit(&key, tokens(1)).await.expect("first slot");
    // The process holding the slot dies: neither settle nor release ever comes.
    drop(permit);
    drop(dying);
    let survivor =
        RedisLedger::new(&redis_url(), config, Arc::new(clock.clone()), options).expect("ledger");
    match survivor.admit(&key, tokens(1)).await {
        Err(QuotaError::Refused { reason: Refusal::Concurrency { max: 1 }, .. }) => {}
        other => panic!("expected the slot still held, got {other:?}"),
    }
    clock.advance(secs(29));
    assert!(survivor.admit(&key, tokens(1)).await.is_err(), "held for the whole lease");
    clock.advance(secs(1));
    let permit = survivor.admit(&key, tokens(1)).await.expect("the lease ended");
    // A released slot is free at once.
    survivor.release(permit).await.expect("released");
    let permit = survivor.admit(&key, tokens(1)).await.expect("free again");
    survivor.release(permit).await.expect("released");
}

#[tokio::test]
async fn endless_resets_in_headers_become_gates_of_at_most_31_days() {
    let prefix = fresh_prefix("endless").await;
    let clock = ManualClock::default();
    let ledger = ledger(&clock, &prefix, config(vec![Limit::per_minute(10)]));
    let key = candidate("k");
    let after = LimitReading {
        unit: LimitUnit::Requests,
        scope: LimitScope::Minute,
        limit: Some(u64::MAX),
        remaining: Some(0),
        reset: Some(Reset::After(Duration::MAX)),
    };
    let at = LimitReading {
        unit: LimitUnit::Tokens,
        scope: LimitScope::Day,
        limit: None,
        remaining: Some(u64::MAX),
        reset: Some(Reset::At(chrono::DateTime::<chrono::Utc>::MAX_UTC)),
    };
    let snapshot = RateLimitSnapshot { readings: vec![after, at], retry_after: None };
    ledger.observe(&key, &snapshot).await.expect("observed");
    let horizon = clock.utc() + chrono::Duration::days(31);
    match ledger.admit(&key, tokens(1)).await {
        Err(QuotaError::Refused {
            reason: Refusal::ProviderRemaining { remaining: 0, .. },
            until,
            ..
        }) => {
            assert_eq!(until, Some(horizon));
        }
        other => panic!("expected the header's gate, got {other:?}"),
    }
    clock.advance(secs(31 * 86_400));
    let permit = ledger.admit(&key, tokens(1)).await.expect("the gate ended after 31 days");
    ledger.release(permit).await.expect("released");
}
