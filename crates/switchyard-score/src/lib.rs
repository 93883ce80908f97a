//! Scoring and learning: which provider, key and model works best.
//!
//! Being built: see the open issue that names this crate.
