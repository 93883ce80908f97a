//! HTTP/1.1 by hand, for requests a well-behaved client library will not send: a body far
//! over the limit that the server may refuse before reading it, a megabyte of headers. The
//! body is written by its own task while the answer is read, so a server that answers early
//! and closes is seen answering, not as a write error.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{CLIENT, CLIENT_TIMEOUT};

/// How the body of a raw request is sent.
pub(crate) enum RawBody {
    /// None.
    Empty,
    /// `Content-Length` and these bytes: a prefix, then `len` filler bytes, then a suffix.
    Sized { prefix: Vec<u8>, len: usize, suffix: Vec<u8> },
    /// `Transfer-Encoding: chunked`, `len` filler bytes in 64 KiB chunks.
    Chunked { len: usize },
}

/// The answer to a raw request.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The status of the first response line.
    pub(crate) status: u16,
    /// The body as text (lossy), as far as it was read.
    pub(crate) body: String,
}

/// Sends `head_lines` (request line and headers, without the blank line) plus the client
/// token and `body`, and reads the response.
///
/// # Errors
/// What went wrong before a status line was read: the connection refused, reset or closed
/// without an answer, or the client's timeout.
pub(crate) async fn exchange(
    addr: &str,
    head_lines: &[String],
    body: RawBody,
) -> Result<RawAnswer, String> {
    let socket = TcpStream::connect(addr).await.map_err(|error| format!("connect: {error}"))?;
    let (mut reader, mut writer) = socket.into_split();
    let mut head = head_lines.join("\r\n");
    head.push_str(&format!("\r\nHost: {addr}\r\nAuthorization: Bearer {CLIENT}\r\n"));
    match &body {
        RawBody::Empty => head.push_str("Content-Length: 0\r\n"),
        RawBody::Sized { prefix, len, suffix } => {
            head.push_str(&format!("Content-Length: {}\r\n", prefix.len() + len + suffix.len()));
        }
        RawBody::Chunked { .. } => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("Connection: close\r\n\r\n");
    let writer_task = tokio::spawn(async move {
        static FILLER: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        writer.write_all(head.as_bytes()).await?;
        match body {
            RawBody::Empty => {}
            RawBody::Sized { prefix, mut len, suffix } => {
                writer.write_all(&prefix).await?;
                while len > 0 {
                    let n_bytes = len.min(FILLER.len());
                    writer.write_all(&FILLER[..n_bytes]).await?;
                    len -= n_bytes;
                }
                writer.write_all(&suffix).await?;
            }
            RawBody::Chunked { mut len } => {
                while len > 0 {
                    let n_bytes = len.min(FILLER.len());
                    writer.write_all(format!("{n_bytes:x}\r\n").as_bytes()).await?;
                    writer.write_all(&FILLER[..n_bytes]).await?;
                    writer.write_all(b"\r\n").await?;
                    len -= n_bytes;
                }
                writer.write_all(b"0\r\n\r\n").await?;
            }
        }
        writer.flush().await?;
        // Keep the write half open: a server answering early is read to its end below.
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0_u8; 16 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    received.extend_from_slice(&buffer[..n]);
                    if response_complete(&received) {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error),
            }
        }
    };
    let read = tokio::time::timeout(CLIENT_TIMEOUT, reading).await;
    writer_task.abort();
    let status = std::str::from_utf8(received.get(..12).unwrap_or_default())
        .ok()
        .and_then(|line| line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok());
    match (status, read) {
        (Some(status), _) => {
            let body = received
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
                .map(|at| String::from_utf8_lossy(&received[at + 4..]).into_owned())
                .unwrap_or_default();
            Ok(RawAnswer { status, body })
        }
        (None, Err(_)) => Err(format!("no answer within {CLIENT_TIMEOUT:?}")),
        (None, Ok(Err(error))) => Err(format!("no answer: {error}")),
        (None, Ok(Ok(()))) => Err(format!(
            "closed without an answer after {} bytes: {:?}",
            received.len(),
            String::from_utf8_lossy(&received[..received.len().min(200)])
        )),
    }
}

/// Whether `received` holds a whole response with a `Content-Length` body.
fn response_complete(received: &[u8]) -> bool {
    let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    length.is_some_and(|length| received.len() >= end + 4 + length)
}
