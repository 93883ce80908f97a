//! Anthropic Messages adapter.
//!
//! Being built: see the open issue that names this crate.
