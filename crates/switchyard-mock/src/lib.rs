//! Simulated LLM upstreams on loopback that speak each provider's real wire format.
//!
//! Being built: see the open issue that names this crate.
