//! What a hostile or broken upstream can send, through the real adapter over HTTP against the
//! mock answering byte for byte: a huge retry delay (clamped, never a panic), and bodies and
//! NDJSON lines over their limits (a typed `MalformedResponse` that moves on).

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{
    ChatRequest, Classify, ErrorKind, LimitScope, MAX_HINT, ManualClock, ProviderError,
};
use switchyard_mock::conformance::raw;
use switchyard_mock::{Fault, FaultRule, MockUpstream};
use switchyard_ollama::{Ollama, OllamaConfig};

use crate::support::{answer, mock};

/// A started mock and an adapter for it on a manual clock, its config changed by `tune`.
async fn started(tune: impl FnOnce(&mut OllamaConfig)) -> (MockUpstream, Ollama) {
    let clock = ManualClock::default();
    let mock = mock().clock(clock.clone()).start().await.expect("the mock starts");
    let mut config = OllamaConfig {
        base_url: mock.base_url(),
        timeout: Duration::from_secs(10),
        ..OllamaConfig::new("local")
    };
    tune(&mut config);
    let provider = Ollama::try_new(config, Arc::new(clock)).expect("the adapter builds");
    (mock, provider)
}

/// The error `fault` ends a plain (or streamed) call with.
async fn failed(fault: Fault, stream: bool) -> ProviderError {
    let (mock, provider) = started(|_| {}).await;
    mock.inject(FaultRule::once(fault));
    answer(&provider, &ChatRequest::from_user("hi"), stream).await.expect_err("fails")
}

#[tokio::test]
async fn a_cloud_429_asking_for_1e14_seconds_is_max_hint() {
    let body = r#"{"error":"rate limit exceeded"}"#.to_owned();
    for value in ["1e14", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let error =
            failed(raw(429, "application/json", &[("retry-after", value)], body.clone()), false)
                .await;
        // No window is named, and a wait of an hour or more is a day's: exhausted until the
        // (clamped) reset.
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Day });
        assert_eq!(error.retry_after, Some(MAX_HINT), "retry-after: {value}");
        assert_eq!(Classify::retry_after(&error), Some(MAX_HINT));
    }
    let error = failed(raw(429, "application/json", &[("retry-after", "NaN")], body), true).await;
    assert_eq!(error.retry_after, None);
}
