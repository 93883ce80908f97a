//! The OpenAI adapter over real HTTP against `switchyard-mock` on loopback.
#![cfg(test)]

mod conformance;
mod errors;
mod fuzz;
mod hints;
mod hostile;
mod presets;
mod support;
mod tools;
