//! The shared conformance suite against the mock speaking Ollama's native API.

use switchyard_core::{ErrorKind, LimitScope};
use switchyard_mock::conformance::{Conformance, standard_errors};
use switchyard_mock::{Failure, MockBuilder, OllamaWire};

use crate::support::{MODEL, shared};

fn suite() -> Conformance {
    Conformance::new(MODEL, || MockBuilder::new(OllamaWire), shared)
}

#[tokio::test]
async fn plain_answer() {
    suite().plain_answer().await;
}

#[tokio::test]
async fn stream_matches_plain() {
    suite().stream_matches_plain().await;
}

#[tokio::test]
async fn every_error_kind_from_ollamas_bodies() {
    // Ollama's 429 (its cloud's usage limit) names no window.
    let cases: Vec<_> = standard_errors()
        .into_iter()
        .map(|(failure, kind)| match failure {
            Failure::RateLimited { .. } | Failure::RequestTooLarge { .. } => {
                (failure, ErrorKind::RateLimited { scope: LimitScope::Unknown })
            }
            _ => (failure, kind),
        })
        .collect();
    suite().error_kinds(&cases).await;
}

#[tokio::test]
async fn timeout() {
    suite().timeout().await;
}

#[tokio::test]
async fn malformed() {
    suite().malformed().await;
}

#[tokio::test]
async fn cut_stream() {
    suite().cut_stream().await;
}

#[tokio::test]
async fn unknown_key_shows_no_secret() {
    suite().unknown_key_shows_no_secret().await;
}

#[tokio::test]
async fn tool_call() {
    suite().tool_call().await;
}
