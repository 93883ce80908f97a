//! Durable quota state: the records a [`LedgerStore`] keeps, and [`WriteBehind`], the
//! background thread that saves what changed at a fixed interval so admission never waits on
//! a disk.
//!
//! Loss bound: a process killed with `kill -9` loses the changes made after the last save
//! began: at most one `interval` plus the time one save takes.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_core::{KeyId, ModelId, ProviderId};

use crate::error::QuotaError;
use crate::memory::MemoryLedger;

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

enum Command {
    Flush(mpsc::Sender<Result<(), QuotaError>>),
    Stop,
}

/// Saves a [`MemoryLedger`]'s changes to a [`LedgerStore`] from a background thread every
/// `interval`, when asked, and once more when dropped.
#[derive(Debug)]
pub struct WriteBehind {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Starts saving `ledger`'s changes to `store` every `interval`.
    ///
    /// # Errors
    /// [`QuotaError::Store`] when the thread cannot be started.
    pub fn start<S: LedgerStore>(
        ledger: Arc<MemoryLedger>,
        mut store: S,
        interval: Duration,
    ) -> Result<Self, QuotaError> {
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("quota-write-behind".into())
            .spawn(move || {
                let mut save = || {
                    let snapshot = ledger.export(false);
                    if snapshot.buckets.is_empty() && snapshot.keys.is_empty() {
                        return Ok(());
                    }
                    store.save(&snapshot).map_err(|source| {
                        // Nothing is lost: the next save carries everything again.
                        ledger.mark_changed();
                        QuotaError::Store { source: Box::new(source) }
                    })
                };
                loop {
                    // Real time on purpose: this paces disk writes, not quota windows.
                    match inbox.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "quota state not saved; retrying");
                            }
                        }
                        Ok(Command::Flush(reply)) => {
                            drop(reply.send(save()));
                        }
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            if let Err(error) = save() {
                                tracing::warn!(%error, "quota state not saved at shutdown");
                            }
                            return;
                        }
                    }
                }
            })
            .map_err(|source| QuotaError::Store { source: Box::new(source) })?;
        Ok(Self { commands, thread: Some(thread) })
    }

    /// Saves what changed now and waits for it.
    ///
    /// # Errors
    /// [`QuotaError::Store`] when the save failed (the changes stay pending) or the thread
    /// is gone.
    pub fn flush(&self) -> Result<(), QuotaError> {
        let (reply, answer) = mpsc::channel();
        let gone = || QuotaError::Store { source: "write-behind thread stopped".into() };
        self.commands.send(Command::Flush(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.commands.send(Command::Stop));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("quota write-behind thread panicked");
        }
    }
}
