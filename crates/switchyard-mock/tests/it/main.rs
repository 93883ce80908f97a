//! The mock over real HTTP: what a client sees of its scripting.
#![cfg(test)]

mod anthropic;
mod gemini;
mod hints;
mod hostile;
mod ollama;
mod openai;
mod windows;
