//! Routing rules: images only to models that take them, a tag that pins a provider, a
//! preferred provider per route, a provider order per request.

use switchyard::{ModelFacts, RequestOptions, RouteConfig, Router, Skip, StrategyKind};
use switchyard_core::{ChatRequest, ContentPart, ImageUrl, ManualClock, Message};
use switchyard_mock::{Fault, FaultRule, MockUpstream};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_mock, openai_provider, request};

const TEXT_ONLY: &str = "groq/llama-3.3-70b-versatile";
const VISION: &str = "openai/gpt-4o-mini";

/// Groq (text only, first by priority) and OpenAI (takes images) on one mock.
async fn two_providers(clock: &ManualClock, route: RouteConfig) -> (MockUpstream, Router) {
    let mock = openai_mock(clock, vec![key("g1"), key("o1")]).await;
    let groq = openai_provider("groq", Preset::Groq, &mock, clock);
    let openai = openai_provider("openai", Preset::OpenAi, &mock, clock);
    let builder = credentials(
        builder(clock, QuotaConfig::default()).provider(groq).provider(openai),
        "groq",
        &["g1"],
    );
    let router = credentials(builder, "openai", &["o1"])
        .model(TEXT_ONLY, ModelFacts { vision: Some(false), ..ModelFacts::default() })
        .model(VISION, ModelFacts { vision: Some(true), ..ModelFacts::default() })
        .route_config(route)
        .build()
        .expect("router builds");
    (mock, router)
}

fn route() -> RouteConfig {
    RouteConfig::new("default", StrategyKind::Priority, [TEXT_ONLY, VISION])
}

fn with_image() -> ChatRequest {
    let mut message = Message::user("What is in this picture?");
    message.content.push(ContentPart::ImageUrl {
        image_url: ImageUrl { url: "data:image/png;base64,iVBORw0KGgo=".into(), detail: None },
    });
    ChatRequest { messages: vec![message], max_tokens: Some(16), ..ChatRequest::default() }
}

fn models_called(mock: &MockUpstream) -> Vec<String> {
    mock.log().into_iter().filter_map(|entry| entry.model).collect()
}

#[tokio::test]
async fn a_request_with_an_image_never_reaches_a_text_only_model() {
    let clock = ManualClock::default();
    let (mock, router) = two_providers(&clock, route()).await;

    let text = router.chat("default", &request()).await.expect("served");
    assert_eq!(text.served_by.provider.as_str(), "groq", "text goes to the first by priority");
    let image = router.chat("default", &with_image()).await.expect("served");
    assert_eq!(image.served_by.provider.as_str(), "openai");
    assert_eq!(image.n_attempts, 1, "the text-only model was not tried");
    assert!(image.trace.considered.iter().any(|entry| entry.candidate.provider.as_str()
        == "groq"
        && matches!(&entry.skipped, Some(Skip::Unsuitable { detail }) if detail.contains("images"))));

    // Even when the vision model fails, the image does not fall back to the text-only one.
    mock.inject(FaultRule::always(Fault::overloaded()).for_model("gpt-4o-mini"));
    let error = router.chat("default", &with_image()).await.expect_err("no vision model serves");
    assert_eq!(error.code(), "ALL_PROVIDERS_FAILED");
    assert_eq!(models_called(&mock), ["llama-3.3-70b-versatile", "gpt-4o-mini", "gpt-4o-mini"]);
}

#[tokio::test]
async fn a_provider_tag_pins_the_request_to_that_provider() {
    let clock = ManualClock::default();
    let (mock, router) = two_providers(&clock, route()).await;
    let mut pinned = request();
    pinned.tags.push("provider:openai".into());
    let answer = router.chat("default", &pinned).await.expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "openai");
    assert_eq!(models_called(&mock), ["gpt-4o-mini"]);

    // A pinned request does not leave its provider when that provider fails.
    mock.inject(FaultRule::always(Fault::overloaded()).for_model("gpt-4o-mini"));
    let error = router.chat("default", &pinned).await.expect_err("pinned provider down");
    assert_eq!(error.code(), "ALL_PROVIDERS_FAILED");
    assert_eq!(models_called(&mock), ["gpt-4o-mini", "gpt-4o-mini"]);
    // Without the tag the route falls over to groq as usual.
    let free = router.chat_with("default", &request(), RequestOptions::default()).await;
    assert_eq!(free.expect("served").served_by.provider.as_str(), "groq");
}

#[tokio::test]
async fn a_preferred_provider_goes_first_and_the_rest_stay_as_fallback() {
    let clock = ManualClock::default();
    let mut preferring = route();
    preferring.prefer_provider = Some("openai".into());
    let (mock, router) = two_providers(&clock, preferring).await;
    let answer = router.chat("default", &request()).await.expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "openai", "preferred over priority order");
    mock.inject(FaultRule::always(Fault::overloaded()).for_model("gpt-4o-mini"));
    let fallback = router.chat("default", &request()).await.expect("served");
    assert_eq!(fallback.served_by.provider.as_str(), "groq");
    assert_eq!(models_called(&mock), ["gpt-4o-mini", "gpt-4o-mini", "llama-3.3-70b-versatile"]);
}

#[tokio::test]
async fn a_requests_provider_order_goes_first_before_the_routes_preference() {
    let clock = ManualClock::default();
    let mut preferring = route();
    preferring.prefer_provider = Some("openai".into());
    let (mock, router) = two_providers(&clock, preferring).await;
    let mut ordered = request();
    ordered.tags.push("provider-order:groq,openai".into());
    let answer = router.chat("default", &ordered).await.expect("served");
    assert_eq!(answer.served_by.provider.as_str(), "groq", "the request's order wins");
    // The order only reorders: the unlisted-first provider still serves when groq fails.
    mock.inject(FaultRule::always(Fault::overloaded()).for_model("llama-3.3-70b-versatile"));
    let fallback = router.chat("default", &ordered).await.expect("served");
    assert_eq!(fallback.served_by.provider.as_str(), "openai");
    let plain = router.chat("default", &request()).await.expect("served");
    assert_eq!(plain.served_by.provider.as_str(), "openai", "without the tag, the preference");
    assert_eq!(
        models_called(&mock),
        ["llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "gpt-4o-mini", "gpt-4o-mini"]
    );
}
