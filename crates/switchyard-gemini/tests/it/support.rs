//! Building adapters for mocks, and calling them plain or streamed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatRequest, ChatResponse, Clock, Credential, ModelId, Provider, ProviderError,
    StreamAccumulator, SystemClock,
};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::{GeminiWire, KeyScript, MockBuilder, MockUpstream};

pub(crate) const MODEL: &str = "gemini-mock";
pub(crate) const KEY_ID: &str = "gemini-1";
pub(crate) const SECRET: &str = "AIzaSyMock0123456789abcdefghijklmnop";

/// An adapter for `base_url` with `timeout`, reading time from `clock`.
pub(crate) fn provider(base_url: &str, timeout: Duration, clock: Arc<dyn Clock>) -> Gemini {
    let config =
        GeminiConfig { base_url: base_url.to_owned(), timeout, ..GeminiConfig::new("gemini") };
    Gemini::try_new(config, clock).expect("the adapter builds")
}

/// The same, shared, on the system clock (for the conformance suite).
pub(crate) fn shared(base_url: &str, timeout: Duration) -> Arc<dyn Provider> {
    Arc::new(provider(base_url, timeout, Arc::new(SystemClock)))
}

/// A mock in Gemini's words with the test key.
pub(crate) fn mock() -> MockBuilder {
    MockUpstream::builder(GeminiWire).key(KeyScript::valid(KEY_ID, SECRET))
}

pub(crate) fn credential() -> Credential {
    Credential::new(KEY_ID, SECRET)
}

/// One answer, plain or streamed and reassembled; a stream's first `Err` item is returned.
pub(crate) async fn answer(
    provider: &dyn Provider,
    request: &ChatRequest,
    stream: bool,
) -> Result<ChatResponse, ProviderError> {
    let model = ModelId::new(MODEL);
    let credential = credential();
    let call = Call::new(request, &model, Some(&credential));
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
