//! Per-key quota ledger: limits, windows, resets and cooldowns.
//!
//! Being built: see the open issue that names this crate.
