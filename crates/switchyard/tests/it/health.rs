//! Circuit breakers and the learned ranking, over real HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use switchyard::{CircuitState, RequestOptions, Skip, StrategyKind};
use switchyard_core::{Candidate, ErrorKind, ManualClock};
use switchyard_mock::{Fault, FaultRule};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, request, wait_until,
};

#[tokio::test]
async fn a_circuit_opens_after_five_server_errors_half_opens_after_its_timeout_and_closes_after_good_probes()
 {
    let clock = ManualClock::default();
    let flaky_mock = openai_mock(&clock, vec![key("f1")]).await;
    flaky_mock.inject(FaultRule::times(Fault::server_error(), 5));
    let flaky = openai_provider("flaky", Preset::OpenAi, &flaky_mock, &clock);
    let steady_mock = openai_mock(&clock, vec![key("s1")]).await;
    let steady = openai_provider("steady", Preset::OpenAi, &steady_mock, &clock);
    let builder = credentials(
        builder(&clock, QuotaConfig::default()).provider(flaky).provider(steady),
        "flaky",
        &["f1"],
    );
    let router = credentials(builder, "steady", &["s1"])
        .route("default", StrategyKind::Priority, ["flaky/gpt-4o-mini", "steady/gpt-4o-mini"])
        .build()
        .expect("router builds");
    let flaky_candidate = Candidate::new("flaky", "f1", "gpt-4o-mini");

    // Each request tries the flaky candidate, retries it once (a 500 says "try again"), and
    // falls to the steady one: five 500s take three requests.
    for _ in 0..3 {
        let answer =
            router.chat("default", &request()).await.expect("served by the steady provider");
        assert_eq!(answer.served_by.provider.as_str(), "steady");
    }
    assert_eq!(flaky_mock.counts("f1").expect("f1").faulted, 5);
    assert_eq!(
        router.circuit_state(&flaky_candidate),
        Some(CircuitState::Open { remaining: Duration::from_secs(60) })
    );

    let answer = router.chat("default", &request()).await.expect("served");
    assert_eq!(flaky_mock.n_requests(), 5, "an open circuit is not called");
    let skipped = answer
        .trace
        .considered
        .iter()
        .find(|entry| entry.candidate == flaky_candidate)
        .expect("listed");
    assert!(matches!(skipped.skipped, Some(Skip::CircuitOpen { .. })), "{skipped:?}");

    clock.advance(Duration::from_secs(60));
    assert_eq!(router.circuit_state(&flaky_candidate), Some(CircuitState::HalfOpen));
    for _ in 0..3 {
        let answer = router.chat("default", &request()).await.expect("served");
        assert_eq!(answer.served_by, flaky_candidate, "a half-open circuit lets probes through");
    }
    assert_eq!(router.circuit_state(&flaky_candidate), Some(CircuitState::Closed));
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_chunk_moves_to_the_next_candidate() {
    let clock = ManualClock::default();
    let broken_mock = openai_mock(&clock, vec![key("k1")]).await;
    broken_mock.inject(FaultRule::once(Fault::CutStream { after_frames: 0 }));
    let broken = openai_provider("openai", Preset::OpenAi, &broken_mock, &clock);
    let backup_mock = openai_mock(&clock, vec![key("k2")]).await;
    let backup = openai_provider("backup", Preset::OpenAi, &backup_mock, &clock);
    let builder = credentials(
        builder(&clock, QuotaConfig::default()).provider(broken).provider(backup),
        "openai",
        &["k1"],
    );
    let router = credentials(builder, "backup", &["k2"])
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini", "backup/gpt-4o-mini"])
        .build()
        .expect("router builds");

    let stream = router
        .chat_stream("default", &request(), RequestOptions::default())
        .await
        .expect("a stream");
    assert_eq!(stream.served_by.key.as_str(), "k2");
    assert_eq!(stream.trace.attempts.len(), 2);
    assert_eq!(stream.trace.attempts[0].error, Some(ErrorKind::Network));
    let chunks: Vec<_> = stream.collect().await;
    assert!(chunks.iter().all(Result::is_ok), "{chunks:?}");
    let text: String = chunks.into_iter().map(|chunk| chunk.expect("chunk").text).collect();
    assert!(!text.is_empty());
    let plain = router.chat("backup/gpt-4o-mini", &request()).await.expect("plain");
    assert_eq!(text, plain.response.text, "streamed text equals the plain answer");
}

#[tokio::test]
async fn a_stream_that_breaks_mid_way_ends_with_a_typed_error_that_says_what_was_delivered() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    mock.inject(FaultRule::once(Fault::CutStream { after_frames: 3 }));
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(provider), "openai", &["k1"])
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");

    let stream = router
        .chat_stream("default", &request(), RequestOptions::default())
        .await
        .expect("a stream");
    let items: Vec<_> = stream.collect().await;
    let (last, delivered) = items.split_last().expect("items");
    assert!(delivered.iter().all(Result::is_ok));
    let error = last.as_ref().expect_err("the stream ends with an error");
    let switchyard::StreamError::Interrupted { delivered_chunks, source, candidate, .. } = error
    else {
        panic!("expected an interrupted stream, got {error}");
    };
    assert_eq!(*delivered_chunks, delivered.len());
    assert!(*delivered_chunks >= 1);
    assert_eq!(candidate.key.as_str(), "k1");
    assert!(matches!(source.kind, ErrorKind::Network | ErrorKind::MalformedResponse), "{source}");
    let stats = router.stats().await;
    assert_eq!(stats.request_errors.get("STREAM_INTERRUPTED"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_by_its_caller_settles_its_permit() {
    let clock = ManualClock::default();
    let mock = switchyard_mock::MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1").requests_per_minute(10))
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(provider), "openai", &["k1"])
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");

    let mut stream = router
        .chat_stream("default", &request(), RequestOptions::default())
        .await
        .expect("a stream");
    let first = stream.next().await.expect("a first chunk").expect("ok");
    assert_eq!(first.model.as_deref(), Some("gpt-4o-mini"));
    drop(stream);
    // The mock, pacing its frames on the clock, sees the connection go.
    wait_until("the mock stops streaming", || clock.sleepers() == 0).await;
    assert_eq!(mock.counts("k1").expect("k1").requests, 1);
    let stats = router.stats().await;
    assert_eq!(stats.session.requests, 0, "an abandoned stream is not a served request");
}
