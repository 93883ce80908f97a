//! The Redis ledger's one error enum. None of its messages contains the Redis URL, which may
//! carry a password.

use std::time::Duration;

/// Why the shared ledger could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisLedgerError {
    /// The Redis URL cannot be used.
    #[error("invalid redis url")]
    Url {
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// Redis could not be reached (refused, reset, unresolvable).
    #[error("redis unreachable during {op}")]
    Unreachable {
        /// What the ledger was doing.
        op: &'static str,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("redis did not answer {op} within {}ms", .timeout.as_millis())]
    Timeout {
        /// What the ledger was doing.
        op: &'static str,
        /// The time allowed.
        timeout: Duration,
    },
    /// Redis failed moments ago; calls are not sent until the retry time, so a dead server
    /// costs each caller nothing rather than a timeout.
    #[error("redis marked down after a failure; retrying in {}ms", .retry_in.as_millis())]
    Down {
        /// How long until the next attempt to reach it.
        retry_in: Duration,
    },
    /// Redis answered with an error.
    #[error("redis failed {op}")]
    Command {
        /// What the ledger was doing.
        op: &'static str,
        /// The error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered something the ledger does not understand.
    #[error("unexpected redis reply to {op}: {detail}")]
    Reply {
        /// What the ledger was doing.
        op: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl RedisLedgerError {
    /// Whether Redis could not be reached or did not answer (as opposed to answering badly).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Down { .. } => true,
            Self::Url { .. } | Self::Command { .. } | Self::Reply { .. } => false,
        }
    }
}
