//! What goes in comes back: 1,000 keys with all their metadata, single adds and removes,
//! passphrase changes.

use std::time::Duration;

use switchyard_core::{KeyId, ManualClock};
use switchyard_vault::{AddOutcome, NewKey, Vault, VaultError};

use crate::support::{PASSPHRASE, config, config_on, fixture, open, passphrase, secret};

const PROVIDERS: [&str; 5] = ["gemini", "groq", "openai", "anthropic", "mistral"];

#[test]
fn a_thousand_keys_round_trip_with_their_metadata() {
    let clock = ManualClock::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.vault");
    let mut vault =
        Vault::create(&path, passphrase(PASSPHRASE), config_on(&clock)).expect("create");
    let keys = (0..1_000).map(|n| {
        let provider = PROVIDERS[n % PROVIDERS.len()];
        let mut key = NewKey::new(provider, secret(provider, "rt", n));
        key.label = (n % 3 == 0).then(|| format!("label {n} with ünïcode and \"quotes\""));
        key.tags = (0..n % 4).map(|tag| format!("tag-{tag}")).collect();
        key
    });
    let outcomes = vault.add_many(keys).expect("add 1000");
    assert_eq!(outcomes.len(), 1_000);
    assert!(
        outcomes.iter().all(
            |outcome| matches!(outcome, AddOutcome::Added(added) if added.warnings.is_empty())
        )
    );

    clock.advance(Duration::from_secs(3_600));
    // Each change re-reads and re-seals all 1,000 keys; ten of them are enough here.
    for n in (0..1_000).step_by(100) {
        let id = KeyId::new(format!("{}-{}", PROVIDERS[n % 5], n / 5 + 1));
        vault.disable(&id).expect("disable");
    }
    vault.mark_used(&KeyId::new("groq-1")).expect("mark used");

    let reopened = Vault::open(&path, passphrase(PASSPHRASE), config()).expect("reopen");
    assert_eq!(reopened.len(), 1_000);
    let written: Vec<_> = vault.keys().cloned().collect();
    let read: Vec<_> = reopened.keys().cloned().collect();
    assert_eq!(read, written, "metadata differs after a round trip");

    for (n, info) in read.iter().enumerate() {
        let provider = PROVIDERS[n % 5];
        assert_eq!(info.id.as_str(), format!("{provider}-{}", n / 5 + 1));
        assert_eq!(info.provider.as_str(), provider);
        assert_eq!(info.enabled, n % 100 != 0, "{}", info.id);
        assert_eq!(info.tags.len(), n % 4);
        match reopened.credential(&info.id) {
            Ok(credential) => assert_eq!(credential.expose_secret(), secret(provider, "rt", n)),
            Err(VaultError::KeyDisabled(id)) => assert_eq!(id, info.id),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let groq_1 = reopened.key(&KeyId::new("groq-1")).expect("groq-1");
    assert_eq!(groq_1.last_used, Some(groq_1.created + chrono::Duration::hours(1)));
    assert_eq!(reopened.key(&KeyId::new("groq-2")).expect("groq-2").last_used, None);
}

#[test]
fn ids_count_per_provider_and_are_never_reused() {
    let mut fx = fixture();
    let add = |vault: &mut Vault, provider: &str, n: usize| {
        vault.add(NewKey::new(provider, secret(provider, "ids", n))).expect("add").id.to_string()
    };
    assert_eq!(add(&mut fx.vault, "groq", 1), "groq-1");
    assert_eq!(add(&mut fx.vault, "groq", 2), "groq-2");
    assert_eq!(add(&mut fx.vault, "gemini", 3), "gemini-1");
    let removed = fx.vault.remove(&KeyId::new("groq-2")).expect("remove");
    assert_eq!(removed.id.as_str(), "groq-2");
    let again = fx.vault.add(NewKey::new("groq", secret("groq", "ids", 4))).expect("add").id;
    assert_eq!(again.as_str(), "groq-3", "a removed id must not be handed out again");
    let reopened = open(&fx.path);
    let ids: Vec<_> = reopened.keys().map(|info| info.id.to_string()).collect();
    assert_eq!(ids, ["groq-1", "gemini-1", "groq-3"]);
}

#[test]
fn enable_disable_and_remove_change_what_is_handed_out() {
    let mut fx = fixture();
    let id = fx.vault.add(NewKey::new("groq", secret("groq", "ed", 1))).expect("add").id;
    assert!(fx.vault.disable(&id).expect("disable"), "was enabled");
    assert!(!fx.vault.disable(&id).expect("disable again"), "already disabled");
    assert!(matches!(open(&fx.path).credential(&id), Err(VaultError::KeyDisabled(_))));
    assert!(fx.vault.enable(&id).expect("enable"));
    assert_eq!(
        open(&fx.path).credential(&id).expect("enabled").expose_secret(),
        secret("groq", "ed", 1)
    );
    fx.vault.remove(&id).expect("remove");
    let missing = KeyId::new("groq-1");
    assert!(matches!(open(&fx.path).credential(&missing), Err(VaultError::UnknownKey(_))));
    for error in [fx.vault.remove(&missing).map(drop), fx.vault.enable(&missing).map(drop)] {
        let error = error.expect_err("unknown key");
        assert_eq!(error.to_string(), "no key groq-1 in the vault");
    }
}

#[test]
fn a_duplicate_secret_is_refused_by_add_and_reported_by_add_many() {
    let mut fx = fixture();
    let first = fx.vault.add(NewKey::new("groq", secret("groq", "dup", 1))).expect("add");
    // Surrounding whitespace (a pasted newline) is not part of a key.
    let error = fx
        .vault
        .add(NewKey::new("groq", format!("  {}\n", secret("groq", "dup", 1))))
        .expect_err("duplicate");
    assert!(matches!(&error, VaultError::DuplicateKey { id, .. } if *id == first.id), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("this key is already in the vault as groq-1 ({})", first.fingerprint)
    );

    let outcomes = fx
        .vault
        .add_many([
            NewKey::new("groq", secret("groq", "dup", 1)),
            NewKey::new("groq", secret("groq", "dup", 2)),
            NewKey::new("groq", secret("groq", "dup", 2)),
        ])
        .expect("add many");
    assert!(
        matches!(&outcomes[0], AddOutcome::AlreadyPresent { id, .. } if id.as_str() == "groq-1")
    );
    assert!(matches!(&outcomes[1], AddOutcome::Added(added) if added.id.as_str() == "groq-2"));
    assert!(
        matches!(&outcomes[2], AddOutcome::AlreadyPresent { id, .. } if id.as_str() == "groq-2")
    );
    assert_eq!(open(&fx.path).len(), 2);
}

#[test]
fn bad_keys_are_refused_and_misshapen_ones_stored_with_a_warning() {
    let mut fx = fixture();
    assert!(matches!(fx.vault.add(NewKey::new("groq", " \n")), Err(VaultError::EmptySecret)));
    let error = fx.vault.add(NewKey::new("Groq API", "gsk_x")).expect_err("bad provider");
    assert!(matches!(error, VaultError::InvalidProvider(_)), "{error:?}");
    let added = fx.vault.add(NewKey::new("gemini", "not-a-gemini-key")).expect("stored anyway");
    assert_eq!(added.warnings.len(), 1);
    assert!(added.warnings[0].to_string().contains("gemini keys start with `AIza`"));
    assert_eq!(open(&fx.path).len(), 1);
}

#[test]
fn changing_the_passphrase_reseals_everything() {
    let mut fx = fixture();
    for n in 0..10 {
        fx.vault.add(NewKey::new("openai", secret("openai", "pw", n))).expect("add");
    }
    let old_bytes = std::fs::read(&fx.path).expect("read");
    fx.vault.change_passphrase(passphrase("a brand new passphrase")).expect("change");

    let new_bytes = std::fs::read(&fx.path).expect("read");
    assert_ne!(old_bytes[16..32], new_bytes[16..32], "a new passphrase gets a new salt");
    let old = Vault::open(&fx.path, passphrase(PASSPHRASE), config()).expect_err("old passphrase");
    assert!(matches!(old, VaultError::Unseal { .. }), "{old:?}");
    let reopened =
        Vault::open(&fx.path, passphrase("a brand new passphrase"), config()).expect("new opens");
    assert_eq!(reopened.len(), 10);
    for n in 0..10 {
        let id = KeyId::new(format!("openai-{}", n + 1));
        assert_eq!(
            reopened.credential(&id).expect("key").expose_secret(),
            secret("openai", "pw", n)
        );
    }
    // The backup is re-sealed too: the old passphrase opens nothing this vault wrote.
    let backup = fx.vault.backup_path();
    assert!(matches!(
        Vault::open(&backup, passphrase(PASSPHRASE), config()),
        Err(VaultError::Unseal { .. })
    ));
    assert_eq!(
        Vault::open(&backup, passphrase("a brand new passphrase"), config()).expect("backup").len(),
        10
    );
    // The handle keeps working under its new passphrase.
    fx.vault.add(NewKey::new("openai", secret("openai", "pw", 99))).expect("add after change");
    assert_eq!(
        Vault::open(&fx.path, passphrase("a brand new passphrase"), config()).expect("opens").len(),
        11
    );
}

#[test]
fn a_passphrase_change_raises_a_low_iteration_count_to_the_configured_one() {
    let mut fx = fixture();
    assert_eq!(fx.vault.iterations(), crate::support::TEST_ITERATIONS);
    let mut stronger = config();
    stronger.iterations = std::num::NonZeroU32::new(5_000).expect("non-zero");
    let mut vault = Vault::open(&fx.path, passphrase(PASSPHRASE), stronger).expect("open");
    vault.change_passphrase(passphrase("new one")).expect("change");
    assert_eq!(vault.iterations(), 5_000);
    let header = std::fs::read(&fx.path).expect("read");
    assert_eq!(u32::from_be_bytes(header[12..16].try_into().expect("4 bytes")), 5_000);
    // And a lower configured count never lowers the file's.
    let mut again = Vault::open(&fx.path, passphrase("new one"), config()).expect("open");
    again.change_passphrase(passphrase("third")).expect("change");
    assert_eq!(again.iterations(), 5_000);
    // The first handle's passphrase is stale now; it says so instead of "damaged".
    let stale = fx.vault.add(NewKey::new("groq", "gsk_z")).expect_err("stale handle");
    assert!(matches!(stale, VaultError::PassphraseChanged { .. }), "{stale:?}");
    assert!(stale.to_string().contains("was changed since it was opened"), "{stale}");
}

#[test]
fn a_batch_of_uses_is_one_write_that_never_moves_a_use_back() {
    let clock = ManualClock::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.vault");
    let mut vault =
        Vault::create(&path, passphrase(PASSPHRASE), config_on(&clock)).expect("create");
    for n in 0..2 {
        vault.add(NewKey::new("groq", secret("groq", "use", n))).expect("add");
    }
    let (one, two) = (KeyId::new("groq-1"), KeyId::new("groq-2"));
    let created = vault.key(&one).expect("groq-1").created;
    let later = created + chrono::Duration::minutes(5);
    let earlier = created + chrono::Duration::minutes(1);
    let uses = [(one.clone(), later), (KeyId::new("from-config-1"), later)];
    assert_eq!(vault.mark_used_many(&uses).expect("batch"), 1, "unknown ids are skipped");
    let before = std::fs::read(&path).expect("read vault");
    assert_eq!(vault.mark_used_many(&[(one.clone(), earlier)]).expect("older"), 0);
    assert_eq!(std::fs::read(&path).expect("read vault"), before, "nothing new, nothing written");

    let reopened = Vault::open(&path, passphrase(PASSPHRASE), config()).expect("reopen");
    assert_eq!(reopened.key(&one).expect("groq-1").last_used, Some(later));
    assert_eq!(reopened.key(&two).expect("groq-2").last_used, None);
}
