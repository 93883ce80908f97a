//! The faults of a hostile upstream: a body that never ends in size ([`Fault::HugeBody`]) or
//! in time ([`Fault::EndlessStream`]), and a stream that turns to garbage
//! ([`Fault::GarbageStream`]). Each is written as it goes, from a few shared buffers, so a
//! 50 MB answer costs the mock no 50 MB.
//!
//! [`Fault::HugeBody`]: crate::Fault::HugeBody
//! [`Fault::EndlessStream`]: crate::Fault::EndlessStream
//! [`Fault::GarbageStream`]: crate::Fault::GarbageStream

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use switchyard_core::{Clock, FinishReason};

use crate::wire::{ChatSummary, Reply, WireFormat};

/// The pause between the frames of an endless stream when the mock has no stream interval.
pub const ENDLESS_PACE: Duration = Duration::from_millis(20);

/// The length of the line without a newline that ends a garbage stream: 16 MiB, more than
/// any sane line buffer should take.
pub const GARBAGE_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// How much filler one chunk of a huge body carries.
const CHUNK_BYTES: usize = 64 * 1024;
static FILLER: [u8; CHUNK_BYTES] = [b'x'; CHUNK_BYTES];
static SPACES: [u8; 64] = [b' '; 64];

/// Stands for the huge text in a rendered answer; found and replaced by the filler.
const MARKER: &str = "MOCKHUGETEXTMARKER";
/// The word an endless stream repeats, as it appears inside a rendered frame.
const ENDLESS_WORD: &str = " endless";

type Chunks = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A well-formed answer (plain or streamed) whose text is `bytes` of filler.
pub(crate) fn huge_body(
    wire: &dyn WireFormat,
    summary: Option<&ChatSummary>,
    reply: &Reply,
    bytes: u64,
) -> Response {
    let mut marked = reply.clone();
    marked.text = MARKER.to_owned();
    marked.pieces = vec![MARKER.to_owned()];
    marked.tool_calls.clear();
    marked.finish_reason = FinishReason::Stop;
    let (content_type, rendered) = match summary {
        Some(summary) if summary.stream => {
            let frames = wire.stream_frames(summary, &marked);
            (frames.content_type, frames.frames.concat())
        }
        Some(summary) => ("application/json", wire.chat_body(summary, &marked).to_string().into()),
        None => ("application/json", Vec::new()),
    };
    let (before, after) = match find(&rendered, MARKER.as_bytes()) {
        Some(at) => (
            Bytes::copy_from_slice(&rendered[..at]),
            Bytes::copy_from_slice(&rendered[at + MARKER.len()..]),
        ),
        // The model listing has no text: a JSON object with one huge string instead.
        None => (Bytes::from_static(b"{\"padding\": \""), Bytes::from_static(b"\"}")),
    };
    let body = stream::once(async move { Ok(before) })
        .chain(filler(bytes))
        .chain(stream::once(async move { Ok(after) }))
        .boxed();
    respond(content_type, body)
}

/// Text frames forever, `pace` apart on `clock`, until the client goes away (hyper drops
/// the body when the connection closes).
pub(crate) fn endless(
    wire: &dyn WireFormat,
    summary: Option<&ChatSummary>,
    reply: &Reply,
    clock: Arc<dyn Clock>,
    pace: Duration,
) -> Response {
    let (content_type, head, repeat) = match summary {
        Some(summary) if summary.stream => {
            // Two pieces, so the first text frame is an ordinary one in every format (a
            // Gemini stream's last chunk carries the finish reason).
            let mut marked = reply.clone();
            marked.pieces = vec![ENDLESS_WORD.to_owned(); 2];
            marked.text = marked.pieces.concat();
            marked.tool_calls.clear();
            let frames = wire.stream_frames(summary, &marked);
            let quoted = format!("\"{ENDLESS_WORD}\"");
            let text_idx = frames
                .frames
                .iter()
                .position(|frame| find(frame, quoted.as_bytes()).is_some())
                .unwrap_or(0);
            let repeat = frames.frames.get(text_idx).cloned().unwrap_or_default();
            let head: Vec<Bytes> = frames.frames[..text_idx].to_vec();
            (frames.content_type, head, repeat)
        }
        _ => ("application/json", vec![Bytes::from_static(b"{")], Bytes::from_static(&SPACES)),
    };
    let first = repeat.clone();
    let rest = stream::unfold((clock, repeat), move |(clock, repeat)| async move {
        clock.sleep(pace).await;
        Some((Ok(repeat.clone()), (clock, repeat)))
    });
    let body = stream::iter(head.into_iter().map(Ok))
        .chain(stream::once(async move { Ok(first) }))
        .chain(rest)
        .boxed();
    respond(content_type, body)
}

/// One good frame (streams only), then garbage, then an overlong line, then the end.
pub(crate) fn garbage(
    wire: &dyn WireFormat,
    summary: Option<&ChatSummary>,
    reply: &Reply,
) -> Response {
    let (content_type, head) = match summary {
        Some(summary) if summary.stream => {
            let frames = wire.stream_frames(summary, reply);
            (frames.content_type, frames.frames.into_iter().take(1).collect())
        }
        _ => ("application/json", Vec::new()),
    };
    let junk = [
        wire.malformed_frame(),
        Bytes::from_static(b"data: \xff\xfe\xfd\x80 not utf-8 \xc3\x28\n\n"),
        Bytes::from_static(b"event: \x00\x01\x02\x1b[2J\ndata: \x07\x08\n\n"),
        Bytes::from_static(b"data: "),
    ];
    let body = stream::iter(head.into_iter().chain(junk).map(Ok))
        .chain(filler(GARBAGE_LINE_BYTES))
        .boxed();
    respond(content_type, body)
}

/// `bytes` of `x`, in chunks sliced from one static buffer.
fn filler(bytes: u64) -> Chunks {
    stream::unfold(bytes, |left| async move {
        if left == 0 {
            return None;
        }
        let n_bytes = usize::try_from(left).unwrap_or(CHUNK_BYTES).min(CHUNK_BYTES);
        Some((Ok(Bytes::from_static(&FILLER[..n_bytes])), left - n_bytes as u64))
    })
    .boxed()
}

fn respond(content_type: &'static str, body: Chunks) -> Response {
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnthropicWire, GeminiWire, OllamaWire, OpenAiWire};
    use switchyard_core::Usage;

    fn reply() -> Reply {
        Reply {
            id: "chatcmpl-mock-0".to_owned(),
            model: "m".to_owned(),
            created: 0,
            text: "a b".to_owned(),
            pieces: vec!["a".to_owned(), " b".to_owned()],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(1, 2),
        }
    }

    #[test]
    fn every_format_renders_the_marker_once_and_the_endless_word_in_a_frame_of_its_own() {
        let wires: [Box<dyn WireFormat>; 4] = [
            Box::new(OpenAiWire::openai()),
            Box::new(AnthropicWire),
            Box::new(GeminiWire),
            Box::new(OllamaWire),
        ];
        let summary = ChatSummary { model: "m".to_owned(), stream: true, ..Default::default() };
        for wire in wires {
            let mut marked = reply();
            marked.pieces = vec![MARKER.to_owned()];
            marked.text = MARKER.to_owned();
            let plain = wire.chat_body(&summary, &marked).to_string();
            assert_eq!(plain.matches(MARKER).count(), 1, "{}: {plain}", wire.name());
            let frames = wire.stream_frames(&summary, &marked).frames.concat();
            assert!(find(&frames, MARKER.as_bytes()).is_some(), "{}", wire.name());
            marked.pieces = vec![ENDLESS_WORD.to_owned(); 2];
            let quoted = format!("\"{ENDLESS_WORD}\"");
            let with_word = wire
                .stream_frames(&summary, &marked)
                .frames
                .iter()
                .filter(|frame| find(frame, quoted.as_bytes()).is_some())
                .count();
            assert_eq!(with_word, 2, "{}: one frame per piece", wire.name());
        }
    }
}
