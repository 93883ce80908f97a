//! The bounded wait: a request whose every candidate is cooling waits on the clock for the
//! first to free instead of failing, within its deadline and the queue's cap; the overload cap.

use std::time::Duration;

use switchyard::{RequestOptions, RouteConfig, Router, RouterConfig, RouterError, StrategyKind};
use switchyard_core::{Clock, ManualClock};
use switchyard_mock::{Failure, Fault, FaultRule, MockUpstream, Unit, Window};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, request, wait_until,
};

/// A 429 telling the key to wait `retry_after`.
fn cooling(retry_after: Duration) -> Fault {
    Fault::Fail(Failure::RateLimited {
        window: Window::Minute,
        unit: Unit::Requests,
        limit: 30,
        used: 30,
        requested: 1,
        retry_after,
    })
}

/// Two groq keys on one mock, a route that may wait up to 30 s, and these router settings.
async fn two_keys(
    clock: &ManualClock,
    tune: impl FnOnce(&mut RouterConfig),
) -> (MockUpstream, Router) {
    let mock = openai_mock(clock, vec![key("g1"), key("g2")]).await;
    let groq = openai_provider("groq", Preset::Groq, &mock, clock);
    let mut config = RouterConfig {
        seed: Some(7),
        backoff: switchyard::Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
            stated_jitter: 0.0,
        },
        ..RouterConfig::default()
    };
    tune(&mut config);
    let mut route =
        RouteConfig::new("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]);
    route.max_wait = Some(Duration::from_secs(30));
    let router =
        credentials(builder(clock, QuotaConfig::default()).provider(groq), "groq", &["g1", "g2"])
            .config(config)
            .route_config(route)
            .build()
            .expect("router builds");
    (mock, router)
}

fn within(seconds: u64) -> RequestOptions {
    RequestOptions { timeout: Some(Duration::from_secs(seconds)), ..RequestOptions::default() }
}

#[tokio::test]
async fn every_key_cooling_for_2s_with_a_5s_deadline_waits_and_is_served() {
    let clock = ManualClock::default();
    let (mock, router) = two_keys(&clock, |_| {}).await;
    mock.inject(FaultRule::times(cooling(Duration::from_secs(2)), 2));

    let task = {
        let router = router.clone();
        tokio::spawn(async move { router.chat_with("fast", &request(), within(5)).await })
    };
    // Both keys answered 429 and the request now sleeps on the clock instead of failing.
    wait_until("the request waits", || router.waiting() == 1 && clock.sleepers() > 0).await;
    assert_eq!(mock.n_requests(), 2);
    assert!(!task.is_finished(), "it waits rather than failing");
    clock.advance(Duration::from_secs(2));
    let answer = task.await.expect("joins").expect("served after the cooldown");
    assert_eq!(answer.served_by.key.as_str(), "g1");
    assert_eq!(answer.trace.attempts.len(), 3, "two 429s, then the answer");
    assert_eq!(answer.trace.waited, Duration::from_secs(2));
    assert_eq!(router.waiting(), 0);
    // g1: the 429, then the answer; nothing while it cooled.
    assert_eq!(mock.counts("g1").expect("g1").requests, 2);
    assert_eq!(mock.n_requests(), 3);
}

#[tokio::test]
async fn a_1s_deadline_fails_at_once_with_the_time_of_the_first_reset() {
    let clock = ManualClock::default();
    let (mock, router) = two_keys(&clock, |_| {}).await;
    mock.inject(FaultRule::times(cooling(Duration::from_secs(2)), 2));
    let now = clock.utc();

    // Nothing advances the clock: a request that waited would hang here and fail the test.
    let error = router.chat_with("fast", &request(), within(1)).await.expect_err("cannot wait");
    let RouterError::QuotaExceeded { n_keys, earliest_reset, .. } = &error else {
        panic!("expected QUOTA_EXCEEDED, got {error}");
    };
    assert_eq!(*n_keys, 2);
    let reset = earliest_reset.expect("the reset is known");
    assert_eq!(reset, now + chrono::Duration::seconds(2), "the first key frees in 2 s");
    assert_eq!(error.retry_at(), Some(reset));
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn with_the_queue_full_a_new_request_fails_at_once() {
    let clock = ManualClock::default();
    let (mock, router) = two_keys(&clock, |config| config.wait_queue = 1).await;
    mock.inject(FaultRule::times(cooling(Duration::from_secs(2)), 2));

    let first = {
        let router = router.clone();
        tokio::spawn(async move { router.chat_with("fast", &request(), within(5)).await })
    };
    wait_until("the first request waits", || router.waiting() == 1).await;
    let error =
        router.chat_with("fast", &request(), within(5)).await.expect_err("the queue is full");
    assert_eq!(error.code(), "QUOTA_EXCEEDED");
    assert!(error.retry_at().is_some(), "says when the first key frees: {error}");
    assert_eq!(clock.elapsed(), Duration::ZERO, "answered without waiting");
    assert_eq!(mock.n_requests(), 2, "the refused request made no upstream call");

    clock.advance(Duration::from_secs(2));
    first.await.expect("joins").expect("the queued request is served");
}

#[tokio::test]
async fn beyond_the_in_flight_cap_a_request_is_overloaded_at_once() {
    let clock = ManualClock::default();
    let (mock, router) = two_keys(&clock, |config| config.max_in_flight = Some(1)).await;
    mock.inject(FaultRule::times(cooling(Duration::from_secs(2)), 2));
    let first = {
        let router = router.clone();
        tokio::spawn(async move { router.chat_with("fast", &request(), within(5)).await })
    };
    wait_until("the first request waits", || router.waiting() == 1).await;
    assert_eq!(router.in_flight(), 1);
    let error = router.chat("fast", &request()).await.expect_err("over the cap");
    let RouterError::Overloaded { in_flight, limit } = &error else {
        panic!("expected OVERLOADED, got {error}");
    };
    assert_eq!((*in_flight, *limit), (1, 1));
    assert_eq!(error.code(), "OVERLOADED");
    assert_eq!(mock.n_requests(), 2, "no upstream call");
    clock.advance(Duration::from_secs(2));
    first.await.expect("joins").expect("served");
    assert_eq!(router.in_flight(), 0);
    router.chat("fast", &request()).await.expect("room again");
}

#[tokio::test]
async fn waiters_for_one_freed_slot_are_served_in_arrival_order() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1").requests_per_minute(1)]).await;
    // The generic preset reads no headers: the declared limit alone paces the key.
    let openai = openai_provider("openai", Preset::Compatible, &mock, &clock);
    let mut route = RouteConfig::new("slow", StrategyKind::Priority, ["openai/gpt-4o-mini"]);
    route.max_wait = Some(Duration::from_secs(600));
    route.timeout = Some(Duration::from_secs(600));
    let router = credentials(
        builder(&clock, crate::support::per_minute("openai", 1)).provider(openai),
        "openai",
        &["k1"],
    )
    .route_config(route)
    .build()
    .expect("router builds");
    let ask = |text: &str| switchyard_core::ChatRequest::from_user(text).with_max_tokens(8);

    router.chat("slow", &ask("first")).await.expect("the minute's one request");
    let mut tasks = Vec::new();
    for (n, text) in ["r0", "r1", "r2"].into_iter().enumerate() {
        let router_for_task = router.clone();
        let request = ask(text);
        tasks.push(tokio::spawn(async move { router_for_task.chat("slow", &request).await }));
        wait_until("the request sleeps in the queue", || router.sleeping() == n + 1).await;
    }
    // Time moves a second at a time, and only while every waiter not yet served is asleep
    // (none is between its admission and the upstream).
    while mock.n_requests() < 4 {
        wait_until("every unserved waiter sleeps", || {
            router.sleeping() as u64 + mock.n_requests() == 4
        })
        .await;
        if mock.n_requests() < 4 {
            clock.advance(Duration::from_secs(1));
        }
    }
    for task in tasks {
        task.await.expect("joins").expect("served");
    }
    let prompts: Vec<String> = mock
        .log()
        .iter()
        .filter_map(|entry| {
            entry.body.as_ref()?.pointer("/messages/0/content")?.as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(prompts, ["first", "r0", "r1", "r2"], "one a minute, oldest waiter first");
    assert_eq!(mock.totals().rate_limited, 0);
}
