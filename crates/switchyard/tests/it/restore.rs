//! What an operator did survives a new router (a reload, a restart): disabled keys through
//! `AdminState`, a manual reset through the ledger's own saved state.

use std::sync::Arc;

use switchyard::{AdminState, Router, StrategyKind};
use switchyard_core::{Clock, KeyId, ManualClock, ProviderId};
use switchyard_mock::{Fault, FaultRule, MockUpstream};
use switchyard_openai::Preset;
use switchyard_quota::{MemoryLedger, QuotaConfig};

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

fn router_on(
    clock: &ManualClock,
    mock: &MockUpstream,
    ledger: Option<Arc<MemoryLedger>>,
) -> Router {
    let openai = openai_provider("openai", Preset::OpenAi, mock, clock);
    let mut builder = builder(clock, QuotaConfig::default()).provider(openai);
    if let Some(ledger) = ledger {
        builder = builder.quota(ledger);
    }
    credentials(builder, "openai", &["k1", "k2"])
        .route("main", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds")
}

#[tokio::test]
async fn disabled_keys_carry_over_to_a_new_router_through_admin_state() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2")]).await;
    let (provider, k1) = (ProviderId::from("openai"), KeyId::from("k1"));
    let old = router_on(&clock, &mock, None);
    assert_eq!(old.admin_state(), AdminState::default());
    old.disable_key(&provider, &k1).expect("known key");
    let state = old.admin_state();
    assert_eq!(state.disabled, [(provider.clone(), k1.clone())]);

    // Kept as JSON (the CLI writes it next to the quota state), read back by a new router.
    let text = serde_json::to_string(&state).expect("serializes");
    let read: AdminState = serde_json::from_str(&text).expect("parses");
    let new = router_on(&clock, &mock, None);
    assert!(!new.is_disabled(&provider, &k1), "a fresh router knows nothing yet");
    let stale = AdminState {
        disabled: [read.disabled.clone(), vec![(provider.clone(), KeyId::from("gone"))]].concat(),
    };
    let unknown = new.restore_admin_state(&stale);
    assert_eq!(unknown, [(provider.clone(), KeyId::from("gone"))], "left out, not created");
    assert!(new.is_disabled(&provider, &k1));
    assert_eq!(new.keys().len(), 2);
    for _ in 0..2 {
        let answer = new.chat("main", &request()).await.expect("served");
        assert_eq!(answer.served_by.key.as_str(), "k2");
    }
    assert_eq!(new.admin_state(), state);
}

#[tokio::test]
async fn a_reset_key_does_not_come_back_cooling_from_saved_state() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2")]).await;
    let (provider, k1) = (ProviderId::from("openai"), KeyId::from("k1"));
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let ledger = Arc::new(MemoryLedger::new(Arc::clone(&shared), QuotaConfig::default()));
    let old = router_on(&clock, &mock, Some(Arc::clone(&ledger)));
    // k1 is told to wait an hour: the ledger holds it out.
    mock.inject(FaultRule::once(Fault::Raw {
        status: 429,
        content_type: "application/json".into(),
        headers: vec![("retry-after".into(), "3600".into())],
        body: r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.into(),
    }).for_key("k1"));
    let answer = old.chat("main", &request()).await.expect("k2 serves");
    assert_eq!(answer.served_by.key.as_str(), "k2");
    let cooling = ledger.export(true);

    old.reset_key(&provider, &k1).await.expect("reset");
    // What the write-behind saves after the reset, restored by the next router's ledger.
    let saved = ledger.export(true);
    let reloaded = Arc::new(MemoryLedger::new(Arc::clone(&shared), QuotaConfig::default()));
    reloaded.restore(&saved);
    let new = router_on(&clock, &mock, Some(reloaded));
    let answer = new.chat("main", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "k1", "the reset held across the reload");

    // Restored from state saved before the reset, the key would still be cooling: which is
    // why the CLI must flush the write-behind before it rebuilds.
    let stale = Arc::new(MemoryLedger::new(shared, QuotaConfig::default()));
    stale.restore(&cooling);
    let from_stale = router_on(&clock, &mock, Some(stale));
    let answer = from_stale.chat("main", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "k2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_carries_over_spend_in_flight_and_disabled_keys() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .latency(switchyard_mock::Latency::Fixed(std::time::Duration::from_secs(2)))
        .start()
        .await
        .expect("mock starts");
    let store: Arc<dyn switchyard::SpendStore> = Arc::new(switchyard::MemorySpendStore::default());
    let build = |previous: Option<&Router>| {
        let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
        let mut budgets = switchyard::BudgetConfig::new(chrono_tz::UTC);
        budgets.per_route.insert("main".into(), 0.25);
        let mut builder = credentials(
            builder(&clock, QuotaConfig::default()).provider(openai),
            "openai",
            &["k1", "k2"],
        )
        .model(
            "openai/gpt-4o-mini",
            switchyard::ModelFacts {
                price: Some(switchyard::Price { per_request: 0.1, ..switchyard::Price::FREE }),
                ..switchyard::ModelFacts::default()
            },
        )
        .route("main", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .budgets(budgets, Arc::clone(&store));
        if let Some(previous) = previous {
            builder = builder.carry_over(previous);
        }
        builder.build().expect("router builds")
    };
    let (provider, k1) = (ProviderId::from("openai"), KeyId::from("k1"));
    let old = build(None);
    old.disable_key(&provider, &k1).expect("known key");
    // Two calls in flight on the old router: $0.20 of the $0.25 reserved.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let old = old.clone();
            tokio::spawn(async move { old.chat("main", &request()).await })
        })
        .collect();
    crate::support::wait_until("both calls wait upstream", || clock.sleepers() >= 4).await;

    let new = build(Some(&old));
    assert!(new.is_disabled(&provider, &k1), "the disabled key stays disabled");
    let error = new.chat("main", &request()).await.expect_err("the old calls hold the budget");
    assert_eq!(error.code(), "BUDGET_EXCEEDED", "{error}");
    clock.advance(std::time::Duration::from_secs(2));
    for call in calls {
        assert_eq!(call.await.expect("joins").expect("served").served_by.key.as_str(), "k2");
    }
    drop(old);
    let spend = new.spend().expect("tracked");
    assert!((spend.per_route["main"] - 0.2).abs() < 1e-9, "{spend:?}");
}
