//! Ollama native /api/chat adapter.
//!
//! Being built: see the open issue that names this crate.
