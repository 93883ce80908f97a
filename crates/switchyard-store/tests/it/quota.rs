//! Quota counters and key states survive a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::America::Los_Angeles;
use rusqlite::Connection;
use switchyard_core::{Candidate, ErrorKind, LimitScope, ManualClock, ProviderError, Usage};
use switchyard_quota::{
    DayBoundary, Estimate, KeyState, KeyStatus, LedgerStore, Limit, MemoryLedger, ModelQuota,
    ProviderQuota, QuotaConfig, WriteBehind,
};
use switchyard_store::{SqliteStore, StoreError};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("date").to_utc()
}

fn config() -> QuotaConfig {
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "gemini".into(),
            day: DayBoundary::Midnight(Los_Angeles),
            models: vec![ModelQuota::every_model(vec![
                Limit::per_minute(100),
                Limit::requests_per_day(10, Los_Angeles),
                Limit::tokens_per_day(10_000, Los_Angeles),
            ])],
        }],
        ..QuotaConfig::default()
    }
}

fn ledger(clock: &ManualClock) -> Arc<MemoryLedger> {
    Arc::new(MemoryLedger::new(Arc::new(clock.clone()), config()))
}

fn call(ledger: &MemoryLedger, candidate: &Candidate, tokens: u32) -> bool {
    match ledger.try_admit(candidate, Estimate::new(u64::from(tokens), 0)) {
        Ok(permit) => {
            ledger.settle_now(permit, &Usage::new(tokens, 0));
            true
        }
        Err(_) => false,
    }
}

fn counts(ledger: &MemoryLedger, candidate: &Candidate) -> Vec<(String, u64)> {
    ledger.register(candidate);
    let summary = ledger.summary_now(&candidate.provider);
    let row = summary
        .keys
        .iter()
        .find(|row| row.key == candidate.key && row.model == candidate.model)
        .expect("candidate known");
    row.limits.iter().map(|limit| (limit.limit_name.clone(), limit.used)).collect()
}

struct Scene {
    busy: Candidate,
    cooled: Candidate,
    invalid: Candidate,
    broke: Candidate,
}

fn scene() -> Scene {
    Scene {
        busy: Candidate::new("gemini", "g1", "gemini-2.5-flash"),
        cooled: Candidate::new("gemini", "g2", "gemini-2.5-flash"),
        invalid: Candidate::new("gemini", "g3", "gemini-2.5-flash"),
        broke: Candidate::new("gemini", "g4", "gemini-2.5-flash"),
    }
}

fn play(ledger: &MemoryLedger, scene: &Scene) {
    for _ in 0..7 {
        assert!(call(ledger, &scene.busy, 300));
    }
    let cooldown =
        ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "gemini", "")
            .with_status(429)
            .with_retry_after(Some(Duration::from_secs(600)));
    ledger.record_error_now(&scene.cooled, &cooldown);
    let invalid =
        ProviderError::new(ErrorKind::InvalidKey, "gemini", "API_KEY_INVALID").with_status(400);
    ledger.record_error_now(&scene.invalid, &invalid);
    let mut broke = ProviderError::new(ErrorKind::BillingStopped, "gemini", "").with_status(402);
    broke.resets_at = Some(at("2026-02-01T00:00:00Z"));
    ledger.record_error_now(&scene.broke, &broke);
}

fn statuses(ledger: &MemoryLedger, scene: &Scene) -> Vec<KeyStatus> {
    [&scene.busy, &scene.cooled, &scene.invalid, &scene.broke]
        .map(|c| ledger.status_now(c))
        .to_vec()
}

#[test]
fn counts_and_key_states_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-01-15T18:00:00Z"));
    let scene = scene();

    let before = ledger(&clock);
    let writer = WriteBehind::start(
        Arc::clone(&before),
        SqliteStore::open(&path).expect("open"),
        Duration::from_secs(1),
    )
    .expect("writer");
    play(&before, &scene);
    let counts_before = counts(&before, &scene.busy);
    let statuses_before = statuses(&before, &scene);
    // Dropping the writer saves once more and stops; dropping the ledger drops all state.
    drop(writer);
    drop(before);

    clock.advance(Duration::from_secs(5));
    let mut store = SqliteStore::open(&path).expect("reopen");
    let after = ledger(&clock);
    after.restore(&store.load().expect("load"));
    assert_eq!(counts(&after, &scene.busy), counts_before);
    assert_eq!(counts_before[1], ("requests/day-America/Los_Angeles".to_owned(), 7));
    assert_eq!(counts_before[2], ("tokens/day-America/Los_Angeles".to_owned(), 2_100));
    assert_eq!(statuses(&after, &scene), statuses_before);
    assert!(matches!(statuses_before[1].state, KeyState::CoolingDown { .. }));
    assert_eq!(statuses_before[2].state, KeyState::Invalid);
    assert_eq!(
        statuses_before[3].state,
        KeyState::BillingStopped { until: Some(at("2026-02-01T00:00:00Z")) }
    );
    let admitted: Vec<bool> = (0..4).map(|_| call(&after, &scene.busy, 1)).collect();
    assert_eq!(admitted, [true, true, true, false], "7 of 10 were spent before the restart");
}

#[test]
fn flush_saves_now_and_a_reenabled_key_is_saved_as_available() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-01-15T18:00:00Z"));
    let scene = scene();
    let before = ledger(&clock);
    let writer = WriteBehind::start(
        Arc::clone(&before),
        SqliteStore::open(&path).expect("open"),
        Duration::from_secs(3600),
    )
    .expect("writer");
    play(&before, &scene);
    writer.flush().expect("flush");
    let mut reader = SqliteStore::open(&path).expect("second connection");
    let saved = reader.load().expect("load");
    let key = saved.keys.iter().find(|key| key.key.as_str() == "g3").expect("g3 saved");
    assert!(key.hold.is_some(), "saved before any interval passed");

    before.reenable_now(&"gemini".into(), &"g3".into());
    writer.flush().expect("flush");
    let saved = reader.load().expect("load");
    let key = saved.keys.iter().find(|key| key.key.as_str() == "g3").expect("g3 saved");
    assert_eq!(key.hold, None);
    drop(writer);

    let after = ledger(&clock);
    after.restore(&reader.load().expect("load"));
    assert_eq!(after.status_now(&scene.invalid).state, KeyState::Available);
}

#[test]
fn a_damaged_row_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut store = SqliteStore::open(&path).expect("open");
    let conn = Connection::open(&path).expect("raw");
    conn.execute("INSERT INTO quota_key VALUES ('gemini', 'g1', 'frozen', 0, NULL, 'x', NULL)", [])
        .expect("insert");
    match store.load() {
        Err(StoreError::Damaged { what, detail }) => {
            assert_eq!(what, "quota_key");
            assert!(detail.contains("frozen"), "{detail}");
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
}

#[test]
fn a_failed_save_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-01-15T18:00:00Z"));
    let scene = scene();
    let before = ledger(&clock);
    let writer = WriteBehind::start(
        Arc::clone(&before),
        SqliteStore::open(&path).expect("open"),
        Duration::from_secs(3600),
    )
    .expect("writer");
    play(&before, &scene);
    // Another connection takes the table away: the next save fails for real.
    let raw = Connection::open(&path).expect("raw");
    raw.execute_batch("ALTER TABLE quota_key RENAME TO quota_key_away").expect("rename");
    let error = writer.flush().expect_err("the save fails");
    assert!(matches!(error, switchyard_quota::QuotaError::Store { .. }), "{error}");
    raw.execute_batch("ALTER TABLE quota_key_away RENAME TO quota_key").expect("rename back");
    writer.flush().expect("the retry saves everything");
    drop(writer);
    let after = ledger(&clock);
    after.restore(&SqliteStore::open(&path).expect("reopen").load().expect("load"));
    assert_eq!(counts(&after, &scene.busy), counts(&before, &scene.busy));
    assert_eq!(statuses(&after, &scene), statuses(&before, &scene));
}

#[test]
fn a_learned_limit_survives_a_restart_in_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-01-15T18:00:00Z"));
    // Nothing declared: the limit can only be learned.
    let undeclared =
        || Arc::new(MemoryLedger::new(Arc::new(clock.clone()), QuotaConfig::default()));
    let key = Candidate::new("groq", "k1", "llama");
    let before = undeclared();
    let writer = WriteBehind::start(
        Arc::clone(&before),
        SqliteStore::open(&path).expect("open"),
        Duration::from_secs(3600),
    )
    .expect("writer");
    for _ in 0..3 {
        assert!(call(&before, &key, 10));
        clock.advance(Duration::from_secs(1));
    }
    let limited =
        ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "groq", "")
            .with_status(429)
            .with_retry_after(Some(Duration::from_secs(57)));
    before.record_error_now(&key, &limited);
    writer.flush().expect("flush");
    drop(writer);
    drop(before);

    let mut store = SqliteStore::open(&path).expect("reopen");
    let saved = store.load().expect("load");
    let learned = &saved.buckets[0].learned;
    assert_eq!(learned.len(), 1, "{saved:?}");
    assert_eq!((learned[0].limit, learned[0].window_ms), (3, 60_000));
    assert_eq!(learned[0].hint.as_deref(), Some("retry after 57.0s"));

    clock.advance(Duration::from_secs(120));
    let after = undeclared();
    after.restore(&saved);
    after.register(&key);
    let summary = after.summary_now(&"groq".into());
    let limit = summary.keys[0].limits.iter().find(|limit| limit.learned.is_some());
    assert_eq!(
        limit.map(|limit| (limit.limit, limit.limit_name.as_str())),
        Some((3, "requests/learned-sliding-60000ms"))
    );
    let admitted: Vec<bool> = (0..4).map(|_| call(&after, &key, 1)).collect();
    assert_eq!(admitted, [true, true, true, false], "admits against the reloaded limit");
}
