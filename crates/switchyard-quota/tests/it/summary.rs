//! Summaries per limit and key, and the provider-level status.

use switchyard_core::{Clock, ErrorKind, LimitScope, ManualClock, ProviderError};
use switchyard_quota::{KeyState, Limit, ProviderStatus, QuotaLedger};

use crate::support::*;

#[test]
fn a_limit_summary_shows_used_limit_remaining_percent_and_reset() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(4)]);
    let key = candidate("p", "k", "m");
    let start = clock.utc();
    assert!(call(&ledger, &key, 1));
    assert!(call(&ledger, &key, 1));
    clock.advance(secs(1));
    assert!(call(&ledger, &key, 1));
    let summary = ledger.summary_now(&"p".into());
    let limit = &summary.keys[0].limits[0];
    assert_eq!((limit.used, limit.limit, limit.remaining), (3, 4, 1));
    assert!((limit.percent - 75.0).abs() < 1e-9);
    assert_eq!(
        limit.resets_at,
        Some(start + chrono::Duration::seconds(62)),
        "the last count leaves then"
    );
    let json = serde_json::to_value(&summary).expect("serializes");
    assert_eq!(json["status"]["status"], "AVAILABLE");
    assert_eq!(json["keys"][0]["limits"][0]["resets_at"], "2026-01-15T12:01:02Z");
}

#[test]
fn provider_status_partial_then_exceeded_with_the_earliest_reset() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![Limit::per_minute(10)]);
    let start = clock.utc();
    let keys: Vec<_> = ["k1", "k2", "k3"].iter().map(|key| candidate("p", key, "m")).collect();
    for key in &keys {
        ledger.register(key);
    }
    assert_eq!(ledger.summary_now(&"p".into()).status, ProviderStatus::Available { keys: 3 });
    ledger.record_error_now(&keys[0], &rate_limited(LimitScope::Minute, Some(secs(50))));
    assert_eq!(
        ledger.summary_now(&"p".into()).status,
        ProviderStatus::PartialQuota { available: 2, keys: 3 }
    );
    ledger.record_error_now(&keys[1], &rate_limited(LimitScope::Minute, Some(secs(20))));
    ledger.record_error_now(&keys[2], &rate_limited(LimitScope::Minute, Some(secs(40))));
    let summary = ledger.summary_now(&"p".into());
    assert_eq!(
        summary.status,
        ProviderStatus::QuotaExceeded {
            earliest_reset: Some(start + chrono::Duration::seconds(20))
        }
    );
    assert_eq!(summary.status.code(), "QUOTA_EXCEEDED");
    assert!(matches!(summary.keys[1].status.state, KeyState::CoolingDown { .. }));
    clock.advance(secs(20));
    assert_eq!(ledger.summary_now(&"p".into()).status.code(), "PARTIAL_QUOTA");
}

#[test]
fn provider_status_invalid_keys_when_every_key_is_invalid() {
    let clock = ManualClock::default();
    let ledger = ledger_with(&clock, vec![]);
    for key in ["k1", "k2"] {
        let error = ProviderError::new(ErrorKind::InvalidKey, "p", "").with_status(401);
        ledger.record_error_now(&candidate("p", key, "m"), &error);
    }
    let summary = ledger.summary_now(&"p".into());
    assert_eq!(summary.status, ProviderStatus::InvalidKeys);
    assert_eq!(summary.keys[0].status.reason.as_deref(), Some("invalid_key (HTTP 401)"));
}

#[tokio::test]
async fn the_trait_object_does_what_the_inherent_methods_do() {
    let clock = ManualClock::default();
    let ledger: std::sync::Arc<dyn QuotaLedger> =
        std::sync::Arc::new(ledger_with(&clock, vec![Limit::per_minute(1)]));
    let key = candidate("p", "k", "m");
    let permit = ledger.admit(&key, one()).await.expect("admitted");
    assert!(ledger.admit(&key, one()).await.is_err());
    ledger.release(permit).await.expect("released");
    let permit = ledger.admit(&key, one()).await.expect("released capacity returns");
    let error = rate_limited(LimitScope::Minute, Some(secs(9)));
    ledger.fail(permit, &error).await.expect("failed");
    let status = ledger.status(&key).await.expect("status");
    assert!(matches!(status.state, KeyState::CoolingDown { .. }));
    assert_eq!(ledger.summary(&"p".into()).await.expect("summary").status.code(), "QUOTA_EXCEEDED");
}
