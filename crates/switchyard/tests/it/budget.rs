//! Costs and daily budgets: a route over budget moves to a cheaper candidate, then refuses
//! with `BUDGET_EXCEEDED`; spend survives a restart through the store and resets at midnight
//! in the budget's zone.

use std::sync::Arc;
use std::time::Duration;

use switchyard::{
    BudgetConfig, JsonFileSpendStore, ModelFacts, Price, Router, RouterError, SpendStore,
    StrategyKind,
};
use switchyard_core::{Clock, ManualClock};
use switchyard_mock::MockUpstream;
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

const EXPENSIVE: &str = "openai/gpt-4o-mini";
const CHEAP: &str = "mistral/mistral-small-latest";

fn per_request(dollars: f64) -> ModelFacts {
    ModelFacts {
        price: Some(Price { per_request: dollars, ..Price::FREE }),
        ..ModelFacts::default()
    }
}

/// The expensive model first by priority, the cheap one second; $0.025 a day for the route.
fn router(clock: &ManualClock, mock: &MockUpstream, store: Arc<dyn SpendStore>) -> Router {
    let openai = openai_provider("openai", Preset::OpenAi, mock, clock);
    let mistral = openai_provider("mistral", Preset::Mistral, mock, clock);
    let mut budgets = BudgetConfig::new(chrono_tz::Europe::Paris);
    budgets.per_route.insert("default".into(), 0.025);
    let builder = credentials(
        builder(clock, QuotaConfig::default()).provider(openai).provider(mistral),
        "openai",
        &["o1"],
    );
    credentials(builder, "mistral", &["m1"])
        .model(EXPENSIVE, per_request(0.01))
        .model(CHEAP, per_request(0.004))
        .route("default", StrategyKind::Priority, [EXPENSIVE, CHEAP])
        .budgets(budgets, store)
        .build()
        .expect("router builds")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn a_route_over_budget_moves_to_a_cheaper_candidate_then_refuses() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("o1"), key("m1")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn SpendStore> =
        Arc::new(JsonFileSpendStore::new(dir.path().join("spend.json")));
    let router = router(&clock, &mock, Arc::clone(&store));

    let mut served_by = Vec::new();
    for _ in 0..3 {
        let answer = router.chat("default", &request()).await.expect("served");
        served_by.push((answer.served_by.provider.to_string(), answer.cost.expect("priced")));
    }
    // $0.01 + $0.01, then a third $0.01 would pass $0.025: the $0.004 model serves.
    assert_eq!(
        served_by.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["openai", "openai", "mistral"]
    );
    assert!(close(served_by[2].1, 0.004), "{served_by:?}");

    let error = router.chat("default", &request()).await.expect_err("nothing fits $0.001");
    let RouterError::BudgetExceeded { spent, budget, resets_at, .. } = &error else {
        panic!("expected BUDGET_EXCEEDED, got {error}");
    };
    assert!(close(*spent, 0.024) && close(*budget, 0.025), "{error}");
    // Midnight in Paris (UTC+1 in January, when the clock starts) is 23:00 UTC.
    let now = clock.utc();
    assert_eq!(resets_at.format("%H:%M").to_string(), "23:00");
    assert!(*resets_at > now && *resets_at - now < chrono::Duration::hours(24));
    assert_eq!(error.code(), "BUDGET_EXCEEDED");
    assert_eq!(mock.n_requests(), 3, "the refused request made no upstream call");

    let spend = router.spend().expect("tracked");
    assert!(
        close(spend.per_provider["openai"], 0.02) && close(spend.per_provider["mistral"], 0.004)
    );

    // A restart on the same store remembers today's spend.
    drop(router);
    let restarted = self::router(&clock, &mock, store);
    let again = restarted.chat("default", &request()).await.expect_err("still over budget");
    assert_eq!(again.code(), "BUDGET_EXCEEDED");
    assert_eq!(mock.n_requests(), 3);

    // After midnight in Paris the budget is whole again.
    let until_midnight = (*resets_at - now).to_std().expect("ahead");
    clock.advance(until_midnight + Duration::from_secs(1));
    let next_day = restarted.chat("default", &request()).await.expect("a new day");
    assert_eq!(next_day.served_by.provider.as_str(), "openai");
}

#[tokio::test]
async fn a_provider_over_its_budget_is_left_out_of_the_route() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("o1"), key("m1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let mistral = openai_provider("mistral", Preset::Mistral, &mock, &clock);
    let mut budgets = BudgetConfig::new(chrono_tz::UTC);
    budgets.per_provider.insert("openai".into(), 0.01);
    let builder = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai).provider(mistral),
        "openai",
        &["o1"],
    );
    let router = credentials(builder, "mistral", &["m1"])
        .model(EXPENSIVE, per_request(0.01))
        .model(CHEAP, ModelFacts { price: Some(Price::FREE), ..ModelFacts::default() })
        .route("default", StrategyKind::Priority, [EXPENSIVE, CHEAP])
        .budgets(budgets, Arc::new(switchyard::MemorySpendStore::default()))
        .build()
        .expect("router builds");

    let first = router.chat("default", &request()).await.expect("served");
    assert_eq!((first.served_by.provider.as_str(), first.cost), ("openai", Some(0.01)));
    // openai has spent its $0.01: the free model serves from now on, at no cost.
    for _ in 0..3 {
        let answer = router.chat("default", &request()).await.expect("served");
        assert_eq!((answer.served_by.provider.as_str(), answer.cost), ("mistral", Some(0.0)));
        assert_eq!(answer.n_attempts, 1, "openai was not tried");
    }
    let spend = router.spend().expect("tracked");
    assert!(close(spend.per_route["default"], 0.01), "{spend:?}");
    assert!(!spend.per_provider.contains_key("mistral"), "free answers add nothing: {spend:?}");
}
