//! A [`QuotaLedger`](switchyard_quota::QuotaLedger) kept in Redis, so several gateway
//! processes sharing the same keys share their counters, cooldowns and key states and
//! together never spend a key past its limit.
//!
//! Admission is one Lua script per attempt: it checks every hold, header gate and limit of
//! the candidate's quota bucket and takes what fits, atomically. Time comes from the
//! caller's [`Clock`](switchyard_core::Clock) and is passed into each script; Redis's own
//! clock only expires garbage (relative TTLs well past any window). When Redis cannot be
//! reached the ledger answers within its timeouts with a typed [`RedisLedgerError`], and
//! either fails closed or, if so configured, falls back to a local in-memory ledger.
//!
//! This crate never sees a secret (keys are ids; the Redis URL, which may hold a password,
//! is never printed) and ranks no candidate.

mod error;
mod headroom;
mod ledger;

pub use error::RedisLedgerError;
pub use ledger::{DEFAULT_INFLIGHT_LEASE, OnUnavailable, RedisLedger, RedisOptions};
