//! Key vault: API keys sealed with AES-256-GCM at rest, and key sources from the environment.
//!
//! Being built: see the open issue that names this crate.
