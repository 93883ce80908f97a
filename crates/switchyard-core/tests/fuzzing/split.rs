//! The reading half of the adapters' stream properties, kept once here and included by path
//! beside `frames.rs`: a body delivered in two parts cut at a random point and read by one of
//! core's bounded readers (`lines`, `sse_events`) the way the clients read it.

#![allow(dead_code, reason = "each adapter uses the readers its format needs")]

use futures_util::{FutureExt as _, Stream, StreamExt as _};
use switchyard_core::ReadError;

/// A body's two parts, as the readers take them.
pub(crate) type Parts =
    futures_util::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>>;

/// Reads `body`, cut in two at `cut`, with `reader` (lines of at most `max_line` bytes) and
/// hands each item to `push` while it returns `true`. A line refused as too long must name
/// `max_line`. Returns whether the reader came to its end with every item taken: only then
/// may the decoder be asked to finish.
pub(crate) fn read_split<R, T>(
    body: &[u8],
    cut: usize,
    max_line: usize,
    reader: impl FnOnce(Parts, usize) -> R,
    mut push: impl FnMut(T) -> bool,
) -> bool
where
    R: Stream<Item = Result<T, ReadError<std::io::Error>>> + Unpin,
{
    let cut = cut.min(body.len());
    let parts = vec![Ok(body[..cut].to_vec()), Ok(body[cut..].to_vec())];
    let mut items = reader(futures_util::stream::iter(parts), max_line);
    while let Some(item) = items.next().now_or_never().expect("a ready stream never waits") {
        match item {
            Ok(item) => {
                if !push(item) {
                    return false;
                }
            }
            Err(ReadError::TooLarge { limit, .. }) => {
                assert_eq!(limit, max_line);
                return false;
            }
            Err(ReadError::NotUtf8 | ReadError::Transport(_)) => return false,
        }
    }
    true
}

/// Frames as an SSE body: each a `data:` line, ended by `separator` (`"\n\n"`, `"\r\n\r\n"`).
pub(crate) fn sse_body(frames: &[String], separator: &str) -> Vec<u8> {
    frames.iter().map(|frame| format!("data: {frame}{separator}")).collect::<String>().into_bytes()
}

/// A stream body of NDJSON lines.
pub(crate) fn ndjson_body(lines: &[String]) -> Vec<u8> {
    lines.iter().map(|line| format!("{line}\n")).collect::<String>().into_bytes()
}

/// The four decoder properties every adapter runs, written once: a whole body and a body cut
/// in two, each from random bytes and from mutated real frames.
/// - `plain` checks one whole body (`fn(&[u8])`); `stream` reads one body cut at `cut` with
///   lines of at most `max_line` bytes (`fn(&[u8], usize, usize)`);
/// - `answers` and `frames` are the real frames mutated for a whole body and a stream, `join`
///   makes a stream body of `n_frames` of them (`fn(&[String]) -> Vec<u8>`);
/// - `random_cases` is how many random bodies each property reads by default.
macro_rules! decoder_properties {
    (
        plain: $plain:expr, stream: $stream:expr, random_cases: $random_cases:expr,
        answers: $answers:expr, frames: $frames:expr, n_frames: $n_frames:expr, join: $join:expr $(,)?
    ) => {
        proptest::proptest! {
            #![proptest_config(frames::config($random_cases))]

            #[test]
            fn plain_answers_from_random_bytes(body in frames::bytes()) {
                ($plain)(&body);
            }

            #[test]
            fn streams_from_random_bytes(body in frames::bytes(), cut in 0usize..256, max_line in 1usize..300) {
                ($stream)(&body, cut, max_line);
            }
        }

        proptest::proptest! {
            #![proptest_config(frames::config(2000))]

            #[test]
            fn plain_answers_from_mutated_frames(body in frames::frame($answers)) {
                ($plain)(body.as_bytes());
            }

            #[test]
            fn streams_from_mutated_frames(
                chunks in proptest::collection::vec(frames::frame($frames), $n_frames),
                cut in 0usize..2000,
                max_line in proptest::prop_oneof![proptest::strategy::Just(1usize << 20), 16usize..512],
            ) {
                ($stream)(&($join)(&chunks), cut, max_line);
            }
        }
    };
}

/// An error body: one of `bodies` mutated, or random bytes read as text.
pub(crate) fn error_body(
    bodies: Vec<serde_json::Value>,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy as _;
    let text = super::frames::bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    proptest::prop_oneof![super::frames::frame(bodies), text]
}
