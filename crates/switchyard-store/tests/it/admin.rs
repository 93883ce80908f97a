//! Admin actions in the state file: disabled keys and manual resets survive a restart.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use switchyard_store::{AdminKeyAction, SqliteStore, StoreError, StoredAdminState};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("date").to_utc()
}

fn action(provider: &str, key: &str, when: &str) -> AdminKeyAction {
    AdminKeyAction { provider: provider.into(), key: key.into(), at: at(when) }
}

#[test]
fn disabled_keys_and_resets_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let state = StoredAdminState {
        disabled: vec![
            action("groq", "groq-2", "2026-12-05T08:00:00.250Z"),
            action("gemini", "g1", "2026-12-05T07:00:00Z"),
        ],
        resets: vec![action("openai", "o1", "2026-12-04T23:59:59Z")],
    };
    {
        let mut store = SqliteStore::open(&path).expect("opens");
        assert_eq!(store.load_admin_state().expect("empty"), StoredAdminState::default());
        store.save_admin_state(&state).expect("saved");
    }
    let store = SqliteStore::open(&path).expect("reopens");
    let loaded = store.load_admin_state().expect("loads");
    // Ordered by provider, then key; times to the millisecond.
    assert_eq!(
        loaded,
        StoredAdminState {
            disabled: vec![state.disabled[1].clone(), state.disabled[0].clone()],
            resets: state.resets.clone(),
        }
    );
}

#[test]
fn a_save_replaces_the_whole_state_and_a_repeated_key_keeps_its_last_entry() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let first = StoredAdminState {
        disabled: vec![action("groq", "groq-1", "2026-12-05T08:00:00Z")],
        resets: vec![action("groq", "groq-1", "2026-12-05T08:00:00Z")],
    };
    store.save_admin_state(&first).expect("saved");
    // Re-enabled, then another key disabled twice.
    let second = StoredAdminState {
        disabled: vec![
            action("groq", "groq-2", "2026-12-05T09:00:00Z"),
            action("groq", "groq-2", "2026-12-05T09:30:00Z"),
        ],
        resets: Vec::new(),
    };
    store.save_admin_state(&second).expect("saved");
    assert_eq!(
        store.load_admin_state().expect("loads"),
        StoredAdminState {
            disabled: vec![action("groq", "groq-2", "2026-12-05T09:30:00Z")],
            resets: Vec::new(),
        }
    );
}

#[test]
fn a_time_out_of_range_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).expect("opens");
    let raw = Connection::open(&path).expect("raw");
    raw.execute("INSERT INTO admin_reset VALUES ('groq', 'groq-1', ?1)", [i64::MAX])
        .expect("planted");
    match store.load_admin_state() {
        Err(StoreError::Damaged { what: "admin state", detail }) => {
            assert!(detail.contains("out of range"), "{detail}");
        }
        other => panic!("expected a damaged row, got {other:?}"),
    }
}
