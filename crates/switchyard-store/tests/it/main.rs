//! Integration tests of the SQLite store on real files in a temporary directory.
#![cfg(test)]

mod analytics;
mod kill9;
mod quota;
mod schema;
mod stats;
