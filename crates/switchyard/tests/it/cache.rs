//! The response cache: a repeated request is answered without an upstream call and without
//! spending quota; it is opt-in and expires on the clock.

use std::time::Duration;

use switchyard::{CacheConfig, RequestOptions, RouteConfig, RouterConfig, StrategyKind};
use switchyard_core::{Candidate, ManualClock};
use switchyard_openai::Preset;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, per_minute, request, used,
};

#[tokio::test]
async fn a_cached_answer_costs_no_upstream_call_and_no_quota() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    // A declared limit of 3 requests a minute: the ledger counts every admitted call.
    let quota = per_minute("openai", 3);
    let mut cached = RouteConfig::new("cached", StrategyKind::Priority, ["openai/gpt-4o-mini"]);
    cached.cache = true;
    let router = credentials(builder(&clock, quota).provider(openai), "openai", &["k1"])
        .config(RouterConfig {
            seed: Some(7),
            cache: Some(CacheConfig { max_bytes: 1 << 20, ttl: Duration::from_secs(60) }),
            ..RouterConfig::default()
        })
        .route_config(cached)
        .route("plain", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let candidate = Candidate::new("openai", "k1", "gpt-4o-mini");

    let first = router.chat("cached", &request()).await.expect("served");
    assert!(!first.cached);
    let used_after_first = used(&router, "openai").await;
    assert_eq!(used_after_first, 1, "the ledger counted the one upstream call");
    for _ in 0..5 {
        let again = router.chat("cached", &request()).await.expect("served from the cache");
        assert!(again.cached, "labelled as cached");
        assert_eq!(again.response.text, first.response.text);
        assert_eq!(again.served_by, candidate);
        assert_eq!(again.n_attempts, 0);
        assert!(again.trace.attempts.is_empty());
    }
    assert_eq!(mock.n_requests(), 1, "one upstream call for six answers");
    assert_eq!(used(&router, "openai").await, used_after_first, "no quota spent by hits");
    assert_eq!(router.stats().await.cache_hits, 5);

    // Another request, another route, or a call that opts out: all go upstream.
    let other = request().with_max_tokens(17);
    assert!(!router.chat("cached", &other).await.expect("served").cached);
    let opted_out = RequestOptions { cache: Some(false), ..RequestOptions::default() };
    assert!(!router.chat_with("cached", &request(), opted_out).await.expect("served").cached);
    assert_eq!(mock.n_requests(), 3);
    // A route that does not cache; three calls of the minute are spent, so wait it out.
    clock.advance(Duration::from_secs(61));
    assert!(!router.chat("plain", &request()).await.expect("served").cached);
    assert_eq!(mock.n_requests(), 4);

    // 61 s later the first answer (stored at 0 s, ttl 60 s) is stale: fetched again.
    let stale = router.chat("cached", &request()).await.expect("served");
    assert!(!stale.cached, "expired on the clock");
    assert_eq!(mock.n_requests(), 5);
}
