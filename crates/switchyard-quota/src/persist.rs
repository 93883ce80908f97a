//! Durable quota state: the records a [`LedgerStore`] keeps. The in-memory ledger exports
//! and restores them; `write_behind` saves them in the background.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::learned::LearnedRecord;
use switchyard_core::{KeyId, ModelId, ProviderId};

/// Everything (or everything changed) in a ledger at one time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerSnapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// One record per quota bucket (group and model or pool).
    pub buckets: Vec<BucketRecord>,
    /// One record per key.
    pub keys: Vec<KeyRecord>,
}

/// One quota bucket's counts and holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The provider.
    pub provider: ProviderId,
    /// The quota group.
    pub group: String,
    /// The model or shared pool.
    pub pool: ModelId,
    /// One record per configured limit.
    pub meters: Vec<MeterRecord>,
    /// The cooldown in force.
    pub cooldown: Option<HoldRecord>,
    /// The exhaustion in force.
    pub exhausted: Option<HoldRecord>,
    /// Successive 429s since the last success.
    pub strikes: u32,
    /// When its state last changed.
    pub changed_at: Option<DateTime<Utc>>,
    /// Limits learned from 429s (no more than one per scope).
    #[serde(default)]
    pub learned: Vec<LearnedRecord>,
}

/// One limit's count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterRecord {
    /// The limit's name, matched to the configuration on restore.
    pub name: String,
    /// The count at `as_of`.
    pub used: u64,
    /// When it was counted.
    pub as_of: DateTime<Utc>,
    /// For a calendar day: when the counted day began.
    pub day_started: Option<DateTime<Utc>>,
    /// For a sliding window: each non-empty slot's start and count.
    pub slots: Vec<(DateTime<Utc>, u64)>,
}

/// A state that lasts until a time or until re-enabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// When it ends; `None`: until re-enabled.
    pub until: Option<DateTime<Utc>>,
    /// Why it began.
    pub reason: String,
    /// When it began.
    pub since: DateTime<Utc>,
}

/// What holds a whole key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHoldKind {
    /// Invalid, revoked or forbidden.
    Invalid,
    /// The account cannot pay.
    BillingStopped,
}

impl KeyHoldKind {
    /// A stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::BillingStopped => "billing_stopped",
        }
    }

    /// The kind named by [`KeyHoldKind::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "invalid" => Some(Self::Invalid),
            "billing_stopped" => Some(Self::BillingStopped),
            _ => None,
        }
    }
}

/// One key's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The provider.
    pub provider: ProviderId,
    /// The key.
    pub key: KeyId,
    /// What holds it, if anything (`None` after it was re-enabled).
    pub hold: Option<(KeyHoldKind, HoldRecord)>,
    /// When its state last changed.
    pub changed_at: Option<DateTime<Utc>>,
}

/// Where quota state survives a restart. Saves are upserts: a record replaces the one with
/// the same identity (provider, group, pool; provider, key).
pub trait LedgerStore: Send + 'static {
    /// The store's own error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Everything saved.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn load(&mut self) -> Result<LedgerSnapshot, Self::Error>;

    /// Saves `snapshot`'s records, all or none.
    ///
    /// # Errors
    /// When the store cannot be written; nothing of `snapshot` is saved then.
    fn save(&mut self, snapshot: &LedgerSnapshot) -> Result<(), Self::Error>;
}
