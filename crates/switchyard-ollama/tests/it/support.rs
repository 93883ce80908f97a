//! Building adapters for mocks, and calling them plain or streamed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatRequest, ChatResponse, Credential, ModelId, Provider, ProviderError,
    StreamAccumulator, SystemClock,
};
use switchyard_mock::{MockBuilder, MockUpstream, OllamaWire};
use switchyard_ollama::{Ollama, OllamaConfig};

pub(crate) const MODEL: &str = "llama3.2";

/// An adapter for `base_url` with `timeout`.
pub(crate) fn provider(base_url: &str, timeout: Duration) -> Ollama {
    let config =
        OllamaConfig { base_url: base_url.to_owned(), timeout, ..OllamaConfig::new("local") };
    Ollama::try_new(config, Arc::new(SystemClock)).expect("the adapter builds")
}

/// The same, shared (for the conformance suite).
pub(crate) fn shared(base_url: &str, timeout: Duration) -> Arc<dyn Provider> {
    Arc::new(provider(base_url, timeout))
}

/// A mock in Ollama's words that, like a local Ollama, takes calls without a key.
pub(crate) fn mock() -> MockBuilder {
    MockUpstream::builder(OllamaWire).accept_unknown_keys()
}

/// One keyless answer, plain or streamed and reassembled; a stream's first `Err` item is
/// returned.
pub(crate) async fn answer(
    provider: &dyn Provider,
    request: &ChatRequest,
    stream: bool,
) -> Result<ChatResponse, ProviderError> {
    answer_with(provider, request, stream, None).await
}

/// The same with a credential.
pub(crate) async fn answer_with(
    provider: &dyn Provider,
    request: &ChatRequest,
    stream: bool,
    credential: Option<&Credential>,
) -> Result<ChatResponse, ProviderError> {
    let model = ModelId::new(MODEL);
    let call = Call::new(request, &model, credential);
    if !stream {
        return provider.chat(call).await.map(|reply| reply.response);
    }
    let mut chunks = provider.chat_stream(call).await?.chunks;
    let mut accumulator = StreamAccumulator::new();
    while let Some(chunk) = chunks.next().await {
        accumulator.push(&chunk?);
    }
    Ok(accumulator.finish())
}
