//! Durable state in embedded SQLite: quota counters, key states, learned scores.
//!
//! Being built: see the open issue that names this crate.
