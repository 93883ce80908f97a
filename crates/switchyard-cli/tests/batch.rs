//! `switchyard batch` as a user runs it: the binary, a configuration of simulated upstreams
//! with small declared quotas, a JSONL input, the output file and the report; and a run
//! killed half-way, then run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_core::{Clock as _, SystemClock};
use switchyard_mock::{KeyScript, Latency, MockUpstream};

const KEYS: [&str; 5] = ["K1", "K2", "K3", "K4", "K5"];
const PER_MINUTE: u64 = 25;

fn secret(id: &str) -> String {
    format!("gsk-batch-{id}-000000")
}

/// A Groq-shaped upstream of five keys, each `PER_MINUTE` requests a minute.
async fn upstream(latency: Duration) -> MockUpstream {
    MockUpstream::builder(switchyard_mock::OpenAiWire::new(switchyard_mock::Flavor::Groq))
        .models(["llama-3.1-8b-instant"])
        .keys(KEYS.map(|id| KeyScript::valid(id, secret(id)).requests_per_minute(PER_MINUTE)))
        .latency(Latency::Fixed(latency))
        .start()
        .await
        .expect("mock starts")
}

/// The same limits declared in the configuration.
fn config(dir: &Path, mock: &MockUpstream) -> PathBuf {
    let keys: Vec<String> = KEYS.iter().map(|id| format!("\"${{{id}}}\"")).collect();
    let text = format!(
        "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [{}]\nmodels = [\"llama-3.1-8b-instant\"]\nlimits = {{ requests_per_minute = {PER_MINUTE} }}\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/llama-3.1-8b-instant\"]\n",
        mock.base_url(),
        keys.join(", ")
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// 100 requests: even ones with a `custom_id`, odd ones named by their line.
fn input(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for n in 1..=100 {
        let message = format!("{{\"role\":\"user\",\"content\":\"question {n}\"}}");
        if n % 2 == 0 {
            text.push_str(&format!(
                "{{\"custom_id\":\"q-{n}\",\"model\":\"default\",\"messages\":[{message}],\"max_tokens\":8}}\n"
            ));
        } else {
            text.push_str(&format!("{{\"messages\":[{message}]}}\n"));
        }
    }
    let path = dir.join("in.jsonl");
    std::fs::write(&path, text).expect("input written");
    path
}

fn batch(config: &Path, input: &Path, output: &Path, concurrent: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .args(["batch", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--max-concurrent", concurrent])
        .env_remove("SWITCHYARD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for id in KEYS {
        command.env(id, secret(id));
    }
    command
}

fn expected_ids() -> Vec<String> {
    (1..=100).map(|n| if n % 2 == 0 { format!("q-{n}") } else { n.to_string() }).collect()
}

/// Each id of the output with how often it appears.
fn output_ids(output: &Path) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for line in std::fs::read_to_string(output).expect("output").lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let id = value["custom_id"].as_str().expect("custom_id").to_owned();
        assert!(value["response"]["choices"][0]["message"]["content"].is_string(), "{line}");
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

async fn run(mut command: Command) -> (std::process::Output, serde_json::Value) {
    let output = tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the report is JSON ({error}):\n{}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_requests_are_all_served_within_the_declared_quotas() {
    let mock = upstream(Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (config, input) = (config(dir.path(), &mock), input(dir.path()));
    let output = dir.path().join("out.jsonl");
    let (status, report) = run(batch(&config, &input, &output, "16")).await;
    assert!(status.status.success(), "{report}");
    assert_eq!(report["requests"], 100, "{report}");
    assert_eq!(report["served"], 100, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["error_rate"], 0.0, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    let keys_used = report["keys_used"].as_object().expect("keys_used");
    assert_eq!(keys_used.values().map(|n| n.as_u64().expect("count")).sum::<u64>(), 100);
    assert!(keys_used.values().all(|n| n.as_u64().expect("count") <= PER_MINUTE), "{report}");
    let ids = output_ids(&output);
    assert_eq!(
        ids.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        expected_ids().into_iter().collect()
    );
    assert!(ids.values().all(|n| *n == 1));
    // The declared limits kept every key inside its quota: the upstream refused nothing.
    let totals = mock.totals();
    assert_eq!(totals.requests, 100);
    assert_eq!(totals.rate_limited, 0);
    for id in KEYS {
        assert!(mock.counts(id).expect("counted").served <= PER_MINUTE);
    }

    // Run again: everything is already answered, nothing is sent.
    let (status, report) = run(batch(&config, &input, &output, "16")).await;
    assert!(status.status.success(), "{report}");
    assert_eq!(report["skipped"], 100, "{report}");
    assert_eq!(report["attempted"], 0, "{report}");
    assert_eq!(mock.totals().requests, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_half_way_finishes_on_the_next_without_repeating_answers() {
    // Slow enough (two at a time, 100 ms each) to be killed in the middle.
    let mock = upstream(Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (config, input) = (config(dir.path(), &mock), input(dir.path()));
    let output = dir.path().join("out.jsonl");
    let mut child = batch(&config, &input, &output, "2").spawn().expect("spawned");
    let lines = |path: &Path| std::fs::read_to_string(path).map_or(0, |text| text.lines().count());
    let mut waited = 0;
    while lines(&output) < 50 {
        assert!(waited < 600, "no progress: {} lines", lines(&output));
        // The test waits on a child process that runs on real time: it polls through the
        // system clock.
        SystemClock.sleep_until(SystemClock.now() + Duration::from_millis(50)).await;
        waited += 1;
    }
    child.kill().expect("killed");
    let _ = child.wait();
    let before = output_ids(&output);
    assert!((50..100).contains(&before.len()), "killed after {} answers", before.len());
    assert!(before.values().all(|n| *n == 1));

    let (status, report) = run(batch(&config, &input, &output, "2")).await;
    assert!(status.status.success(), "{report}");
    assert_eq!(report["skipped"].as_u64(), Some(before.len() as u64), "{report}");
    assert_eq!(report["served"].as_u64(), Some(100 - before.len() as u64), "{report}");
    let after = output_ids(&output);
    assert_eq!(after.len(), 100);
    assert!(after.values().all(|n| *n == 1), "an id answered twice: {after:?}");
    assert_eq!(
        after.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        expected_ids().into_iter().collect()
    );
    // Only the requests in flight at the kill (two at most) were asked twice upstream.
    let upstream_calls = mock.totals().requests;
    assert!((100..=102).contains(&upstream_calls), "{upstream_calls} upstream calls");
    assert_eq!(mock.totals().rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_run_one_after_the_other_with_pauses_and_the_report_has_the_fields_ci_reads() {
    let mock = upstream(Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (config, input) = (config(dir.path(), &mock), input(dir.path()));
    let output = dir.path().join("out.jsonl");
    let mut command = batch(&config, &input, &output, "16");
    command.args(["--batch-size", "30", "--pause-secs", "0.05"]);
    let (status, report) = run(command).await;
    assert!(status.status.success(), "{report}");
    // 100 requests in batches of 30: four batches, a pause between each two.
    assert_eq!(report["batches"], 4, "{report}");
    assert_eq!(report["pauses"], 3, "{report}");
    assert_eq!(report["total_requests"], 100, "{report}");
    assert_eq!(report["total_errors"], 0, "{report}");
    assert_eq!(report["error_rate"], 0.0, "{report}");
    assert_eq!(report["target_achieved"], true, "{report}");
    assert_eq!(report["multi_key_rotation"], true, "{report}");
    assert_eq!(report["fallback_used"], false, "{report}");
    assert!(report["elapsed_seconds"].as_f64().is_some_and(|secs| secs >= 0.0), "{report}");
    // A batch ends before the next starts: the first 30 answers are the first 30 lines.
    let text = std::fs::read_to_string(&output).expect("output");
    let first: std::collections::BTreeSet<String> = text
        .lines()
        .take(30)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            value["custom_id"].as_str().expect("custom_id").to_owned()
        })
        .collect();
    let expected: std::collections::BTreeSet<String> =
        expected_ids().into_iter().take(30).collect();
    assert_eq!(first, expected);

    // Bad values are refused before anything is sent.
    for (flag, value) in [("--pause-secs", "-1"), ("--pause-secs", "NaN"), ("--batch-size", "0")] {
        let mut command = batch(&config, &input, &output, "16");
        command.args([flag, value]);
        let refused = command.output().expect("the binary runs");
        assert_eq!(refused.status.code(), Some(2), "{flag} {value}");
    }
    assert_eq!(mock.totals().requests, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_a_fallback_provider_sets_fallback_used() {
    let primary =
        MockUpstream::builder(switchyard_mock::OpenAiWire::new(switchyard_mock::Flavor::Groq))
            .models(["llama-3.1-8b-instant"])
            .key(KeyScript::invalid("K1", secret("K1")))
            .start()
            .await
            .expect("mock starts");
    let fallback = upstream(Duration::from_millis(1)).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = format!(
        "[[providers]]\nname = \"primary\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{K1}}\"]\nmodels = [\"llama-3.1-8b-instant\"]\n\n[[providers]]\nname = \"backup\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{K2}}\"]\nmodels = [\"llama-3.1-8b-instant\"]\n\n[[routes]]\nname = \"default\"\nstrategy = \"priority\"\ntargets = [\"primary/llama-3.1-8b-instant\", \"backup/llama-3.1-8b-instant\"]\n",
        primary.base_url(),
        fallback.base_url()
    );
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, text).expect("config written");
    let input = dir.path().join("in.jsonl");
    let lines: String = (1..=5)
        .map(|n| format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"q{n}\"}}]}}\n"))
        .collect();
    std::fs::write(&input, lines).expect("input written");
    let output = dir.path().join("out.jsonl");
    let (status, report) = run(batch(&config, &input, &output, "1")).await;
    assert!(status.status.success(), "{report}");
    assert_eq!(report["served"], 5, "{report}");
    assert_eq!(report["fallback_used"], true, "{report}");
    assert_eq!(report["multi_key_rotation"], false, "{report}");
    assert_eq!(report["target_achieved"], true, "{report}");
    assert_eq!(report["keys_used"]["backup/K2"], 5, "{report}");
    assert!(primary.totals().requests >= 1);
}
