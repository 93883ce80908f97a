//! A quota ledger shared through Redis by several gateway processes.
//!
//! Being built: see the open issue that names this crate.
