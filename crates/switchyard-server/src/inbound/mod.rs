//! The request formats the gateway takes besides OpenAI's Chat Completions: Anthropic's
//! Messages (`POST /v1/messages`) and OpenAI's Responses (`POST /v1/responses`). Each is read
//! into the router's [`ChatRequest`](switchyard_core::ChatRequest) and its answer written back
//! in the format it came in, plain or streamed, errors included; routing, keys, quotas,
//! budgets, metrics and the `x-switchyard-*` headers are the Chat Completions endpoint's own
//! (`lib.rs`), whatever the format.
//!
//! Also here: the per-request headers a client of any format may send ([`options`]), and the
//! [`Segmenter`] both streamed formats use to cut the router's chunks into content blocks.

pub(crate) mod messages;
pub(crate) mod options;
pub(crate) mod responses;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use switchyard::RoutedStream;
use switchyard_core::{ChatChunk, ChatResponse};

use crate::error::ServerError;
use crate::sse::Account;
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
                (headers, Sse::new(messages::events(routed, request_id, account))).into_response()
            }
            Self::Responses => {
                let events = responses::events(routed, request_id, now_unix, account);
                (headers, Sse::new(events)).into_response()
            }
        }
    }
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
