//! The adaptive strategy learning from outcomes over real HTTP.

use std::time::Duration;

use switchyard::StrategyKind;
use switchyard_core::ManualClock;
use switchyard_mock::{Fault, FaultRule};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

#[tokio::test]
async fn the_adaptive_route_moves_traffic_away_from_a_flaky_candidate_and_back_when_it_recovers() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("a"), key("b")]).await;
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(provider),
        "openai",
        &["a", "b"],
    )
    .route("smart", StrategyKind::Adaptive, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");

    let share_of_a = |n: usize, label: &str| {
        let router = router.clone();
        let clock = clock.clone();
        let label = label.to_owned();
        async move {
            let mut n_a = 0;
            for _ in 0..n {
                let answer = router.chat("smart", &request()).await.expect("served");
                if answer.served_by.key.as_str() == "a" {
                    n_a += 1;
                }
                clock.advance(Duration::from_secs(1));
            }
            println!("{label}: key a served {n_a} of {n}");
            n_a
        }
    };
    let warm = share_of_a(60, "both healthy").await;
    assert!((10..=50).contains(&warm), "both keys get traffic while both are healthy: {warm}");

    // Key a turns flaky: most of its calls answer 500.
    mock.inject(FaultRule::always(Fault::server_error()).for_key("a").with_probability(0.8));
    let degraded = share_of_a(120, "a flaky").await;
    let degraded_tail = share_of_a(40, "a flaky, later").await;
    assert!(degraded_tail <= 8, "traffic moved away from a: {degraded} then {degraded_tail} of 40");

    // It recovers. Nothing calls it while b serves well, so its failures fade with the
    // scorer's 30-minute half-life; once they have faded it is as fresh as a new candidate,
    // exploration tries it again and its share climbs back.
    mock.clear_faults();
    clock.advance(Duration::from_secs(8 * 3600));
    let recovered = share_of_a(200, "a recovered").await;
    let recovered_tail = share_of_a(60, "a recovered, later").await;
    assert!(
        recovered_tail >= 12,
        "traffic came back to a: {recovered} then {recovered_tail} of 60"
    );
}
