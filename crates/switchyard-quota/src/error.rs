//! Why the ledger refused a candidate, and the crate's one error enum.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_core::{Candidate, Classify, LimitScope, LimitUnit, NextStep};

use crate::limit::Unit;

/// Why a candidate may not run now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The group is cooling down after a 429.
    CoolingDown,
    /// The group's quota for the period is spent.
    Exhausted,
    /// The key is invalid or may not be used.
    Invalid,
    /// The account cannot pay.
    BillingStopped,
    /// A configured limit has no room for the request.
    Limit {
        /// What the limit counts.
        unit: Unit,
        /// The limit's name (`tokens/sliding-60000ms`).
        limit: String,
    },
    /// The provider's own headers say too little remains for the request.
    ProviderRemaining {
        /// What the header counts.
        unit: LimitUnit,
        /// Its window.
        scope: LimitScope,
        /// What it said remains, less what was admitted since.
        remaining: u64,
    },
    /// Too many attempts are in flight.
    Concurrency {
        /// The configured maximum.
        max: u32,
    },
    /// The request needs more than the limit allows at all; no wait will help.
    TooLarge {
        /// The limit's name.
        limit: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CoolingDown => f.write_str("cooling down"),
            Self::Exhausted => f.write_str("quota exhausted"),
            Self::Invalid => f.write_str("key invalid"),
            Self::BillingStopped => f.write_str("billing stopped"),
            Self::Limit { limit, .. } => write!(f, "limit {limit} reached"),
            Self::ProviderRemaining { unit, scope, remaining } => {
                write!(f, "provider reports {remaining} {unit:?} remaining ({scope})")
            }
            Self::Concurrency { max } => write!(f, "{max} attempts already in flight"),
            Self::TooLarge { limit } => write!(f, "request larger than limit {limit}"),
        }
    }
}

/// The quota crate's error.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The candidate may not run now.
    #[error("{candidate} refused: {reason}{}", until_text(.until))]
    Refused {
        /// The candidate.
        candidate: Candidate,
        /// Why.
        reason: Refusal,
        /// When it may run again, if that is known.
        until: Option<DateTime<Utc>>,
        /// How long from now that is.
        retry_after: Option<Duration>,
    },
    /// The shared ledger's backend (Redis) failed; the backend's own typed error is the
    /// source.
    #[error("quota backend {backend} failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The durable store failed to load or save.
    #[error("quota store failed")]
    Store {
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn until_text(until: &Option<DateTime<Utc>>) -> String {
    until.map(|until| format!(" until {}", until.to_rfc3339())).unwrap_or_default()
}

impl QuotaError {
    /// The refusal reason, if the ledger refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused { reason, .. } => Some(reason),
            Self::Backend { .. } | Self::Store { .. } => None,
        }
    }
}

impl Classify for QuotaError {
    fn next_step(&self) -> NextStep {
        match self {
            // Another key may have room.
            Self::Refused { .. } => NextStep::NextKey,
            // Without the shared ledger no candidate can be admitted safely.
            Self::Backend { .. } | Self::Store { .. } => NextStep::Stop,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            Self::Backend { .. } | Self::Store { .. } => None,
        }
    }
}
