//! What each preset puts on the wire, read back from the mock's request log.

use futures_util::StreamExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use switchyard_core::{Call, ChatRequest, Credential, Message, ModelId, Provider, Role};
use switchyard_mock::{Flavor, MockUpstream, OpenAiWire};
use switchyard_openai::{Attribution, OpenAiConfig, OpenAiProvider, Preset};

use crate::support::for_mock;

async fn sent_body(preset: Preset, flavor: Flavor, request: &ChatRequest, stream: bool) -> Value {
    let mock = MockUpstream::builder(OpenAiWire::new(flavor))
        .accept_unknown_keys()
        .start()
        .await
        .expect("starts");
    let adapter = for_mock(preset, &mock);
    let model = ModelId::new("m");
    let credential = Credential::new("k", "sk-k");
    let call = Call::new(request, &model, Some(&credential));
    if stream {
        let mut stream = adapter.chat_stream(call).await.expect("streams");
        while let Some(chunk) = stream.chunks.next().await {
            chunk.expect("a chunk");
        }
    } else {
        adapter.chat(call).await.expect("served");
    }
    mock.last_request().expect("logged").body.expect("a JSON body")
}

#[tokio::test]
async fn each_preset_sends_its_field_names() {
    let mut request = ChatRequest::from_user("hi").with_max_tokens(9);
    request.seed = Some(7);
    let openai = sent_body(Preset::OpenAi, Flavor::OpenAi, &request, true).await;
    assert_eq!(openai["max_completion_tokens"], 9);
    assert_eq!(openai["stream_options"], json!({"include_usage": true}));
    let groq = sent_body(Preset::Groq, Flavor::Groq, &request, false).await;
    assert_eq!((groq["max_tokens"].clone(), groq["seed"].clone()), (json!(9), json!(7)));
    // The Mistral mock refuses `stream_options` with a 400, as Mistral does: this streamed
    // call succeeding shows the preset leaves it out.
    let mistral = sent_body(Preset::Mistral, Flavor::Mistral, &request, true).await;
    assert_eq!(mistral["random_seed"], 7);
    assert!(mistral.get("seed").is_none() && mistral.get("stream_options").is_none());
}

#[tokio::test]
async fn openrouter_sends_its_attribution_headers() {
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::OpenRouter))
        .accept_unknown_keys()
        .start()
        .await
        .expect("starts");
    let mut config = OpenAiConfig::new("openrouter", Preset::OpenRouter).at(mock.base_url());
    config.attribution = Attribution {
        referer: Some("https://example.test/app".to_owned()),
        title: Some("Switchyard tests".to_owned()),
    };
    config.headers.push(("X-Extra".to_owned(), "1".to_owned()));
    let adapter =
        OpenAiProvider::try_new(config, std::sync::Arc::new(switchyard_core::SystemClock))
            .expect("builds");
    let request = ChatRequest::from_user("hi");
    let model = ModelId::new("meta-llama/llama-3.3-70b-instruct:free");
    let credential = Credential::new("or-1", "sk-or-v1-secret");
    adapter.chat(Call::new(&request, &model, Some(&credential))).await.expect("served");
    let logged = mock.last_request().expect("logged");
    assert_eq!(logged.headers["http-referer"], "https://example.test/app");
    assert_eq!(logged.headers["x-title"], "Switchyard tests");
    assert_eq!(logged.headers["x-openrouter-title"], "Switchyard tests");
    assert_eq!(logged.headers["x-extra"], "1");
    assert_eq!(logged.headers["authorization"], "Bearer [key unknown]");
}

#[test]
fn presets_are_named_as_configuration_names_them() {
    let cases = [
        ("openai", Preset::OpenAi),
        ("Groq", Preset::Groq),
        ("mistral", Preset::Mistral),
        ("openrouter", Preset::OpenRouter),
        ("vllm", Preset::Compatible),
        ("ollama-openai", Preset::Compatible),
    ];
    for (name, preset) in cases {
        assert_eq!(name.parse::<Preset>().expect(name), preset);
    }
    let error = "anthropic".parse::<Preset>().expect_err("not an OpenAI-format preset");
    assert!(error.to_string().contains("\"anthropic\""), "{error}");
}

#[test]
fn a_base_url_that_is_not_http_is_refused() {
    let error = OpenAiProvider::try_new(
        OpenAiConfig::compatible("local", "localhost:8080"),
        std::sync::Arc::new(switchyard_core::SystemClock),
    )
    .expect_err("not a URL");
    assert_eq!(
        error.to_string(),
        "provider local: base URL \"localhost:8080\" is not an http(s) URL"
    );
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::System), Just(Role::User), Just(Role::Assistant)]
}

fn preset() -> impl Strategy<Value = (Preset, Flavor)> {
    prop_oneof![
        Just((Preset::OpenAi, Flavor::OpenAi)),
        Just((Preset::Groq, Flavor::Groq)),
        Just((Preset::Mistral, Flavor::Mistral)),
        Just((Preset::OpenRouter, Flavor::OpenRouter)),
        Just((Preset::Compatible, Flavor::OpenAi)),
    ]
}

/// Any request within the format's capabilities arrives at the upstream with its system
/// prompt, order, roles, text, stop sequences and token limit intact.
#[test]
fn requests_survive_the_wire() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let strategy = (
        proptest::collection::vec((role(), "[ -~]{0,30}"), 1..6),
        proptest::collection::vec("[a-z#]{1,5}", 0..4),
        proptest::option::of(1u32..10_000),
        preset(),
    );
    let mut runner = TestRunner::new(Config { cases: 24, ..Config::default() });
    runner
        .run(&strategy, |(messages, stop, max_tokens, (preset, flavor))| {
            let mut request = ChatRequest {
                messages: messages
                    .iter()
                    .map(|(role, text)| Message::text(*role, text.clone()))
                    .collect(),
                stop: stop.clone(),
                max_tokens,
                ..ChatRequest::default()
            };
            request.messages.insert(0, Message::system("system prompt"));
            let body = runtime.block_on(sent_body(preset, flavor, &request, false));
            let sent = body["messages"].as_array().expect("messages");
            prop_assert_eq!(sent.len(), request.messages.len());
            prop_assert_eq!(&sent[0], &json!({"role": "system", "content": "system prompt"}));
            for (message, sent) in request.messages.iter().zip(sent) {
                let role = serde_json::to_value(message.role).expect("role");
                prop_assert_eq!(&sent["role"], &role);
                let text = message.joined_text();
                prop_assert_eq!(sent["content"].as_str(), Some(text.as_str()));
            }
            let stop_sent = body.get("stop").cloned().unwrap_or(json!([]));
            prop_assert_eq!(stop_sent, json!(stop));
            let limit = body.get(preset.max_tokens_field()).and_then(Value::as_u64);
            prop_assert_eq!(limit, max_tokens.map(u64::from));
            Ok(())
        })
        .expect("every request survives");
}
