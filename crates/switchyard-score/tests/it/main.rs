//! Integration tests of `switchyard-score` through its public API.
#![cfg(test)]

mod behaviour;
mod concurrency;
mod persistence;
mod props;
mod simulation;
mod support;
