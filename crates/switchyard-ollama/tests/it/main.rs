//! The Ollama adapter over real HTTP against `switchyard-mock` on loopback.
#![cfg(test)]

#[path = "../../../switchyard-core/tests/support/agreement.rs"]
mod agreement;
mod conformance;
mod errors;
mod fuzz;
mod hints;
mod hostile;
mod reasoning;
mod support;
mod tools;
mod wire_body;
