//! The upstream of the end-to-end bench: the fastest `switchyard-mock` there is (OpenAI wire,
//! no latency, one valid key without limits, no request log), on `127.0.0.1:0`, in a process
//! of its own so its CPU and memory are not the gateway's or the client's.
//!
//! Prints `e2e-upstream: listening on http://127.0.0.1:PORT/v1` as its first line, then serves
//! until its standard input closes (its parent exited or let go), so it never outlives the
//! bench that started it.
//!
//! Usage: `e2e-upstream [SECRET]` (the key's secret, `sk-bench` by default).
#![allow(clippy::print_stdout, reason = "the first line tells the parent where we listen")]

use std::io::{Read as _, Write as _};

use anyhow::{Context, Result};
use switchyard_mock::{KeyScript, MockUpstream};

fn main() -> Result<()> {
    let secret = std::env::args().nth(1).unwrap_or_else(|| "sk-bench".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mock = MockUpstream::openai()
            .key(KeyScript::valid("bench", secret))
            // Benches keep no log: it would grow with every request and take a lock's worth
            // of copying each time. Counters stay exact.
            .log_limit(0)
            .start()
            .await
            .context("starting the mock upstream")?;
        println!("e2e-upstream: listening on {}", mock.base_url());
        std::io::stdout().flush().context("writing the address")?;
        // Serve until stdin reaches its end: a blocking read on a thread of its own.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .context("waiting for stdin to close")?;
        drop(mock);
        Ok(())
    })
}
