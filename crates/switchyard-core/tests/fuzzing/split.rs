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
