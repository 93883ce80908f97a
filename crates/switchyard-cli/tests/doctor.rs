//! `switchyard doctor` as an operator runs it: the real binary on a configuration of
//! simulated upstreams (a good key, a revoked key, a rate-limited key), the report naming
//! each, the exit code matching, no state file created; a broken configuration; and a
//! running gateway's key states read with `--url`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_mock::{Failure, Fault, FaultRule, KeyScript, MockUpstream, Unit, Window};

const MODEL: &str = "llama-3.1-8b-instant";
const ADMIN: &str = "doctor-admin-token-0123456789";

fn secret(id: &str) -> String {
    format!("gsk-doctor-{id}-000000")
}

/// A Groq-shaped upstream: GOOD serves, REVOKED is refused as an invalid key, LIMITED is
/// answered 429 on every call.
async fn upstream() -> MockUpstream {
    MockUpstream::builder(switchyard_mock::OpenAiWire::new(switchyard_mock::Flavor::Groq))
        .models([MODEL])
        .key(KeyScript::valid("GOOD", secret("GOOD")))
        .key(KeyScript::valid("REVOKED", secret("REVOKED")).revoked_after(0))
        .key(KeyScript::valid("LIMITED", secret("LIMITED")))
        .fault(
            FaultRule::always(Fault::Fail(Failure::RateLimited {
                window: Window::Minute,
                unit: Unit::Requests,
                limit: 30,
                used: 30,
                requested: 1,
                retry_after: Duration::from_secs(20),
            }))
            .for_key("LIMITED"),
        )
        .start()
        .await
        .expect("mock starts")
}

fn config_text(mock: &MockUpstream, keys: &[&str], extra: &str) -> String {
    let keys: Vec<String> = keys.iter().map(|id| format!("\"${{{id}}}\"")).collect();
    format!(
        "{extra}[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [{}]\nmodels = [\"{MODEL}\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{MODEL}\"]\n",
        mock.base_url(),
        keys.join(", ")
    )
}

async fn doctor(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .current_dir(dir)
        .args(["doctor", "--config", "switchyard.toml", "--timeout-secs", "30"])
        .args(extra)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env("NO_COLOR", "1");
    for id in ["GOOD", "REVOKED", "LIMITED"] {
        command.env(id, secret(id));
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for id in ["GOOD", "REVOKED", "LIMITED"] {
        assert!(!stdout.contains(&secret(id)) && !stderr.contains(&secret(id)), "a secret printed");
    }
    (output.status.code(), stdout, stderr)
}

fn key<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["key"] == id)
        .unwrap_or_else(|| panic!("key {id} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_a_revoked_and_a_rate_limited_key_are_each_named_and_the_exit_code_is_some_down() {
    let mock = upstream().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = config_text(
        &mock,
        &["GOOD", "REVOKED", "LIMITED"],
        "[state]\npath = \"state/switchyard.db\"\n\n",
    );
    std::fs::write(dir.path().join("switchyard.toml"), text).expect("config written");

    let (code, stdout, stderr) = doctor(dir.path(), &["--json"]).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("JSON report ({error}): {stdout}\n{stderr}"));
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["verdict"], "some keys down");
    assert_eq!(report["config"]["ok"], true);
    assert_eq!(report["summary"]["keys"], 3);
    assert_eq!(report["summary"]["working"], 1);
    let good = key(&report, "GOOD");
    assert_eq!(good["works"], true, "{good:#}");
    assert_eq!(good["probe"]["ok"], true);
    assert_eq!(good["probe"]["model"], MODEL);
    let revoked = key(&report, "REVOKED");
    assert_eq!(revoked["works"], false);
    assert_eq!(revoked["probe"]["error_class"], "invalid_key", "{revoked:#}");
    let limited = key(&report, "LIMITED");
    assert_eq!(limited["works"], false);
    assert_eq!(limited["probe"]["error_class"], "rate_limited", "{limited:#}");
    assert_eq!(limited["probe"]["status"], 429);
    // No state file yet, and the doctor did not create one (nor its analytics log).
    assert!(report["state_source"].as_str().expect("source").contains("does not exist"));
    assert!(report["last_errors"].is_null());
    assert!(report["last_errors_omitted"].is_string(), "{report:#}");
    assert!(!dir.path().join("state").exists(), "the doctor created state");
    // One probe per key: a cheap check.
    assert_eq!(mock.totals().requests, 3);

    // The human table names the same.
    let (code, table, _) = doctor(dir.path(), &[]).await;
    assert_eq!(code, Some(1), "{table}");
    for needle in ["GOOD", "REVOKED", "LIMITED", "invalid_key", "rate_limited", "some keys down"] {
        assert!(table.contains(needle), "{needle} missing from:\n{table}");
    }
    assert!(!dir.path().join("state").exists(), "the doctor created state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_working_key_exits_2_and_a_broken_configuration_exits_3_with_its_line() {
    let mock = upstream().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = config_text(&mock, &["REVOKED", "LIMITED"], "");
    std::fs::write(dir.path().join("switchyard.toml"), &text).expect("config written");
    let (code, stdout, _) = doctor(dir.path(), &["--json"]).await;
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(report["verdict"], "no key works");
    assert_eq!(report["summary"]["working"], 0);

    // A route naming no configured provider: the loader's file:line error, exit 3, and no
    // probe sent.
    let before = mock.totals().requests;
    let broken = text.replace(&format!("\"groq/{MODEL}\""), "\"nope/model\"");
    let line = broken.lines().position(|line| line.starts_with("targets")).expect("line") + 1;
    std::fs::write(dir.path().join("switchyard.toml"), &broken).expect("config written");
    let (code, stdout, _) = doctor(dir.path(), &["--json"]).await;
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(report["config"]["ok"], false);
    let error = report["config"]["error"].as_str().expect("error");
    assert!(error.contains(&format!("switchyard.toml:{line}")), "{error}");
    assert!(error.contains("nope/model"), "{error}");
    let (code, table, _) = doctor(dir.path(), &[]).await;
    assert_eq!(code, Some(3));
    assert!(table.contains("INVALID") && table.contains("config invalid"), "{table}");
    assert_eq!(mock.totals().requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_url_key_states_come_from_the_running_gateway() {
    let mock = upstream().await;
    let text = config_text(
        &mock,
        &["GOOD", "LIMITED"],
        "[server]\nadmin_token = \"${SWITCHYARD_TEST_ADMIN}\"\n\n",
    );
    let env = [
        ("SWITCHYARD_TEST_ADMIN", ADMIN.to_owned()),
        ("GOOD", secret("GOOD")),
        ("LIMITED", secret("LIMITED")),
    ];
    let gateway = support::Gateway::start(&text, &env).expect("gateway starts");
    let response = reqwest::Client::new()
        .post(gateway.url("/admin/keys/groq/GOOD/disable"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success(), "{}", response.status());

    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("switchyard.toml"), &text).expect("config written");
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .current_dir(dir.path())
        .args(["doctor", "--config", "switchyard.toml", "--json", "--no-probe", "--url"])
        .arg(gateway.url(""))
        .env_remove("SWITCHYARD_CONFIG")
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN);
    for (name, value) in &env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("JSON report ({error}): {}", String::from_utf8_lossy(&output.stderr))
    });
    assert!(report["state_source"].as_str().expect("source").starts_with("gateway "));
    let good = key(&report, "GOOD");
    assert_eq!(good["state"], "disabled", "{report:#}");
    assert_eq!(good["works"], false);
    assert!(good["probe"].is_null());
    let limited = key(&report, "LIMITED");
    assert_eq!(limited["state"], "available", "{report:#}");
    assert_eq!(limited["works"], true);
    assert!(limited["probe"].is_null());
    assert_eq!(output.status.code(), Some(1), "{report:#}");

    // A gateway that will not answer (a wrong admin token): exit 4.
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .current_dir(dir.path())
        .args(["doctor", "--config", "switchyard.toml", "--no-probe", "--url"])
        .arg(gateway.url(""))
        .env_remove("SWITCHYARD_CONFIG")
        .env("SWITCHYARD_ADMIN_TOKEN", "wrong-token-0123456789")
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stdout).contains("gateway unreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_url_states_and_last_errors_come_from_the_state_file_a_gateway_left() {
    let mock = upstream().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = dir.path().join("state").join("switchyard.db");
    let text =
        config_text(&mock, &["GOOD", "REVOKED"], &format!("[state]\npath = {:?}\n\n", state));
    let env = [("GOOD", secret("GOOD")), ("REVOKED", secret("REVOKED"))];
    let mut gateway = support::Gateway::start(&text, &env).expect("gateway starts");
    let client = reqwest::Client::new();
    let tried_revoked = || {
        mock.log()
            .iter()
            .any(|request| request.key.as_ref().is_some_and(|k| k.as_str() == "REVOKED"))
    };
    let mut sent = 0;
    while !tried_revoked() {
        assert!(sent < 50, "the revoked key was never tried");
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("sent");
        assert!(response.status().is_success(), "{}", response.status());
        sent += 1;
    }
    // The gateway saves its quota state and analytics at shutdown.
    assert!(gateway.terminate().success(), "{}", gateway.stderr());

    std::fs::write(dir.path().join("switchyard.toml"), &text).expect("config written");
    let before = mock.totals().requests;
    let (code, stdout, stderr) = doctor(dir.path(), &["--json", "--no-probe"]).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("JSON report ({error}): {stdout}\n{stderr}"));
    assert!(report["state_source"].as_str().expect("source").starts_with("state file"));
    let revoked = key(&report, "REVOKED");
    assert_eq!(revoked["state"], "invalid", "{report:#}");
    assert_eq!(revoked["works"], false);
    let good = key(&report, "GOOD");
    assert_eq!(good["state"], "available", "{report:#}");
    assert_eq!(good["works"], true);
    assert_eq!(code, Some(1), "{report:#}");
    // The last errors, from the analytics log next to the state file.
    let errors = report["last_errors"]["errors"].as_array().expect("last errors");
    let invalid = errors.iter().find(|row| row["class"] == "invalid_key").expect("invalid_key");
    assert!(invalid["count"].as_u64().is_some_and(|n| n >= 1), "{invalid}");
    assert_eq!(invalid["keys"], serde_json::json!(["groq/REVOKED"]), "{invalid}");
    // --no-probe sent nothing.
    assert_eq!(mock.totals().requests, before);
}
