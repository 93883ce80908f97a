//! Integration tests of the SQLite store on real files in a temporary directory.
#![cfg(test)]

mod admin;
mod analytics;
mod kill9;
mod lifecycle;
mod quota;
mod schema;
mod spend;
mod stats;
