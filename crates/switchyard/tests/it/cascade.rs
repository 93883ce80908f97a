//! The cascade: which candidate serves after which failure, and the typed error when none can.

use std::time::Duration;

use switchyard::{RouterError, Skip, StrategyKind};
use switchyard_core::{Candidate, ErrorKind, LimitScope, ManualClock};
use switchyard_mock::{Failure, Fault, FaultRule, KeyScript, Unit, Window};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request, secret};

#[tokio::test]
async fn a_key_at_its_minute_limit_hands_over_to_the_next_key_before_earning_a_429() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("g1").requests_per_minute(2), key("g2")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["g1", "g2"],
    )
    .route("fast", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");

    let mut served_by = Vec::new();
    for _ in 0..4 {
        let answer = router.chat("fast", &request()).await.expect("served");
        served_by.push(answer.served_by.key.to_string());
    }
    // g1's headers said 0 requests remaining after its second call, so the ledger hands the
    // third to g2 without sending g1 a request its window forbids.
    assert_eq!(served_by, ["g1", "g1", "g2", "g2"]);
    let g1 = mock.counts("g1").expect("g1");
    assert_eq!((g1.requests, g1.rate_limited), (2, 0));

    // The mock's window and the ledger's view of the headers pass together on one clock.
    clock.advance(Duration::from_secs(61));
    let answer = router.chat("fast", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "g1", "g1 is back once its window has passed");
    assert_eq!(answer.n_attempts, 1);
}

#[tokio::test]
async fn a_429_cools_the_key_until_its_retry_delay_and_the_next_key_serves_meanwhile() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("g1"), key("g2")]).await;
    mock.inject(
        FaultRule::once(Fault::Fail(Failure::RateLimited {
            window: Window::Minute,
            unit: Unit::Requests,
            limit: 30,
            used: 30,
            requested: 1,
            retry_after: Duration::from_secs(20),
        }))
        .for_key("g1"),
    );
    let groq = openai_provider("groq", Preset::Groq, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(groq), "groq", &["g1", "g2"])
            .route("fast", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"])
            .build()
            .expect("router builds");

    let first = router.chat("fast", &request()).await.expect("served by g2");
    assert_eq!(first.served_by.key.as_str(), "g2");
    assert_eq!(
        first.trace.attempts[0].error,
        Some(ErrorKind::RateLimited { scope: LimitScope::Minute })
    );
    clock.advance(Duration::from_secs(19));
    let cooling = router.chat("fast", &request()).await.expect("served");
    assert_eq!(cooling.served_by.key.as_str(), "g2", "g1 still cooling at 19 s");
    assert_eq!(mock.counts("g1").expect("g1").requests, 1, "a cooling key is not called");
    clock.advance(Duration::from_secs(2));
    let back = router.chat("fast", &request()).await.expect("served");
    assert_eq!(back.served_by.key.as_str(), "g1", "g1 is back after its 20 s cooldown");
}

#[tokio::test]
async fn an_invalid_key_leaves_the_rotation_after_its_first_401_and_is_reported() {
    let clock = ManualClock::default();
    let mock =
        openai_mock(&clock, vec![KeyScript::invalid("bad", secret("bad")), key("good")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["bad", "good"],
    )
    .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");

    let first = router.chat("default", &request()).await.expect("served by the good key");
    assert_eq!(first.served_by.key.as_str(), "good");
    assert_eq!(first.trace.attempts[0].error, Some(ErrorKind::InvalidKey));
    for _ in 0..3 {
        let answer = router.chat("default", &request()).await.expect("served");
        assert_eq!(answer.n_attempts, 1);
        let skipped = answer
            .trace
            .considered
            .iter()
            .find(|entry| entry.candidate.key.as_str() == "bad")
            .expect("bad key listed");
        assert!(
            matches!(&skipped.skipped, Some(Skip::Quota { kind: "invalid", .. })),
            "{skipped:?}"
        );
    }
    assert_eq!(mock.counts("bad").expect("bad").requests, 1, "called once, then out of rotation");
}

#[tokio::test]
async fn a_billing_stopped_key_is_disabled_not_cooled() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("broke").billing_stopped(), key("paid")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["broke", "paid"],
    )
    .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");

    let first = router.chat("default", &request()).await.expect("served");
    assert_eq!(first.trace.attempts[0].error, Some(ErrorKind::BillingStopped));
    // Hours later — far past any rate-limit cooldown — the key is still out.
    clock.advance(Duration::from_secs(6 * 3600));
    let later = router.chat("default", &request()).await.expect("served");
    assert_eq!(later.n_attempts, 1);
    assert_eq!(mock.counts("broke").expect("broke").requests, 1);
}

#[tokio::test]
async fn a_bad_request_is_answered_at_once_without_a_second_attempt() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2")]).await;
    mock.inject(FaultRule::always(Fault::Fail(Failure::BadRequest {
        message: "messages: invalid role".into(),
    })));
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["k1", "k2"],
    )
    .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");

    let error = router.chat("default", &request()).await.expect_err("a bad request fails");
    assert_eq!(error.code(), "BAD_REQUEST");
    assert_eq!(error.trace().expect("trace").attempts.len(), 1);
    assert_eq!(mock.n_requests(), 1, "never retried elsewhere");
}

#[tokio::test]
async fn when_every_key_is_spent_the_error_is_quota_exceeded_with_the_earliest_reset() {
    let clock = ManualClock::default();
    let mock =
        openai_mock(&clock, vec![key("a").requests_per_minute(1), key("b").requests_per_minute(1)])
            .await;
    let groq = openai_provider("groq", Preset::Groq, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(groq), "groq", &["a", "b"])
            .route("default", StrategyKind::Priority, ["groq/llama-3.3-70b-versatile"])
            .build()
            .expect("router builds");

    router.chat("default", &request()).await.expect("a serves");
    router.chat("default", &request()).await.expect("b serves after a's 429");
    let error = router.chat("default", &request()).await.expect_err("both spent");
    let RouterError::QuotaExceeded { n_keys, earliest_reset, .. } = &error else {
        panic!("expected QUOTA_EXCEEDED, got {error}");
    };
    assert_eq!(*n_keys, 2);
    let reset = earliest_reset.expect("the reset is known");
    let now = switchyard_core::Clock::utc(&clock);
    assert!(
        reset > now && reset <= now + chrono::Duration::seconds(61),
        "reset {reset} vs now {now}"
    );
    assert!(error.to_string().contains("the first resets at"), "{error}");
}

#[tokio::test]
async fn every_provider_failing_lists_each_attempt_and_its_class() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2")]).await;
    mock.inject(FaultRule::always(Fault::overloaded()));
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let backup_mock = openai_mock(&clock, vec![key("m1")]).await;
    backup_mock.inject(FaultRule::always(Fault::Malformed));
    let mistral = openai_provider("mistral", Preset::Mistral, &backup_mock, &clock);
    let builder = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai).provider(mistral),
        "openai",
        &["k1", "k2"],
    );
    let router = credentials(builder, "mistral", &["m1"])
        .route(
            "default",
            StrategyKind::Priority,
            ["openai/gpt-4o-mini", "mistral/mistral-small-latest"],
        )
        .build()
        .expect("router builds");

    let error = router.chat("default", &request()).await.expect_err("nothing serves");
    assert_eq!(error.code(), "ALL_PROVIDERS_FAILED");
    let attempts = &error.trace().expect("trace").attempts;
    let classes: Vec<(String, Option<ErrorKind>)> =
        attempts.iter().map(|attempt| (attempt.candidate.key.to_string(), attempt.error)).collect();
    // An overloaded provider is left whole: its second key is not tried.
    assert_eq!(
        classes,
        [
            ("k1".to_owned(), Some(ErrorKind::Overloaded)),
            ("m1".to_owned(), Some(ErrorKind::MalformedResponse))
        ]
    );
    assert!(error.to_string().contains("openai/gpt-4o-mini [k1] overloaded"), "{error}");
}

#[tokio::test]
async fn a_provider_model_can_be_asked_for_directly() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(openai), "openai", &["k1"])
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");
    let answer = router.chat("openai/gpt-4o-mini", &request()).await.expect("served");
    assert_eq!(answer.served_by, Candidate::new("openai", "k1", "gpt-4o-mini"));
    let error = router.chat("nobody/gpt-4o-mini", &request()).await.expect_err("unknown");
    assert_eq!(error.code(), "UNKNOWN_MODEL");
}
