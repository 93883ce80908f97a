//! Simulated LLM upstreams on loopback that speak each provider's real wire format.
//!
//! A [`MockUpstream`] is a real HTTP server bound to `127.0.0.1:0`. A test scripts it once,
//! protocol-independently: which keys are valid, invalid or revoked after N calls, each
//! key's quotas per minute and per calendar day (requests and tokens), latency, injected
//! faults (5xx, overload, a hang, a reset connection, malformed JSON, a stream cut mid-way or
//! mid-frame, a huge body, an endless stream, garbage frames),
//! and what a served call answers. A [`WireFormat`] renders the decisions in one provider's
//! words: its 429 bodies and headers, its invalid-key errors, its stream frames. Every
//! request is logged (headers, parsed body, key, outcome) and counted per key.
//!
//! Windows, latency and the log run on the [`Clock`](switchyard_core::Clock) the mock is
//! given, so a test that advances one `ManualClock` moves the mock's quotas together with
//! the code under test. A "day" is a calendar day in the mock's time zone, as providers
//! count it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchyard_mock::MockError> {
//! use switchyard_mock::{KeyScript, MockUpstream};
//! let mock = MockUpstream::openai()
//!     .key(KeyScript::valid("key-a", "sk-mock-a").requests_per_minute(3))
//!     .key(KeyScript::invalid("key-b", "sk-mock-b"))
//!     .start()
//!     .await?;
//! let base_url = mock.base_url(); // http://127.0.0.1:PORT/v1
//! # let _ = base_url; Ok(()) }
//! ```
//!
//! This crate is for tests, benches and the demo: it never reaches the network beyond
//! loopback and holds only the fake keys it is scripted with.

mod anthropic;
pub mod conformance;
mod embed;
mod gemini;
mod hostile;
mod ollama;
mod openai;
mod script;
mod server;
mod state;
mod wire;

pub use anthropic::AnthropicWire;
pub use embed::{DEFAULT_DIMENSIONS, MAX_DIMENSIONS, mock_embedding};
pub use gemini::GeminiWire;
pub use hostile::{ENDLESS_PACE, GARBAGE_LINE_BYTES};
pub use ollama::OllamaWire;
pub use openai::{Flavor, OpenAiWire};
pub use script::{
    Fault, FaultRule, HintStyle, KeyScript, Latency, Quotas, ReplyScript, WindowKind, WindowQuota,
};
pub use server::{MockBuilder, MockError, MockUpstream};
pub use state::{KeyCounts, Outcome, RecordedRequest};
pub use wire::{
    ChatSummary, Failure, MOCK_REASONING_TOKENS, Operation, Reply, StreamFrames, Unit, Window,
    WindowReading, WireFormat, WireResponse, bearer, format_go_duration,
};
