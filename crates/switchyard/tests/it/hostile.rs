//! Hostile numbers and upstreams that never finish: a retry hint or reset of any size is cut
//! to `MAX_HINT` (31 days) without a panic, a huge configured timeout to `MAX_TIMEOUT`, and a
//! stream that goes quiet or runs on is ended on the router's clock with a typed error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use switchyard::{
    MAX_TIMEOUT, ModelFacts, Price, RequestOptions, RouteConfig, Router, RouterConfig, RouterError,
    StrategyKind, StreamError,
};
use switchyard_core::{
    Call, ChatReply, ChatStream, Clock, Credential, MAX_HINT, ManualClock, ModelInfo, Protocol,
    Provider, ProviderError, ProviderId,
};
use switchyard_mock::{Fault, FaultRule, Latency, MockUpstream, ReplyScript};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_provider, request, wait_until};

const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

/// An OpenAI-format 429 with these extra headers.
fn too_many(headers: &[(&str, &str)]) -> Fault {
    Fault::Raw {
        status: 429,
        content_type: "application/json".into(),
        headers: headers.iter().map(|(name, value)| ((*name).into(), (*value).into())).collect(),
        body: RATE_LIMITED.into(),
    }
}

/// A router over keys k1 and k2 of one openai provider, in that order.
fn two_keys(clock: &ManualClock, provider: Arc<dyn Provider>) -> Router {
    credentials(builder(clock, QuotaConfig::default()).provider(provider), "openai", &["k1", "k2"])
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .build()
        .expect("router builds")
}

#[track_caller]
fn assert_within_max_hint(at: Option<DateTime<Utc>>, clock: &ManualClock) {
    let at = at.expect("a reset is known");
    let utc = clock.utc();
    assert!(at > utc, "{at} is ahead of {utc}");
    assert!(at <= utc + chrono::Duration::from_std(MAX_HINT).expect("fits"), "{at} is cut");
}

#[tokio::test]
async fn a_retry_after_written_1e14_is_no_panic_whatever_the_adapter_makes_of_it() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .fault(FaultRule::always(too_many(&[("retry-after", "1e14")])))
        .start()
        .await
        .expect("mock starts");
    let router = two_keys(&clock, openai_provider("openai", Preset::OpenAi, &mock, &clock));
    let error = router.chat("default", &request()).await.expect_err("both keys limited");
    assert_eq!(error.code(), "QUOTA_EXCEEDED", "{error}");
    if error.retry_at().is_some() {
        assert_within_max_hint(error.retry_at(), &clock);
    }
}

#[tokio::test]
async fn a_retry_after_of_1e14_seconds_from_the_upstream_is_cut_to_31_days() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .fault(FaultRule::always(too_many(&[("retry-after", "100000000000000")])))
        .start()
        .await
        .expect("mock starts");
    let router = two_keys(&clock, openai_provider("openai", Preset::OpenAi, &mock, &clock));
    let error = router.chat("default", &request()).await.expect_err("both keys limited");
    let RouterError::QuotaExceeded { earliest_reset, n_keys, .. } = &error else {
        panic!("expected QUOTA_EXCEEDED, got {error}");
    };
    assert_eq!(*n_keys, 2);
    assert_within_max_hint(*earliest_reset, &clock);
    // The next request is answered, from the ledger's memory, without a call or a panic.
    let again = router.chat("default", &request()).await.expect_err("still limited");
    assert_eq!(again.code(), "QUOTA_EXCEEDED", "{again}");
    assert_within_max_hint(again.retry_at(), &clock);
    assert_eq!(mock.n_requests(), 2);
}

#[tokio::test]
async fn a_server_error_asking_for_a_1e14_second_pause_moves_on_to_the_next_key() {
    let clock = ManualClock::default();
    // A 500 is retried on the same key after a backoff that honours the stated pause: cut to
    // 31 days, longer than the deadline, so the cascade moves on instead.
    let failing = Fault::Raw {
        status: 500,
        content_type: "application/json".into(),
        headers: vec![("retry-after".into(), "100000000000000".into())],
        body: r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#
            .into(),
    };
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .fault(FaultRule::always(failing).for_key("k1"))
        .start()
        .await
        .expect("mock starts");
    let router = two_keys(&clock, openai_provider("openai", Preset::OpenAi, &mock, &clock));
    let answer = router.chat("default", &request()).await.expect("k2 serves");
    assert_eq!(answer.served_by.key.as_str(), "k2");
    assert_eq!(answer.n_attempts, 2, "k1 once, not retried after a pause");
    assert_eq!(clock.elapsed(), Duration::ZERO, "nobody slept");
}

/// The real adapter, with every error it returns carrying the largest hints there are: what
/// an adapter that forgot to clamp would hand the router.
struct HugeHints(Arc<dyn Provider>);

impl HugeHints {
    fn worst(mut error: ProviderError) -> ProviderError {
        error.retry_after = Some(Duration::MAX);
        error.resets_at = Some(DateTime::<Utc>::MAX_UTC);
        error
    }
}

#[async_trait::async_trait]
impl Provider for HugeHints {
    fn id(&self) -> &ProviderId {
        self.0.id()
    }

    fn protocol(&self) -> Protocol {
        self.0.protocol()
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        self.0.chat(call).await.map_err(Self::worst)
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        self.0.chat_stream(call).await.map_err(Self::worst)
    }

    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        self.0.list_models(credential).await
    }
}

#[tokio::test]
async fn an_error_carrying_the_largest_hints_directly_is_cut_without_a_panic() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .keys([key("k1"), key("k2")])
        .fault(FaultRule::always(too_many(&[])))
        .start()
        .await
        .expect("mock starts");
    let adapter = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = two_keys(&clock, Arc::new(HugeHints(adapter)));
    let error = router.chat("default", &request()).await.expect_err("both keys limited");
    assert_eq!(error.code(), "QUOTA_EXCEEDED", "{error}");
    assert_within_max_hint(error.retry_at(), &clock);
    assert_eq!(
        error.retry_at(),
        Some(clock.utc() + chrono::Duration::from_std(MAX_HINT).expect("fits")),
        "a reset at the end of time is cut to exactly 31 days"
    );

    // A server error with the same hints: the stated pause is cut, found too long for the
    // deadline, and the cascade moves on instead of sleeping or panicking.
    mock.clear_faults();
    mock.inject(FaultRule::always(Fault::server_error()).for_key("k1"));
    let provider = ProviderId::new("openai");
    for key in ["k1", "k2"] {
        router.reset_key(&provider, &key.into()).await.expect("reset");
    }
    let answer = router.chat("default", &request()).await.expect("k2 serves");
    assert_eq!(answer.served_by.key.as_str(), "k2");
    assert_eq!(clock.elapsed(), Duration::ZERO, "nobody slept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_configured_timeout_is_cut_to_a_day() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .latency(Latency::Fixed(MAX_TIMEOUT + Duration::from_secs(3600)))
        .start()
        .await
        .expect("mock starts");
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let mut route = RouteConfig::new("default", StrategyKind::Priority, ["openai/gpt-4o-mini"]);
    // `timeout_secs = 1e12` in a configuration file.
    route.timeout = Some(Duration::from_secs(1_000_000_000_000));
    let router = credentials(builder(&clock, QuotaConfig::default()), "openai", &["k1"])
        .provider(provider)
        .config(RouterConfig { timeout: Duration::MAX, seed: Some(7), ..RouterConfig::default() })
        .route_config(route)
        .build()
        .expect("router builds");
    for options in [
        RequestOptions::default(),
        RequestOptions { timeout: Some(Duration::MAX), ..RequestOptions::default() },
    ] {
        let call = tokio::spawn({
            let router = router.clone();
            async move { router.chat_with("default", &request(), options).await }
        });
        wait_until("the mock holds the call", || clock.sleepers() >= 2).await;
        clock.advance(MAX_TIMEOUT);
        let error = call.await.expect("joins").expect_err("the day is up");
        let RouterError::DeadlineExceeded { after, .. } = &error else {
            panic!("expected DEADLINE_EXCEEDED, got {error}");
        };
        assert_eq!(*after, MAX_TIMEOUT);
        wait_until("the abandoned call is dropped", || clock.sleepers() == 0).await;
    }
}

/// A stream of many words paced `interval` apart on the clock, priced, through a router
/// whose streams idle out after `idle` and end by `deadline`.
async fn streaming(
    clock: &ManualClock,
    interval: Duration,
    idle: Duration,
    deadline: Duration,
) -> (MockUpstream, Router) {
    let words: Vec<String> = (0..40).map(|n| format!("word{n}")).collect();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .stream_interval(interval)
        .reply(ReplyScript::Text(words.join(" ")))
        .start()
        .await
        .expect("mock starts");
    let provider = openai_provider("openai", Preset::OpenAi, &mock, clock);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let router = Router::builder()
        .clock(Arc::clone(&shared))
        .quota(Arc::new(switchyard_quota::MemoryLedger::new(shared, QuotaConfig::default())))
        .config(RouterConfig {
            seed: Some(7),
            stream_idle_timeout: idle,
            stream_deadline: deadline,
            ..RouterConfig::default()
        })
        .provider(provider)
        .credential("openai", Credential::new("k1", crate::support::secret("k1")))
        .model(
            "openai/gpt-4o-mini",
            ModelFacts {
                price: Some(Price { per_request: 0.5, ..Price::FREE }),
                ..ModelFacts::default()
            },
        )
        .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
        .budgets(
            switchyard::BudgetConfig::new(chrono_tz::UTC),
            Arc::new(switchyard::MemorySpendStore::default()),
        )
        .build()
        .expect("router builds");
    (mock, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_goes_quiet_ends_with_an_idle_timeout() {
    let clock = ManualClock::default();
    let (_mock, router) =
        streaming(&clock, Duration::from_secs(120), Duration::from_secs(60), MAX_TIMEOUT).await;
    let mut stream =
        router.chat_stream("default", &request(), RequestOptions::default()).await.expect("stream");
    stream.next().await.expect("first").expect("ok");
    let rest = tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        (items, stream.cost())
    });
    // The mock sleeps 120 s before its next frame; the stream's idle timer sleeps 60 s.
    wait_until("the mock and the stream's timer sleep", || clock.sleepers() >= 2).await;
    clock.advance(Duration::from_secs(60));
    let (items, cost) = rest.await.expect("joins");
    let last = items.last().expect("an item");
    let Err(StreamError::IdleTimeout { idle, candidate, .. }) = last else {
        panic!("expected an idle timeout, got {last:?}");
    };
    assert_eq!(*idle, Duration::from_secs(60));
    assert_eq!(candidate.key.as_str(), "k1");
    assert!(last.as_ref().err().is_some_and(|error| error.to_string().contains("sent nothing")));
    // Charged as a failure of the candidate, and the money settled.
    let stats = router.stats().await;
    assert_eq!(stats.errors_by_class.get("timeout"), Some(&1), "{stats:?}");
    assert_eq!(stats.request_errors.get("STREAM_INTERRUPTED"), Some(&1));
    assert_eq!(cost, Some(0.5));
    assert_eq!(router.spend().expect("tracked").per_route.get("default"), Some(&0.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_runs_on_is_cut_at_its_deadline() {
    let clock = ManualClock::default();
    let interval = Duration::from_secs(30);
    let (_mock, router) =
        streaming(&clock, interval, Duration::from_secs(60), Duration::from_secs(100)).await;
    let mut stream =
        router.chat_stream("default", &request(), RequestOptions::default()).await.expect("stream");
    stream.next().await.expect("first").expect("ok");
    let received = Arc::new(AtomicUsize::new(0));
    let rest = tokio::spawn({
        let received = Arc::clone(&received);
        async move {
            let mut items = Vec::new();
            while let Some(item) = stream.next().await {
                items.push(item);
                received.fetch_add(1, Ordering::SeqCst);
            }
            items
        }
    });
    // Frames keep coming every 30 s, never idle for 60 s: only the deadline can end it.
    for _ in 0..10 {
        wait_until("the mock sleeps before its next frame", || {
            clock.sleepers() >= 2 || rest.is_finished()
        })
        .await;
        if rest.is_finished() {
            break;
        }
        let seen = received.load(Ordering::SeqCst);
        clock.advance(interval);
        wait_until("the next frame or the end arrives", || {
            received.load(Ordering::SeqCst) > seen || rest.is_finished()
        })
        .await;
    }
    let items = rest.await.expect("joins");
    let last = items.last().expect("an item");
    let Err(StreamError::DeadlineExceeded { deadline, delivered_chunks, .. }) = last else {
        panic!("expected the stream deadline, got {last:?}");
    };
    assert_eq!(*deadline, Duration::from_secs(100));
    assert!(*delivered_chunks >= 3 && *delivered_chunks < 40, "{delivered_chunks}");
    assert!(
        clock.elapsed() >= Duration::from_secs(100) && clock.elapsed() <= Duration::from_secs(130)
    );
    let stats = router.stats().await;
    assert_eq!(stats.errors_by_class.get("timeout"), Some(&1), "{stats:?}");
}
