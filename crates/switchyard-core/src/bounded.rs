//! Bounded reading of what an upstream sends: whole bodies, NDJSON lines and server-sent
//! events, each with a size limit, so a hostile or broken upstream cannot make the gateway
//! buffer without end.
//!
//! Every adapter reads through here: [`read_body`] for a plain answer (over the limit is an
//! error), [`read_body_truncated`] for an error body (kept up to the limit, still classified),
//! [`lines`] for NDJSON and [`sse_events`] for server-sent events. They work on any
//! `Stream<Item = Result<impl AsRef<[u8]>, E>>` (reqwest's `bytes_stream()`), in time linear in
//! the bytes read. Going over a limit is a [`ReadError::TooLarge`], which
//! [`ReadError::into_provider_error`] turns into a [`ErrorKind::MalformedResponse`] naming the
//! limit and the provider, never the body.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::{ErrorKind, ProviderError, ProviderId};

/// The default limit on a whole plain body: 8 MiB, far above any chat answer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The default limit on one NDJSON line or one server-sent event (and each of its lines):
/// 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// How much of an error body (a 4xx or 5xx) is read: 64 KiB. Error reports are short; the
/// rest of a longer one is dropped and the status still classifies it.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// What went over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Oversized {
    /// A whole body.
    Body,
    /// One line of a stream (NDJSON or SSE).
    Line,
    /// One server-sent event (all its `data` lines together).
    Event,
}

impl fmt::Display for Oversized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Body => "body",
            Self::Line => "stream line",
            Self::Event => "stream event",
        })
    }
}

/// Why a bounded read failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError<E> {
    /// The transport failed (the connection was cut, timed out).
    Transport(E),
    /// The upstream sent more than the limit allows.
    TooLarge {
        /// What was too large.
        what: Oversized,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A server-sent event line that is not UTF-8.
    NotUtf8,
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(error) => write!(f, "cannot read the upstream's answer: {error}"),
            Self::TooLarge { what, limit } => {
                write!(f, "the upstream's {what} is over the limit of {limit} bytes")
            }
            Self::NotUtf8 => f.write_str("the upstream's event stream is not UTF-8"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Transport(error) => Some(error),
            Self::TooLarge { .. } | Self::NotUtf8 => None,
        }
    }
}

impl<E> ReadError<E> {
    /// The failure as `provider`'s [`ProviderError`]: a transport failure through
    /// `transport` (each adapter labels its own), anything else a
    /// [`ErrorKind::MalformedResponse`], which moves on to the next candidate.
    pub fn into_provider_error(
        self,
        provider: &ProviderId,
        transport: impl FnOnce(E) -> ProviderError,
    ) -> ProviderError {
        match self {
            Self::Transport(error) => transport(error),
            Self::TooLarge { what, limit } => {
                ProviderError::too_large(provider.clone(), what, limit)
            }
            Self::NotUtf8 => ProviderError::new(
                ErrorKind::MalformedResponse,
                provider.clone(),
                format!("the event stream from {provider} is not UTF-8"),
            ),
        }
    }
}

impl ProviderError {
    /// A [`ErrorKind::MalformedResponse`]: `provider` sent a `what` over `limit` bytes. The
    /// message names the limit and the provider, never the content (which may echo a secret).
    pub fn too_large(provider: impl Into<ProviderId>, what: Oversized, limit: usize) -> Self {
        let provider = provider.into();
        let message = format!("the {what} from {provider} is over the limit of {limit} bytes");
        Self::new(ErrorKind::MalformedResponse, provider, message)
    }
}

/// The first `max_chars` characters of `text`, trimmed, with `...` when cut: an unreadable
/// upstream body quoted in an error message without quoting all of it.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads a whole body, chunk by chunk, stopping at the first chunk that takes it over `limit`
/// bytes.
///
/// # Errors
/// [`ReadError::TooLarge`] over the limit, [`ReadError::Transport`] when the stream fails.
pub async fn read_body<S, B, E>(stream: S, limit: usize) -> Result<Vec<u8>, ReadError<E>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut stream = pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        let chunk = chunk.as_ref();
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(ReadError::TooLarge { what: Oversized::Body, limit });
        }
        body.extend_from_slice(chunk);
    }
    Ok(body)
}

/// Reads at most `limit` bytes of a body and stops reading there: for error bodies, which are
/// classified whatever their length.
///
/// # Errors
/// The transport's error when the stream fails before `limit` bytes or its end.
pub async fn read_body_truncated<S, B, E>(stream: S, limit: usize) -> Result<Vec<u8>, E>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut stream = pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let chunk = chunk?;
        let room = limit.saturating_sub(body.len());
        let chunk = chunk.as_ref();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// Cuts bytes into lines (ended by `\n`, `\r\n` or a lone `\r`), none longer than a limit.
/// Linear in the bytes pushed: each byte is copied once into its line.
#[derive(Clone, Debug)]
pub struct LineSplitter {
    max_line: usize,
    line: Vec<u8>,
    ready: VecDeque<Vec<u8>>,
    after_cr: bool,
    overflowed: bool,
}

impl LineSplitter {
    /// A splitter refusing lines longer than `max_line` bytes (without their ending).
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            line: Vec::new(),
            ready: VecDeque::new(),
            after_cr: false,
            overflowed: false,
        }
    }

    /// Adds bytes; the lines they complete wait for [`LineSplitter::next_line`].
    ///
    /// # Errors
    /// [`Oversized::Line`] once a line is longer than the limit; the splitter then refuses
    /// more bytes (the lines completed before stay ready).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), Oversized> {
        if self.overflowed {
            return Err(Oversized::Line);
        }
        while !bytes.is_empty() {
            if self.after_cr && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                self.after_cr = false;
                continue;
            }
            self.after_cr = false;
            let end = bytes.iter().position(|&byte| byte == b'\n' || byte == b'\r');
            let part = &bytes[..end.unwrap_or(bytes.len())];
            if part.len() > self.max_line.saturating_sub(self.line.len()) {
                // The lines completed before the long one stay ready.
                self.overflowed = true;
                self.line = Vec::new();
                return Err(Oversized::Line);
            }
            self.line.extend_from_slice(part);
            match end {
                Some(end) => {
                    self.after_cr = bytes[end] == b'\r';
                    self.ready.push_back(std::mem::take(&mut self.line));
                    bytes = &bytes[end + 1..];
                }
                None => bytes = &[],
            }
        }
        Ok(())
    }

    /// The next complete line, without its ending.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// At the end of the input: the last line if it had no ending.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.line.is_empty()).then(|| std::mem::take(&mut self.line))
    }
}

/// A stream of lines cut from a stream of bytes; see [`lines`].
#[derive(Debug)]
pub struct Lines<S> {
    body: S,
    splitter: LineSplitter,
    ended: bool,
    overflowed: bool,
    failed: bool,
}

/// The lines of `body` (NDJSON), none longer than `max_line` bytes. A last line without a
/// newline is yielded at the end. After the first error the stream ends.
pub fn lines<S>(body: S, max_line: usize) -> Lines<S> {
    Lines {
        body,
        splitter: LineSplitter::new(max_line),
        ended: false,
        overflowed: false,
        failed: false,
    }
}

impl<S, B, E> Stream for Lines<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    type Item = Result<Vec<u8>, ReadError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            if let Some(line) = this.splitter.next_line() {
                return Poll::Ready(Some(Ok(line)));
            }
            if this.overflowed {
                this.failed = true;
                let limit = this.splitter.max_line;
                return Poll::Ready(Some(Err(ReadError::TooLarge {
                    what: Oversized::Line,
                    limit,
                })));
            }
            if this.ended {
                return Poll::Ready(this.splitter.finish().map(Ok));
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.ended = true,
                Poll::Ready(Some(Err(error))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(ReadError::Transport(error))));
                }
                Poll::Ready(Some(Ok(bytes))) => {
                    this.overflowed = this.splitter.push(bytes.as_ref()).is_err();
                }
            }
        }
    }
}

/// One server-sent event: its type (`message` when the stream names none) and its data, the
/// `data` lines joined by `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field.
    pub event: String,
    /// The `data` fields, joined.
    pub data: String,
}

/// Folds the lines of an event stream into events, as the HTML standard's event-stream
/// interpretation does for `event` and `data` (`id` and `retry` are ignored: no adapter
/// reconnects), with a limit on one event's data.
#[derive(Clone, Debug)]
pub struct SseParser {
    max_event: usize,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser refusing events whose data is longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self { max_event, event: String::new(), data: String::new(), has_data: false }
    }

    /// Reads one line (without its ending); an empty line ends the event, which is returned.
    ///
    /// # Errors
    /// [`Oversized::Event`] when the event's data goes over the limit.
    pub fn push_line(&mut self, line: &str) -> Result<Option<SseEvent>, Oversized> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return Ok(None);
            }
            let event = if event.is_empty() { "message".to_owned() } else { event };
            return Ok(Some(SseEvent { event, data }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                let separator = usize::from(self.has_data);
                if value.len().saturating_add(separator)
                    > self.max_event.saturating_sub(self.data.len())
                {
                    return Err(Oversized::Event);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                // Bounded by the line limit; a type longer than that never reaches here.
                value.clone_into(&mut self.event);
            }
            _ => {}
        }
        Ok(None)
    }
}

/// A stream of server-sent events cut from a stream of bytes; see [`sse_events`].
#[derive(Debug)]
pub struct SseEvents<S> {
    lines: Lines<S>,
    parser: SseParser,
    failed: bool,
}

/// The events of `body` (`text/event-stream`), no line and no event's data longer than
/// `max_line` bytes. An event not ended by an empty line when the body ends is dropped, as
/// the standard says. After the first error the stream ends.
pub fn sse_events<S>(body: S, max_line: usize) -> SseEvents<S> {
    SseEvents { lines: lines(body, max_line), parser: SseParser::new(max_line), failed: false }
}

impl<S, B, E> Stream for SseEvents<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    type Item = Result<SseEvent, ReadError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            let line = match Pin::new(&mut this.lines).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(error))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(line))) => line,
            };
            let Ok(line) = std::str::from_utf8(&line) else {
                this.failed = true;
                return Poll::Ready(Some(Err(ReadError::NotUtf8)));
            };
            match this.parser.push_line(line) {
                Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                Ok(None) => {}
                Err(what) => {
                    this.failed = true;
                    let limit = this.parser.max_event;
                    return Poll::Ready(Some(Err(ReadError::TooLarge { what, limit })));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Chunk = Result<Vec<u8>, &'static str>;

    /// A ready-made stream of chunks.
    struct Chunks(VecDeque<Chunk>);

    impl Stream for Chunks {
        type Item = Chunk;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Chunk>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|part| Ok(part.to_vec())).collect())
    }

    /// Drives a future that never waits (every test stream is ready).
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("a test stream is always ready"),
        }
    }

    fn collect<S: Stream + Unpin>(mut stream: S) -> Vec<S::Item> {
        let mut items = Vec::new();
        while let Some(item) = ready(poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))) {
            items.push(item);
        }
        items
    }

    #[test]
    fn a_body_within_the_limit_is_read_whole_and_one_over_it_is_refused() {
        assert_eq!(ready(read_body(chunks(&[b"ab", b"cd"]), 4)), Ok(b"abcd".to_vec()));
        assert_eq!(
            ready(read_body(chunks(&[b"ab", b"cde"]), 4)),
            Err(ReadError::TooLarge { what: Oversized::Body, limit: 4 })
        );
        let failing = Chunks(VecDeque::from([Ok(b"a".to_vec()), Err("cut")]));
        assert_eq!(ready(read_body(failing, 4)), Err(ReadError::Transport("cut")));
    }

    #[test]
    fn an_error_body_is_cut_at_the_limit_and_the_rest_left_unread() {
        let endless = Chunks(std::iter::repeat_n(Ok(vec![b'x'; 1000]), 1000).collect());
        assert_eq!(ready(read_body_truncated(endless, 2500)), Ok(vec![b'x'; 2500]));
        assert_eq!(ready(read_body_truncated(chunks(&[b"short"]), 2500)), Ok(b"short".to_vec()));
    }

    #[test]
    fn lines_end_with_any_line_ending_even_across_chunks() {
        let got: Vec<_> = collect(lines(chunks(&[b"a\r", b"\nb\n\nc\rd"]), 10));
        let got: Vec<Vec<u8>> = got.into_iter().map(|line| line.expect("a line")).collect();
        assert_eq!(got, [&b"a"[..], b"b", b"", b"c", b"d"]);
    }

    #[test]
    fn a_line_over_the_limit_ends_the_stream_with_an_error() {
        let got = collect(lines(chunks(&[b"12345\n123", b"456", b"7\nmore\n"]), 5));
        assert_eq!(
            got,
            [Ok(b"12345".to_vec()), Err(ReadError::TooLarge { what: Oversized::Line, limit: 5 })]
        );
    }

    #[test]
    fn events_join_their_data_lines_and_skip_comments() {
        let body: &[u8] =
            b": ping\nevent: delta\ndata: {\"a\":\ndata:1}\n\ndata: [DONE]\n\ndata: cut";
        let got: Vec<SseEvent> =
            collect(sse_events(chunks(&[body]), 100)).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                SseEvent { event: "delta".into(), data: "{\"a\":\n1}".into() },
                SseEvent { event: "message".into(), data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn an_event_over_the_limit_and_bytes_that_are_not_utf8_are_errors() {
        let many_lines = b"data: 1234\ndata: 1234\ndata: 1234\n\n";
        assert_eq!(
            collect(sse_events(chunks(&[many_lines]), 12)),
            [Err(ReadError::TooLarge { what: Oversized::Event, limit: 12 })]
        );
        assert_eq!(
            collect(sse_events(chunks(&[b"data: \xff\n\n"]), 12)),
            [Err(ReadError::NotUtf8)]
        );
    }

    #[test]
    fn an_oversized_error_names_the_limit_and_the_provider_only() {
        let error: ReadError<&str> = ReadError::TooLarge { what: Oversized::Line, limit: 1024 };
        let error = error.into_provider_error(&ProviderId::new("groq"), |_| unreachable!());
        assert_eq!(error.kind, ErrorKind::MalformedResponse);
        assert_eq!(error.message, "the stream line from groq is over the limit of 1024 bytes");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// However the bytes are cut into chunks, the lines are the same, none over the limit.
        #[test]
        fn lines_do_not_depend_on_chunking(
            body in proptest::collection::vec(any::<u8>().prop_map(|byte| match byte % 8 {
                0 => b'\n',
                1 => b'\r',
                _ => byte,
            }), 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
            max_line in 1usize..40,
        ) {
            let whole = collect(lines(chunks(&[&body]), max_line));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(body.len())).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut start = 0;
            for cut in cuts {
                parts.push(&body[start..cut]);
                start = cut;
            }
            parts.push(&body[start..]);
            let pieces = collect(lines(chunks(&parts), max_line));
            prop_assert_eq!(&whole, &pieces);
            for line in whole.iter().flatten() {
                prop_assert!(line.len() <= max_line);
            }
        }

        /// Random bytes give events within the limit or one typed error, never more.
        #[test]
        fn random_bytes_make_bounded_events_or_one_error(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            max_line in 1usize..64,
        ) {
            let items = collect(sse_events(chunks(&[&body]), max_line));
            let n_errors = items.iter().filter(|item| item.is_err()).count();
            prop_assert!(n_errors <= 1);
            prop_assert!(items.last().is_none_or(|_| items[..items.len() - 1].iter().all(Result::is_ok)));
            for event in items.iter().flatten() {
                prop_assert!(event.data.len() <= max_line);
            }
        }
    }
}
