//! An operator's pin: the pinned key serves first until the pin ends on the router's clock,
//! and a pinned key the ledger holds out is skipped as usual.

use std::time::Duration;

use switchyard::{AdminError, MAX_PIN, StrategyKind};
use switchyard_core::{KeyId, ManualClock, ProviderId};
use switchyard_mock::{Failure, Fault, FaultRule, Unit, Window};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

#[tokio::test]
async fn a_pinned_key_serves_first_until_its_pin_ends_and_is_skipped_while_cooling() {
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
    let (provider, k2) = (ProviderId::from("openai"), KeyId::from("k2"));
    let served = |router: &switchyard::Router| {
        let router = router.clone();
        async move { router.chat("main", &request()).await.expect("served").served_by.key }
    };

    assert_eq!(served(&router).await.as_str(), "k1", "priority puts k1 first");
    let held = router.pin_key(&provider, &k2, Duration::from_secs(48 * 3600)).expect("known");
    assert_eq!(held, MAX_PIN, "a pin is clamped to a day");
    let held = router.pin_key(&provider, &k2, Duration::from_secs(600)).expect("known");
    assert_eq!(held, Duration::from_secs(600), "a new pin sets a new expiry");
    assert_eq!(served(&router).await.as_str(), "k2", "the pinned key goes first");
    let pins = router.pins();
    assert_eq!(pins.len(), 1, "{pins:?}");
    assert_eq!((pins[0].key.as_str(), pins[0].remaining), ("k2", Duration::from_secs(600)));

    clock.advance(Duration::from_secs(601));
    assert!(router.pins().is_empty(), "the pin ended on the clock");
    assert_eq!(served(&router).await.as_str(), "k1", "priority again once the pin ends");

    // Pinned while the upstream refuses it for the minute: tried once, then skipped.
    router.pin_key(&provider, &k2, Duration::from_secs(600)).expect("known");
    mock.inject(
        FaultRule::once(Fault::Fail(Failure::RateLimited {
            window: Window::Minute,
            unit: Unit::Requests,
            limit: 10,
            used: 10,
            requested: 1,
            retry_after: Duration::from_secs(60),
        }))
        .for_key("k2"),
    );
    let k2_before = mock.counts("k2").expect("k2").requests;
    assert_eq!(served(&router).await.as_str(), "k1", "k2 is refused, k1 serves");
    assert_eq!(mock.counts("k2").expect("k2").requests, k2_before + 1);
    assert_eq!(served(&router).await.as_str(), "k1", "a cooling pinned key is skipped");
    assert_eq!(mock.counts("k2").expect("k2").requests, k2_before + 1, "k2 not called again");

    assert!(router.unpin_key(&provider, &k2).expect("known"), "k2 was pinned");
    assert!(!router.unpin_key(&provider, &k2).expect("known"), "already unpinned");
    let unknown = router.pin_key(&provider, &"nope".into(), Duration::from_secs(1));
    assert!(matches!(unknown, Err(AdminError::UnknownKey { .. })), "{unknown:?}");
}
