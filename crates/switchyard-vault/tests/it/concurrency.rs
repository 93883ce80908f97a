//! Two writers through the lock lose no key: each change re-reads the file under the lock
//! and applies itself to what is there now.

use std::collections::BTreeSet;
use std::sync::Barrier;

use switchyard_core::KeyId;
use switchyard_vault::{NewKey, Vault};

use crate::support::{PASSPHRASE, config, fixture, open, passphrase, secret};

const PER_WRITER: usize = 40;

#[test]
fn two_writers_with_their_own_handles_lose_no_key() {
    let fx = fixture();
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for writer in ["a", "b"] {
            let (path, barrier) = (&fx.path, &barrier);
            scope.spawn(move || {
                // Each thread opens its own handle, as a second process would: neither
                // sees the other's keys until it re-reads under the lock.
                let mut vault = open(path);
                barrier.wait();
                for n in 0..PER_WRITER {
                    vault.add(NewKey::new("groq", secret("groq", writer, n))).expect("add");
                }
            });
        }
    });
    let vault = open(&fx.path);
    assert_eq!(vault.len(), 2 * PER_WRITER, "a writer's keys were lost");
    let ids: BTreeSet<_> = vault.keys().map(|info| info.id.to_string()).collect();
    assert_eq!(ids.len(), 2 * PER_WRITER, "two keys got one id");
    let expected: BTreeSet<String> = (1..=2 * PER_WRITER).map(|n| format!("groq-{n}")).collect();
    assert_eq!(ids, expected);
    let secrets: BTreeSet<String> = vault
        .keys()
        .map(|info| vault.credential(&info.id).expect("enabled").expose_secret().to_owned())
        .collect();
    for writer in ["a", "b"] {
        for n in 0..PER_WRITER {
            assert!(secrets.contains(&secret("groq", writer, n)), "lost {writer}{n}");
        }
    }
}

#[test]
fn mixed_changes_from_two_handles_all_land() {
    let mut fx = fixture();
    for n in 0..20 {
        fx.vault.add(NewKey::new("openai", secret("openai", "mix", n))).expect("seed");
    }
    std::thread::scope(|scope| {
        let path = &fx.path;
        scope.spawn(move || {
            let mut vault = open(path);
            for n in (1..=20).step_by(2) {
                vault.disable(&KeyId::new(format!("openai-{n}"))).expect("disable");
            }
        });
        scope.spawn(move || {
            let mut vault = open(path);
            for n in 0..10 {
                vault.add(NewKey::new("mistral", secret("mistral", "mix", n))).expect("add");
            }
        });
    });
    let vault = open(&fx.path);
    assert_eq!(vault.len(), 30);
    let disabled = vault.keys().filter(|info| !info.enabled).count();
    assert_eq!(disabled, 10, "a disable was lost");
}

#[test]
fn racing_to_create_one_vault_shares_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("keys.vault");
    let created: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|writer| {
                let path = &path;
                scope.spawn(move || {
                    let (mut vault, created) =
                        Vault::open_or_create(path, passphrase(PASSPHRASE), config())
                            .expect("open");
                    vault.add(NewKey::new("groq", secret("groq", "race", writer))).expect("add");
                    created
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("thread")).collect()
    });
    assert_eq!(created.iter().filter(|created| **created).count(), 1, "{created:?}");
    assert_eq!(open(&path).len(), 2);
}

#[test]
fn reload_picks_up_another_handles_changes() {
    let mut fx = fixture();
    let mut other = open(&fx.path);
    other.add(NewKey::new("groq", secret("groq", "reload", 1))).expect("add");
    assert_eq!(fx.vault.len(), 0, "a handle shows the file as of its last read or write");
    fx.vault.reload().expect("reload");
    assert_eq!(fx.vault.len(), 1);

    other.change_passphrase(passphrase("rotated")).expect("change");
    let error = fx.vault.reload().expect_err("stale passphrase");
    assert!(matches!(error, switchyard_vault::VaultError::PassphraseChanged { .. }), "{error:?}");
    assert_eq!(fx.vault.len(), 1, "a failed reload keeps the last good view");
}
