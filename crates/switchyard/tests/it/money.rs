//! Money is counted whatever happens: a model a budget covers must have a price; admission
//! reserves the estimated cost so concurrent calls cannot overshoot; a stream dropped by its
//! caller settles what it generated; every request event carries its cost; spend reaches the
//! store behind the requests, not on their path.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use switchyard::{
    BudgetConfig, BuildError, EventSink, JsonFileSpendStore, MemorySpendStore, ModelFacts, Price,
    RequestOptions, Router, RouterEvent, SpendStore, StrategyKind,
};
use switchyard_core::{ManualClock, Provider};
use switchyard_mock::{Latency, MockUpstream};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, request, wait_until,
};

const MODEL: &str = "openai/gpt-4o-mini";

fn priced(price: Price) -> ModelFacts {
    ModelFacts { price: Some(price), ..ModelFacts::default() }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Keeps every request event.
#[derive(Default)]
struct Requests(Mutex<Vec<switchyard::RequestEvent>>);

impl EventSink for Requests {
    fn record(&self, event: &RouterEvent) {
        if let RouterEvent::Request(request) = event {
            self.0.lock().push(request.clone());
        }
    }
}

/// One openai key on `mock`, `MODEL` at `price`, one route `default` over it with a daily
/// budget of `budget` dollars.
fn router(
    clock: &ManualClock,
    provider: Arc<dyn Provider>,
    price: Price,
    budget: f64,
    store: Arc<dyn SpendStore>,
    events: &Arc<Requests>,
) -> Router {
    let mut budgets = BudgetConfig::new(chrono_tz::UTC);
    budgets.per_route.insert("default".into(), budget);
    credentials(builder(clock, QuotaConfig::default()).provider(provider), "openai", &["k1"])
        .model(MODEL, priced(price))
        .route("default", StrategyKind::Priority, [MODEL])
        .budgets(budgets, store)
        .event_sink(Arc::clone(events) as Arc<dyn EventSink>)
        .build()
        .expect("router builds")
}

#[tokio::test]
async fn a_model_without_a_price_under_a_budget_is_refused_at_build() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let build = |route_budget: bool| {
        let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
        let mut budgets = BudgetConfig::new(chrono_tz::UTC);
        if route_budget {
            budgets.per_route.insert("default".into(), 1.0);
        } else {
            budgets.per_provider.insert("openai".into(), 1.0);
        }
        credentials(builder(&clock, QuotaConfig::default()).provider(provider), "openai", &["k1"])
            .model(MODEL, priced(Price::FREE))
            .models("openai", ["llama-3.3-70b-versatile"])
            .route("default", StrategyKind::Priority, [MODEL, "openai/mistral-small-latest"])
            .budgets(budgets, Arc::new(MemorySpendStore::default()))
            .build()
    };
    let error = build(true).err().expect("refused");
    assert_eq!(
        error,
        BuildError::Unpriced {
            target: "openai/mistral-small-latest".into(),
            budget: "route default".into()
        }
    );
    assert!(error.to_string().contains("a free model declares a price of 0"), "{error}");
    // Under a provider budget, a model declared for direct use needs a price too.
    let error = build(false).err().expect("refused");
    assert!(
        matches!(&error, BuildError::Unpriced { budget, .. } if budget == "provider openai"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_reserve_their_cost_and_cannot_overshoot_the_budget() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .latency(Latency::Fixed(Duration::from_secs(2)))
        .start()
        .await
        .expect("mock starts");
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let events = Arc::new(Requests::default());
    let price = Price { per_request: 0.01, ..Price::FREE };
    let router =
        router(&clock, provider, price, 0.025, Arc::new(MemorySpendStore::default()), &events);

    // Two calls fit $0.025; both are in flight (the mock answers in 2 s on the clock).
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.chat("default", &request()).await })
        })
        .collect();
    // Each call: the mock sleeps its latency and the router its deadline.
    wait_until("both calls wait upstream", || clock.sleepers() >= 4).await;
    // Nothing is spent yet, but a third would overshoot with what the two reserved.
    assert!(close(
        router.spend().expect("tracked").per_route.get("default").copied().unwrap_or(0.0),
        0.0
    ));
    let error = router.chat("default", &request()).await.expect_err("over budget");
    assert_eq!(error.code(), "BUDGET_EXCEEDED", "{error}");
    clock.advance(Duration::from_secs(2));
    for call in calls {
        let answer = call.await.expect("joins").expect("served");
        assert_eq!(answer.cost, Some(0.01));
    }
    assert_eq!(mock.n_requests(), 2);
    let spend = router.spend().expect("tracked");
    assert!(close(spend.per_route["default"], 0.02), "{spend:?}");
    let costs: Vec<Option<f64>> = events.0.lock().iter().map(|event| event.cost).collect();
    assert_eq!(costs.iter().filter(|cost| **cost == Some(0.01)).count(), 2, "{costs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_by_its_caller_settles_what_it_generated() {
    let clock = ManualClock::default();
    let mock = MockUpstream::openai()
        .clock(clock.clone())
        .key(key("k1"))
        .stream_interval(Duration::from_secs(1))
        .start()
        .await
        .expect("mock starts");
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let events = Arc::new(Requests::default());
    // $1 per million tokens each way: the admission estimate is what a dropped stream costs
    // when it saw no usage.
    let price = Price { input_per_mtok: 1000.0, output_per_mtok: 1000.0, per_request: 0.0 };
    let router =
        router(&clock, provider, price, 100.0, Arc::new(MemorySpendStore::default()), &events);

    let mut stream = router
        .chat_stream("default", &request(), RequestOptions::default())
        .await
        .expect("a stream");
    let heard = Arc::new(Mutex::new(None));
    let heard_by_hook = Arc::clone(&heard);
    stream.on_settled(move |cost| *heard_by_hook.lock() = Some(cost));
    stream.next().await.expect("a first chunk").expect("ok");
    assert!(heard.lock().is_none(), "not settled while it runs");
    drop(stream);

    let spent = router.spend().expect("tracked").per_route.get("default").copied();
    let spent = spent.expect("the dropped stream spent");
    assert!(spent > 0.0);
    assert_eq!(*heard.lock(), Some(Some(spent)), "the hook heard the same cost");
    {
        let events = events.0.lock();
        let [event] = events.as_slice() else { panic!("one request event: {events:?}") };
        assert_eq!(event.error, Some("STREAM_DROPPED"));
        assert_eq!(event.cost, Some(spent));
        assert_eq!(event.served_by.as_ref().map(|c| c.key.as_str()), Some("k1"));
    }
    let stats = router.stats().await;
    assert_eq!(stats.session.requests, 0, "a caller hanging up is no failed request");
}

#[tokio::test]
async fn a_finished_stream_carries_its_cost_and_spends_it() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let events = Arc::new(Requests::default());
    let price = Price { per_request: 0.5, ..Price::FREE };
    let router =
        router(&clock, provider, price, 100.0, Arc::new(MemorySpendStore::default()), &events);
    let mut stream = router
        .chat_stream("default", &request(), RequestOptions::default())
        .await
        .expect("a stream");
    while let Some(item) = stream.next().await {
        item.expect("chunk");
    }
    assert_eq!(stream.cost(), Some(0.5));
    let heard = Arc::new(Mutex::new(None));
    let heard_by_hook = Arc::clone(&heard);
    stream.on_settled(move |cost| *heard_by_hook.lock() = Some(cost));
    assert_eq!(*heard.lock(), Some(Some(0.5)), "a hook set after the end hears at once");
    let events = events.0.lock();
    let [event] = events.as_slice() else { panic!("one request event: {events:?}") };
    assert_eq!((event.error, event.cost), (None, Some(0.5)));
    assert!(close(router.spend().expect("tracked").per_route["default"], 0.5));
}

#[tokio::test]
async fn spend_reaches_the_store_behind_the_requests() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spend.json");
    let store: Arc<dyn SpendStore> = Arc::new(JsonFileSpendStore::new(&path));
    let events = Arc::new(Requests::default());
    let price = Price { per_request: 0.25, ..Price::FREE };
    let provider = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = router(&clock, provider, price, 100.0, Arc::clone(&store), &events);
    // An hour between saves: only the explicit flush and the drop write here.
    let writer = router
        .spend_write_behind(Duration::from_secs(3600))
        .expect("writer starts")
        .expect("budgets are configured");

    router.chat("default", &request()).await.expect("served");
    assert!(!path.exists(), "the answer did not wait on the store");
    writer.flush().expect("flushes");
    let saved: switchyard::SpendDay =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("saved")).expect("json");
    assert!(close(saved.per_route["default"], 0.25), "{saved:?}");

    router.chat("default", &request()).await.expect("served");
    drop(writer);
    let saved: switchyard::SpendDay =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("saved")).expect("json");
    assert!(close(saved.per_route["default"], 0.5), "the writer saved once more when dropped");
    assert!(
        !dir.path().read_dir().expect("dir").any(|entry| {
            entry.expect("entry").path().extension().is_some_and(|ext| ext == "tmp")
        })
    );
}
