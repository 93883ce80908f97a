//! Key lifecycle and the audit log on a real file: registration, rotation by fingerprint,
//! batched uses, retention by count and by age, reads by `since` and `limit`.

use chrono::{DateTime, TimeDelta, Utc};
use switchyard_core::{KeyId, ProviderId};
use switchyard_store::{AuditEntry, AuditRetention, KeySeen, MAX_AUDIT_TEXT, SqliteStore};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + secs, 0).expect("in range")
}

fn seen(key: &str, fingerprint: &str) -> KeySeen {
    KeySeen {
        provider: ProviderId::from("groq"),
        key: KeyId::from(key),
        fingerprint: fingerprint.to_owned(),
        created: None,
    }
}

fn entry(secs: i64, action: &str) -> AuditEntry {
    AuditEntry {
        at: at(secs),
        actor: "admin-api".to_owned(),
        action: action.to_owned(),
        provider: Some(ProviderId::from("groq")),
        key: Some(KeyId::from("groq-1")),
        fingerprint: Some("fp01".to_owned()),
        detail: None,
    }
}

#[test]
fn keys_keep_their_first_sighting_until_their_fingerprint_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut store = SqliteStore::open(&path).expect("opens");
    let vault_created = at(-86_400);
    let mut from_vault = seen("groq-2", "fp02");
    from_vault.created = Some(vault_created);
    assert_eq!(store.register_keys(&[seen("groq-1", "fp01"), from_vault], at(0)).expect("reg"), 2);
    store
        .record_key_uses(&[
            (ProviderId::from("groq"), KeyId::from("groq-1"), at(50)),
            (ProviderId::from("groq"), KeyId::from("groq-1"), at(20)),
            (ProviderId::from("groq"), KeyId::from("not-registered"), at(60)),
        ])
        .expect("uses");
    drop(store);

    let mut store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.register_keys(&[seen("groq-1", "fp01")], at(100)).expect("again"), 0);
    let rows = store.key_lifecycle().expect("reads");
    assert_eq!(rows.len(), 2, "an unregistered key's use creates nothing: {rows:?}");
    assert_eq!(rows[0].created_at, at(0), "the first sighting stays");
    assert_eq!(rows[0].last_used, Some(at(50)), "the later use wins, in any order");
    assert_eq!(rows[1].created_at, vault_created, "the vault's date is kept");
    assert_eq!(rows[1].last_used, None);

    store
        .mark_rotation_alerted(&ProviderId::from("groq"), &KeyId::from("groq-1"), at(200))
        .expect("mark");
    assert_eq!(store.key_lifecycle().expect("reads")[0].rotation_alerted, Some(at(200)));
    // The same id with another secret: the key was rotated, its life starts over.
    assert_eq!(store.register_keys(&[seen("groq-1", "fp99")], at(300)).expect("rotated"), 1);
    let row = &store.key_lifecycle().expect("reads")[0];
    assert_eq!((row.fingerprint.as_str(), row.created_at), ("fp99", at(300)));
    assert_eq!((row.last_used, row.rotation_alerted), (None, None));
}

#[test]
fn a_creation_date_in_the_future_is_clamped_to_now() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let mut key = seen("groq-1", "fp01");
    key.created = Some(at(10_000));
    store.register_keys(&[key], at(0)).expect("reg");
    assert_eq!(store.key_lifecycle().expect("reads")[0].created_at, at(0));
}

#[test]
fn the_audit_log_reads_back_in_order_by_since_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut store = SqliteStore::open(&path).expect("opens");
    let retention = AuditRetention::default();
    store.append_audit(&[entry(0, "disable"), entry(10, "enable")], retention).expect("append");
    store.append_audit(&[entry(20, "reset")], retention).expect("append");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopens");
    let all = store.audit(None, 100).expect("reads");
    let actions: Vec<&str> = all.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["disable", "enable", "reset"]);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase: {all:?}");
    let since: Vec<String> = store
        .audit(Some(at(10)), 100)
        .expect("reads")
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(since, ["enable", "reset"]);
    let newest: Vec<String> =
        store.audit(None, 1).expect("reads").into_iter().map(|r| r.entry.action).collect();
    assert_eq!(newest, ["reset"], "a limit keeps the newest");
    assert_eq!(all[0].entry, entry(0, "disable"), "every field round-trips");
}

#[test]
fn the_audit_log_is_bounded_by_count_and_by_age() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let by_count = AuditRetention { max_entries: 3, max_age: TimeDelta::days(365) };
    for n in 0..10 {
        store.append_audit(&[entry(n, &format!("a{n}"))], by_count).expect("append");
    }
    let kept: Vec<String> =
        store.audit(None, 100).expect("reads").into_iter().map(|r| r.entry.action).collect();
    assert_eq!(kept, ["a7", "a8", "a9"]);

    let by_age = AuditRetention { max_entries: 1_000, max_age: TimeDelta::seconds(100) };
    store.append_audit(&[entry(150, "late")], by_age).expect("append");
    let kept: Vec<String> =
        store.audit(None, 100).expect("reads").into_iter().map(|r| r.entry.action).collect();
    assert_eq!(kept, ["late"], "entries older than 100 s before the newest are gone");
}

#[test]
fn long_audit_text_is_cut() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let mut long = entry(0, &"x".repeat(5_000));
    long.detail = Some("é".repeat(5_000));
    store.append_audit(&[long], AuditRetention::default()).expect("append");
    let record = &store.audit(None, 1).expect("reads")[0];
    assert_eq!(record.entry.action.chars().count(), MAX_AUDIT_TEXT);
    assert_eq!(record.entry.detail.as_deref().map(|d| d.chars().count()), Some(MAX_AUDIT_TEXT));
}
