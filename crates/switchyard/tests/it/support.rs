//! Shared set-up: mock upstreams, adapters pointed at them, routers on one manual clock.

use std::sync::Arc;
use std::time::Duration;

use switchyard::{Router, RouterBuilder, RouterConfig};
use switchyard_core::{ChatRequest, Clock, Credential, ManualClock, Provider};
use switchyard_mock::{KeyScript, MockUpstream};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{MemoryLedger, QuotaConfig};

/// A secret for a mock key: the same text the mock is scripted with.
pub(crate) fn secret(key: &str) -> String {
    format!("sk-mock-{key}-0123456789")
}

/// A mock OpenAI-format upstream with these keys on `clock`.
pub(crate) async fn openai_mock(clock: &ManualClock, keys: Vec<KeyScript>) -> MockUpstream {
    MockUpstream::openai()
        .clock(clock.clone())
        .keys(keys)
        .models(["gpt-4o-mini", "llama-3.3-70b-versatile", "mistral-small-latest"])
        .start()
        .await
        .expect("mock starts")
}

/// A valid scripted key whose secret is [`secret`].
pub(crate) fn key(id: &str) -> KeyScript {
    KeyScript::valid(id, secret(id))
}

/// An adapter of `preset` named `id`, pointed at `mock`.
pub(crate) fn openai_provider(
    id: &str,
    preset: Preset,
    mock: &MockUpstream,
    clock: &ManualClock,
) -> Arc<dyn Provider> {
    let mut config = OpenAiConfig::new(id, preset).at(mock.base_url());
    config.request_timeout = Duration::from_secs(10);
    Arc::new(OpenAiProvider::try_new(config, Arc::new(clock.clone())).expect("adapter builds"))
}

/// A builder on `clock` with an in-memory ledger of `quota` and a fixed seed; retries of the
/// same candidate happen without a backoff so tests need not advance time for them.
pub(crate) fn builder(clock: &ManualClock, quota: QuotaConfig) -> RouterBuilder {
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    Router::builder()
        .clock(Arc::clone(&shared))
        .quota(Arc::new(MemoryLedger::new(shared, quota)))
        .config(RouterConfig {
            seed: Some(7),
            backoff: switchyard::Backoff {
                base: Duration::ZERO,
                max: Duration::ZERO,
                stated_jitter: 0.0,
            },
            ..RouterConfig::default()
        })
}

/// The credentials of `provider` for these key ids.
pub(crate) fn credentials(
    mut builder: RouterBuilder,
    provider: &str,
    ids: &[&str],
) -> RouterBuilder {
    for id in ids {
        builder = builder.credential(provider, Credential::new(*id, secret(id)));
    }
    builder
}

/// A small request.
pub(crate) fn request() -> ChatRequest {
    ChatRequest::from_user("Say hello in five words").with_max_tokens(16)
}

/// Waits until `ready` holds, yielding to the runtime; fails the test after 20 s of real
/// time so a bug shows as a failure, not a hang. Used only to wait for other tasks and the
/// mock's server to reach a point (a sleeper on the clock, a closed connection), never for
/// time to pass.
pub(crate) async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !ready() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting until {what}");
}

/// Declared limits: every model of `provider` may take `per_minute` requests a minute per key.
pub(crate) fn per_minute(provider: &str, per_minute: u64) -> QuotaConfig {
    QuotaConfig {
        providers: vec![switchyard_quota::ProviderQuota {
            provider: switchyard_core::ProviderId::new(provider),
            day: switchyard_quota::DayBoundary::Rolling,
            models: vec![switchyard_quota::ModelQuota::every_model(vec![
                switchyard_quota::Limit::per_minute(per_minute),
            ])],
        }],
        ..QuotaConfig::default()
    }
}

/// Requests the ledger counts against `provider`'s declared limits, over all keys.
pub(crate) async fn used(router: &Router, provider: &str) -> u64 {
    let summary = router
        .ledger()
        .summary(&switchyard_core::ProviderId::new(provider))
        .await
        .expect("summary");
    summary.keys.iter().flat_map(|key| key.limits.iter().map(|limit| limit.used)).sum()
}
