//! Bad input gets a clear error and loses nothing: every flipped bit and every truncation
//! is caught, each kind of wrong file has its own message, and a vault that fails to open
//! is never rewritten.

use std::num::NonZeroU32;
use std::path::Path;

use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchyard_core::KeyId;
use switchyard_vault::{NewKey, Vault, VaultConfig, VaultError};

use crate::support::{PASSPHRASE, config, fixture, open, passphrase, secret};

/// A sealed vault of three keys that has been written twice, so a backup exists.
fn sealed_vault() -> (crate::support::Fixture, Vec<u8>) {
    let mut fx = fixture();
    for n in 0..3 {
        fx.vault.add(NewKey::new("groq", secret("groq", "dmg", n))).expect("add");
    }
    let bytes = std::fs::read(&fx.path).expect("read");
    (fx, bytes)
}

/// Header flips of the iteration count must stay cheap: accept at most this many.
fn bounded_config() -> VaultConfig {
    VaultConfig { max_iterations: NonZeroU32::new(50_000).expect("non-zero"), ..config() }
}

/// Writes `bytes` over the vault, tries to open it, and checks the open failed with a
/// damage error that names the backup, and that the file was left exactly as it was.
#[track_caller]
fn assert_rejected(path: &Path, bytes: &[u8]) -> VaultError {
    std::fs::write(path, bytes).expect("write damaged vault");
    let error = Vault::open(path, passphrase(PASSPHRASE), bounded_config())
        .expect_err("a damaged vault must not open");
    assert!(
        matches!(
            error,
            VaultError::Unseal { .. }
                | VaultError::NotAVault { .. }
                | VaultError::UnsupportedVersion { .. }
                | VaultError::UnknownAlgorithm { .. }
                | VaultError::Truncated { .. }
                | VaultError::IterationsOutOfRange { .. }
                | VaultError::Empty { .. }
        ),
        "{error:?}"
    );
    let backup = format!("backup: {}.bak", path.display());
    assert!(error.to_string().contains(&backup), "{error}");
    assert_eq!(std::fs::read(path).expect("read back"), bytes, "a failed open rewrote the file");
    error
}

#[test]
fn flipping_any_single_bit_is_detected() {
    // One vault for all cases (making one per case costs a dozen fsyncs each); the runner
    // picks the bit.
    let (fx, sealed) = sealed_vault();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(512));
    let result = runner.run(&(0..sealed.len() * 8), |bit| {
        let mut flipped = sealed.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_rejected(&fx.path, &flipped);
        Ok(())
    });
    result.expect("every flipped bit is detected");
}

#[test]
fn every_bit_of_the_header_is_covered_by_authentication() {
    let (fx, sealed) = sealed_vault();
    // All 44 header bytes, both GCM tag ends and the first ciphertext bytes.
    let header_bits = 0..(44 + 8) * 8;
    let tag_bits = (sealed.len() - 16) * 8..sealed.len() * 8;
    for bit in header_bits.chain(tag_bits) {
        let mut flipped = sealed.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_rejected(&fx.path, &flipped);
    }
}

#[test]
fn every_truncation_is_detected() {
    let (fx, sealed) = sealed_vault();
    for len in 1..sealed.len() {
        let error = assert_rejected(&fx.path, &sealed[..len]);
        if len < 60 {
            assert!(matches!(error, VaultError::Truncated { .. }), "len {len}: {error:?}");
        } else {
            assert!(matches!(error, VaultError::Unseal { .. }), "len {len}: {error:?}");
        }
    }
    let error = assert_rejected(&fx.path, &sealed[..30]);
    assert!(
        error.to_string().contains("is truncated: 30 bytes, a vault has at least 60"),
        "{error}"
    );
}

#[test]
fn each_kind_of_wrong_file_has_its_own_message() {
    let (fx, sealed) = sealed_vault();
    let path_text = fx.path.display().to_string();

    let error = assert_rejected(&fx.path, b"");
    assert!(error.to_string().starts_with(&format!("vault file {path_text} is empty")), "{error}");

    let error = assert_rejected(
        &fx.path,
        b"GROQ_API_KEY=gsk_not_a_vault_at_all_0000000000000000000000000000",
    );
    assert!(error.to_string().contains("is not a switchyard vault file"), "{error}");

    let mut newer = sealed.clone();
    newer[8..10].copy_from_slice(&7u16.to_be_bytes());
    let error = assert_rejected(&fx.path, &newer);
    assert!(
        error.to_string().contains("has format version 7, this build reads version 1"),
        "{error}"
    );

    let mut huge = sealed.clone();
    huge[12..16].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    let error = assert_rejected(&fx.path, &huge);
    assert!(error.to_string().contains("asks for 4000000000 PBKDF2 iterations"), "{error}");
    // The real bound, not only the test's lowered one.
    std::fs::write(&fx.path, &huge).expect("write");
    let error = Vault::open(&fx.path, passphrase(PASSPHRASE), config()).expect_err("refused");
    assert!(
        matches!(
            error,
            VaultError::IterationsOutOfRange { found: 4_000_000_000, max: 10_000_000, .. }
        ),
        "{error:?}"
    );

    std::fs::write(&fx.path, &sealed).expect("restore");
    let error =
        Vault::open(&fx.path, passphrase("not the passphrase"), config()).expect_err("wrong");
    assert_eq!(
        error.to_string(),
        format!("wrong passphrase or damaged vault {path_text} (backup: {path_text}.bak)")
    );
    assert_eq!(
        std::fs::read(&fx.path).expect("read"),
        sealed,
        "a wrong passphrase rewrote the file"
    );

    let missing = fx.dir.path().join("missing.vault");
    let error = Vault::open(&missing, passphrase(PASSPHRASE), config()).expect_err("missing");
    assert_eq!(error.to_string(), format!("no vault at {}", missing.display()));

    let directory = fx.dir.path().join("a-directory");
    std::fs::create_dir(&directory).expect("mkdir");
    let error = Vault::open(&directory, passphrase(PASSPHRASE), config()).expect_err("dir");
    assert_eq!(
        error.to_string(),
        format!("{} is a directory, not a vault file", directory.display())
    );
    let error = Vault::create(&directory, passphrase(PASSPHRASE), config()).expect_err("dir");
    assert!(matches!(error, VaultError::IsDirectory { .. }), "{error:?}");
}

#[test]
fn without_a_backup_the_message_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.vault");
    drop(Vault::create(&path, passphrase(PASSPHRASE), config()).expect("create"));
    let error = Vault::open(&path, passphrase("wrong"), config()).expect_err("wrong passphrase");
    assert!(error.to_string().ends_with("(no backup exists yet)"), "{error}");
}

#[test]
fn a_vault_damaged_under_an_open_handle_is_not_rewritten() {
    let (mut fx, sealed) = sealed_vault();
    let mut damaged = sealed.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    std::fs::write(&fx.path, &damaged).expect("damage");

    let error = fx.vault.add(NewKey::new("groq", secret("groq", "dmg", 9))).expect_err("damaged");
    assert!(matches!(error, VaultError::Unseal { .. }), "{error:?}");
    let error = fx.vault.remove(&KeyId::new("groq-1")).expect_err("damaged");
    assert!(matches!(error, VaultError::Unseal { .. }), "{error:?}");
    assert_eq!(std::fs::read(&fx.path).expect("read"), damaged, "the damaged file was rewritten");

    // The backup named in the message is the previous version and opens.
    let backup =
        Vault::open(fx.vault.backup_path(), passphrase(PASSPHRASE), config()).expect("backup");
    assert_eq!(backup.len(), 2);
}

#[test]
fn create_never_overwrites_an_existing_vault() {
    let (fx, sealed) = sealed_vault();
    let error = Vault::create(&fx.path, passphrase("other"), config()).expect_err("exists");
    assert_eq!(error.to_string(), format!("a vault already exists at {}", fx.path.display()));
    assert_eq!(std::fs::read(&fx.path).expect("read"), sealed);
    let (vault, created) =
        Vault::open_or_create(&fx.path, passphrase(PASSPHRASE), config()).expect("opens");
    assert!(!created);
    assert_eq!(vault.len(), 3);
    assert_eq!(open(&fx.path).len(), 3);
}

#[test]
fn open_or_create_on_a_damaged_file_fails_and_leaves_it() {
    let (fx, _) = sealed_vault();
    std::fs::write(&fx.path, b"").expect("empty it");
    let error =
        Vault::open_or_create(&fx.path, passphrase(PASSPHRASE), config()).expect_err("empty");
    assert!(matches!(error, VaultError::Empty { .. }), "{error:?}");
    assert_eq!(std::fs::read(&fx.path).expect("read"), b"");
}
