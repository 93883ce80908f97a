//! Limits nobody declared, learned through the router from a real upstream's 429s: a
//! Groq-flavoured mock whose key has a sliding window it states in no header, only in
//! `retry-after` when it refuses.

use std::time::Duration;

use switchyard::{RouteConfig, Router, StrategyKind};
use switchyard_core::{Clock, ManualClock, ProviderId};
use switchyard_mock::{Flavor, MockUpstream, OpenAiWire, WindowQuota};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_provider, request};

/// `g1`: 3 requests per sliding 10 s, told to nobody; `g2`: unlimited. `g1` is preferred.
async fn scene(clock: &ManualClock) -> (MockUpstream, Router) {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(clock.clone())
        .keys([
            key("g1").window(WindowQuota::requests_sliding(3, Duration::from_secs(10))),
            key("g2"),
        ])
        .models(["llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let groq = openai_provider("groq", Preset::Groq, &mock, clock);
    let route = RouteConfig::new("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]);
    let router =
        credentials(builder(clock, QuotaConfig::default()).provider(groq), "groq", &["g1", "g2"])
            .route_config(route)
            .build()
            .expect("router builds");
    (mock, router)
}

/// Sends one request at `at_ms` after the start; which key served it and in how many attempts.
async fn send(
    router: &Router,
    clock: &ManualClock,
    start: std::time::Instant,
    at_ms: u64,
) -> (String, usize) {
    let target = start + Duration::from_millis(at_ms);
    let now = clock.now();
    if target > now {
        clock.advance(target - now);
    }
    let answer = router.chat("fast", &request()).await.expect("served");
    (answer.served_by.key.to_string(), answer.trace.attempts.len())
}

#[tokio::test]
async fn the_first_429_teaches_the_limit_and_the_key_is_not_retried_before_its_window_frees() {
    let clock = ManualClock::default();
    let (mock, router) = scene(&clock).await;
    let start = clock.now();
    for at_ms in [0, 1_000, 2_000] {
        assert_eq!(send(&router, &clock, start, at_ms).await, ("g1".to_owned(), 1));
    }
    // The fourth meets g1's window: one 429 (retry-after 7 s, when the first leaves), then g2.
    assert_eq!(send(&router, &clock, start, 3_000).await, ("g2".to_owned(), 2));
    let summary = router.ledger().summary(&ProviderId::new("groq")).await.expect("summary");
    let g1 = summary.keys.iter().find(|row| row.key.as_str() == "g1").expect("g1 known");
    let learned = g1.limits.iter().find(|limit| limit.learned.is_some()).expect("a learned limit");
    assert_eq!(
        (learned.limit, learned.limit_name.as_str()),
        (3, "requests/learned-sliding-10000ms")
    );
    assert_eq!(learned.learned.as_ref().expect("evidence").from_accepted, 3);

    // Until its window frees, g1 is not tried again.
    for at_ms in [4_000, 6_000, 9_000] {
        assert_eq!(send(&router, &clock, start, at_ms).await, ("g2".to_owned(), 1));
    }
    // At 10.5 s the request of 0 s has left: g1 serves; at 10.6 s its window is full again
    // (1, 2 and 10.5 s), so g2 serves without a 429; at 11.1 s g1 has room again.
    assert_eq!(send(&router, &clock, start, 10_500).await, ("g1".to_owned(), 1));
    assert_eq!(send(&router, &clock, start, 10_600).await, ("g2".to_owned(), 1));
    assert_eq!(send(&router, &clock, start, 11_100).await, ("g1".to_owned(), 1));
    let g1 = mock.counts("g1").expect("g1 counted");
    assert_eq!((g1.served, g1.rate_limited), (5, 1), "one 429: the one that taught the limit");
}

#[tokio::test]
async fn an_unaligned_fixed_window_is_learned_and_its_boundary_capacity_used() {
    // g1 counts 2 requests per fixed 4 s window whose boundaries fall 2.7 s after start.
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(clock.clone())
        .keys([
            key("g1").window(WindowQuota::requests_fixed(
                2,
                Duration::from_secs(4),
                Duration::from_millis(2_700),
            )),
            key("g2"),
        ])
        .models(["llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let groq = openai_provider("groq", Preset::Groq, &mock, &clock);
    let route = RouteConfig::new("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(groq), "groq", &["g1", "g2"])
            .route_config(route)
            .build()
            .expect("router builds");
    let start = clock.now();
    // A steady request every 100 ms for 20 s.
    for step in 0..200 {
        send(&router, &clock, start, step * 100).await;
    }
    let summary = router.ledger().summary(&ProviderId::new("groq")).await.expect("summary");
    let g1 = summary.keys.iter().find(|row| row.key.as_str() == "g1").expect("g1 known");
    let learned = g1.limits.iter().find(|limit| limit.learned.is_some()).expect("learned");
    let evidence = learned.learned.as_ref().expect("evidence");
    assert_eq!(evidence.kind, switchyard_quota::LearnedKind::Fixed, "{evidence:?}");
    assert_eq!(learned.limit, 2);
    let counts = mock.counts("g1").expect("g1 counted");
    // Windows start at 2.7, 6.7, 10.7, 14.7 and 18.7 s: after the first two windows taught
    // the model, each later window is served in full (2 each) without a 429.
    assert!(counts.rate_limited <= 3, "429s: {}", counts.rate_limited);
    assert!(counts.served >= 10, "served on g1: {}", counts.served);
}

/// Gemini behind its OpenAI-compatible URL: a 429 names the delay only in its body (message
/// and `RetryInfo`) and the limit in `QuotaFailure`; its successes carry no header.
#[tokio::test]
async fn a_gemini_key_behind_an_openai_url_learns_its_limit_from_its_first_429() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::GeminiOpenAi))
        .clock(clock.clone())
        .keys([
            key("m1").window(WindowQuota::requests_sliding(3, Duration::from_secs(10))),
            key("m2"),
        ])
        .models(["gemini-2.0-flash"])
        .start()
        .await
        .expect("mock starts");
    let gemini = openai_provider("gemini", Preset::Compatible, &mock, &clock);
    let route = RouteConfig::new("fast", StrategyKind::Priority, ["gemini/gemini-2.0-flash"]);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(gemini),
        "gemini",
        &["m1", "m2"],
    )
    .route_config(route)
    .build()
    .expect("router builds");
    let start = clock.now();
    // One request every 700 ms for 30 s: m1 may serve 3 in any 10 s.
    for step in 0..43 {
        send(&router, &clock, start, step * 700).await;
    }
    let m1 = mock.counts("m1").expect("m1 counted");
    let summary = router.ledger().summary(&ProviderId::new("gemini")).await.expect("summary");
    let row = summary.keys.iter().find(|row| row.key.as_str() == "m1").expect("m1 known");
    let learned: Vec<_> = row.limits.iter().filter(|limit| limit.learned.is_some()).collect();
    assert_eq!(m1.rate_limited, 1, "one 429, the one that taught the limit: {learned:?}");
    assert!(m1.served >= 8, "m1 kept serving as its window freed: {}", m1.served);
}

/// Keys another application spent: each key's first 429 in a request is not one of its
/// `max_attempts`, so the request reaches the key with room; a request still calls each spent
/// key once at most.
#[tokio::test]
async fn spent_keys_do_not_use_up_a_requests_attempts() {
    let clock = ManualClock::default();
    let window = || WindowQuota::requests_sliding(1, Duration::from_secs(10));
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(clock.clone())
        .keys([
            key("g1").window(window()),
            key("g2").window(window()),
            key("g3").window(window()),
            key("g4"),
        ])
        .models(["llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let target = ["groq/llama-3.3-70b-versatile"];
    let router_of = |keys: &[&str], max_attempts: Option<u32>| {
        let groq = openai_provider("groq", Preset::Groq, &mock, &clock);
        let mut route = RouteConfig::new("fast", StrategyKind::Priority, target);
        route.max_attempts = max_attempts;
        credentials(builder(&clock, QuotaConfig::default()).provider(groq), "groq", keys)
            .route_config(route)
            .build()
            .expect("router builds")
    };
    // The other application spends g1, g2 and g3 (one request each per 10 s).
    let spend = || async {
        for id in ["g1", "g2", "g3"] {
            let other = router_of(&[id], None);
            other.chat("fast", &request()).await.expect("the other application is served");
        }
    };
    spend().await;
    let router = router_of(&["g1", "g2", "g3", "g4"], Some(2));
    let answer = router.chat("fast", &request()).await.expect("served past three spent keys");
    assert_eq!(answer.served_by.key.as_str(), "g4");
    assert_eq!(answer.trace.attempts.len(), 4, "{:?}", answer.trace.attempts);
    for id in ["g1", "g2", "g3"] {
        assert_eq!(mock.counts(id).expect("counted").rate_limited, 1, "{id}");
    }
    // Spent again, with no key to fall back to and one attempt allowed: each spent key is
    // called once, then the request ends with the quota error.
    clock.advance(Duration::from_secs(11));
    spend().await;
    let spent_only = router_of(&["g1", "g2", "g3"], Some(1));
    let error = spent_only.chat("fast", &request()).await.expect_err("every key spent");
    let trace = error.trace().expect("a trace");
    assert_eq!(trace.attempts.len(), 3, "{:?}", trace.attempts);
    assert_eq!(error.code(), "QUOTA_EXCEEDED", "{error}");
    for id in ["g1", "g2", "g3"] {
        assert_eq!(mock.counts(id).expect("counted").rate_limited, 2, "{id}");
    }
}

/// Fifteen requests at once meet a key whose limit nobody declared: the first 429 teaches the
/// limit, and the 429s of the others, admitted before it was learned, do not lower it.
#[tokio::test]
async fn a_herd_admitted_before_the_limit_was_learned_does_not_lower_it() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(clock.clone())
        .keys([key("g1").window(WindowQuota::requests_sliding(4, Duration::from_secs(5)))])
        .models(["llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts");
    let groq = openai_provider("groq", Preset::Groq, &mock, &clock);
    let route = RouteConfig::new("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"]);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(groq), "groq", &["g1"])
            .route_config(route)
            .build()
            .expect("router builds");
    let prompt = request();
    for _ in 0..100 {
        clock.advance(Duration::from_millis(100));
        let calls: Vec<_> = (0..15).map(|_| router.chat("fast", &prompt)).collect();
        futures_util::future::join_all(calls).await;
    }
    let summary = router.ledger().summary(&ProviderId::new("groq")).await.expect("summary");
    let g1 = summary.keys.iter().find(|row| row.key.as_str() == "g1").expect("g1 known");
    let learned = g1.limits.iter().find(|limit| limit.learned.is_some()).expect("learned");
    assert_eq!(learned.limit, 4, "{learned:?}");
    let counts = mock.counts("g1").expect("g1 counted");
    // 4 in the first window, 4 more once it frees at 5.1 s; the herd's 11 429s all came at
    // the first tick.
    assert_eq!((counts.served, counts.rate_limited), (8, 11), "{counts:?}");
}
