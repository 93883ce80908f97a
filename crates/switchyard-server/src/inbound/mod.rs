//! The request formats the gateway takes besides OpenAI's Chat Completions: Anthropic's
//! Messages (`POST /v1/messages`) and OpenAI's Responses (`POST /v1/responses`). Each is read
//! into the router's [`ChatRequest`](switchyard_core::ChatRequest) and its answer written back
//! in the format it came in, plain or streamed, errors included; routing, keys, quotas,
//! budgets, metrics and the `x-switchyard-*` headers are the Chat Completions endpoint's own
//! (`lib.rs`), whatever the format.
//!
//! Also here: the per-request headers a client of any format may send ([`options`]), and the
//! [`Segmenter`] both streamed formats use to cut the router's chunks into content blocks.

pub(crate) mod embeddings;
pub(crate) mod messages;
pub(crate) mod options;
pub(crate) mod responses;

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use switchyard::{RoutedStream, StreamError};
use switchyard_core::{Candidate, ChatChunk, ChatResponse, FinishReason, Usage};

use crate::error::ServerError;
use crate::sse::{self, Account};
use crate::wire::{self, CompletionRequest, WireError};

/// The format a request came in, and its answer goes out in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/messages` (and `/v1/messages/count_tokens`).
    Messages,
    /// `POST /v1/responses`.
    Responses,
}

/// What every streamed answer is written with: the routed stream, the request's id, the time
/// now, whether usage is asked for, where tokens and cost are counted, and the headers.
pub(crate) struct StreamOut {
    pub(crate) routed: RoutedStream,
    pub(crate) request_id: String,
    pub(crate) now_unix: i64,
    pub(crate) include_usage: bool,
    pub(crate) account: Account,
    pub(crate) headers: HeaderMap,
}

impl Inbound {
    /// The format of a path under `/v1/`, for the errors the layers in front of the handlers
    /// answer (a missing token).
    pub(crate) fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Messages
        } else if path.starts_with("/v1/responses") {
            Self::Responses
        } else {
            Self::Chat
        }
    }

    /// Reads a request body of this format.
    pub(crate) fn parse(self, body: &[u8]) -> Result<CompletionRequest, WireError> {
        let parsed = match self {
            Self::Chat => return wire::parse_request(body),
            Self::Messages => messages::parse(body),
            Self::Responses => responses::parse(body),
        };
        parsed.map_err(|WireError(message)| WireError(wire::shortened(message)))
    }

    /// A failure, in this format's error shape.
    pub(crate) fn error(self, error: ServerError) -> Response {
        match self {
            // The Responses API answers errors as Chat Completions does.
            Self::Chat | Self::Responses => error.into_response(),
            Self::Messages => messages::error(error),
        }
    }

    /// A plain answer, with the gateway's headers.
    pub(crate) fn answer(
        self,
        response: &ChatResponse,
        request_id: &str,
        now_unix: i64,
        headers: HeaderMap,
    ) -> Response {
        match self {
            Self::Chat => {
                let fallback_id = format!("chatcmpl-{request_id}");
                let body = wire::completion(response, &fallback_id, now_unix);
                (headers, axum::Json(body)).into_response()
            }
            Self::Messages => {
                (headers, axum::Json(messages::message(response, request_id))).into_response()
            }
            Self::Responses => {
                let body = responses::Answer::plain(response, request_id, now_unix);
                (headers, axum::Json(body.view())).into_response()
            }
        }
    }

    /// A streamed answer, as this format's server-sent events.
    pub(crate) fn stream(self, out: StreamOut) -> Response {
        use axum::response::sse::Sse;
        let StreamOut { routed, request_id, now_unix, include_usage, account, headers } = out;
        match self {
            Self::Chat => {
                let events =
                    crate::sse::sse_events(routed, request_id, now_unix, include_usage, account);
                (headers, Sse::new(events)).into_response()
            }
            Self::Messages => {
                let writer = messages::Events::new(&request_id);
                (headers, Sse::new(block_events(routed, account, writer))).into_response()
            }
            Self::Responses => {
                let writer = responses::Events::new(&request_id, now_unix, &routed.served_by);
                (headers, Sse::new(block_events(routed, account, writer))).into_response()
            }
        }
    }
}

/// A request of a block format: its usage always comes with a streamed answer.
fn completion_request(
    model: std::borrow::Cow<'_, str>,
    stream: bool,
    request: switchyard_core::ChatRequest,
) -> CompletionRequest {
    CompletionRequest { model: model.into_owned(), stream, include_usage: true, request }
}

/// One step of a streamed answer cut into blocks: a block of text or one tool call opens, grows
/// and closes; blocks are numbered from 0 in the order they open and never overlap.
#[derive(Debug, PartialEq)]
pub(crate) enum Segment<'a> {
    /// A text block opens.
    TextStart { index: u32 },
    /// Text of the open text block.
    Text { index: u32, delta: &'a str },
    /// A tool call's block opens.
    CallStart { index: u32, id: String, name: String },
    /// Argument text of the open call.
    Args { index: u32, delta: &'a str },
    /// The open block closes; `content` is all its text (or arguments).
    Stop { index: u32, content: String },
}

enum Open {
    None,
    Text,
    /// The upstream's index of the call and its id.
    Call(u32, Option<String>),
}

/// Cuts the router's chunks into [`Segment`]s: text and tool-call fragments of one answer
/// arrive in any order, and the Messages and Responses formats both want them as blocks that
/// open and close one after the other.
pub(crate) struct Segmenter {
    open: Open,
    n_blocks: u32,
    /// The open block's text or arguments so far.
    content: String,
}

impl Segmenter {
    pub(crate) fn new() -> Self {
        Self { open: Open::None, n_blocks: 0, content: String::new() }
    }

    /// The segments of one chunk, in order.
    pub(crate) fn push<'a>(&mut self, chunk: &'a ChatChunk, out: &mut Vec<Segment<'a>>) {
        if !chunk.text.is_empty() {
            if !matches!(self.open, Open::Text) {
                self.stop(out);
                self.open = Open::Text;
                out.push(Segment::TextStart { index: self.n_blocks });
                self.n_blocks = self.n_blocks.saturating_add(1);
            }
            self.content.push_str(&chunk.text);
            out.push(Segment::Text { index: self.index(), delta: &chunk.text });
        }
        for delta in &chunk.tool_calls {
            // A fragment continues the open call unless it names another index or a new id.
            let continues = match &self.open {
                Open::Call(index, id) => {
                    *index == delta.index && (delta.id.is_none() || delta.id == *id)
                }
                Open::None | Open::Text => false,
            };
            if !continues {
                self.stop(out);
                let index = self.n_blocks;
                let id = delta.id.clone().unwrap_or_else(|| format!("call_{index}"));
                self.open = Open::Call(delta.index, delta.id.clone());
                let name = delta.name.clone().unwrap_or_default();
                out.push(Segment::CallStart { index, id, name });
                self.n_blocks = self.n_blocks.saturating_add(1);
            }
            if !delta.arguments.is_empty() {
                self.content.push_str(&delta.arguments);
                out.push(Segment::Args { index: self.index(), delta: &delta.arguments });
            }
        }
    }

    /// Closes the open block, if any.
    pub(crate) fn stop(&mut self, out: &mut Vec<Segment<'_>>) {
        if matches!(self.open, Open::None) {
            return;
        }
        self.open = Open::None;
        let content = std::mem::take(&mut self.content);
        out.push(Segment::Stop { index: self.index(), content });
    }

    fn index(&self) -> u32 {
        self.n_blocks.saturating_sub(1)
    }
}

/// How a streamed format writes its events; [`block_events`] drives it.
pub(crate) trait BlockWriter: Send + 'static {
    /// The events before the first chunk.
    fn start(&mut self, served_by: &Candidate, out: &mut VecDeque<Event>);
    /// The events of one segment.
    fn segment(&mut self, segment: Segment<'_>, out: &mut VecDeque<Event>);
    /// The last events of a stream that ended well.
    fn end(
        &mut self,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
        out: &mut VecDeque<Event>,
    );
    /// The last event of a stream that broke after its first event.
    fn broken(&mut self, error: &StreamError, out: &mut VecDeque<Event>);
}

enum Phase {
    Start,
    Streaming,
    Ended,
}

struct Blocks<W> {
    routed: RoutedStream,
    writer: W,
    segmenter: Segmenter,
    pending: VecDeque<Event>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    phase: Phase,
    account: Account,
}

/// A routed stream as a block format's events, written by `writer`. Its cost and tokens are
/// counted as Chat Completions streams count theirs.
pub(crate) fn block_events<W: BlockWriter>(
    mut routed: RoutedStream,
    account: Account,
    writer: W,
) -> impl Stream<Item = Result<Event, Infallible>> {
    sse::settle_on_end(&mut routed, &account);
    let state = Blocks {
        routed,
        writer,
        segmenter: Segmenter::new(),
        pending: VecDeque::new(),
        usage: None,
        finish: None,
        phase: Phase::Start,
        account,
    };
    // When the client goes away, hyper drops this stream and with it the routed stream,
    // which cancels the upstream call and settles its quota.
    futures_util::stream::unfold(state, |mut state| async move {
        let event = next_event(&mut state).await?;
        Some((Ok(event), state))
    })
}

async fn next_event<W: BlockWriter>(state: &mut Blocks<W>) -> Option<Event> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            return Some(event);
        }
        match state.phase {
            Phase::Ended => return None,
            Phase::Start => {
                state.phase = Phase::Streaming;
                state.writer.start(&state.routed.served_by, &mut state.pending);
                continue;
            }
            Phase::Streaming => {}
        }
        match state.routed.next().await {
            Some(Ok(chunk)) => {
                if chunk.usage.is_some() {
                    state.usage = chunk.usage;
                }
                if chunk.finish_reason.is_some() {
                    state.finish.clone_from(&chunk.finish_reason);
                }
                let mut segments = Vec::new();
                state.segmenter.push(&chunk, &mut segments);
                for segment in segments {
                    state.writer.segment(segment, &mut state.pending);
                }
            }
            Some(Err(error)) => {
                state.phase = Phase::Ended;
                tracing::warn!(error = %error, "stream broke after its first chunk");
                state.writer.broken(&error, &mut state.pending);
            }
            None => {
                state.phase = Phase::Ended;
                if let Some(usage) = state.usage {
                    sse::count_tokens(&state.account, usage);
                }
                let mut segments = Vec::new();
                state.segmenter.stop(&mut segments);
                for segment in segments {
                    state.writer.segment(segment, &mut state.pending);
                }
                state.writer.end(state.finish.take(), state.usage, &mut state.pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::ToolCallDelta;

    use super::*;

    #[test]
    fn text_and_calls_become_blocks_that_never_overlap() {
        let mut segmenter = Segmenter::new();
        let text = ChatChunk { text: "Hi".into(), ..ChatChunk::default() };
        let call = |id: Option<&str>, arguments: &str| ChatChunk {
            tool_calls: vec![ToolCallDelta {
                index: 0,
                id: id.map(str::to_owned),
                name: id.map(|_| "f".to_owned()),
                arguments: arguments.into(),
            }],
            ..ChatChunk::default()
        };
        let chunks =
            [text.clone(), call(Some("c1"), "{\"a\""), call(None, ":1}"), call(Some("c2"), "")];
        let mut out = Vec::new();
        for chunk in &chunks {
            segmenter.push(chunk, &mut out);
        }
        segmenter.stop(&mut out);
        assert_eq!(
            out,
            vec![
                Segment::TextStart { index: 0 },
                Segment::Text { index: 0, delta: "Hi" },
                Segment::Stop { index: 0, content: "Hi".into() },
                Segment::CallStart { index: 1, id: "c1".into(), name: "f".into() },
                Segment::Args { index: 1, delta: "{\"a\"" },
                Segment::Args { index: 1, delta: ":1}" },
                Segment::Stop { index: 1, content: "{\"a\":1}".into() },
                Segment::CallStart { index: 2, id: "c2".into(), name: "f".into() },
                Segment::Stop { index: 2, content: String::new() },
            ]
        );
        assert_eq!(segmenter.n_blocks, 3);
    }
}
