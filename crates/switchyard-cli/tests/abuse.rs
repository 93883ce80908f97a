//! The abuse and fault suite (issue 16, item 7): the real `switchyard serve` binary on
//! loopback, in front of `switchyard-mock` upstreams scripted to misbehave, driven by a
//! hostile client. One test per scenario; each prints its figures and appends them as one
//! JSON line to `<target>/abuse-report.jsonl`.
//!
//! Runs in `cargo xtask test` with the rest of the workspace, on a loaded 2-core machine:
//! every wait is bounded and fails with a message, every client call has a generous timeout
//! and one that reaches it counts as a hang, and no test asserts how fast something was.

// A crate root looks for its modules beside it; the suite's live in `tests/abuse/`.

#[path = "abuse/crash.rs"]
mod crash;
#[path = "abuse/dropped_streams.rs"]
mod dropped_streams;
#[path = "abuse/flood.rs"]
mod flood;
#[path = "abuse/harness.rs"]
mod harness;
#[path = "abuse/malformed.rs"]
mod malformed;
#[path = "abuse/oversize.rs"]
mod oversize;
#[path = "abuse/random_faults.rs"]
mod random_faults;
#[path = "abuse/raw.rs"]
mod raw;
#[path = "abuse/sockets.rs"]
mod sockets;
#[path = "abuse/upstream.rs"]
mod upstream;
