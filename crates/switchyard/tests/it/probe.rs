//! Health probes: a key revoked upstream is found by the probe and leaves the rotation
//! before any user request reaches it.

use std::time::Duration;

use switchyard::{ProbeConfig, ProbeOutcome, StrategyKind};
use switchyard_core::{Candidate, ErrorKind, ManualClock};
use switchyard_mock::KeyScript;
use switchyard_openai::Preset;
use switchyard_quota::{KeyState, QuotaConfig};

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, request, secret, wait_until,
};

#[tokio::test]
async fn a_key_revoked_upstream_is_marked_invalid_by_the_probe_before_any_user_request() {
    let clock = ManualClock::default();
    // `revoked` is revoked upstream before the router ever uses it: its first call is a 401.
    let mock = openai_mock(
        &clock,
        vec![KeyScript::valid("revoked", secret("revoked")).revoked_after(0), key("good")],
    )
    .await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, QuotaConfig::default()).provider(openai),
        "openai",
        &["revoked", "good"],
    )
    .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .build()
    .expect("router builds");
    let revoked = Candidate::new("openai", "revoked", "gpt-4o-mini");

    let probes = router
        .spawn_probes(ProbeConfig { interval: Duration::from_secs(60), ..ProbeConfig::default() });
    wait_until("the first round ends", || probes.rounds() == 1).await;
    assert_eq!(mock.n_requests(), 2, "one probe per key");
    let status = router.ledger().status(&revoked).await.expect("status");
    assert_eq!(status.state, KeyState::Invalid, "known invalid before any user request");
    let probe_request = mock
        .log()
        .into_iter()
        .find(|entry| entry.key.as_ref().is_some_and(|k| k.as_str() == "revoked"))
        .expect("probed");
    let body = probe_request.body.expect("json body");
    assert_eq!(body["max_completion_tokens"], 1, "a one-token completion: {body}");

    // The first user request goes straight to the good key: no attempt on the revoked one.
    let answer = router.chat("default", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "good");
    assert_eq!(answer.n_attempts, 1);
    assert_eq!(mock.counts("revoked").expect("revoked").requests, 1, "only the probe");

    // The next round skips the invalid key and probes the good one again.
    clock.advance(Duration::from_secs(60));
    wait_until("the second round ends", || probes.rounds() == 2).await;
    assert_eq!(mock.n_requests(), 4);
    assert_eq!(mock.counts("revoked").expect("revoked").requests, 1);
    assert_eq!(mock.counts("good").expect("good").requests, 3, "probe, user request, probe");
    probes.stop();

    // Probing on demand says what each key is.
    let results = router.probe_once(&ProbeConfig::default()).await;
    let outcomes: Vec<(String, bool)> = results
        .iter()
        .map(|result| {
            (
                result.candidate.key.to_string(),
                matches!(result.outcome, ProbeOutcome::Healthy { .. }),
            )
        })
        .collect();
    assert_eq!(outcomes, [("good".to_owned(), true), ("revoked".to_owned(), false)]);
    assert!(
        matches!(&results[1].outcome, ProbeOutcome::Skipped { reason } if reason.contains("invalid")),
        "{results:?}"
    );
    let error = router.ledger().status(&revoked).await.expect("status").reason.unwrap_or_default();
    assert!(error.contains(ErrorKind::InvalidKey.as_str()), "{error}");
}
