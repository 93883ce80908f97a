//! The shared conformance suite, for each preset against the mock speaking its flavour.

use switchyard_core::{ErrorKind, LimitScope};
use switchyard_mock::conformance::{Conformance, standard_errors};
use switchyard_mock::{Failure, Flavor, MockBuilder, OpenAiWire};
use switchyard_openai::Preset;

use crate::support::shared;

fn suite(preset: Preset, flavor: Flavor) -> Conformance {
    Conformance::new(
        "gpt-mock",
        move || MockBuilder::new(OpenAiWire::new(flavor)),
        move |base_url, timeout| shared(preset, base_url, timeout),
    )
}

fn openai() -> Conformance {
    suite(Preset::OpenAi, Flavor::OpenAi)
}

#[tokio::test]
async fn plain_answer() {
    openai().plain_answer().await;
    suite(Preset::Compatible, Flavor::OpenAi).plain_answer().await;
}

#[tokio::test]
async fn stream_matches_plain() {
    openai().stream_matches_plain().await;
    suite(Preset::Groq, Flavor::Groq).stream_matches_plain().await;
    suite(Preset::OpenRouter, Flavor::OpenRouter).stream_matches_plain().await;
    suite(Preset::Mistral, Flavor::Mistral).stream_matches_plain().await;
}

#[tokio::test]
async fn every_error_kind_from_openais_bodies() {
    openai().error_kinds(&standard_errors()).await;
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
async fn rate_limit_headers() {
    openai().rate_limit_headers().await;
    suite(Preset::Groq, Flavor::Groq).rate_limit_headers().await;
}

#[tokio::test]
async fn timeout() {
    openai().timeout().await;
}

#[tokio::test]
async fn malformed() {
    openai().malformed().await;
}

#[tokio::test]
async fn cut_stream() {
    openai().cut_stream().await;
}

#[tokio::test]
async fn unknown_key_shows_no_secret() {
    openai().unknown_key_shows_no_secret().await;
    suite(Preset::Mistral, Flavor::Mistral).unknown_key_shows_no_secret().await;
}

#[tokio::test]
async fn tool_call() {
    let response = openai().tool_call().await;
    assert_eq!(response.tool_calls[0].id, "call_conformance_1");
    suite(Preset::Groq, Flavor::Groq).tool_call().await;
}
