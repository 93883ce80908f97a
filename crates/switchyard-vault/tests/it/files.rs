//! What lands on disk: modes, the backup, the header's parameters, a fresh nonce per write.

use switchyard_core::KeyId;
use switchyard_vault::{DEFAULT_ITERATIONS, NewKey, Vault, VaultConfig};

use crate::support::{PASSPHRASE, fixture, open, passphrase, secret};

#[cfg(unix)]
#[test]
fn the_vault_its_backup_and_its_lock_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = fixture();
    fx.vault.add(NewKey::new("groq", secret("groq", "mode", 1))).expect("add");
    for path in [fx.path.clone(), fx.vault.backup_path(), fx.dir.path().join("keys.vault.lock")] {
        let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

#[cfg(unix)]
#[test]
fn a_missing_data_directory_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data").join("switchyard").join("keys.vault");
    Vault::create(&path, passphrase(PASSPHRASE), crate::support::config()).expect("create");
    let parent = path.parent().expect("parent");
    let mode = std::fs::metadata(parent).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn the_backup_is_the_version_before_the_last_write() {
    let mut fx = fixture();
    for n in 1..=3 {
        fx.vault.add(NewKey::new("groq", secret("groq", "bak", n))).expect("add");
        let backup = open(&fx.vault.backup_path());
        assert_eq!(backup.len(), n - 1, "after write {n}");
    }
    fx.vault.remove(&KeyId::new("groq-2")).expect("remove");
    assert_eq!(open(&fx.vault.backup_path()).len(), 3);
    assert_eq!(open(&fx.path).len(), 2);
}

#[test]
fn every_write_uses_a_fresh_nonce_under_the_same_salt() {
    let mut fx = fixture();
    let mut nonces = Vec::new();
    let mut salts = Vec::new();
    for n in 0..5 {
        fx.vault.add(NewKey::new("groq", secret("groq", "nonce", n))).expect("add");
        let sealed = std::fs::read(&fx.path).expect("read");
        salts.push(sealed[16..32].to_vec());
        nonces.push(sealed[32..44].to_vec());
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 5, "a nonce was reused");
    salts.dedup();
    assert_eq!(salts.len(), 1, "the salt changes only with the passphrase");
}

#[test]
fn the_real_default_follows_owasp_and_is_written_in_the_header() {
    assert!(VaultConfig::default().iterations.get() >= 600_000);
    assert_eq!(VaultConfig::default().iterations.get(), DEFAULT_ITERATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.vault");
    // One real-strength derivation (ring is built optimized even in the dev profile).
    let vault =
        Vault::create(&path, passphrase(PASSPHRASE), VaultConfig::default()).expect("create");
    assert_eq!(vault.iterations(), DEFAULT_ITERATIONS);
    let sealed = std::fs::read(&path).expect("read");
    assert_eq!(&sealed[..8], b"SWYVAULT");
    assert_eq!(u16::from_be_bytes([sealed[8], sealed[9]]), 1);
    assert_eq!(u32::from_be_bytes(sealed[12..16].try_into().expect("4 bytes")), DEFAULT_ITERATIONS);
}
