//! `switchyard keys test` against a configuration of simulated upstreams: a Groq-shaped one
//! with a good key, an invalid key and a model the good key may not use, and a Gemini-shaped
//! one with one good key. The table, the results JSON, the seeded scores and the exit code.

use std::path::Path;
use std::process::Command;

use switchyard_mock::{Failure, Fault, FaultRule, GeminiWire, KeyScript, MockUpstream};
use switchyard_score::StatsStore as _;

const FAST: &str = "llama-3.1-8b-instant";
const BIG: &str = "llama-3.3-70b-versatile";

async fn upstreams() -> (MockUpstream, MockUpstream) {
    let groq =
        MockUpstream::builder(switchyard_mock::OpenAiWire::new(switchyard_mock::Flavor::Groq))
            .models([FAST, BIG])
            .key(KeyScript::valid("GROQ_GOOD", "gsk-good-000000").requests_per_day(1000))
            .key(KeyScript::invalid("GROQ_BAD", "gsk-bad-111111"))
            // The good key's organisation has no access to the big model.
            .fault(
                FaultRule::always(Fault::Fail(Failure::ModelNotFound { model: BIG.to_owned() }))
                    .for_key("GROQ_GOOD")
                    .for_model(BIG),
            )
            .start()
            .await
            .expect("groq mock");
    let gemini = MockUpstream::builder(GeminiWire)
        .models(["gemini-2.0-flash"])
        .key(KeyScript::valid("GEMINI_KEY", "AIza-good-222222"))
        .start()
        .await
        .expect("gemini mock");
    (groq, gemini)
}

fn write_config(dir: &Path, groq: &MockUpstream, gemini: &MockUpstream, state: bool) {
    let state = if state { "[state]\npath = \"state/switchyard.db\"\n\n" } else { "" };
    let text = format!(
        "{state}[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{GROQ_GOOD}}\", \"${{GROQ_BAD}}\"]\nmodels = [\"{FAST}\", \"{BIG}\"]\n\n[[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nbase_url = \"http://{}\"\nkeys = [\"${{GEMINI_KEY}}\"]\nmodels = [\"gemini-2.0-flash\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{FAST}\", \"gemini/gemini-2.0-flash\"]\n",
        groq.base_url(),
        gemini.addr()
    );
    std::fs::write(dir.join("switchyard.toml"), text).expect("config written");
}

async fn keys_test(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .current_dir(dir)
        .args(["keys", "test", "--config", "switchyard.toml"])
        .args(extra)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env("GROQ_GOOD", "gsk-good-000000")
        .env("GROQ_BAD", "gsk-bad-111111")
        .env("GEMINI_KEY", "AIza-good-222222");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_keys_fail_table_and_json_say_which_and_the_exit_code_is_1() {
    let (groq, gemini) = upstreams().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    write_config(dir.path(), &groq, &gemini, true);
    let output = keys_test(dir.path(), &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Five probes: two keys x two models on groq, one on gemini; two pass.
    assert!(stdout.contains("passed 2 of 5 (40%)"), "{stdout}");
    let fastest = stdout.lines().find(|line| line.starts_with("fastest: ")).expect("fastest");
    assert!(
        fastest.starts_with(&format!("fastest: groq/GROQ_GOOD {FAST} in "))
            || fastest.starts_with("fastest: gemini/GEMINI_KEY gemini-2.0-flash in "),
        "{fastest}"
    );
    // Passing rows come first, then the failures; every failure names its class.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("| groq") || line.starts_with("| gemini"))
        .collect();
    assert_eq!(rows.len(), 5, "{stdout}");
    assert!(rows[..2].iter().all(|row| row.contains("| ok ")), "{stdout}");
    assert!(rows[2..].iter().all(|row| row.contains("| FAIL ")), "{stdout}");
    assert_eq!(rows.iter().filter(|row| row.contains("invalid_key")).count(), 2, "{stdout}");
    assert_eq!(rows.iter().filter(|row| row.contains("model_not_found")).count(), 1, "{stdout}");
    assert!(!stdout.contains("gsk-") && !stdout.contains("AIza-"), "no secret printed:\n{stdout}");

    // The JSON: the admin import's shape, one row per probe.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("api-test-results.json")).expect("json written"),
    )
    .expect("valid JSON");
    assert!(json["generated_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{json}");
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    let find = |provider: &str, key: &str, model: &str| {
        results
            .iter()
            .find(|row| row["provider"] == provider && row["key"] == key && row["model"] == model)
            .unwrap_or_else(|| panic!("no row {provider}/{key}/{model}: {json}"))
    };
    let good = find("groq", "GROQ_GOOD", FAST);
    assert_eq!(good["ok"], true);
    assert_eq!(good["status"], 200);
    assert!(good["error_class"].is_null());
    assert!(good["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{good}");
    assert_eq!(good["fingerprint"].as_str().map(str::len), Some(8), "{good}");
    // Groq states the requests left of the day in its headers: 1000 minus this probe and
    // possibly the other model's (refused before counting).
    let left = good["rate_limit"]["remaining_requests"].as_u64().expect("remaining requests");
    assert!((998..=999).contains(&left), "{good}");
    let missing = find("groq", "GROQ_GOOD", BIG);
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["error_class"], "model_not_found");
    assert_eq!(missing["status"], 404);
    for model in [FAST, BIG] {
        let bad = find("groq", "GROQ_BAD", model);
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["error_class"], "invalid_key");
        assert_eq!(bad["status"], 401);
    }
    assert_eq!(find("gemini", "GEMINI_KEY", "gemini-2.0-flash")["ok"], true);
    // Each probe was one real completion of at most one token.
    assert_eq!(groq.n_requests(), 4);
    assert_eq!(gemini.n_requests(), 1);
    let body = groq.log().into_iter().find_map(|request| request.body).expect("a body");
    assert_eq!(body["max_tokens"], 1, "{body}");

    // The scores were seeded into the state file's snapshot, which `serve` restores.
    assert!(stdout.contains("seeded the learned scores in"), "{stdout}");
    let mut store = switchyard_store::SqliteStore::open(dir.path().join("state/switchyard.db"))
        .expect("state file");
    let snapshot = store.load().expect("readable").expect("a snapshot was saved");
    let snapshot = serde_json::to_value(&snapshot).expect("serializes");
    let stats = |key: &str, model: &str| {
        snapshot["providers"]["groq"]["keys"][key]["models"][model].clone()
    };
    assert_eq!(stats("GROQ_GOOD", FAST)["successCount"], 1, "{snapshot}");
    assert_eq!(stats("GROQ_BAD", FAST)["failCount"], 1, "{snapshot}");
    assert_eq!(stats("GROQ_GOOD", BIG)["failCount"], 1, "{snapshot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_passing_exits_0_and_none_passing_exits_2() {
    let (groq, gemini) = upstreams().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    // Only the keys and models that work.
    let text = format!(
        "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{GROQ_GOOD}}\"]\nmodels = [\"{FAST}\"]\n\n[[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nbase_url = \"http://{}\"\nkeys = [\"${{GEMINI_KEY}}\"]\nmodels = [\"gemini-2.0-flash\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{FAST}\"]\n",
        groq.base_url(),
        gemini.addr()
    );
    std::fs::write(dir.path().join("switchyard.toml"), text).expect("config");
    let output = keys_test(dir.path(), &["--json", "out.json"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("passed 2 of 2 (100%)"), "{stdout}");
    assert!(stdout.contains("no [state] path"), "{stdout}");
    assert!(dir.path().join("out.json").exists());

    // Only the invalid key.
    let text = format!(
        "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{GROQ_BAD}}\"]\nmodels = [\"{FAST}\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{FAST}\"]\n",
        groq.base_url()
    );
    std::fs::write(dir.path().join("switchyard.toml"), text).expect("config");
    let output = keys_test(dir.path(), &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("passed 0 of 1 (0%)"), "{stdout}");
    assert!(stdout.contains("fastest: none passed"), "{stdout}");
}

/// The rows of the results JSON as `provider/key/model` → (ok, source).
fn result_rows(dir: &Path) -> std::collections::BTreeMap<String, (bool, String)> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("api-test-results.json")).expect("json written"),
    )
    .expect("valid JSON");
    json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|row| {
            let name = format!(
                "{}/{}/{}",
                row["provider"].as_str().expect("provider"),
                row["key"].as_str().expect("key"),
                row["model"].as_str().expect("model")
            );
            let source = row["source"].as_str().expect("source").to_owned();
            (name, (row["ok"].as_bool().expect("ok"), source))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_models_probes_each_keys_own_list_and_vault_keys_are_tested_like_configured_ones() {
    use std::sync::Arc;
    use switchyard_vault::{NewKey, Passphrase, Vault, VaultConfig};

    let (groq, _) = upstreams().await;
    let gemini = MockUpstream::builder(GeminiWire)
        .models(["gemini-2.5-flash", "gemini-2.0-flash"])
        .key(KeyScript::valid("GEMINI_KEY", "AIza-good-222222"))
        .start()
        .await
        .expect("gemini mock");
    let anthropic = MockUpstream::builder(switchyard_mock::AnthropicWire)
        .models(["claude-sonnet-4", "claude-3-5-haiku-latest"])
        .key(KeyScript::valid("ANTHROPIC_VAULT", "sk-ant-vault-333333"))
        .start()
        .await
        .expect("anthropic mock");
    let dir = tempfile::tempdir().expect("temporary directory");
    // The anthropic key lives only in the vault.
    let passphrase = "keys test vault passphrase";
    let config = VaultConfig::insecure_for_tests(1_000, Arc::new(switchyard_core::SystemClock));
    let mut vault = Vault::create(
        dir.path().join("keys.vault"),
        Passphrase::try_new(passphrase).expect("passphrase"),
        config,
    )
    .expect("vault created");
    let vault_id =
        vault.add(NewKey::new("anthropic", "sk-ant-vault-333333")).expect("key added").id;
    drop(vault);
    let text = format!(
        "[vault]\npath = \"keys.vault\"\n\n[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{GROQ_GOOD}}\"]\nmodels = [\"{FAST}\"]\n\n[[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nbase_url = \"http://{}\"\nkeys = [\"${{GEMINI_KEY}}\"]\nmodels = [\"gemini-2.0-flash\"]\n\n[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodels = [\"claude-3-5-haiku-latest\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{FAST}\"]\n",
        groq.base_url(),
        gemini.addr(),
        anthropic.base_url()
    );
    std::fs::write(dir.path().join("switchyard.toml"), text).expect("config");
    let vault_row = |model: &str| format!("anthropic/{vault_id}/{model}");
    let run = |extra: &'static [&'static str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .current_dir(dir.path())
            .args(["keys", "test", "--config", "switchyard.toml"])
            .args(extra)
            .env_remove("SWITCHYARD_CONFIG")
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .env("SWITCHYARD_VAULT_PASSPHRASE", passphrase)
            .env("GROQ_GOOD", "gsk-good-000000")
            .env("GEMINI_KEY", "AIza-good-222222");
        async move {
            tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
                .await
                .expect("joined")
        }
    };

    // The configured models: the vault key is probed like the configured ones.
    let output = run(&[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let rows = result_rows(dir.path());
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[&vault_row("claude-3-5-haiku-latest")], (true, "vault".to_owned()));
    assert_eq!(rows[&format!("groq/GROQ_GOOD/{FAST}")], (true, "config".to_owned()));
    assert!(stdout.contains(", vault)"), "{stdout}");
    assert!(!stdout.contains("sk-ant-vault"), "no secret printed:\n{stdout}");

    // Each key's own list, asked of each wire format's list endpoint with that key.
    let output = run(&["--all-models"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // The good groq key may not use the big model it lists: some fail, exit 1.
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let rows = result_rows(dir.path());
    let names: Vec<&str> = rows.keys().map(String::as_str).collect();
    let expected = [
        vault_row("claude-3-5-haiku-latest"),
        vault_row("claude-sonnet-4"),
        "gemini/GEMINI_KEY/gemini-2.0-flash".to_owned(),
        "gemini/GEMINI_KEY/gemini-2.5-flash".to_owned(),
        format!("groq/GROQ_GOOD/{FAST}"),
        format!("groq/GROQ_GOOD/{BIG}"),
    ];
    assert_eq!(names, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!rows[&format!("groq/GROQ_GOOD/{BIG}")].0);
    assert_eq!(rows.values().filter(|(ok, _)| *ok).count(), 5, "{rows:?}");
    for (mock, listing) in
        [(&groq, "/v1/models"), (&gemini, "/v1beta/models"), (&anthropic, "/v1/models")]
    {
        // The recorded path keeps its query (Gemini pages with `pageSize`).
        let listed: Vec<String> = mock
            .log()
            .into_iter()
            .filter(|request| request.method == "GET")
            .map(|request| request.path)
            .collect();
        assert_eq!(listed.len(), 1, "one listing at {listing}: {listed:?}");
        assert_eq!(listed[0].split('?').next(), Some(listing), "{listed:?}");
    }

    // At most one model per key: the first of its list by name.
    let output = run(&["--all-models", "--max-models-per-key", "1"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    let rows = result_rows(dir.path());
    let names: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            vault_row("claude-3-5-haiku-latest").as_str(),
            "gemini/GEMINI_KEY/gemini-2.0-flash",
            &format!("groq/GROQ_GOOD/{FAST}"),
        ]
    );
}
