//! Key lifecycle through the real `switchyard serve` binary: a vault key and a configured
//! key, an admin action, a request, a clean stop; then the state file holds the keys' dates
//! and the audit log, and the vault holds the key's last use (saved in a batch, at
//! shutdown here, never per request).

mod support;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use switchyard_core::{KeyId, SystemClock};
use switchyard_store::SqliteStore;
use switchyard_vault::{NewKey, Passphrase, Vault, VaultConfig};

use support::{Gateway, start_mock};

const ADMIN: &str = "admin-secret-token";
const PASSPHRASE: &str = "lifecycle test passphrase";

const CONFIG: &str = r#"
[server]
admin_token = "${ADMIN_TOKEN}"

[state]
path = "${STATE}"

[vault]
path = "${VAULT}"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "${BASE_URL}"
keys = ["${K1}"]
models = ["llama-3.3-70b-versatile"]
rotate_after_days = 30

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/llama-3.3-70b-versatile"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_dates_and_the_audit_log_land_in_the_state_file_and_the_vault() {
    let mock = start_mock(&["k1", "k2"]).await;
    let dir = tempfile::tempdir().expect("a directory");
    let vault_path = dir.path().join("keys.vault");
    let config = || VaultConfig::insecure_for_tests(1_000, Arc::new(SystemClock));
    let passphrase = || Passphrase::try_new(PASSPHRASE).expect("non-empty");
    let mut vault = Vault::create(&vault_path, passphrase(), config()).expect("vault");
    let added = vault.add(NewKey::new("groq", mock.secret("k2"))).expect("add");
    let created = vault.key(&added.id).expect("added").created;
    drop(vault);
    let state = dir.path().join("state.db");
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("BASE_URL", mock.upstream.base_url()),
        ("K1", mock.secret("k1")),
        ("STATE", state.display().to_string()),
        ("VAULT", vault_path.display().to_string()),
        ("SWITCHYARD_VAULT_PASSPHRASE", PASSPHRASE.to_owned()),
    ];
    let mut gateway = Gateway::start(CONFIG, &env).expect("the gateway starts");
    let client = reqwest::Client::new();
    let disabled =
        client.post(gateway.url("/admin/keys/K1/disable")).bearer_auth(ADMIN).send().await;
    assert_eq!(disabled.expect("sent").status(), StatusCode::OK);
    let served = client
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        mock.upstream.counts("k2").expect("k2 is scripted").requests,
        1,
        "the vault key served"
    );

    let log = gateway.admin_json("/admin/audit", ADMIN).await;
    let entries = log["entries"].as_array().expect("entries");
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|entry| Some((entry["actor"].as_str()?, entry["action"].as_str()?)))
        .collect();
    assert_eq!(actions, [("gateway", "vault-open"), ("admin-api", "disable")], "{log:#}");
    assert_eq!(entries[1]["key"], "K1");
    assert!(entries[1]["fingerprint"].is_string(), "{log:#}");
    let text = log.to_string();
    assert!(!text.contains(&mock.secret("k1")) && !text.contains(&mock.secret("k2")), "{text}");

    assert!(gateway.terminate().success(), "a clean exit on SIGTERM");
    let store = SqliteStore::open(&state).expect("state opens");
    let rows = store.key_lifecycle().expect("lifecycle");
    let vault_key = rows.iter().find(|row| row.key == added.id).expect("the vault key");
    // The state file keeps milliseconds.
    let ms = |at: chrono::DateTime<chrono::Utc>| at.timestamp_millis();
    assert_eq!(ms(vault_key.created_at), ms(created), "a vault key dates from its addition");
    assert!(vault_key.last_used.is_some(), "its use was saved at shutdown: {rows:?}");
    let k1 = rows.iter().find(|row| row.key.as_str() == "K1").expect("the configured key");
    assert_eq!(k1.last_used, None, "a disabled key was never used: {rows:?}");
    assert_eq!(k1.rotation_alerted, None, "a new key is not due");

    let vault = Vault::open(&vault_path, passphrase(), config()).expect("vault opens");
    let used = vault.key(&KeyId::new(added.id.as_str())).and_then(|info| info.last_used);
    assert_eq!(used.map(ms), vault_key.last_used.map(ms), "the vault holds the same last use");
}
