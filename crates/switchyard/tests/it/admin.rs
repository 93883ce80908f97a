//! An operator's hands: disabling and enabling a key, and resetting one the ledger holds out.

use std::time::Duration;

use switchyard::{AdminError, Skip, StrategyKind};
use switchyard_core::{KeyId, ManualClock, ProviderId};
use switchyard_mock::KeyScript;
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request, secret};

#[tokio::test]
async fn a_disabled_key_is_skipped_on_every_request_until_enabled() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["k1", "k2"],
    )
    .route("main", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let (provider, k1) = (ProviderId::from("openai"), KeyId::from("k1"));

    assert_eq!(router.keys(), [(provider.clone(), k1.clone()), (provider.clone(), "k2".into())]);
    assert!(router.disable_key(&provider, &k1).expect("known key"), "k1 was enabled");
    assert!(!router.disable_key(&provider, &k1).expect("known key"), "already disabled");
    assert!(router.is_disabled(&provider, &k1));
    for _ in 0..3 {
        let answer = router.chat_with("main", &request(), traced()).await.expect("served");
        assert_eq!(answer.served_by.key.as_str(), "k2");
        let skipped = answer.trace.considered.iter().find(|c| c.candidate.key == k1);
        assert!(
            skipped.is_some_and(|c| c.skipped == Some(Skip::Disabled)),
            "{:?}",
            answer.trace.considered
        );
    }
    assert_eq!(mock.counts("k1").map_or(0, |counts| counts.requests), 0, "k1 never called");

    assert!(router.enable_key(&provider, &k1).expect("known key"), "k1 was disabled");
    assert!(!router.is_disabled(&provider, &k1));
    let answer = router.chat("main", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "k1", "priority puts k1 first again");
}

#[tokio::test]
async fn disabling_every_key_gives_a_typed_error_and_unknown_keys_are_refused() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("only")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(openai), "openai", &["only"])
            .route("main", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");
    let provider = ProviderId::from("openai");

    router.disable_key(&provider, &"only".into()).expect("known key");
    let error = router.chat("main", &request()).await.expect_err("nothing may serve");
    // Out of rotation like an invalid key: the client is told no key can serve.
    assert_eq!(error.code(), "INVALID_KEYS", "{error:?}");
    let trace = error.trace().expect("a trace");
    assert!(trace.attempts.is_empty(), "no upstream call: {trace:?}");
    assert_eq!(mock.counts("only").map_or(0, |counts| counts.requests), 0);

    let unknown = router.disable_key(&provider, &"nope".into()).expect_err("unknown key");
    assert!(matches!(unknown, AdminError::UnknownKey { .. }), "{unknown:?}");
    assert!(unknown.to_string().contains("nope"), "{unknown}");
    let other = router.reset_key(&"groq".into(), &"only".into()).await.expect_err("no such pair");
    assert!(matches!(other, AdminError::UnknownKey { .. }), "{other:?}");
}

#[tokio::test]
async fn a_reset_brings_back_a_key_marked_invalid_once_the_operator_fixed_it() {
    let clock = ManualClock::default();
    // The key is refused once (a revoked key, say, that the operator then re-activated).
    let mock = openai_mock(&clock, vec![KeyScript::invalid("k1", secret("k1")), key("k2")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["k1", "k2"],
    )
    .route("main", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let (provider, k1) = (ProviderId::from("openai"), KeyId::from("k1"));

    let first = router.chat("main", &request()).await.expect("k2 serves");
    assert_eq!(first.served_by.key.as_str(), "k2");
    clock.advance(Duration::from_secs(3600));
    let later = router.chat("main", &request()).await.expect("k2 serves");
    assert_eq!(later.served_by.key.as_str(), "k2", "an invalid key stays out by itself");
    assert_eq!(mock.counts("k1").expect("k1").requests, 1);

    router.reset_key(&provider, &k1).await.expect("reset");
    let status = router.ledger().status(&first.trace.attempts[0].candidate).await.expect("status");
    assert_eq!(status.state.as_str(), "available");
    // The mock still refuses k1, so the next request tries it again (and falls back): the
    // reset did put it back in rotation.
    let after = router.chat("main", &request()).await.expect("served");
    assert_eq!(mock.counts("k1").expect("k1").requests, 2, "k1 was tried after the reset");
    assert_eq!(after.served_by.key.as_str(), "k2");
}

fn traced() -> switchyard::RequestOptions {
    switchyard::RequestOptions { trace: true, ..switchyard::RequestOptions::default() }
}
