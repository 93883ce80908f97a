//! The schema's versions, oldest first. A file's `PRAGMA user_version` is the number of
//! migrations applied; [`crate::SqliteStore::open`] applies the rest, each in its own
//! transaction. Never edit a released migration: append a new one. A new kind of state adds
//! its module's migration at the end of [`MIGRATIONS`].

/// One step of the schema.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// A short name, for errors.
    pub name: &'static str,
    /// The SQL to run.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    crate::quota::MIGRATION,
    crate::stats::MIGRATION,
    crate::analytics::MIGRATION,
    crate::analytics::COST_MIGRATION,
    crate::spend::MIGRATION,
    crate::admin::MIGRATION,
];
