//! Request identity: the client a caller names in [`RequestOptions::client`] reaches every
//! event of its request, and a request event names the candidate of its last attempt, so a
//! sink attributes events without a map of its own. Plain calls, failures, finished streams
//! and streams dropped by their caller alike.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use switchyard::{EventSink, RequestOptions, Router, RouterError, RouterEvent, StrategyKind};
use switchyard_core::ManualClock;
use switchyard_mock::{KeyScript, MockUpstream};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request, secret};

/// Keeps every event.
#[derive(Default)]
struct Events(Mutex<Vec<RouterEvent>>);

impl EventSink for Events {
    fn record(&self, event: &RouterEvent) {
        self.0.lock().push(event.clone());
    }
}

impl Events {
    /// `(attempt events' clients and keys, request events)`, and forgets them.
    fn take(&self) -> (Vec<(Option<String>, String)>, Vec<switchyard::RequestEvent>) {
        let mut attempts = Vec::new();
        let mut requests = Vec::new();
        for event in std::mem::take(&mut *self.0.lock()) {
            match event {
                RouterEvent::Attempt(attempt) => attempts.push((
                    attempt.client.as_deref().map(str::to_owned),
                    attempt.candidate.key.to_string(),
                )),
                RouterEvent::Request(request) => requests.push(request),
            }
        }
        (attempts, requests)
    }
}

/// Keys `ids` of one openai provider on `mock`, one priority route `default`.
fn router(clock: &ManualClock, mock: &MockUpstream, ids: &[&str], events: &Arc<Events>) -> Router {
    let provider = openai_provider("openai", Preset::OpenAi, mock, clock);
    credentials(builder(clock, QuotaConfig::default()).provider(provider), "openai", ids)
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .event_sink(Arc::clone(events) as Arc<dyn EventSink>)
        .build()
        .expect("router builds")
}

fn as_client(name: &str) -> RequestOptions {
    RequestOptions { client: Some(Arc::from(name)), ..RequestOptions::default() }
}

fn key_of(candidate: Option<&switchyard::Candidate>) -> Option<&str> {
    candidate.map(|candidate| candidate.key.as_str())
}

#[tokio::test]
async fn a_served_request_names_its_client_on_every_event() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![KeyScript::invalid("k1", secret("k1")), key("k2")]).await;
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1", "k2"], &events);

    let answer = router.chat_with("default", &request(), as_client("acme")).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "k2");
    let (attempts, requests) = events.take();
    let acme = Some("acme".to_owned());
    assert_eq!(attempts, [(acme.clone(), "k1".to_owned()), (acme, "k2".to_owned())]);
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!(key_of(event.attempted.as_ref()), Some("k2"));
    assert_eq!(event.attempted, event.served_by);

    let json = serde_json::to_value(RouterEvent::Request(event.clone())).expect("serializes");
    assert_eq!(json["client"], "acme");
    assert_eq!(json["attempted"]["key"], "k2");
}

#[tokio::test]
async fn a_request_without_a_client_says_so() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1"], &events);

    router.chat("default", &request()).await.expect("served");
    let (attempts, requests) = events.take();
    assert_eq!(attempts, [(None, "k1".to_owned())]);
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.client, None);
    let json = serde_json::to_value(RouterEvent::Request(event.clone())).expect("serializes");
    assert!(json["client"].is_null(), "{json}");
}

#[tokio::test]
async fn a_failed_request_names_its_client_and_what_it_last_tried() {
    let clock = ManualClock::default();
    let mock = openai_mock(
        &clock,
        vec![KeyScript::invalid("k1", secret("k1")), KeyScript::invalid("k2", secret("k2"))],
    )
    .await;
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1", "k2"], &events);

    let error = router.chat_with("default", &request(), as_client("acme")).await.unwrap_err();
    assert!(matches!(error, RouterError::InvalidKeys { .. }), "{error:?}");
    let (attempts, requests) = events.take();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts.iter().all(|(client, _)| client.as_deref() == Some("acme")));
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!(event.served_by, None);
    assert_eq!(key_of(event.attempted.as_ref()), Some("k2"), "the last key tried");
    assert_eq!(event.error, Some("INVALID_KEYS"));

    // Nothing tried at all: the keys are known invalid now, so the ledger refuses both.
    let error = router.chat_with("default", &request(), as_client("acme")).await.unwrap_err();
    assert!(matches!(error, RouterError::InvalidKeys { .. }), "{error:?}");
    let (attempts, requests) = events.take();
    assert!(attempts.is_empty(), "{attempts:?}");
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!((event.n_attempts, event.attempted.as_ref()), (0, None));
}

#[tokio::test]
async fn a_finished_stream_names_its_client() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1"], &events);

    let mut stream =
        router.chat_stream("default", &request(), as_client("acme")).await.expect("a stream");
    while let Some(item) = stream.next().await {
        item.expect("chunk");
    }
    let (attempts, requests) = events.take();
    assert_eq!(attempts, [(Some("acme".to_owned()), "k1".to_owned())]);
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.error, None);
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!(key_of(event.attempted.as_ref()), Some("k1"));
}

#[tokio::test]
async fn a_stream_dropped_by_its_caller_names_its_client() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1"], &events);

    let mut stream =
        router.chat_stream("default", &request(), as_client("acme")).await.expect("a stream");
    stream.next().await.expect("a first chunk").expect("ok");
    drop(stream);
    let (_, requests) = events.take();
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.error, Some("STREAM_DROPPED"));
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!(key_of(event.attempted.as_ref()), Some("k1"));
    assert_eq!(key_of(event.served_by.as_ref()), Some("k1"));
}

/// `(key, reason)` of each candidate a request event says it skipped.
fn skips(event: &switchyard::RequestEvent) -> Vec<(&str, &str)> {
    event.skipped.iter().map(|skip| (skip.candidate.key.as_str(), skip.reason)).collect()
}

#[tokio::test]
async fn a_request_event_names_the_candidates_it_skipped_and_why() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1"), key("k2"), key("k3")]).await;
    let events = Arc::new(Events::default());
    let router = router(&clock, &mock, &["k1", "k2", "k3"], &events);
    let provider = switchyard::ProviderId::from("openai");
    router.disable_key(&provider, &"k1".into()).expect("known key");

    // Plain: k1 skipped, k2 served, k3 never reached (not skipped either).
    let answer = router.chat("default", &request()).await.expect("served");
    assert_eq!(answer.served_by.key.as_str(), "k2");
    let (_, requests) = events.take();
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(skips(event), [("k1", "disabled")]);

    // Streamed: the event comes at the stream's end and still names the skip.
    let mut stream =
        router.chat_stream("default", &request(), RequestOptions::default()).await.expect("ok");
    while let Some(chunk) = stream.next().await {
        chunk.expect("a chunk");
    }
    drop(stream);
    let (_, requests) = events.take();
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(event.error, None);
    assert_eq!(skips(event), [("k1", "disabled")]);

    // Failed: every key disabled, each one named.
    for id in ["k2", "k3"] {
        router.disable_key(&provider, &id.into()).expect("known key");
    }
    router.chat("default", &request()).await.expect_err("nothing may serve");
    let (_, requests) = events.take();
    let [event] = requests.as_slice() else { panic!("one request event: {requests:?}") };
    assert_eq!(skips(event), [("k1", "disabled"), ("k2", "disabled"), ("k3", "disabled")]);
}
