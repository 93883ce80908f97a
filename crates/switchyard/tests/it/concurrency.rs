//! Many requests at once against small quotas, and callers that go away mid-call.

use std::time::Duration;

use chrono_tz::America::Los_Angeles;
use switchyard::{Router, StrategyKind};
use switchyard_core::{ManualClock, ProviderId};
use switchyard_mock::Latency;
use switchyard_openai::Preset;
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig};

use crate::support::{builder, credentials, key, openai_provider, request, wait_until};

fn daily(provider: &str, per_day: u64) -> QuotaConfig {
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: ProviderId::new(provider),
            day: DayBoundary::Midnight(Los_Angeles),
            models: vec![ModelQuota::every_model(vec![Limit::requests_per_day(
                per_day,
                Los_Angeles,
            )])],
        }],
        ..QuotaConfig::default()
    }
}

async fn used(router: &Router, provider: &str) -> u64 {
    let summary = router.ledger().summary(&ProviderId::new(provider)).await.expect("summary");
    summary.keys.iter().flat_map(|key| key.limits.iter().map(|limit| limit.used)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_over_five_keys_of_100_a_day_serve_exactly_500() {
    let clock = ManualClock::default();
    let ids = ["k1", "k2", "k3", "k4", "k5"];
    let mock = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .keys(ids.iter().map(|id| key(id).requests_per_day(100)))
        .start()
        .await
        .expect("mock starts");
    let gemini = openai_provider("gemini", Preset::Compatible, &mock, &clock);
    let router =
        credentials(builder(&clock, daily("gemini", 100)).provider(gemini), "gemini", &ids)
            .route("default", StrategyKind::RoundRobin, ["gemini/gemini-2.0-flash"])
            .build()
            .expect("router builds");

    let tasks: Vec<_> = (0..2000)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.chat("default", &request()).await })
        })
        .collect();
    let (mut served, mut quota_exceeded, mut other) = (0, 0, Vec::new());
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => served += 1,
            Err(error) if error.code() == "QUOTA_EXCEEDED" => quota_exceeded += 1,
            Err(error) => other.push(error.to_string()),
        }
    }
    assert_eq!(served, 500);
    assert_eq!(quota_exceeded, 1500);
    assert!(other.is_empty(), "{other:?}");
    for id in ids {
        let counts = mock.counts(id).expect("key counts");
        assert_eq!(counts.requests, 100, "{id} was called exactly its quota");
        assert_eq!(counts.rate_limited, 0, "{id} was never sent a request over its quota");
    }
    assert_eq!(used(&router, "gemini").await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_mid_call_cancels_it_and_the_count_stays_exact() {
    let clock = ManualClock::default();
    let mock = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1").requests_per_day(100))
        .latency(Latency::Fixed(Duration::from_secs(30)))
        .start()
        .await
        .expect("mock starts");
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, daily("openai", 100)).provider(openai), "openai", &["k1"])
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");

    let call = {
        let router = router.clone();
        tokio::spawn(async move { router.chat("default", &request()).await })
    };
    // The mock is now holding the call (sleeping its latency on the clock) and the router
    // waits on its deadline: two sleepers.
    wait_until("the mock holds the call", || clock.sleepers() >= 2).await;
    assert_eq!(used(&router, "openai").await, 1, "the permit counts while in flight");
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    // The abandoned permit is settled (on a spawned task) as spent: the upstream counted it.
    // The mock sees the connection close and drops its handler: nobody sleeps any more.
    wait_until("the upstream call is dropped", || clock.sleepers() == 0).await;
    assert_eq!(used(&router, "openai").await, 1);
    assert_eq!(mock.counts("k1").expect("k1").requests, 1);
    // The next call is admitted and counted on top, exactly.
    clock.advance(Duration::from_secs(30));
    let answer = tokio::spawn({
        let router = router.clone();
        async move { router.chat("default", &request()).await }
    });
    wait_until("the mock holds the second call", || clock.sleepers() >= 2).await;
    clock.advance(Duration::from_secs(30));
    answer.await.expect("task").expect("served");
    assert_eq!(used(&router, "openai").await, 2);
    assert_eq!(mock.counts("k1").expect("k1").requests, 2);
}
