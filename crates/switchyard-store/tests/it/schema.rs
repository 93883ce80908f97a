//! Opening files: fresh, already migrated, written by a newer build.

use rusqlite::Connection;
use switchyard_store::schema::MIGRATIONS;
use switchyard_store::{SqliteStore, StoreError};

#[test]
fn a_fresh_file_is_migrated_to_the_newest_version_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).expect("opens");
    let newest = i64::try_from(MIGRATIONS.len()).expect("fits");
    assert_eq!(store.schema_version().expect("version"), newest);
    drop(store);
    let again = SqliteStore::open(&path).expect("reopens without re-running migrations");
    assert_eq!(again.schema_version().expect("version"), newest);
}

#[test]
fn a_file_from_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let conn = Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("set version");
    drop(conn);
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (99, MIGRATIONS.len()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let conn = Connection::open(&path).expect("raw open");
    let version: i64 =
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("version");
    assert_eq!(version, 99);
}

#[test]
fn a_path_that_cannot_be_opened_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("state.db");
    let error = SqliteStore::open(&path).expect_err("no such directory");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("missing-dir"), "{error}");
}

#[test]
fn connections_opening_a_fresh_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let newest = i64::try_from(MIGRATIONS.len()).expect("fits");
    let n_threads = 6;
    let barrier = std::sync::Barrier::new(n_threads);
    let versions: Vec<i64> = std::thread::scope(|scope| {
        let opens: Vec<_> = (0..n_threads)
            .map(|idx| {
                let (path, barrier) = (&path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // The quota store and the analytics log, as the gateway opens them.
                    if idx % 2 == 0 {
                        SqliteStore::open(path).expect("opens").schema_version().expect("version")
                    } else {
                        let analytics = switchyard_store::Analytics::open(path).expect("opens");
                        assert!(analytics.is_empty().expect("reads"));
                        newest
                    }
                })
            })
            .collect();
        opens.into_iter().map(|open| open.join().expect("no panic")).collect()
    });
    assert_eq!(versions, vec![newest; n_threads]);
    assert_eq!(SqliteStore::open(&path).expect("opens").schema_version().expect("version"), newest);
}
