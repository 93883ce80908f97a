//! What the ledger says about a key now: available, cooling down, exhausted, invalid or
//! stopped for billing, with the reason and when that last changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A key's state for one model (or shared pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyState {
    /// May be used (limits permitting).
    Available,
    /// Its quota group got a 429; usable again at `until`.
    CoolingDown {
        /// When the cooldown ends.
        until: DateTime<Utc>,
    },
    /// Its quota for the period is spent; back at `until`, or when re-enabled if `None`.
    Exhausted {
        /// The reset.
        until: Option<DateTime<Utc>>,
    },
    /// The key is wrong, revoked or forbidden: unusable until replaced or re-enabled.
    Invalid,
    /// The account cannot pay; back at `until` (a named date), or when re-enabled if `None`.
    BillingStopped {
        /// When billing resumes, if the provider said.
        until: Option<DateTime<Utc>>,
    },
}

impl KeyState {
    /// A stable snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::CoolingDown { .. } => "cooling_down",
            Self::Exhausted { .. } => "exhausted",
            Self::Invalid => "invalid",
            Self::BillingStopped { .. } => "billing_stopped",
        }
    }

    /// When the state ends by itself, if it does.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::CoolingDown { until } => Some(*until),
            Self::Exhausted { until } | Self::BillingStopped { until } => *until,
            Self::Available | Self::Invalid => None,
        }
    }
}

/// A key's state with why and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// The state.
    pub state: KeyState,
    /// Why it is in that state (the error kind and status that put it there).
    pub reason: Option<String>,
    /// When the state last changed, if it ever did.
    pub changed_at: Option<DateTime<Utc>>,
}

impl KeyStatus {
    /// An available key that never changed state.
    pub fn available() -> Self {
        Self { state: KeyState::Available, reason: None, changed_at: None }
    }
}
