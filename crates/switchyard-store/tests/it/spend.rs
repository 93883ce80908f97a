//! Spend per day in the state file: a day, a second day, a restart, an abrupt reopen.

use std::sync::Arc;

use chrono::NaiveDate;
use rusqlite::Connection;
use switchyard_core::{SpendDay, SpendError, SpendStore};
use switchyard_store::{SPEND_RETENTION_DAYS, SqliteSpendStore, SqliteStore, StoreError};

fn day(text: &str) -> NaiveDate {
    text.parse().expect("date")
}

fn spend(on: &str, routes: &[(&str, f64)], providers: &[(&str, f64)]) -> SpendDay {
    let map =
        |pairs: &[(&str, f64)]| pairs.iter().map(|&(name, usd)| (name.to_owned(), usd)).collect();
    SpendDay { day: Some(day(on)), per_route: map(routes), per_provider: map(providers) }
}

#[test]
fn a_day_saved_is_loaded_back_and_replaced_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteSpendStore::open(dir.path().join("state.db")).expect("opens");
    assert_eq!(store.load(day("2026-12-05")).expect("empty"), SpendDay::default());
    let first = spend("2026-12-05", &[("default", 0.25), ("fast", 1.5)], &[("groq", 1.75)]);
    store.save(&first).expect("saved");
    assert_eq!(store.load(day("2026-12-05")).expect("loads"), first);
    // A later save of the same day replaces it: a name no longer spent on goes.
    let later = spend("2026-12-05", &[("default", 0.5)], &[("groq", 0.5), ("openai", 0.125)]);
    store.save(&later).expect("saved");
    assert_eq!(store.load(day("2026-12-05")).expect("loads"), later);
}

#[test]
fn a_second_day_keeps_the_first_and_both_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let monday = spend("2026-12-07", &[("default", 2.0)], &[("groq", 2.0)]);
    let tuesday = spend("2026-12-08", &[("default", 0.5)], &[("openai", 0.5)]);
    {
        let store = SqliteSpendStore::open(&path).expect("opens");
        store.save(&monday).expect("saved");
        store.save(&tuesday).expect("saved");
    }
    let store = SqliteSpendStore::open(&path).expect("reopens");
    assert_eq!(store.load(day("2026-12-07")).expect("loads"), monday);
    assert_eq!(store.load(day("2026-12-08")).expect("loads"), tuesday);
    assert_eq!(store.load(day("2026-12-09")).expect("loads"), SpendDay::default());
    assert_eq!(store.days().expect("days"), [day("2026-12-07"), day("2026-12-08")]);
}

#[test]
fn a_save_survives_a_connection_that_is_never_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let saved = spend("2026-12-05", &[("default", 3.0)], &[("groq", 3.0)]);
    let store = SqliteSpendStore::open(&path).expect("opens");
    store.save(&saved).expect("saved");
    // Like a process killed mid-run: no close, no WAL checkpoint. (The real `kill -9` of a
    // child process is in `kill9`.)
    std::mem::forget(store);
    let reopened = SqliteSpendStore::open(&path).expect("reopens");
    assert_eq!(reopened.load(day("2026-12-05")).expect("loads"), saved);
}

#[test]
fn spend_shares_the_state_file_with_the_quota_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let quota = SqliteStore::open(&path).expect("quota store");
    let store = SqliteSpendStore::new(SqliteStore::open(&path).expect("second connection"));
    let saved = spend("2026-12-05", &[("default", 1.0)], &[]);
    store.save(&saved).expect("saved");
    drop(quota);
    assert_eq!(store.load(day("2026-12-05")).expect("loads"), saved);
}

#[test]
fn saves_from_several_threads_through_the_trait_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn SpendStore> =
        Arc::new(SqliteSpendStore::open(dir.path().join("state.db")).expect("opens"));
    std::thread::scope(|scope| {
        for idx in 0..4u32 {
            let store = Arc::clone(&store);
            scope.spawn(move || {
                let on = format!("2026-12-{:02}", idx + 1);
                store.save(&spend(&on, &[("default", f64::from(idx))], &[])).expect("saved");
            });
        }
    });
    for idx in 0..4u32 {
        let on = format!("2026-12-{:02}", idx + 1);
        assert_eq!(
            store.load(day(&on)).expect("loads"),
            spend(&on, &[("default", f64::from(idx))], &[])
        );
    }
}

#[test]
fn no_day_is_nothing_to_save_and_odd_amounts_do_not_fail_a_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteSpendStore::open(dir.path().join("state.db")).expect("opens");
    store.save(&SpendDay::default()).expect("nothing to do");
    assert_eq!(store.days().expect("days"), Vec::<NaiveDate>::new());
    store
        .save(&spend("2026-12-05", &[("default", f64::NAN)], &[("groq", f64::INFINITY)]))
        .expect("saved");
    assert_eq!(
        store.load(day("2026-12-05")).expect("loads"),
        spend("2026-12-05", &[("default", 0.0)], &[("groq", 0.0)])
    );
}

#[test]
fn days_past_the_retention_are_deleted_on_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteSpendStore::open(dir.path().join("state.db")).expect("opens");
    let today = day("2026-12-05");
    let kept = today - chrono::Days::new(SPEND_RETENTION_DAYS);
    let dropped = kept - chrono::Days::new(1);
    for old in [dropped, kept] {
        store.save(&spend(&old.to_string(), &[("default", 1.0)], &[])).expect("saved");
    }
    store.save(&spend("2026-12-05", &[("default", 1.0)], &[])).expect("saved");
    assert_eq!(store.days().expect("days"), [kept, today]);
}

#[test]
fn a_damaged_row_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = SqliteSpendStore::open(&path).expect("opens");
    store.save(&spend("2026-12-05", &[("default", 1.0)], &[])).expect("saved");
    let raw = Connection::open(&path).expect("raw");
    raw.execute("INSERT INTO spend_day VALUES ('not-a-day', 'route', 'x', 1.0)", [])
        .expect("planted");
    match store.days() {
        Err(StoreError::Damaged { what: "spend_day", detail }) => {
            assert!(detail.contains("not-a-day"), "{detail}");
        }
        other => panic!("expected a damaged row, got {other:?}"),
    }
    // The day itself still loads; a wrong-typed amount is a typed backend error.
    raw.execute("UPDATE spend_day SET usd = 'lots' WHERE day = '2026-12-05'", []).expect("planted");
    match store.load(day("2026-12-05")) {
        Err(SpendError::Backend(source)) => {
            assert!(source.to_string().contains("spend_day"), "{source}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}
