//! The shared conformance suite, and the shared hostile checks, against the mock speaking
//! Gemini, stamped by `switchyard_mock::conformance_suite!`.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope, Provider, SystemClock};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::conformance::{AdapterLimits, Conformance, HostileWire, standard_errors};
use switchyard_mock::{Failure, GeminiWire, MockBuilder};

use crate::support::{MODEL, shared};

/// An adapter with `limits` (the rest default, a 10 s timeout), for the hostile checks.
fn tuned(base_url: &str, limits: AdapterLimits) -> Arc<dyn Provider> {
    let mut config = GeminiConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(10),
        ..GeminiConfig::new("gemini")
    };
    config.max_body_bytes = limits.max_body_bytes.unwrap_or(config.max_body_bytes);
    config.max_line_bytes = limits.max_line_bytes.unwrap_or(config.max_line_bytes);
    Arc::new(Gemini::try_new(config, Arc::new(SystemClock)).expect("the adapter builds"))
}

fn suite() -> Conformance {
    Conformance::new(MODEL, || MockBuilder::new(GeminiWire), shared).hostile(tuned)
}

/// Gemini's answers and frames, for the hostile checks.
const HOSTILE: HostileWire = HostileWire {
    answer_with_text: |text| {
        format!(r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}]}}}}]}}"#)
    },
    stream_content_type: "text/event-stream",
    endless_line_prefix: "data: ",
    garbage_frame: |junk| format!("data: {{{junk}\r\n\r\n"),
    cut_mid_token: concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hel\"}],\"role\":\"model\"}}]}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo wo",
    ),
    cut_kind: ErrorKind::Network,
    huge_error: (503, "text/html", ErrorKind::Overloaded),
};

fn errors() -> Vec<(Failure, ErrorKind)> {
    standard_errors()
        .into_iter()
        .map(|(failure, kind)| match failure {
            // Gemini says a request over the token limit as one more per-minute 429.
            Failure::RequestTooLarge { .. } => {
                (failure, ErrorKind::RateLimited { scope: LimitScope::Minute })
            }
            // Gemini has no billing error: a key without quota for the model is told
            // `limit: 0`, which no wait cures.
            Failure::BillingStopped => {
                (failure, ErrorKind::QuotaExhausted { scope: LimitScope::Day })
            }
            _ => (failure, kind),
        })
        .collect()
}

switchyard_mock::conformance_suite! {
    suite: suite(),
    errors: errors(),
    rate_limit_headers: false,
    hostile: HOSTILE,
}
