//! Criterion benches for Switchyard live in `benches/benches/`; run them with
//! `cargo xtask bench`. This library holds what several benches share, and what the
//! end-to-end bench's processes (`src/bin/e2e-*.rs`, driven by `cargo xtask bench e2e`) need.

pub mod latency;
