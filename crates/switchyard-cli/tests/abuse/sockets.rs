//! 1,000 idle sockets and slow-header clients: a normal request is still served while they
//! are held, and the server closes them once its header-read timeout has passed.

use std::time::Duration;

use serde_json::json;
use switchyard_mock::MockUpstream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::harness::{
    Answer, Gateway, Workdir, chat, client, echoed, ensure_open_files, millis, mock, now, pause,
    post, report, secret, start,
};

const N_IDLE: usize = 1000;
const N_SLOW: usize = 20;
/// How long the server has, after the last socket opened, to close them all: the 2 s
/// header-read timeout of the config plus a wide margin for a loaded machine.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
client_tokens = ["${{ABUSE_CLIENT}}"]
header_read_timeout_secs = 2
idle_timeout_secs = 2

[[providers]]
name = "mockA"
kind = "openai"
base_url = "{base_url}"
keys = ["${{KEY_A}}"]
models = ["gpt-4o-mini"]

[[routes]]
name = "default"
targets = ["mockA/gpt-4o-mini"]
"#
    )
}

/// How a held connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The server closed it (EOF or reset), after sending these many bytes.
    Closed { n_bytes: usize },
    /// Still open at the deadline.
    Open,
}

/// Reads until the server closes the connection, or the deadline.
async fn until_closed(mut socket: TcpStream, deadline: std::time::Instant) -> Ended {
    let mut n_bytes = 0;
    let mut buffer = [0_u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(now());
        match tokio::time::timeout(left, socket.read(&mut buffer)).await {
            Err(_) => return Ended::Open,
            Ok(Ok(0) | Err(_)) => return Ended::Closed { n_bytes },
            Ok(Ok(n)) => n_bytes += n,
        }
    }
}

/// A client that sends a request line and then one header line a second, never finishing
/// its headers; ends when the server closes the connection or at the deadline.
async fn slow_header_client(addr: String, deadline: std::time::Instant) -> Ended {
    let Ok(socket) = TcpStream::connect(&addr).await else { return Ended::Closed { n_bytes: 0 } };
    let (mut reader, mut writer) = socket.into_split();
    let writing = async move {
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\n");
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for line_idx in 0_u64.. {
            pause(Duration::from_secs(1)).await;
            if writer.write_all(format!("X-Slow-{line_idx}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    };
    let reading = async move {
        let mut n_bytes = 0;
        let mut buffer = [0_u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(now());
            match tokio::time::timeout(left, reader.read(&mut buffer)).await {
                Err(_) => return Ended::Open,
                Ok(Ok(0) | Err(_)) => return Ended::Closed { n_bytes },
                Ok(Ok(n)) => n_bytes += n,
            }
        }
    };
    tokio::select! {
        ended = reading => ended,
        // A write that fails means the server closed; the reader then sees it too.
        () = writing => Ended::Closed { n_bytes: 0 },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_sockets_do_not_block_service_and_are_closed() {
    // Both ends of every socket live on this machine: the suite's and the gateway's.
    let needed = 2 * (N_IDLE + N_SLOW) as u64 + 512;
    let limit = ensure_open_files(needed);
    assert!(
        limit >= needed,
        "the open-files limit ({limit}) is too low for {N_IDLE} sockets on each side; raise `ulimit -n`"
    );
    let upstream = start(mock(MockUpstream::openai(), &["a1"])).await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let gateway = Gateway::start(&workdir, &[("KEY_A", secret("a1"))]);
    let addr = gateway.addr().to_owned();

    let opening = now();
    let mut idle = Vec::with_capacity(N_IDLE);
    let mut connect_errors = Vec::new();
    for _ in 0..N_IDLE {
        match TcpStream::connect(&addr).await {
            Ok(socket) => idle.push(socket),
            Err(error) => connect_errors.push(error.to_string()),
        }
    }
    let opened_in = now() - opening;
    let slow_deadline = now() + CLOSE_WITHIN + Duration::from_secs(10);
    let mut slow = JoinSet::new();
    for _ in 0..N_SLOW {
        slow.spawn(slow_header_client(addr.clone(), slow_deadline));
    }

    // A normal request while all of them are held.
    let asked = now();
    let answer = post(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("default", "still here", false),
    )
    .await;
    let latency = now() - asked;

    let close_deadline = now() + CLOSE_WITHIN;
    let mut closing = JoinSet::new();
    for socket in idle.drain(..) {
        closing.spawn(until_closed(socket, close_deadline));
    }
    let (mut idle_closed, mut idle_open, mut idle_answered) = (0, 0, 0);
    while let Some(ended) = closing.join_next().await {
        match ended.expect("a reader task") {
            Ended::Closed { n_bytes } => {
                idle_closed += 1;
                if n_bytes > 0 {
                    idle_answered += 1;
                }
            }
            Ended::Open => idle_open += 1,
        }
    }
    let idle_closed_after = now() - opening;
    let (mut slow_closed, mut slow_open) = (0, 0);
    while let Some(ended) = slow.join_next().await {
        match ended.expect("a slow client task") {
            Ended::Closed { .. } => slow_closed += 1,
            Ended::Open => slow_open += 1,
        }
    }
    let panics = gateway.panics();
    let (status, served_by_echo) = match &answer {
        Answer::Done { status, body, .. } => {
            let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            (Some(*status), body["choices"][0]["message"]["content"] == echoed("still here"))
        }
        _ => (None, false),
    };
    report(
        "idle_and_slow_sockets",
        json!({
            "idle_sockets_held": N_IDLE - connect_errors.len(), "connect_errors": connect_errors.len(),
            "slow_header_clients": N_SLOW, "opened_in_ms": millis(opened_in),
            "normal_request_status": status, "normal_request_latency_ms": millis(latency),
            "idle_closed_by_server": idle_closed, "idle_still_open": idle_open,
            "idle_closed_with_a_response": idle_answered,
            "idle_all_ended_within_ms": millis(idle_closed_after),
            "slow_closed_by_server": slow_closed, "slow_still_open": slow_open,
            "panics": panics,
        }),
    );
    assert!(
        connect_errors.is_empty(),
        "connects refused: {:?}",
        &connect_errors[..connect_errors.len().min(3)]
    );
    assert!(
        matches!(answer, Answer::Done { status: 200, .. }) && served_by_echo,
        "the normal request was not served while sockets were held: {answer:?}"
    );
    assert_eq!(idle_open, 0, "idle sockets the server left open after {CLOSE_WITHIN:?}");
    assert_eq!(slow_open, 0, "slow-header clients the server left open");
    assert_eq!(panics, 0, "panics in the gateway's log");
    gateway.assert_no_panic();
}
