//! Integration tests of the vault on a real file system: round trips, damage, crashes
//! aside (those need the private rename hook and live in `src/vault.rs`), locking, secrets.
#![cfg(test)]

mod concurrency;
mod damage;
mod env;
mod files;
mod roundtrip;
mod secrets;
mod support;
