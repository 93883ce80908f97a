//! Per-key quota bookkeeping. Before a call, [`QuotaLedger::admit`] reserves a candidate's
//! estimated cost or says why it may not run and until when; after it,
//! [`QuotaLedger::settle`] keeps the real usage, [`QuotaLedger::observe`] what the provider's
//! headers said, and [`QuotaLedger::record_error`] what its error means for the key: a
//! cooldown, a spent daily quota, an invalid key.
//!
//! Limits are counted per quota group (one key, or keys declared to share a project or
//! organization) and per model or shared pool of models, over sliding windows, refilling
//! buckets or calendar days in a provider's own time zone. [`MemoryLedger`] keeps them in
//! memory with one lock per bucket; [`WriteBehind`] saves them to a [`LedgerStore`]; the
//! Redis ledger shares them between processes. See `docs/quota.md` for the model.
//!
//! This crate never sees a secret (keys are [`KeyId`](switchyard_core::KeyId)s), makes no
//! network call and ranks no candidate. It never reads the system time: every window runs on
//! the [`Clock`](switchyard_core::Clock) it was given.

mod bucket;
mod config;
mod error;
mod estimate;
mod learned;
mod ledger;
mod limit;
mod memory;
mod meter;
mod permit;
mod persist;
mod policy;
pub mod presets;
mod state;
mod summary;
mod write_behind;

pub use config::{
    DEFAULT_TRANSIT, DayBoundary, ModelMatch, ModelQuota, Placement, ProviderQuota, QuotaConfig,
    QuotaGroup, default_backoff,
};
pub use error::{QuotaError, Refusal};
pub use estimate::Estimate;
pub use learned::{
    LearnedKind, LearnedRecord, Lesson, MAX_LEARNED, fixed_window, learn_shared, learned_wait,
    lesson,
};
pub use ledger::QuotaLedger;
pub use limit::{Limit, Unit, Window, day_start, next_midnight};
pub use memory::{MemoryLedger, QuotaHandle};
pub use permit::Permit;
pub use persist::{
    BucketRecord, HoldRecord, KeyHoldKind, KeyRecord, LedgerSnapshot, LedgerStore, MeterRecord,
};
pub use policy::{Verdict, reason, verdict};
pub use state::{KeyState, KeyStatus};
pub use summary::{KeySummary, LimitSummary, ProviderStatus, ProviderSummary};
pub use write_behind::WriteBehind;
