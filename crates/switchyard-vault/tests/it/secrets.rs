//! No secret in `Debug`, `Display`, an error, or the vault file in clear.

use switchyard_core::KeyId;
use switchyard_vault::{
    AddOutcome, EnvSource, KeySource, NewKey, Passphrase, Vault, VaultError, merge,
};

use crate::support::{PASSPHRASE, config, fixture, passphrase, secret};

const PROVIDERS: [&str; 6] = ["gemini", "groq", "openai", "anthropic", "openrouter", "mistral"];

#[track_caller]
fn assert_clean(text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "secret leaked into: {text}");
    }
    assert!(!text.contains("LEAKMARK"), "part of a secret leaked into: {text}");
    assert!(!text.contains(PASSPHRASE), "the passphrase leaked into: {text}");
}

fn both(value: &(impl std::fmt::Debug + std::fmt::Display)) -> String {
    format!("{value:?} {value:#?} {value}")
}

#[test]
fn no_secret_in_debug_display_errors_or_the_file() {
    let mut fx = fixture();
    let secrets: Vec<String> =
        PROVIDERS.iter().map(|provider| secret(provider, "leak", 1)).collect();
    let mut texts = Vec::new();
    for (provider, secret) in PROVIDERS.iter().zip(&secrets) {
        let mut key = NewKey::new(*provider, secret.as_str());
        key.label = Some(format!("{provider} LABELMARK"));
        texts.push(format!("{key:?} {key:#?}"));
        let added = fx.vault.add(key).expect("add");
        texts.push(format!("{added:?}"));
        let credential = fx.vault.credential(&added.id).expect("credential");
        texts.push(both(&credential));
    }
    // A misshapen key's warning names the key by fingerprint only.
    let odd = "gsk-LEAKMARK-misshapen".to_owned();
    let added = fx.vault.add(NewKey::new("groq", odd.as_str())).expect("add");
    texts.extend(added.warnings.iter().map(|warning| format!("{warning} {warning:?}")));
    assert_eq!(added.warnings.len(), 1);

    texts.push(format!("{:?} {:#?}", fx.vault, fx.vault.keys().collect::<Vec<_>>()));
    texts.push(serde_json::to_string(&fx.vault.keys().collect::<Vec<_>>()).expect("json"));
    texts.push(format!("{:?}", passphrase(PASSPHRASE)));
    texts.push(format!("{:?}", fx.vault.keys().map(|_| ()).count()));
    texts.push(format!("{:?}", KeySource::keys(&fx.vault).expect("keys")));

    // Every error a key can be involved in.
    let errors: Vec<VaultError> = vec![
        fx.vault.add(NewKey::new("groq", secrets[1].as_str())).expect_err("duplicate"),
        fx.vault.add(NewKey::new("Not Valid", secrets[1].as_str())).expect_err("provider"),
        Vault::open(&fx.path, passphrase("wrong"), config()).expect_err("wrong passphrase"),
        fx.vault.credential(&KeyId::new("nope")).expect_err("unknown"),
        Passphrase::try_new("").expect_err("empty"),
    ];
    for error in &errors {
        texts.push(both(error));
    }
    // Duplicate keys in an add_many are reported by id.
    let outcomes = fx.vault.add_many([NewKey::new("groq", secrets[1].as_str())]).expect("many");
    assert!(matches!(outcomes[0], AddOutcome::AlreadyPresent { .. }));
    texts.push(format!("{outcomes:?}"));

    let mut all_secrets = secrets.clone();
    all_secrets.push(odd);
    for text in &texts {
        assert_clean(text, &all_secrets);
    }

    // Neither the vault nor its backup holds a secret, a label or the passphrase in clear.
    for path in [fx.path.clone(), fx.vault.backup_path()] {
        let raw = std::fs::read(&path).expect("read");
        let lossy = String::from_utf8_lossy(&raw);
        assert_clean(&lossy, &all_secrets);
        assert!(!lossy.contains("LABELMARK"), "a label is in clear in {}", path.display());
        assert!(!lossy.contains("groq"), "metadata is in clear in {}", path.display());
    }
}

#[test]
fn no_secret_in_environment_scans_or_dotenv_errors() {
    let secrets: Vec<String> =
        ["groq", "openai", "gemini"].iter().map(|provider| secret(provider, "env", 2)).collect();
    let source = EnvSource::from_vars([
        ("GROQ_API_KEY", secrets[0].clone()),
        ("GROQ_API_KEY_2", secrets[0].clone()),
        ("OPENAI_API_KEY", secrets[1].clone()),
        ("GEMINI_KEYS", format!("{},{}", secrets[2], "AIzaLEAKMARKshort")),
    ]);
    let scan = source.scan();
    assert_eq!(scan.duplicates.len(), 1);
    assert_eq!(scan.warnings.len(), 1);
    let merged = merge(&[&source]).expect("merge");
    let mut all = secrets.clone();
    all.push("AIzaLEAKMARKshort".to_owned());
    for text in [format!("{source:?}"), format!("{scan:?} {scan:#?}"), format!("{merged:?}")] {
        assert_clean(&text, &all);
    }
    for warning in &scan.warnings {
        assert_clean(&warning.to_string(), &all);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let dotenv = dir.path().join(".env");
    std::fs::write(&dotenv, format!("GROQ_API_KEY='{}\n", secrets[0])).expect("write .env");
    let error =
        EnvSource::with_dotenv(Vec::<(String, String)>::new(), &dotenv).expect_err("bad line");
    assert!(matches!(error, VaultError::DotEnv { .. }), "{error:?}");
    assert!(error.to_string().contains("line not shown"), "{error}");
    assert_clean(&both(&error), &all);
}
