//! Integration tests of the in-memory quota ledger, all on a `ManualClock`.
#![cfg(test)]

mod concurrency;
mod errors;
mod extreme;
mod headers;
mod headroom;
mod learned;
mod persist;
mod props;
mod summary;
mod support;
mod windows;
