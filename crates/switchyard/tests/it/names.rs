//! Only configured targets are routable: a name the configuration does not declare is refused
//! with `UNKNOWN_MODEL` (listing what is valid) and leaves nothing behind; one upstream model
//! is one candidate however its name is spelled.

use std::sync::Arc;

use parking_lot::Mutex;
use switchyard::{EventSink, RouterError, RouterEvent, StrategyKind};
use switchyard_core::{ManualClock, ModelId, ProviderId};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::{GeminiWire, MockUpstream};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{
    builder, credentials, key, openai_mock, openai_provider, per_minute, request, used,
};

/// Keeps every event.
#[derive(Default)]
struct Events(Mutex<Vec<RouterEvent>>);

impl EventSink for Events {
    fn record(&self, event: &RouterEvent) {
        self.0.lock().push(event.clone());
    }
}

#[tokio::test]
async fn an_undeclared_model_is_refused_and_leaves_nothing_behind() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let events = Arc::new(Events::default());
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router = credentials(
        builder(&clock, crate::support::per_minute("openai", 1000)).provider(openai),
        "openai",
        &["k1"],
    )
    .models("openai", ["llama-3.3-70b-versatile"])
    .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
    .event_sink(Arc::clone(&events) as Arc<dyn EventSink>)
    .build()
    .expect("router builds");
    let openai_id = ProviderId::new("openai");
    let models_before = router.models_of(&openai_id);
    assert_eq!(
        models_before,
        [ModelId::new("gpt-4o-mini"), ModelId::new("llama-3.3-70b-versatile")],
        "route targets and declared models"
    );

    for n in 0..200 {
        let name = format!("openai/nope-{n}");
        let error = router.chat(&name, &request()).await.expect_err("undeclared");
        let RouterError::UnknownModel { name: echoed, valid, n_valid } = &error else {
            panic!("expected UNKNOWN_MODEL, got {error}");
        };
        assert_eq!(echoed, &name);
        assert_eq!(valid, &["default", "openai/gpt-4o-mini", "openai/llama-3.3-70b-versatile"]);
        assert_eq!(*n_valid, 3);
    }
    // A plain unknown name and a provider nobody configured are the same refusal.
    for name in ["gpt-5", "nobody/gpt-4o-mini", "/x", "openai/"] {
        let error = router.chat(name, &request()).await.expect_err("unknown");
        assert_eq!(error.code(), "UNKNOWN_MODEL", "{name}");
    }

    assert_eq!(router.models_of(&openai_id), models_before, "no model was added");
    let n_candidates = router.stats().await.best_per_route.len();
    assert_eq!(n_candidates, 1, "one route, no route per refused name");
    assert_eq!(router.keys().len(), 1);
    assert_eq!(mock.n_requests(), 0, "no upstream call");
    assert!(events.0.lock().is_empty(), "no event names a refused model");
    let stats = router.stats().await;
    assert_eq!(stats.total_calls, 0);
    assert!(stats.calls_per_provider.is_empty(), "{:?}", stats.calls_per_provider);
    assert_eq!(used(&router, "openai").await, 0, "the ledger counted nothing");
    let summary = router.ledger().summary(&openai_id).await.expect("summary");
    assert!(
        summary.keys.iter().all(|key| key.limits.iter().all(|limit| limit.used == 0)),
        "{summary:?}"
    );
}

#[tokio::test]
async fn a_refusal_repeats_a_long_name_only_in_part_and_lists_at_most_twenty() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let many: Vec<String> = (0..30).map(|n| format!("m{n:02}")).collect();
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(openai), "openai", &["k1"])
            .models("openai", many.iter().map(String::as_str))
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");
    let name = format!("openai/{}", "x".repeat(1 << 20));
    let error = router.chat(&name, &request()).await.expect_err("undeclared");
    let text = error.to_string();
    assert!(text.len() < 1000, "the message stays short: {} bytes", text.len());
    let RouterError::UnknownModel { valid, n_valid, .. } = &error else {
        panic!("expected UNKNOWN_MODEL, got {error}");
    };
    assert_eq!((valid.len(), *n_valid), (20, 32));
    assert!(text.ends_with("(and 12 more)"), "{text}");
}

#[tokio::test]
async fn declared_models_are_routable_directly() {
    let clock = ManualClock::default();
    let mock = openai_mock(&clock, vec![key("k1")]).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(openai), "openai", &["k1"])
            .models("openai", ["llama-3.3-70b-versatile"])
            .model("openai/mistral-small-latest", switchyard::ModelFacts::default())
            .route("default", StrategyKind::Priority, ["openai/gpt-4o-mini"])
            .build()
            .expect("router builds");
    for model in ["gpt-4o-mini", "llama-3.3-70b-versatile", "mistral-small-latest"] {
        let answer = router.chat(&format!("openai/{model}"), &request()).await.expect("declared");
        assert_eq!(answer.served_by.model.as_str(), model);
        assert_eq!(answer.trace.route, format!("openai/{model}"));
    }
}

#[tokio::test]
async fn a_gemini_model_named_with_or_without_models_is_one_candidate() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(GeminiWire)
        .clock(clock.clone())
        .keys([key("g1")])
        .models(["gemini-2.0-flash"])
        .start()
        .await
        .expect("gemini mock starts");
    let config =
        GeminiConfig { base_url: format!("http://{}", mock.addr()), ..GeminiConfig::new("gemini") };
    let gemini = Gemini::try_new(config, Arc::new(clock.clone())).expect("gemini adapter");
    // One request a minute for each model: the other spelling must not be a second quota.
    let router = credentials(builder(&clock, per_minute("gemini", 1)), "gemini", &["g1"])
        .provider(Arc::new(gemini))
        .route("flash", StrategyKind::Priority, ["gemini/models/gemini-2.0-flash"])
        .build()
        .expect("router builds");
    assert_eq!(
        router.candidates("flash").expect("route")[0].model.as_str(),
        "gemini-2.0-flash",
        "a route's target is normalized too"
    );

    let answer = router.chat("gemini/gemini-2.0-flash", &request()).await.expect("served");
    assert_eq!(answer.served_by.model.as_str(), "gemini-2.0-flash");
    let error = router
        .chat("gemini/models/gemini-2.0-flash", &request())
        .await
        .expect_err("the same model's minute is spent");
    assert_eq!(error.code(), "QUOTA_EXCEEDED", "{error}");
    let error = router.chat("flash", &request()).await.expect_err("the route's too");
    assert_eq!(error.code(), "QUOTA_EXCEEDED", "{error}");
    assert_eq!(mock.n_requests(), 1);
    assert_eq!(router.models_of(&ProviderId::new("gemini")), [ModelId::new("gemini-2.0-flash")]);
}
