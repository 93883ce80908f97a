//! The schema's versions, oldest first. A file's `PRAGMA user_version` is the number of
//! migrations applied; [`crate::SqliteStore::open`] applies the rest, each in its own
//! transaction. Never edit a released migration: append a new one. A new kind of state adds
//! its migration here, at the end of [`MIGRATIONS`]: the SQL lives in this module, not in the
//! module that reads and writes the tables, so the schema depends on nothing else in the
//! crate.

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
    QUOTA,
    STATS,
    ANALYTICS,
    ANALYTICS_COST,
    SPEND,
    ADMIN,
    QUOTA_LEARNED,
    KEY_LIFECYCLE,
    ANALYTICS_TAGS,
];

/// Schema version 1: the quota tables.
const QUOTA: Migration = Migration {
    name: "quota",
    sql: "
        CREATE TABLE quota_bucket (
            provider TEXT NOT NULL,
            grp TEXT NOT NULL,
            pool TEXT NOT NULL,
            strikes INTEGER NOT NULL,
            changed_at_ms INTEGER,
            cooldown_since_ms INTEGER,
            cooldown_until_ms INTEGER,
            cooldown_reason TEXT,
            exhausted_since_ms INTEGER,
            exhausted_until_ms INTEGER,
            exhausted_reason TEXT,
            PRIMARY KEY (provider, grp, pool)
        ) WITHOUT ROWID;
        CREATE TABLE quota_meter (
            provider TEXT NOT NULL,
            grp TEXT NOT NULL,
            pool TEXT NOT NULL,
            name TEXT NOT NULL,
            used INTEGER NOT NULL,
            as_of_ms INTEGER NOT NULL,
            day_started_ms INTEGER,
            slots TEXT NOT NULL,
            PRIMARY KEY (provider, grp, pool, name)
        ) WITHOUT ROWID;
        CREATE TABLE quota_key (
            provider TEXT NOT NULL,
            key_id TEXT NOT NULL,
            hold TEXT,
            since_ms INTEGER,
            until_ms INTEGER,
            reason TEXT,
            changed_at_ms INTEGER,
            PRIMARY KEY (provider, key_id)
        ) WITHOUT ROWID;
    ",
};

/// Schema version 2: the learned scores.
const STATS: Migration = Migration {
    name: "score",
    sql: "
        CREATE TABLE score_snapshot (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            snapshot TEXT NOT NULL,
            n_candidates INTEGER NOT NULL
        );
    ",
};

/// Schema version 3: the analytics event log.
const ANALYTICS: Migration = Migration {
    name: "analytics",
    sql: "
        CREATE TABLE analytics_event (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('request', 'attempt')),
            request_id TEXT NOT NULL,
            client TEXT,
            route TEXT NOT NULL,
            provider TEXT,
            key_id TEXT,
            model TEXT,
            success INTEGER NOT NULL,
            error_class TEXT,
            quota_error INTEGER NOT NULL,
            status INTEGER,
            latency_ms REAL NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost REAL NOT NULL
        );
        CREATE INDEX analytics_event_at ON analytics_event (at_ms);
        CREATE INDEX analytics_event_key_at ON analytics_event (key_id, at_ms);
    ",
};

/// Schema version 4: each row's cost as known or unknown. `cost_usd` is NULL when the cost is
/// not known (an unpriced model); the older `cost` column stays, holding 0 for those, for
/// builds that still read it. Rows written before keep their cost.
const ANALYTICS_COST: Migration = Migration {
    name: "analytics cost_usd",
    sql: "
        ALTER TABLE analytics_event ADD COLUMN cost_usd REAL;
        UPDATE analytics_event SET cost_usd = cost;
    ",
};

/// Schema version 5: spend per day.
const SPEND: Migration = Migration {
    name: "spend",
    sql: "
        CREATE TABLE spend_day (
            day TEXT NOT NULL,
            scope TEXT NOT NULL CHECK (scope IN ('route', 'provider')),
            name TEXT NOT NULL,
            usd REAL NOT NULL,
            PRIMARY KEY (day, scope, name)
        ) WITHOUT ROWID;
    ",
};

/// Schema version 6: admin actions.
const ADMIN: Migration = Migration {
    name: "admin",
    sql: "
        CREATE TABLE admin_disabled_key (
            provider TEXT NOT NULL,
            key_id TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            PRIMARY KEY (provider, key_id)
        ) WITHOUT ROWID;
        CREATE TABLE admin_reset (
            provider TEXT NOT NULL,
            key_id TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            PRIMARY KEY (provider, key_id)
        ) WITHOUT ROWID;
    ",
};

/// Schema version 7: limits the quota ledger learned from 429s, one per bucket and scope,
/// with their evidence. Self-contained: it only adds a table.
const QUOTA_LEARNED: Migration = Migration {
    name: "quota learned limits",
    sql: "
        CREATE TABLE quota_learned (
            provider TEXT NOT NULL,
            grp TEXT NOT NULL,
            pool TEXT NOT NULL,
            scope TEXT NOT NULL CHECK (scope IN ('minute', 'day')),
            lim INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('sliding', 'fixed')),
            window_ms INTEGER NOT NULL,
            boundary_ms INTEGER,
            last_reset_ms INTEGER,
            learned_at_ms INTEGER NOT NULL,
            from_accepted INTEGER NOT NULL,
            hint TEXT,
            source TEXT NOT NULL,
            corrections INTEGER NOT NULL,
            PRIMARY KEY (provider, grp, pool, scope)
        ) WITHOUT ROWID;
    ",
};

/// Schema version 8: each key's lifecycle (first seen, last used, rotation alert sent) and the
/// append-only audit log of who read or changed a key. Self-contained: it only adds tables.
/// Neither holds a secret: keys are ids and fingerprints.
const KEY_LIFECYCLE: Migration = Migration {
    name: "key lifecycle and audit",
    sql: "
        CREATE TABLE key_lifecycle (
            provider TEXT NOT NULL,
            key_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            last_used_ms INTEGER,
            rotation_alerted_ms INTEGER,
            PRIMARY KEY (provider, key_id)
        ) WITHOUT ROWID;
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            provider TEXT,
            key_id TEXT,
            fingerprint TEXT,
            detail TEXT
        );
        CREATE INDEX audit_log_at ON audit_log (at_ms);
    ",
};

/// Schema version 9 (it touches nothing version 8 does): a request's
/// tags, stored as `,a,b,` so one tag is found as `,tag,` (tags hold no comma), `NULL` for
/// none.
const ANALYTICS_TAGS: Migration =
    Migration { name: "analytics tags", sql: "ALTER TABLE analytics_event ADD COLUMN tags TEXT;" };
