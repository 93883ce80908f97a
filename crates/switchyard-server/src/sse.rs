//! A routed stream as OpenAI's server-sent events: one `chat.completion.chunk` per chunk of
//! the router's stream (the first with the assistant's role), the usage chunk when the client
//! asked for it, and `[DONE]`; a stream that breaks after its first byte ends with an error
//! event. Tokens and cost are counted against the route and the client when it settles.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::Event;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use switchyard::RoutedStream;
use switchyard_core::Usage;

use crate::{ClientConfig, Gateway, wire};

enum Phase {
    Streaming,
    UsageSent,
    Ended,
}

struct SseState {
    routed: RoutedStream,
    frame: Option<wire::ChunkFrame>,
    fallback_id: String,
    now_unix: i64,
    include_usage: bool,
    usage: Option<Usage>,
    phase: Phase,
    /// Where the stream's tokens and cost are counted when it ends, the route it came
    /// through and the client whose budget it spends.
    account: Account,
}

/// The route's metric labels, the client, and when routing began (for the stream's duration).
pub(crate) type Account = (Gateway, crate::metrics::Target, Option<Arc<ClientConfig>>, Instant);

pub(crate) fn sse_events(
    mut routed: RoutedStream,
    request_id: String,
    now_unix: i64,
    include_usage: bool,
    account: Account,
) -> impl Stream<Item = Result<Event, Infallible>> {
    settle_on_end(&mut routed, &account);
    let state = SseState {
        routed,
        frame: None,
        fallback_id: format!("chatcmpl-{request_id}"),
        now_unix,
        include_usage,
        usage: None,
        phase: Phase::Streaming,
        account,
    };
    // When the client goes away, hyper drops this stream and with it the routed stream,
    // which cancels the upstream call and settles its quota.
    futures_util::stream::unfold(state, |mut state| async move {
        let event = next_event(&mut state).await?;
        Some((Ok(event), state))
    })
}

/// Counts what `routed` cost against the route's metrics and the client's daily budget once
/// the router settles it: at its end, when it breaks, or when the client goes away mid-stream
/// (dropped with the stream), so streaming is no way around a budget. Every streamed format
/// calls it before its first event.
pub(crate) fn settle_on_end(routed: &mut RoutedStream, account: &Account) {
    let (gateway, target, client, started) = account;
    let (gateway, target, client, started) =
        (gateway.clone(), target.clone(), client.clone(), *started);
    routed.on_settled(move |cost| {
        let elapsed = gateway.shared.clock.now().saturating_duration_since(started);
        gateway.shared.metrics.stream_ended(&target, elapsed);
        let Some(dollars) = cost else { return };
        gateway.shared.metrics.cost(&target, dollars);
        if let Some(client) = client {
            gateway.shared.meters.spend(&client, dollars, gateway.shared.clock.utc());
        }
    });
}

/// Counts a finished stream's tokens against its target's metrics.
pub(crate) fn count_tokens(account: &Account, usage: Usage) {
    let (gateway, target, ..) = account;
    gateway.shared.metrics.tokens(target, usage);
}

/// An event whose data is `value`'s JSON, written straight into the event.
fn sse_json(value: &impl serde::Serialize) -> Event {
    Event::default().json_data(value).expect("invariant: a wire chunk serializes")
}

async fn next_event(state: &mut SseState) -> Option<Event> {
    loop {
        match state.phase {
            Phase::Ended => return None,
            Phase::UsageSent => {
                state.phase = Phase::Ended;
                return Some(Event::default().data("[DONE]"));
            }
            Phase::Streaming => {}
        }
        match state.routed.next().await {
            Some(Ok(chunk)) => {
                if let Some(usage) = chunk.usage {
                    state.usage = Some(usage);
                }
                let first = state.frame.is_none();
                let frame = state.frame.get_or_insert_with(|| wire::ChunkFrame {
                    id: chunk.id.clone().unwrap_or_else(|| state.fallback_id.clone()),
                    created: state.now_unix,
                    model: chunk
                        .model
                        .clone()
                        .unwrap_or_else(|| state.routed.served_by.model.to_string()),
                    system_fingerprint: None,
                });
                if chunk.system_fingerprint.is_some() {
                    frame.system_fingerprint.clone_from(&chunk.system_fingerprint);
                }
                let carries_nothing = chunk.text.is_empty()
                    && chunk.tool_calls.is_empty()
                    && chunk.finish_reason.is_none();
                if carries_nothing && !first {
                    continue;
                }
                return Some(sse_json(&wire::chunk(frame, &chunk, first)));
            }
            Some(Err(error)) => {
                state.phase = Phase::Ended;
                tracing::warn!(error = %error, "stream broke after its first chunk");
                let body = json!({"error": {
                    "message": error.to_string(),
                    "type": "server_error",
                    "param": null,
                    "code": "STREAM_INTERRUPTED",
                }});
                return Some(Event::default().data(body.to_string()));
            }
            None => {
                if let Some(usage) = state.usage {
                    count_tokens(&state.account, usage);
                }
                if state.include_usage {
                    state.phase = Phase::UsageSent;
                    let frame = state.frame.clone().unwrap_or_else(|| wire::ChunkFrame {
                        id: state.fallback_id.clone(),
                        created: state.now_unix,
                        model: state.routed.served_by.model.to_string(),
                        system_fingerprint: None,
                    });
                    let usage = state.usage.unwrap_or_default();
                    return Some(sse_json(&wire::usage_chunk(&frame, usage)));
                }
                state.phase = Phase::Ended;
                return Some(Event::default().data("[DONE]"));
            }
        }
    }
}
