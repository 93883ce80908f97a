//! Embeddings through the router, over real HTTP against the mock in each wire format that
//! has them: the vectors come back in input order, the key cascade, the quota and the prices
//! apply as on the chat path, and a provider that embeds nothing is skipped without a call.

use std::sync::Arc;
use std::time::Duration;

use switchyard::{EmbedRequest, ModelFacts, Price, RouterError, StrategyKind};
use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{ErrorKind, LimitScope, ManualClock, Provider};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::{
    AnthropicWire, DEFAULT_DIMENSIONS, Failure, Fault, FaultRule, GeminiWire, KeyScript,
    MockUpstream, OllamaWire, Unit, Window, mock_embedding,
};
use switchyard_ollama::{Ollama, OllamaConfig};
use switchyard_openai::Preset;
use switchyard_quota::QuotaConfig;

use crate::support::{builder, credentials, key, openai_provider, per_minute};

const OPENAI_MODEL: &str = "text-embedding-3-small";
const OPENAI_TARGET: &str = "openai/text-embedding-3-small";
const GEMINI_MODEL: &str = "text-embedding-004";

async fn mock_of(
    builder: switchyard_mock::MockBuilder,
    clock: &ManualClock,
    keys: Vec<KeyScript>,
    model: &str,
) -> MockUpstream {
    builder.clock(clock.clone()).keys(keys).models([model]).start().await.expect("mock starts")
}

/// An OpenAI mock serving the embedding model with `keys`, and a router on `quota` whose route
/// `vectors` targets it with every key.
async fn openai_route(
    clock: &ManualClock,
    keys: Vec<KeyScript>,
    quota: QuotaConfig,
) -> (MockUpstream, switchyard::Router) {
    let ids: Vec<String> = keys.iter().map(|key| key.id().to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mock = mock_of(MockUpstream::openai(), clock, keys, OPENAI_MODEL).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, clock);
    let router = credentials(builder(clock, quota).provider(openai), "openai", &ids)
        .route("vectors", StrategyKind::Priority, [OPENAI_TARGET])
        .build()
        .expect("router builds");
    (mock, router)
}

fn expected(inputs: &[&str], dimensions: u32) -> Vec<Vec<f32>> {
    inputs.iter().map(|text| mock_embedding(text, dimensions)).collect()
}

/// The mock's token count of these inputs: characters / 4, rounded up, at least one.
fn mock_tokens(inputs: &[&str]) -> u32 {
    let chars: usize = inputs.iter().map(|text| text.chars().count()).sum();
    u32::try_from(chars.div_ceil(4).max(1)).expect("small")
}

#[tokio::test]
async fn an_openai_family_route_embeds_in_input_order_at_the_input_price() {
    let clock = ManualClock::default();
    let mock = mock_of(MockUpstream::openai(), &clock, vec![key("o1")], OPENAI_MODEL).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let price = Price { input_per_mtok: 20_000.0, output_per_mtok: 1e9, per_request: 0.0 };
    let router =
        credentials(builder(&clock, QuotaConfig::default()).provider(openai), "openai", &["o1"])
            .model(OPENAI_TARGET, ModelFacts { price: Some(price), ..ModelFacts::default() })
            .route("vectors", StrategyKind::Priority, [OPENAI_TARGET])
            .build()
            .expect("router builds");
    let inputs = ["the first text", "a second, longer text to embed"];
    let mut request = EmbedRequest::new(inputs);
    request.dimensions = Some(12);

    let answer = router.embed("vectors", &request).await.expect("embedded");
    assert_eq!(answer.response.vectors, expected(&inputs, 12));
    let tokens = mock_tokens(&inputs);
    assert_eq!(answer.response.usage.prompt_tokens, tokens);
    assert_eq!(answer.response.usage.completion_tokens, 0);
    assert_eq!(answer.served_by.key.as_str(), "o1");
    // Input tokens at the input price; the output price never applies.
    let cost = answer.cost.expect("priced");
    assert!((cost - f64::from(tokens) * 0.02).abs() < 1e-9, "{cost}");
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.path, "/v1/embeddings");
    let body = logged.body.expect("a JSON body");
    assert_eq!(body["dimensions"], 12);
    assert_eq!(body["input"][1], inputs[1]);
    let stats = router.stats().await;
    assert_eq!((stats.total_calls, stats.session.successes), (1, 1));
    assert_eq!(stats.session.tokens, u64::from(tokens), "the request's tokens are counted");
}

async fn gemini_router(clock: &ManualClock) -> (MockUpstream, switchyard::Router) {
    let mock =
        mock_of(MockUpstream::builder(GeminiWire), clock, vec![key("g1")], GEMINI_MODEL).await;
    let config =
        GeminiConfig { base_url: format!("http://{}", mock.addr()), ..GeminiConfig::new("gemini") };
    let gemini = Gemini::try_new(config, Arc::new(clock.clone())).expect("gemini adapter");
    let router = credentials(
        builder(clock, QuotaConfig::default()).provider(Arc::new(gemini)),
        "gemini",
        &["g1"],
    )
    .route("vectors", StrategyKind::Priority, [format!("gemini/{GEMINI_MODEL}").as_str()])
    .build()
    .expect("router builds");
    (mock, router)
}

#[tokio::test]
async fn gemini_embeds_one_input_with_embed_content_and_many_with_a_batch() {
    let clock = ManualClock::default();
    let (mock, router) = gemini_router(&clock).await;

    let mut one = EmbedRequest::new(["only one"]);
    one.dimensions = Some(5);
    let answer = router.embed("vectors", &one).await.expect("embedded");
    assert_eq!(answer.response.vectors, expected(&["only one"], 5));
    let logged = mock.last_request().expect("logged");
    assert!(
        logged.path.ends_with(&format!("models/{GEMINI_MODEL}:embedContent")),
        "{}",
        logged.path
    );
    assert_eq!(logged.key.expect("key known").as_str(), "g1");

    let inputs = ["alpha", "beta", "gamma"];
    let answer = router.embed("vectors", &EmbedRequest::new(inputs)).await.expect("embedded");
    assert_eq!(answer.response.vectors, expected(&inputs, DEFAULT_DIMENSIONS));
    let logged = mock.last_request().expect("logged");
    assert!(logged.path.ends_with(":batchEmbedContents"), "{}", logged.path);
    assert_eq!(logged.body.expect("body")["requests"].as_array().map(Vec::len), Some(3));
    // Gemini counts no tokens for embeddings: the router's estimate (bytes / 4 per input).
    assert_eq!(answer.response.usage.prompt_tokens, 2 + 1 + 2);
}

#[tokio::test]
async fn gemini_takes_a_long_request_in_batches_of_at_most_100() {
    let clock = ManualClock::default();
    let (mock, router) = gemini_router(&clock).await;
    let inputs: Vec<String> = (0..250).map(|idx| format!("text number {idx}")).collect();
    let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let answer =
        router.embed("vectors", &EmbedRequest::new(texts.clone())).await.expect("embedded");
    assert_eq!(answer.response.vectors, expected(&texts, DEFAULT_DIMENSIONS));
    let sizes: Vec<usize> = mock
        .log()
        .iter()
        .map(|logged| {
            assert!(logged.path.ends_with(":batchEmbedContents"), "{}", logged.path);
            logged.body.as_ref().and_then(|body| body["requests"].as_array()).map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(answer.n_attempts, 1, "one attempt, three upstream calls");
}

#[tokio::test]
async fn ollama_embeds_through_api_embed_with_no_key() {
    let clock = ManualClock::default();
    let mock = MockUpstream::builder(OllamaWire)
        .clock(clock.clone())
        .accept_unknown_keys()
        .models(["nomic-embed-text"])
        .start()
        .await
        .expect("mock starts");
    let config =
        OllamaConfig { base_url: format!("http://{}", mock.addr()), ..OllamaConfig::new("local") };
    let ollama = Ollama::try_new(config, Arc::new(clock.clone())).expect("ollama adapter");
    let router = builder(&clock, QuotaConfig::default())
        .provider(Arc::new(ollama))
        .route("vectors", StrategyKind::Priority, ["local/nomic-embed-text"])
        .build()
        .expect("router builds");
    let inputs = ["local text", "more"];
    let answer = router.embed("vectors", &EmbedRequest::new(inputs)).await.expect("embedded");
    assert_eq!(answer.response.vectors, expected(&inputs, DEFAULT_DIMENSIONS));
    assert_eq!(answer.response.usage.prompt_tokens, mock_tokens(&inputs));
    assert_eq!(mock.last_request().expect("logged").path, "/api/embed");
}

#[tokio::test]
async fn a_429_on_the_first_key_moves_to_the_second_and_cools_the_first() {
    let clock = ManualClock::default();
    let (mock, router) =
        openai_route(&clock, vec![key("k1"), key("k2")], QuotaConfig::default()).await;
    mock.inject(
        FaultRule::once(Fault::Fail(Failure::RateLimited {
            window: Window::Minute,
            unit: Unit::Tokens,
            limit: 1000,
            used: 1000,
            requested: 5,
            retry_after: Duration::from_secs(20),
        }))
        .for_key("k1"),
    );
    let request = EmbedRequest::new(["cascade me"]);

    let first = router.embed("vectors", &request).await.expect("served by k2");
    assert_eq!(first.served_by.key.as_str(), "k2");
    assert_eq!(first.n_attempts, 2);
    assert_eq!(
        first.trace.attempts[0].error,
        Some(ErrorKind::RateLimited { scope: LimitScope::Minute })
    );
    clock.advance(Duration::from_secs(19));
    let cooling = router.embed("vectors", &request).await.expect("served");
    assert_eq!(cooling.served_by.key.as_str(), "k2", "k1 still cooling at 19 s");
    assert_eq!(mock.counts("k1").expect("k1").requests, 1, "a cooling key is not called");
    clock.advance(Duration::from_secs(2));
    let back = router.embed("vectors", &request).await.expect("served");
    assert_eq!(back.served_by.key.as_str(), "k1", "k1 is back after its cooldown");
}

#[tokio::test]
async fn declared_request_limits_admit_embeddings_as_they_admit_chat() {
    let clock = ManualClock::default();
    let (mock, router) = openai_route(&clock, vec![key("o1")], per_minute("openai", 1)).await;
    let request = EmbedRequest::new(["one a minute"]);
    router.embed("vectors", &request).await.expect("the first fits");
    let error = router.embed("vectors", &request).await.expect_err("the second does not");
    assert!(matches!(error, RouterError::QuotaExceeded { .. }), "{error:?}");
    assert_eq!(mock.n_requests(), 1, "a refused embedding never reaches the upstream");
    clock.advance(Duration::from_secs(61));
    router.embed("vectors", &request).await.expect("the next minute admits again");
}

#[tokio::test]
async fn a_provider_that_embeds_nothing_is_skipped_without_a_call_or_blame() {
    let clock = ManualClock::default();
    let claude = mock_of(
        MockUpstream::builder(AnthropicWire),
        &clock,
        vec![key("a1")],
        "claude-3-5-haiku-latest",
    )
    .await;
    let config = AnthropicConfig {
        base_url: format!("http://{}", claude.addr()),
        ..AnthropicConfig::new("anthropic")
    };
    let anthropic: Arc<dyn Provider> =
        Arc::new(Anthropic::try_new(config, Arc::new(clock.clone())).expect("anthropic adapter"));
    let mock = mock_of(MockUpstream::openai(), &clock, vec![key("o1")], OPENAI_MODEL).await;
    let openai = openai_provider("openai", Preset::OpenAi, &mock, &clock);
    let builder = credentials(
        builder(&clock, QuotaConfig::default()).provider(anthropic).provider(openai),
        "anthropic",
        &["a1"],
    );
    let router = credentials(builder, "openai", &["o1"])
        .route(
            "vectors",
            StrategyKind::Priority,
            ["anthropic/claude-3-5-haiku-latest", OPENAI_TARGET],
        )
        .build()
        .expect("router builds");
    let answer = router.embed("vectors", &EmbedRequest::new(["x"])).await.expect("embedded");
    assert_eq!(answer.served_by.provider.as_str(), "openai");
    assert_eq!(answer.trace.attempts[0].error, Some(ErrorKind::ModelNotFound));
    assert_eq!(claude.n_requests(), 0, "no call to a provider that embeds nothing");
    let chat = router.chat("anthropic/claude-3-5-haiku-latest", &crate::support::request()).await;
    assert_eq!(chat.expect("the key still chats").served_by.key.as_str(), "a1");
}

#[tokio::test]
async fn an_embedding_answers_rate_limit_headers_reach_the_ledger_and_spare_the_spent_key() {
    let clock = ManualClock::default();
    let keys = vec![key("k1").requests_per_minute(1), key("k2")];
    let (mock, router) = openai_route(&clock, keys, QuotaConfig::default()).await;
    let request = EmbedRequest::new(["within the limit"]);
    assert_eq!(
        router.embed("vectors", &request).await.expect("served").served_by.key.as_str(),
        "k1"
    );
    let second = router.embed("vectors", &request).await.expect("served");
    assert_eq!(second.served_by.key.as_str(), "k2", "{:?}", second.trace);
    assert_eq!(second.n_attempts, 1, "{:?}", second.trace);
    // The mock's x-ratelimit headers on k1's embedding answer said its minute was spent.
    assert_eq!(mock.counts("k1").expect("k1").requests, 1, "the spent key was not called");
    assert_eq!(mock.counts("k2").expect("k2").requests, 1);
}
