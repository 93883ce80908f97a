//! The shared conformance suite and hostile checks for the OpenAI preset, stamped by
//! `switchyard_mock::conformance_suite!`, and the checks each other preset's flavour adds.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope, Provider, ProviderId, SystemClock};
use switchyard_mock::conformance::{AdapterLimits, Conformance, HostileWire, standard_errors};
use switchyard_mock::{Failure, Flavor, MockBuilder, OpenAiWire};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};

use crate::support::shared;

fn suite(preset: Preset, flavor: Flavor) -> Conformance {
    Conformance::new(
        "gpt-mock",
        move || MockBuilder::new(OpenAiWire::new(flavor)),
        move |base_url, timeout| shared(preset, base_url, timeout),
    )
}

/// An OpenAI adapter with `limits` (the rest default), for the hostile checks.
fn tuned(base_url: &str, limits: AdapterLimits) -> Arc<dyn Provider> {
    let mut config = OpenAiConfig::new(ProviderId::new("openai"), Preset::OpenAi).at(base_url);
    config.max_body_bytes = limits.max_body_bytes.unwrap_or(config.max_body_bytes);
    config.max_line_bytes = limits.max_line_bytes.unwrap_or(config.max_line_bytes);
    config.request_timeout = Duration::from_secs(10);
    Arc::new(OpenAiProvider::try_new(config, Arc::new(SystemClock)).expect("the adapter builds"))
}

fn openai() -> Conformance {
    suite(Preset::OpenAi, Flavor::OpenAi).hostile(tuned)
}

/// OpenAI's answers and frames, for the hostile checks.
const HOSTILE: HostileWire = HostileWire {
    answer_with_text: |text| format!(r#"{{"choices":[{{"message":{{"content":"{text}"}}}}]}}"#),
    stream_content_type: "text/event-stream",
    endless_line_prefix: "data: ",
    // Junk after a `data: {`, ended as an event: whatever lines the junk makes, the first
    // event's data is not JSON.
    garbage_frame: |junk| format!("data: {{{junk}\n\n"),
    cut_mid_token: concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"lo wo"
    ),
    cut_kind: ErrorKind::Network,
    huge_error: (500, "text/html", ErrorKind::ServerError),
};

switchyard_mock::conformance_suite! {
    suite: openai(),
    errors: standard_errors(),
    rate_limit_headers: true,
    hostile: HOSTILE,
}

#[tokio::test]
async fn plain_answer_of_a_compatible_server() {
    suite(Preset::Compatible, Flavor::OpenAi).plain_answer().await;
}

#[tokio::test]
async fn stream_matches_plain_in_every_flavour() {
    suite(Preset::Groq, Flavor::Groq).stream_matches_plain().await;
    suite(Preset::OpenRouter, Flavor::OpenRouter).stream_matches_plain().await;
    suite(Preset::Mistral, Flavor::Mistral).stream_matches_plain().await;
}

#[tokio::test]
async fn every_error_kind_from_groqs_bodies() {
    suite(Preset::Groq, Flavor::Groq).error_kinds(&standard_errors()).await;
}

#[tokio::test]
async fn every_error_kind_from_openrouters_bodies() {
    suite(Preset::OpenRouter, Flavor::OpenRouter).error_kinds(&standard_errors()).await;
}

#[tokio::test]
async fn every_error_kind_from_mistrals_bodies() {
    // Mistral's 429 body names no window: the scope is unknown.
    let cases: Vec<_> = standard_errors()
        .into_iter()
        .map(|(failure, kind)| match (&failure, kind) {
            (Failure::RateLimited { .. }, _) => {
                (failure, ErrorKind::RateLimited { scope: LimitScope::Unknown })
            }
            _ => (failure, kind),
        })
        .collect();
    suite(Preset::Mistral, Flavor::Mistral).error_kinds(&cases).await;
}

#[tokio::test]
async fn groqs_rate_limit_headers() {
    suite(Preset::Groq, Flavor::Groq).rate_limit_headers().await;
}

#[tokio::test]
async fn mistral_shows_no_secret_for_an_unknown_key() {
    suite(Preset::Mistral, Flavor::Mistral).unknown_key_shows_no_secret().await;
}

#[tokio::test]
async fn tool_calls_keep_their_ids_and_groq_calls_tools() {
    let response = openai().tool_call().await;
    assert_eq!(response.tool_calls[0].id, "call_conformance_1");
    suite(Preset::Groq, Flavor::Groq).tool_call().await;
}
