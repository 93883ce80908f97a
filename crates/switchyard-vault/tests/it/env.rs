//! The environment conventions, the `.env` file, duplicates counted once, and the vault as
//! a key source.

use switchyard_core::KeyId;
use switchyard_vault::{EnvSource, KeySource, NewKey, VaultError, merge};

use crate::support::{fixture, secret};

fn gemini(n: usize) -> String {
    secret("gemini", "env", n)
}

/// `(provider, origin, secret)` of every key a scan found, in order.
fn found(source: &EnvSource) -> Vec<(String, String, String)> {
    source
        .scan()
        .keys
        .iter()
        .map(|key| {
            (
                key.provider.to_string(),
                key.origin.clone(),
                key.credential.expose_secret().to_owned(),
            )
        })
        .collect()
}

fn row(provider: &str, origin: &str, secret: &str) -> (String, String, String) {
    (provider.to_owned(), origin.to_owned(), secret.to_owned())
}

#[test]
fn every_convention_is_read_in_order() {
    let source = EnvSource::from_vars([
        ("GEMINI_KEYS", format!(" {}, {} ,,", gemini(1), gemini(2))),
        ("GOOGLE_AI_API_KEY_2", gemini(4)),
        ("GEMINI_API_KEY", gemini(5)),
        ("GOOGLE_AI_API_KEY_1", gemini(3)),
        ("GROQ_API_KEY_10", "gsk_ten".to_owned()),
        ("GROQ_API_KEY", "gsk_plain".to_owned()),
        ("GROQ_API_KEY_2", "gsk_two".to_owned()),
        ("GROQ_API_KEY_X", "gsk_not_a_number".to_owned()),
        ("GROQ_API_KEYS", "gsk_not_a_convention".to_owned()),
        ("OPENAI_API_KEY", "sk-proj-openai".to_owned()),
        ("ANTHROPIC_API_KEY", "sk-ant-one".to_owned()),
        ("CLAUDE_API_KEY", "sk-ant-two".to_owned()),
        ("MISTRAL_API_KEY", "mistral-key".to_owned()),
        ("OPENROUTER_API_KEY", "sk-or-v1-router".to_owned()),
        ("OPENROUTER_API_KEY_1", "   ".to_owned()),
        ("PATH", "/usr/bin".to_owned()),
    ]);
    assert_eq!(
        found(&source),
        [
            row("gemini", "GEMINI_KEYS[1]", &gemini(1)),
            row("gemini", "GEMINI_KEYS[2]", &gemini(2)),
            row("gemini", "GEMINI_API_KEY", &gemini(5)),
            row("gemini", "GOOGLE_AI_API_KEY_1", &gemini(3)),
            row("gemini", "GOOGLE_AI_API_KEY_2", &gemini(4)),
            row("groq", "GROQ_API_KEY", "gsk_plain"),
            row("groq", "GROQ_API_KEY_2", "gsk_two"),
            row("groq", "GROQ_API_KEY_10", "gsk_ten"),
            row("openai", "OPENAI_API_KEY", "sk-proj-openai"),
            row("anthropic", "ANTHROPIC_API_KEY", "sk-ant-one"),
            row("anthropic", "CLAUDE_API_KEY", "sk-ant-two"),
            row("mistral", "MISTRAL_API_KEY", "mistral-key"),
            row("openrouter", "OPENROUTER_API_KEY", "sk-or-v1-router"),
        ]
    );
    assert!(source.scan().warnings.is_empty(), "{:?}", source.scan().warnings);
}

#[test]
fn a_key_found_twice_is_counted_once() {
    let source = EnvSource::from_vars([
        ("GEMINI_KEYS", format!("{0},{1},{0}", gemini(1), gemini(2))),
        ("GOOGLE_AI_API_KEY_1", gemini(2)),
        ("GROQ_API_KEY", "gsk_same".to_owned()),
        ("GROQ_API_KEY_1", "gsk_same".to_owned()),
    ]);
    let scan = source.scan();
    assert_eq!(scan.keys.len(), 3);
    let repeats: Vec<_> =
        scan.duplicates.iter().map(|dup| (dup.origin.as_str(), dup.first_seen.as_str())).collect();
    assert_eq!(
        repeats,
        [
            ("GEMINI_KEYS[3]", "GEMINI_KEYS[1]"),
            ("GOOGLE_AI_API_KEY_1", "GEMINI_KEYS[2]"),
            ("GROQ_API_KEY_1", "GROQ_API_KEY"),
        ]
    );
    assert_eq!(source.keys().expect("keys").len(), 3);
}

#[test]
fn environment_ids_are_stable_and_name_no_secret() {
    let source = EnvSource::from_vars([("GROQ_API_KEY_3", "gsk_stable")]);
    let reordered =
        EnvSource::from_vars([("GROQ_API_KEY_1", "gsk_other"), ("GROQ_API_KEY_7", "gsk_stable")]);
    let id = source.scan().keys[0].credential.id().clone();
    let fingerprint = source.scan().keys[0].credential.fingerprint();
    assert_eq!(id.as_str(), format!("groq-env-{fingerprint}"));
    let again = reordered
        .scan()
        .keys
        .iter()
        .find(|key| key.credential.expose_secret() == "gsk_stable")
        .map(|key| key.credential.id().clone());
    assert_eq!(again, Some(id), "an env key's id must not depend on its variable or position");
}

#[test]
fn misshapen_keys_are_kept_with_a_warning() {
    let source = EnvSource::from_vars([
        ("GEMINI_KEYS", "AIza-too-short".to_owned()),
        ("OPENAI_API_KEY", "sk-ant-api03-pasted-in-the-wrong-place".to_owned()),
        ("GROQ_API_KEY", "gsk_fine".to_owned()),
    ]);
    let scan = source.scan();
    assert_eq!(scan.keys.len(), 3, "warnings never drop a key");
    let warnings: Vec<String> = scan.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("gemini keys are 39 characters long, this one is 14"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("it has the shape of a anthropic key"), "{warnings:?}");
}

#[test]
fn a_dotenv_file_adds_keys_and_the_process_environment_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dotenv = dir.path().join(".env");
    std::fs::write(
        &dotenv,
        "# keys for local runs\nGROQ_API_KEY=gsk_from_file\nexport MISTRAL_API_KEY=\"mistral-from-file\"\nGEMINI_KEYS='AIza1,AIza2'\nOPENAI_API_KEY=sk-file\nOPENAI_API_KEY=sk-file-second-declaration\n",
    )
    .expect("write .env");
    let source =
        EnvSource::with_dotenv([("GROQ_API_KEY", "gsk_from_process")], &dotenv).expect("reads");
    let mut rows = found(&source);
    rows.sort();
    assert_eq!(
        rows,
        [
            row("gemini", "GEMINI_KEYS[1] (.env)", "AIza1"),
            row("gemini", "GEMINI_KEYS[2] (.env)", "AIza2"),
            row("groq", "GROQ_API_KEY", "gsk_from_process"),
            row("mistral", "MISTRAL_API_KEY (.env)", "mistral-from-file"),
            row("openai", "OPENAI_API_KEY (.env)", "sk-file"),
        ]
    );
    let missing = dir.path().join("no-such.env");
    assert_eq!(
        found(&EnvSource::with_dotenv([("GROQ_API_KEY", "gsk_x")], &missing).expect("fine")).len(),
        1
    );
    let error = EnvSource::with_dotenv(Vec::<(String, String)>::new(), dir.path())
        .expect_err("a directory");
    assert!(matches!(error, VaultError::DotEnv { .. }), "{error:?}");
}

#[test]
fn the_vault_offers_its_enabled_keys_and_merging_counts_shared_keys_once() {
    let mut fx = fixture();
    fx.vault.add(NewKey::new("groq", "gsk_in_both")).expect("add");
    fx.vault.add(NewKey::new("groq", "gsk_vault_only")).expect("add");
    fx.vault.add(NewKey::new("groq", "gsk_disabled")).expect("add");
    fx.vault.disable(&KeyId::new("groq-3")).expect("disable");
    let vault_keys = fx.vault.keys().count();
    assert_eq!(vault_keys, 3);
    let offered = KeySource::keys(&fx.vault).expect("keys");
    let ids: Vec<_> = offered.iter().map(|key| key.credential.id().to_string()).collect();
    assert_eq!(ids, ["groq-1", "groq-2"], "a disabled key is not offered");
    assert!(fx.vault.describe().starts_with("vault "));

    let env =
        EnvSource::from_vars([("GROQ_API_KEY", "gsk_in_both"), ("GROQ_API_KEY_1", "gsk_env_only")]);
    let merged = merge(&[&fx.vault, &env]).expect("merge");
    let ids: Vec<_> = merged.keys.iter().map(|key| key.credential.id().to_string()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(&ids[..2], ["groq-1", "groq-2"]);
    assert!(ids[2].starts_with("groq-env-"));
    assert_eq!(merged.duplicates.len(), 1);
    assert_eq!(merged.duplicates[0].origin, "GROQ_API_KEY");
    assert_eq!(merged.duplicates[0].first_seen, "vault");
}
