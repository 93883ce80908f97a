//! Batches: bounded concurrency, results in order, and pacing to declared quotas through the
//! bounded wait instead of spraying 429s.

use std::time::Duration;

use switchyard::{RouteConfig, StrategyKind};
use switchyard_core::{ChatRequest, ManualClock};
use switchyard_openai::Preset;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, per_minute, used, wait_until,
};

const N_REQUESTS: u64 = 200;
const CONCURRENCY: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_over_keys_of_5_a_minute_are_all_served_without_a_429() {
    let clock = ManualClock::default();
    let ids = ["k1", "k2", "k3", "k4"];
    // The upstream enforces 5 requests a minute per key, and the ledger is told so. The
    // generic preset reads no rate-limit headers: the pacing comes from the declared limits
    // alone. (With headers read, a stale header arriving after newer admissions lowers the
    // ledger's count: see the note in the report on `MemoryLedger::observe_now`.)
    let mock =
        openai_mock(&clock, ids.iter().map(|id| key(id).requests_per_minute(5)).collect()).await;
    let openai = openai_provider("openai", Preset::Compatible, &mock, &clock);
    let mut route = RouteConfig::new("bulk", StrategyKind::RoundRobin, ["openai/gpt-4o-mini"]);
    // 200 requests at 20 a minute take ten minutes: the deadline allows it.
    route.timeout = Some(Duration::from_secs(3600));
    let router =
        credentials(builder(&clock, per_minute("openai", 5)).provider(openai), "openai", &ids)
            .route_config(route)
            .build()
            .expect("router builds");

    let requests: Vec<ChatRequest> = (0..N_REQUESTS)
        .map(|n| ChatRequest::from_user(format!("item {n}")).with_max_tokens(8))
        .collect();
    let batch = {
        let router = router.clone();
        tokio::spawn(async move { router.batch("bulk", requests, CONCURRENCY).await })
    };
    // Move time on only when every request still unsent is asleep until a window frees:
    // then none is between its admission and the upstream, and both sides see one clock.
    let mut n_advances = 0;
    while !batch.is_finished() {
        wait_until("the batch sleeps or ends", || {
            let unsent = N_REQUESTS - mock.n_requests();
            let active = unsent.min(CONCURRENCY as u64);
            batch.is_finished() || router.sleeping() as u64 == active && active > 0
        })
        .await;
        if !batch.is_finished() {
            clock.advance(Duration::from_secs(1));
            n_advances += 1;
        }
    }
    let results = batch.await.expect("joins");

    assert_eq!(results.len(), N_REQUESTS as usize);
    for (n, result) in results.iter().enumerate() {
        let answer = result.as_ref().unwrap_or_else(|error| panic!("request {n}: {error}"));
        assert!(!answer.cached);
    }
    let totals = mock.totals();
    assert_eq!(totals.requests, N_REQUESTS, "one upstream call per request");
    assert_eq!(totals.rate_limited, 0, "no 429: the batch waited for capacity");
    assert_eq!(used(&router, "openai").await, 20, "the last minute used every key to its limit");
    // 20 a minute over 200 requests: at least nine minutes of waiting.
    assert!(n_advances >= 9 * 60, "{n_advances} s advanced");
    assert!(
        clock.elapsed() < Duration::from_secs(11 * 60),
        "paced, not stalled: {:?}",
        clock.elapsed()
    );
}

#[tokio::test]
async fn a_batch_returns_results_in_order_each_with_its_own_outcome() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, Default::default()).provider(openai), "openai", &["k1"])
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");
    mock.inject(
        switchyard_mock::FaultRule::once(switchyard_mock::Fault::Fail(
            switchyard_mock::Failure::BadRequest { message: "bad item".into() },
        ))
        .for_model("gpt-4o-mini"),
    );
    let requests: Vec<ChatRequest> =
        (0..5).map(|n| ChatRequest::from_user(format!("item {n}")).with_max_tokens(8)).collect();
    let results = router.batch("default", requests, 1).await;
    let codes: Vec<&str> = results
        .iter()
        .map(|result| result.as_ref().map_or_else(|error| error.code(), |_| "ok"))
        .collect();
    assert_eq!(codes, ["BAD_REQUEST", "ok", "ok", "ok", "ok"]);
    let prompts: Vec<String> = mock
        .log()
        .iter()
        .filter_map(|entry| {
            entry.body.as_ref()?.pointer("/messages/0/content")?.as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(
        prompts,
        ["item 0", "item 1", "item 2", "item 3", "item 4"],
        "one at a time, in order"
    );
}
