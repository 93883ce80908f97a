//! The shared conformance suite, and the shared hostile checks, against the mock speaking
//! Ollama's native API, stamped by `switchyard_mock::conformance_suite!`.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{ErrorKind, LimitScope, Provider, SystemClock};
use switchyard_mock::conformance::{AdapterLimits, Conformance, HostileWire, standard_errors};
use switchyard_mock::{Failure, MockBuilder, OllamaWire};
use switchyard_ollama::{Ollama, OllamaConfig};

use crate::support::{MODEL, shared};

/// An adapter with `limits` (the rest default, a 10 s timeout), for the hostile checks.
fn tuned(base_url: &str, limits: AdapterLimits) -> Arc<dyn Provider> {
    let mut config = OllamaConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(10),
        ..OllamaConfig::new("local")
    };
    config.max_body_bytes = limits.max_body_bytes.unwrap_or(config.max_body_bytes);
    config.max_line_bytes = limits.max_line_bytes.unwrap_or(config.max_line_bytes);
    Arc::new(Ollama::try_new(config, Arc::new(SystemClock)).expect("the adapter builds"))
}

fn suite() -> Conformance {
    Conformance::new(MODEL, || MockBuilder::new(OllamaWire), shared).hostile(tuned)
}

/// Ollama's answers and lines, for the hostile checks.
const HOSTILE: HostileWire = HostileWire {
    answer_with_text: |text| {
        format!(
            r#"{{"model":"llama3.2","message":{{"role":"assistant","content":"{text}"}},"done":true}}"#
        )
    },
    stream_content_type: "application/x-ndjson",
    endless_line_prefix: r#"{"model":"llama3.2","message":{"content":""#,
    garbage_frame: |junk| format!("{{{junk}\n"),
    cut_mid_token: concat!(
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"hel\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"lo wo",
    ),
    // A cut NDJSON line is an unreadable last line.
    cut_kind: ErrorKind::MalformedResponse,
    huge_error: (500, "text/plain", ErrorKind::ServerError),
};

/// Ollama's 429 (its cloud's usage limit) names no window.
fn errors() -> Vec<(Failure, ErrorKind)> {
    standard_errors()
        .into_iter()
        .map(|(failure, kind)| match failure {
            Failure::RateLimited { .. } | Failure::RequestTooLarge { .. } => {
                (failure, ErrorKind::RateLimited { scope: LimitScope::Unknown })
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
