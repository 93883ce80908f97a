//! The facade: a [`Router`]-to-be that expands a route into candidates, admits them through
//! the quota ledger, ranks them with a strategy, calls the best, and falls back in a cascade
//! decided by each failure's classification.
//!
//! This crate joins the parts through their traits (`Provider`, `KeySource`, `QuotaLedger`,
//! `Scorer`) and never through another crate's internals. Being built: the pieces that stand
//! on `switchyard-core` alone come first — targets, circuit breakers, backoff.

pub mod backoff;
pub mod circuit;
pub mod target;

pub use backoff::Backoff;
pub use circuit::{CircuitBreaker, CircuitConfig, CircuitState, Gate};
pub use target::{Target, TargetError};
