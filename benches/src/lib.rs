//! Criterion benches for Switchyard live in `benches/benches/`; run them with
//! `cargo xtask bench`. This library holds what several benches share.
