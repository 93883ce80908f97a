//! The shared conformance suite, and the shared hostile checks, against the mock speaking
//! Anthropic, stamped by `switchyard_mock::conformance_suite!`.

use std::sync::Arc;
use std::time::Duration;

use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{ErrorKind, LimitScope, Provider, SystemClock};
use switchyard_mock::conformance::{AdapterLimits, Conformance, HostileWire, standard_errors};
use switchyard_mock::{AnthropicWire, Failure, MockBuilder};

use crate::support::{MODEL, shared};

/// An adapter with `limits` (the rest default, a 10 s timeout), for the hostile checks.
fn tuned(base_url: &str, limits: AdapterLimits) -> Arc<dyn Provider> {
    let mut config = AnthropicConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(10),
        ..AnthropicConfig::new("anthropic")
    };
    config.max_body_bytes = limits.max_body_bytes.unwrap_or(config.max_body_bytes);
    config.max_line_bytes = limits.max_line_bytes.unwrap_or(config.max_line_bytes);
    Arc::new(Anthropic::try_new(config, Arc::new(SystemClock)).expect("the adapter builds"))
}

fn suite() -> Conformance {
    Conformance::new(MODEL, || MockBuilder::new(AnthropicWire), shared).hostile(tuned)
}

/// Anthropic's answers and frames, for the hostile checks.
const HOSTILE: HostileWire = HostileWire {
    answer_with_text: |text| {
        format!(r#"{{"id":"msg","content":[{{"type":"text","text":"{text}"}}]}}"#)
    },
    stream_content_type: "text/event-stream",
    endless_line_prefix: "event: message_start\ndata: ",
    garbage_frame: |junk| format!("data: {{{junk}\n\n"),
    cut_mid_token: concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-mock\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del",
    ),
    cut_kind: ErrorKind::Network,
    huge_error: (529, "text/html", ErrorKind::Overloaded),
};

/// Anthropic's buckets are all per minute and it has no daily quota: every 429, and a
/// request over the token limit, is a per-minute rate limit in its words.
fn errors() -> Vec<(Failure, ErrorKind)> {
    standard_errors()
        .into_iter()
        .map(|(failure, kind)| match failure {
            Failure::RateLimited { .. } | Failure::RequestTooLarge { .. } => {
                (failure, ErrorKind::RateLimited { scope: LimitScope::Minute })
            }
            _ => (failure, kind),
        })
        .collect()
}

switchyard_mock::conformance_suite! {
    suite: suite(),
    errors: errors(),
    rate_limit_headers: true,
    hostile: HOSTILE,
}
