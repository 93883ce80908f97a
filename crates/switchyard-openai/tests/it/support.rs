//! Building adapters for mocks.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{Provider, ProviderId, SystemClock};
use switchyard_mock::MockUpstream;
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};

/// An adapter of `preset` pointed at `base_url`.
pub(crate) fn provider(preset: Preset, base_url: &str, timeout: Duration) -> OpenAiProvider {
    let mut config = OpenAiConfig::new(ProviderId::new(preset.as_str()), preset).at(base_url);
    config.request_timeout = timeout;
    config.stream_idle_timeout = timeout;
    OpenAiProvider::try_new(config, Arc::new(SystemClock)).expect("the adapter builds")
}

/// The same, shared.
pub(crate) fn shared(preset: Preset, base_url: &str, timeout: Duration) -> Arc<dyn Provider> {
    Arc::new(provider(preset, base_url, timeout))
}

/// An adapter for a running mock, with a 10 s timeout.
pub(crate) fn for_mock(preset: Preset, mock: &MockUpstream) -> OpenAiProvider {
    provider(preset, &mock.base_url(), Duration::from_secs(10))
}
