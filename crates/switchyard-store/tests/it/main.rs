//! Integration tests of the SQLite store on real files in a temporary directory.
#![cfg(test)]

mod quota;
mod schema;
