//! Google Gemini generateContent adapter.
//!
//! Being built: see the open issue that names this crate.
