//! Goodput under quota pressure: free before paid, free keys drained evenly, waiting for a
//! free key or paying per the route's `prefer`, a quota group counted once, and no upstream
//! 429 with declared limits under concurrent load.

use std::collections::HashMap;
use std::time::Duration;

use switchyard::{ModelFacts, Prefer, Price, RouteConfig, Router, RouterError, StrategyKind};
use switchyard_core::{Clock, ManualClock};
use switchyard_mock::{KeyScript, MockUpstream, Quotas};
use switchyard_openai::Preset;
use switchyard_quota::{DayBoundary, Limit, ModelQuota, ProviderQuota, QuotaConfig, QuotaGroup};

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, request, secret, wait_until,
};

const FREE: &str = "free/llama-3.3-70b-versatile";
const PAID: &str = "paid/gpt-4o-mini";

/// Declared limits: `n` requests a minute per key (or per group) of the free provider.
fn free_limits(n: u64) -> QuotaConfig {
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "free".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![Limit::per_minute(n)])],
        }],
        ..QuotaConfig::default()
    }
}

/// A router over a free provider (keys `free_keys`) and a paid one (key `p1`, a cent a call),
/// both on `mock`, with `route` as the route named `default`.
fn two_tier(
    clock: &ManualClock,
    mock: &MockUpstream,
    quota: QuotaConfig,
    free_keys: &[&str],
    route: RouteConfig,
) -> Router {
    let free = openai_provider("free", Preset::Groq, mock, clock);
    let paid = openai_provider("paid", Preset::OpenAi, mock, clock);
    let builder =
        credentials(builder(clock, quota).provider(free).provider(paid), "free", free_keys);
    credentials(builder, "paid", &["p1"])
        .model(
            PAID,
            ModelFacts {
                price: Some(Price { per_request: 0.01, ..Price::FREE }),
                ..ModelFacts::default()
            },
        )
        .model(FREE, ModelFacts { price: Some(Price::FREE), ..ModelFacts::default() })
        .route_config(route)
        .build()
        .expect("router builds")
}

/// Calls served per key id, as the mock counted them.
fn served(mock: &MockUpstream, keys: &[&str]) -> Vec<u64> {
    keys.iter().map(|key| mock.counts(key).map_or(0, |counts| counts.served)).collect()
}

#[tokio::test]
async fn free_candidates_go_before_paid_ones_whatever_the_strategy_ranks() {
    let strategies = [
        StrategyKind::Priority,
        StrategyKind::RoundRobin,
        StrategyKind::LeastLoaded,
        StrategyKind::Fastest,
        StrategyKind::CostOptimal,
        StrategyKind::Adaptive,
    ];
    for strategy in strategies {
        let clock = ManualClock::default();
        let mock = openai_mock(&clock, vec![key("f1"), key("p1")]).await;
        // The paid target is listed first; priority, an order written down, says free-first
        // explicitly.
        let mut route = RouteConfig::new("default", strategy.clone(), [PAID, FREE]);
        if matches!(strategy, StrategyKind::Priority) {
            route.free_first = Some(true);
        }
        let router = two_tier(&clock, &mock, QuotaConfig::default(), &["f1"], route);
        for _ in 0..4 {
            let answer = router.chat("default", &request()).await.expect("served");
            assert_eq!(answer.served_by.provider.as_str(), "free", "{strategy:?}");
            assert_eq!(answer.cost, Some(0.0));
        }
        assert_eq!(served(&mock, &["f1", "p1"]), [4, 0], "{strategy:?}");
    }
}

#[tokio::test]
async fn a_route_may_turn_free_first_off_and_priority_keeps_its_order() {
    for (strategy, free_first) in
        [(StrategyKind::LeastLoaded, Some(false)), (StrategyKind::Priority, None)]
    {
        let clock = ManualClock::default();
        let mock = openai_mock(&clock, vec![key("f1"), key("p1")]).await;
        let mut route = RouteConfig::new("default", strategy, [PAID, FREE]);
        route.free_first = free_first;
        let router = two_tier(&clock, &mock, QuotaConfig::default(), &["f1"], route);
        let answer = router.chat("default", &request()).await.expect("served");
        assert_eq!(answer.served_by.provider.as_str(), "paid", "the strategy's order holds");
    }
}

#[tokio::test]
async fn free_keys_drain_evenly_by_headroom() {
    let clock = ManualClock::default();
    let keys = ["a", "b", "c"];
    let scripts = keys.iter().map(|id| key(id).requests_per_minute(4)).collect();
    let mock = openai_mock(&clock, scripts).await;
    // One request at a time: least-loaded alone would always pick the first key.
    let route = RouteConfig::new("default", StrategyKind::LeastLoaded, [FREE, PAID]);
    let router = two_tier(&clock, &mock, free_limits(4), &keys, route);
    for _ in 0..6 {
        router.chat("default", &request()).await.expect("served");
    }
    assert_eq!(served(&mock, &keys), [2, 2, 2], "each key keeps the same headroom");

    // The same with spreading off: the first key drains before the next is touched.
    let clock = ManualClock::default();
    let scripts = keys.iter().map(|id| key(id).requests_per_minute(4)).collect();
    let mock = openai_mock(&clock, scripts).await;
    let mut route = RouteConfig::new("default", StrategyKind::LeastLoaded, [FREE, PAID]);
    route.spread = Some(false);
    let router = two_tier(&clock, &mock, free_limits(4), &keys, route);
    for _ in 0..6 {
        router.chat("default", &request()).await.expect("served");
    }
    assert_eq!(served(&mock, &keys), [4, 2, 0]);
}

/// One free key of one request a minute and a paid key; the first request spends the free
/// key.
async fn free_spent(prefer: Prefer) -> (ManualClock, MockUpstream, Router) {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("f1").requests_per_minute(1), key("p1")]).await;
    let mut route = RouteConfig::new("default", StrategyKind::Priority, [FREE, PAID]);
    route.prefer = prefer;
    route.timeout = Some(Duration::from_secs(90));
    let router = two_tier(&clock, &mock, free_limits(1), &["f1"], route);
    let first = router.chat("default", &request()).await.expect("served");
    assert_eq!(first.served_by.provider.as_str(), "free");
    (clock, mock, router)
}

#[tokio::test]
async fn prefer_cost_waits_for_the_free_key_instead_of_paying() {
    let (clock, mock, router) = free_spent(Prefer::Cost).await;
    let started = clock.now();
    let call = tokio::spawn({
        let router = router.clone();
        async move { router.chat("default", &request()).await }
    });
    wait_until("the request sleeps until the free key frees", || router.sleeping() == 1).await;
    assert_eq!(served(&mock, &["p1"]), [0], "nothing paid while waiting");
    clock.advance(Duration::from_secs(61));
    let answer = call.await.expect("joins").expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "free");
    assert_eq!(answer.cost, Some(0.0));
    assert!(answer.trace.waited >= Duration::from_secs(59), "waited {:?}", answer.trace.waited);
    assert!(clock.now().duration_since(started) >= Duration::from_secs(60));
    assert_eq!(served(&mock, &["f1", "p1"]), [2, 0]);
    assert_eq!(mock.totals().rate_limited, 0);
}

#[tokio::test]
async fn prefer_latency_pays_at_once() {
    let (_clock, mock, router) = free_spent(Prefer::Latency).await;
    let answer = router.chat("default", &request()).await.expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "paid");
    assert_eq!(answer.cost, Some(0.01));
    assert_eq!(answer.trace.waited, Duration::ZERO);
    assert_eq!(served(&mock, &["f1", "p1"]), [1, 1]);
    assert_eq!(mock.totals().rate_limited, 0, "the spent free key was not called");
}

#[tokio::test]
async fn prefer_cost_pays_when_the_free_key_frees_after_the_deadline() {
    let (_clock, mock, router) = free_spent(Prefer::Cost).await;
    // A 30 s deadline: the free key frees in 60 s, too late; paying is the only way.
    let options = switchyard::RequestOptions {
        timeout: Some(Duration::from_secs(30)),
        ..switchyard::RequestOptions::default()
    };
    let answer = router.chat_with("default", &request(), options).await.expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "paid");
    assert_eq!(answer.trace.waited, Duration::ZERO);
    assert_eq!(served(&mock, &["f1", "p1"]), [1, 1]);
}

#[tokio::test]
async fn a_quota_group_is_one_budget_not_two() {
    let clock = ManualClock::default();
    let group = Quotas { requests_per_minute: Some(3), ..Quotas::default() };
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("g1").in_group("org"), key("g2").in_group("org"), key("p1")])
        .group("org", group)
        .models(["gpt-4o-mini", "llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let mut quota = free_limits(3);
    quota.groups = vec![QuotaGroup {
        name: "org".into(),
        provider: "free".into(),
        keys: vec!["g1".into(), "g2".into()],
    }];
    let route = RouteConfig::new("default", StrategyKind::RoundRobin, [FREE, PAID]);
    let router = two_tier(&clock, &mock, quota, &["g1", "g2"], route);
    let mut by_provider: HashMap<String, u32> = HashMap::new();
    for _ in 0..7 {
        let answer = router.chat("default", &request()).await.expect("served");
        *by_provider.entry(answer.served_by.provider.to_string()).or_default() += 1;
    }
    assert_eq!(by_provider.get("free"), Some(&3), "two keys of one group take the group's 3");
    assert_eq!(by_provider.get("paid"), Some(&4));
    assert_eq!(mock.totals().rate_limited, 0, "rotating to the second key was never tried");
}

#[tokio::test]
async fn no_upstream_429_under_concurrent_load_with_declared_limits() {
    let clock = ManualClock::default();
    let keys = ["a", "b", "c", "d"];
    let mut scripts: Vec<KeyScript> =
        keys.iter().map(|id| key(id).requests_per_minute(5)).collect();
    scripts.push(KeyScript::valid("p1", secret("p1")));
    let mock = openai_mock(&clock, scripts).await;
    let route = RouteConfig::new("default", StrategyKind::LeastLoaded, [FREE, PAID]);
    let router = two_tier(&clock, &mock, free_limits(5), &keys, route);
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.chat("default", &request()).await })
        })
        .collect();
    let mut n_free = 0;
    for call in calls {
        let answer: Result<_, RouterError> = call.await.expect("joins");
        let answer = answer.expect("served");
        n_free += u32::from(answer.served_by.provider.as_str() == "free");
    }
    assert_eq!(n_free, 20, "every free request the limits allow, no more");
    assert_eq!(served(&mock, &keys), [5, 5, 5, 5]);
    assert_eq!(served(&mock, &["p1"]), [40]);
    assert_eq!(mock.totals().rate_limited, 0);
}

#[tokio::test]
async fn a_provider_that_failed_a_request_goes_after_the_others_for_the_rest_of_it() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("f1"), key("f2"), key("f3"), key("p1")])
        .models(["gpt-4o-mini", "llama-3.3-70b-versatile"])
        .fault(
            switchyard_mock::FaultRule::always(switchyard_mock::Fault::server_error())
                .for_model("llama-3.3-70b-versatile"),
        )
        .start()
        .await
        .expect("mock starts");
    let route = RouteConfig::new("default", StrategyKind::LeastLoaded, [FREE, PAID]);
    let router = two_tier(&clock, &mock, QuotaConfig::default(), &["f1", "f2", "f3"], route);
    let answer = router.chat("default", &request()).await.expect("served");
    // f1 and its one retry fail; the free provider's other keys would only fail the same
    // way, so the paid one is next, well within the five attempts.
    assert_eq!(answer.served_by.provider.as_str(), "paid");
    assert_eq!(answer.n_attempts, 3);
    assert_eq!(served(&mock, &["p1"]), [1]);
}
