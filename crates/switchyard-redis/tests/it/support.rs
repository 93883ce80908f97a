//! The test server's URL, unique key prefixes, ledgers on a shared manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchyard_core::{Candidate, ManualClock};
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig};
use switchyard_redis::{OnUnavailable, RedisLedger, RedisOptions};

/// The test server. Never skipped: without it the test fails and says how to get one.
pub(crate) fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "SWITCHYARD_TEST_REDIS_URL is not set: run `cargo xtask test` (it starts a \
             redis-server), or start one (`redis-server --port 6390 --save '' --daemonize yes`) \
             and set SWITCHYARD_TEST_REDIS_URL=redis://127.0.0.1:6390/0"
        )
    })
}

/// A key prefix no other test (or earlier run) uses: the process id, the test's name and a
/// counter. Leftovers of an earlier run with the same prefix are deleted first.
pub(crate) async fn fresh_prefix(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let prefix =
        format!("sy-test:{}:{name}:{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let client = redis::Client::open(redis_url()).expect("url");
    let mut connection =
        client.get_multiplexed_async_connection().await.expect("test redis reachable");
    let stale: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    if !stale.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&stale).query_async(&mut connection).await.expect("DEL");
    }
    prefix
}

pub(crate) fn config(limits: Vec<Limit>) -> QuotaConfig {
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "p".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(limits)],
        }],
        ..QuotaConfig::default()
    }
}

pub(crate) fn options(prefix: &str, on_unavailable: OnUnavailable) -> RedisOptions {
    RedisOptions {
        prefix: prefix.to_owned(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        on_unavailable,
        retry_after_failure: Duration::from_secs(1),
        inflight_lease: switchyard_redis::DEFAULT_INFLIGHT_LEASE,
    }
}

/// A ledger on the test server, with its own connection. Its timeouts are generous: a test
/// machine running every suite at once must not turn a slow answer into a failure.
pub(crate) fn ledger(clock: &ManualClock, prefix: &str, config: QuotaConfig) -> RedisLedger {
    let options = RedisOptions {
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        ..options(prefix, OnUnavailable::FailClosed)
    };
    RedisLedger::new(&redis_url(), config, Arc::new(clock.clone()), options).expect("ledger")
}

pub(crate) fn candidate(key: &str) -> Candidate {
    Candidate::new("p", key, "m")
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
