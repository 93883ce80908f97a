//! Integration tests of the Redis ledger against a real `redis-server` (started by
//! `cargo xtask test`, which sets `SWITCHYARD_TEST_REDIS_URL`).
#![cfg(test)]

mod headroom;
mod hostile;
mod learned;
mod shared;
mod support;
mod unavailable;
