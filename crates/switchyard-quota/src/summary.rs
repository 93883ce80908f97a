//! What the ledger reports: per limit, per candidate and per provider, with the
//! provider-level status the router also uses as its request errors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_core::{KeyId, ModelId, ProviderId};

use crate::learned::LearnedRecord;
use crate::limit::Unit;
use crate::state::KeyStatus;

/// One limit's use now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitSummary {
    /// What it counts.
    pub unit: Unit,
    /// The limit's name (`requests/day-America/Los_Angeles`).
    pub limit_name: String,
    /// Counted now.
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// What is left.
    pub remaining: u64,
    /// `used / limit` in percent.
    pub percent: f64,
    /// When the count is next zero (ISO 8601 when serialized); `None` when nothing is
    /// counted.
    pub resets_at: Option<DateTime<Utc>>,
    /// For a limit the ledger learned from 429s rather than was told: how and from what.
    /// `None` for declared limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedRecord>,
}

/// One candidate's (key and model's) state and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeySummary {
    /// The key.
    pub key: KeyId,
    /// The model.
    pub model: ModelId,
    /// The quota group counted.
    pub group: String,
    /// The model or shared pool counted.
    pub pool: ModelId,
    /// The key's state.
    pub status: KeyStatus,
    /// Whether a one-request call could be admitted now.
    pub available: bool,
    /// When it may be admitted again, if it may not now and that is known.
    pub available_at: Option<DateTime<Utc>>,
    /// Each configured limit.
    pub limits: Vec<LimitSummary>,
}

/// A provider's overall state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderStatus {
    /// Every key can serve.
    Available {
        /// Keys known.
        keys: usize,
    },
    /// Some keys are out (over quota, cooling, invalid): degraded but serving.
    PartialQuota {
        /// Keys that can serve.
        available: usize,
        /// Keys known.
        keys: usize,
    },
    /// No key can serve now; the first returns at `earliest_reset`.
    QuotaExceeded {
        /// The earliest known time a key returns.
        earliest_reset: Option<DateTime<Utc>>,
    },
    /// Every key is invalid.
    InvalidKeys,
}

impl ProviderStatus {
    /// The status code: `AVAILABLE`, `PARTIAL_QUOTA`, `QUOTA_EXCEEDED`, `INVALID_KEYS`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Available { .. } => "AVAILABLE",
            Self::PartialQuota { .. } => "PARTIAL_QUOTA",
            Self::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Self::InvalidKeys => "INVALID_KEYS",
        }
    }

    /// The status of a provider whose keys are described by `keys`.
    pub fn of(keys: &[KeySummary]) -> Self {
        let mut names: Vec<&KeyId> = keys.iter().map(|key| &key.key).collect();
        names.sort();
        names.dedup();
        let n_keys = names.len();
        let available = names
            .iter()
            .filter(|name| keys.iter().any(|key| &key.key == **name && key.available))
            .count();
        let invalid = names
            .iter()
            .filter(|name| {
                keys.iter()
                    .filter(|key| &key.key == **name)
                    .all(|key| matches!(key.status.state, crate::state::KeyState::Invalid))
            })
            .count();
        if n_keys > 0 && invalid == n_keys {
            Self::InvalidKeys
        } else if available == n_keys {
            Self::Available { keys: n_keys }
        } else if available == 0 {
            let earliest_reset = keys.iter().filter_map(|key| key.available_at).min();
            Self::QuotaExceeded { earliest_reset }
        } else {
            Self::PartialQuota { available, keys: n_keys }
        }
    }
}

/// A provider's status and its candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderSummary {
    /// The provider.
    pub provider: ProviderId,
    /// Its overall state.
    pub status: ProviderStatus,
    /// Each candidate the ledger knows, by key then model.
    pub keys: Vec<KeySummary>,
}
