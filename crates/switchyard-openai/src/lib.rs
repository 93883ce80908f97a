//! OpenAI Chat Completions adapter, with presets for OpenAI, Groq, Mistral, OpenRouter and any OpenAI-compatible server.
//!
//! Being built: see the open issue that names this crate.
