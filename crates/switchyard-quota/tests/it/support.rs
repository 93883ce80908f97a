//! Shared helpers: a ledger on a manual clock, candidates, errors.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{Candidate, ErrorKind, LimitScope, ManualClock, ProviderError, Usage};
use switchyard_quota::{
    DayBoundary, Estimate, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig, QuotaError,
    Refusal,
};

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("date").to_utc()
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn candidate(provider: &str, key: &str, model: &str) -> Candidate {
    Candidate::new(provider, key, model)
}

/// A ledger with `limits` for every model of provider `p`.
pub(crate) fn ledger_with(clock: &ManualClock, limits: Vec<Limit>) -> MemoryLedger {
    ledger_config(
        clock,
        QuotaConfig {
            providers: vec![ProviderQuota {
                provider: "p".into(),
                day: DayBoundary::Rolling,
                models: vec![ModelQuota::every_model(limits)],
            }],
            ..QuotaConfig::default()
        },
    )
}

pub(crate) fn ledger_config(clock: &ManualClock, config: QuotaConfig) -> MemoryLedger {
    MemoryLedger::new(Arc::new(clock.clone()), config)
}

pub(crate) fn one() -> Estimate {
    Estimate::new(1, 0)
}

/// Admits and settles one request of `tokens` tokens; whether it was admitted.
pub(crate) fn call(ledger: &MemoryLedger, candidate: &Candidate, tokens: u32) -> bool {
    match ledger.try_admit(candidate, Estimate::new(u64::from(tokens), 0)) {
        Ok(permit) => {
            ledger.settle_now(permit, &Usage::new(tokens, 0));
            true
        }
        Err(_) => false,
    }
}

pub(crate) fn refusal(
    result: Result<switchyard_quota::Permit, QuotaError>,
) -> (Refusal, Option<DateTime<Utc>>) {
    match result {
        Err(QuotaError::Refused { reason, until, .. }) => (reason, until),
        Err(other) => panic!("unexpected error {other}"),
        Ok(permit) => panic!("admitted {}", permit.candidate()),
    }
}

pub(crate) fn rate_limited(scope: LimitScope, retry_after: Option<Duration>) -> ProviderError {
    ProviderError::new(ErrorKind::RateLimited { scope }, "p", "rate limited")
        .with_status(429)
        .with_retry_after(retry_after)
}
