//! The bulk reset: every key the ledger holds out comes back at once, or only one provider's.

use switchyard::{AdminError, Candidate, StrategyKind};
use switchyard_core::{KeyId, ManualClock, ProviderId};
use switchyard_mock::KeyScript;
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request, secret};

#[tokio::test]
async fn a_bulk_reset_by_provider_brings_back_its_keys_and_leaves_the_others() {
    let clock = ManualClock::default();
    // k1 (openai) and g1 (groq) are refused once each; k2 serves.
    let mock = openai_mock(
        &clock,
        vec![
            KeyScript::invalid("k1", secret("k1")),
            key("k2"),
            KeyScript::invalid("g1", secret("g1")),
        ],
    )
    .await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let groq = openai_provider("groq", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        credentials(
            builder(&clock, QuotaConfig::default()).provider(openai).provider(groq),
            "openai",
            &["k1", "k2"],
        ),
        "groq",
        &["g1"],
    )
    .route("main", StrategyKind::Priority, ["groq/gpt-4o-mini", "openai/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let g1 = Candidate::new("groq", "g1", "gpt-4o-mini");
    let k1 = Candidate::new("openai", "k1", "gpt-4o-mini");
    let state = |candidate: Candidate| {
        let router = router.clone();
        async move {
            router.ledger().status(&candidate).await.expect("status").state.as_str().to_owned()
        }
    };

    let first = router.chat("main", &request()).await.expect("k2 serves");
    assert_eq!(first.served_by.key.as_str(), "k2");
    assert_ne!(state(g1.clone()).await, "available", "g1 is held out");
    assert_ne!(state(k1.clone()).await, "available", "k1 is held out");

    let unknown = router.reset_keys(Some(&"nope".into())).await.expect_err("unknown provider");
    assert!(
        matches!(&unknown, AdminError::UnknownProvider(p) if p.as_str() == "nope"),
        "{unknown:?}"
    );

    let groq_id = ProviderId::from("groq");
    let reset = router.reset_keys(Some(&groq_id)).await.expect("reset groq");
    assert_eq!(reset, [(groq_id, KeyId::from("g1"))]);
    assert_eq!(state(g1.clone()).await, "available");
    assert_ne!(state(k1.clone()).await, "available", "another provider's key stays out");

    let all = router.reset_keys(None).await.expect("reset all");
    assert_eq!(all, router.keys(), "every key is reset and listed");
    assert_eq!(state(k1).await, "available");
    let before = mock.counts("k1").expect("k1").requests;
    router.chat("main", &request()).await.expect("served");
    assert_eq!(mock.counts("g1").expect("g1").requests, 2, "g1 was tried again after the reset");
    assert_eq!(mock.counts("k1").expect("k1").requests, before + 1, "k1 was tried again");
}
