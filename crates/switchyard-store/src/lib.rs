//! Durable state in one embedded SQLite file: quota counters and key states (through the
//! [`LedgerStore`](switchyard_quota::LedgerStore) trait), learned scores, analytics, money
//! spent per day (through [`SpendStore`](switchyard_core::SpendStore)), admin actions, each key's
//! lifecycle and the audit log of key access.
//!
//! Each kind of state is a module with its own tables and its own migration in
//! [`schema`]'s ordered list; [`SqliteStore::open`] brings any file up to the newest version.
//! The hot path never waits on this crate: the quota ledger saves through a write-behind
//! thread ([`switchyard_quota::WriteBehind`]).
//!
//! This crate never sees a secret (keys are ids) and makes no network call.

mod admin;
pub mod analytics;
mod db;
mod error;
mod lifecycle;
mod quota;
pub mod schema;
mod spend;
mod stats;

pub use admin::{AdminKeyAction, StoredAdminState};
pub use analytics::{
    Analytics, AnalyticsEvent, AnalyticsWriter, AnalyticsWriterConfig, ClientUsage, ErrorReport,
    ErrorRow, EventKind, HourlyReport, HourlyRow, KeyUsage, UsageReport,
};
pub use db::SqliteStore;
pub use error::StoreError;
pub use lifecycle::{
    AuditEntry, AuditRecord, AuditRetention, KeyLifecycle, KeySeen, MAX_AUDIT_TEXT,
};
pub use spend::{SPEND_RETENTION_DAYS, SqliteSpendStore};
