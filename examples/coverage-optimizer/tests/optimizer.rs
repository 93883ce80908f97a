//! The `coverage-optimizer` binary on a tiny Python project (tests/fixture) against
//! `switchyard-mock` speaking Gemini's wire format on loopback, with coverage.py from the venv
//! that `cargo xtask test` builds (`SWITCHYARD_TEST_PYTHON`).
#![cfg(test)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_mock::{
    Failure, Fault, FaultRule, GeminiWire, KeyScript, MockUpstream, ReplyScript, Unit, Window,
};

/// What the mock answers every request with: prose around a fenced test file that covers
/// every function the fixture's own test leaves out.
const ANSWER: &str = "Here are the tests.\n```python\nimport unittest\n\nfrom calc.ops import clamp, double, halve, is_even, sign\n\n\nclass GeneratedTest(unittest.TestCase):\n    def test_clamp(self):\n        self.assertEqual(clamp(-5, 0, 10), 0)\n        self.assertEqual(clamp(50, 0, 10), 10)\n        self.assertEqual(clamp(5, 0, 10), 5)\n\n    def test_sign(self):\n        self.assertEqual(sign(-2), -1)\n        self.assertEqual(sign(2), 1)\n        self.assertEqual(sign(0), 0)\n\n    def test_more(self):\n        self.assertTrue(is_even(4))\n        self.assertEqual(double(3), 6)\n        self.assertEqual(halve(4), 2)\n        with self.assertRaises(ValueError):\n            halve(3)\n```\nThey cover every branch.\n";

/// The venv's interpreter with coverage.py; a missing one fails the test, never skips it.
fn python() -> String {
    std::env::var("SWITCHYARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SWITCHYARD_TEST_PYTHON is not set: run `cargo xtask test`, which builds a venv with \
             coverage.py, or point it at a Python with `pip install coverage`"
        )
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_rises_and_gemini_keys_rotate() {
    let python = python();
    let project = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture"), project.path());
    let rate_limited = Failure::RateLimited {
        window: Window::Minute,
        unit: Unit::Requests,
        limit: 10,
        used: 10,
        requested: 1,
        retry_after: Duration::from_secs(60),
    };
    let mock = MockUpstream::builder(GeminiWire)
        .models(["gemini-2.0-flash"])
        .keys([
            KeyScript::valid("gemini-1", "sk-test-gemini-1-secret"),
            KeyScript::valid("gemini-2", "sk-test-gemini-2-secret"),
            KeyScript::valid("gemini-3", "sk-test-gemini-3-secret"),
        ])
        .fault(FaultRule::always(Fault::Fail(rate_limited)).for_key("gemini-2"))
        .reply(ReplyScript::Text(ANSWER.to_owned()))
        .start()
        .await
        .unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_coverage-optimizer"));
    command
        .args(["--project"])
        .arg(project.path())
        .args(["--python", &python, "--max-iterations", "2"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "GEMINI_KEYS",
            "sk-test-gemini-1-secret,sk-test-gemini-2-secret,sk-test-gemini-3-secret",
        )
        .env("GEMINI_BASE_URL", format!("http://{}", mock.addr()))
        .env("TARGET_COVERAGE", "100")
        .env("BATCH_SIZE", "1")
        .env("MAX_CONCURRENT_BATCHES", "2");
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the optimizer failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("secret"), "a secret reached the output:\n{stdout}");

    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let initial = report["initial_coverage"].as_f64().unwrap();
    let last = report["final_coverage"].as_f64().unwrap();
    assert!(last > initial, "coverage did not rise: {initial} -> {last}\n{stdout}");
    assert_eq!(report["target_achieved"], Value::Bool(true), "{stdout}");
    assert_eq!(report["multi_key_rotation"], Value::Bool(true), "{stdout}");
    assert_eq!(report["fallback_used"], Value::Bool(false), "{stdout}");
    let total_requests = report["total_requests"].as_u64().unwrap();
    let total_errors = report["total_errors"].as_u64().unwrap();
    assert!(total_requests >= 2, "{stdout}");
    // gemini-2 answers 429 to every call: its errors are counted, and others served instead.
    assert!(total_errors >= 1 && total_errors < total_requests, "{stdout}");
    let error_rate = report["error_rate"].as_f64().unwrap();
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let expected_rate = total_errors as f64 / total_requests as f64;
    assert!((error_rate - expected_rate).abs() < 1e-9, "{stdout}");
    assert!(report["elapsed_seconds"].as_f64().unwrap() >= 0.0, "{stdout}");
    // The upstream saw what the report says: every request, gemini-2's all refused with 429,
    // the answers served by the other two keys.
    let counts: Vec<_> =
        ["gemini-1", "gemini-2", "gemini-3"].iter().map(|key| mock.counts(key).unwrap()).collect();
    assert_eq!(counts.iter().map(|c| c.requests).sum::<u64>(), total_requests, "{stdout}");
    assert_eq!(counts[1].served, 0, "{stdout}");
    assert_eq!(counts[1].requests, total_errors, "{stdout}");
    assert!(counts[0].served > 0 && counts[2].served > 0, "{counts:?}\n{stdout}");
    // The per-key table names keys by id and fingerprint.
    assert!(stdout.contains("gemini-1") && stdout.contains("gemini-3"), "{stdout}");
    // The answered test files were written, the code out of the fence only.
    let written: Vec<_> = std::fs::read_dir(project.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("test_switchyard_"))
        .collect();
    assert!(!written.is_empty(), "no test file written:\n{stdout}");
    let first = std::fs::read_to_string(project.path().join(&written[0])).unwrap();
    assert!(first.starts_with("import unittest"), "{first}");
    assert!(!first.contains("```"), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_serves_when_every_gemini_key_is_rate_limited() {
    let python = python();
    let project = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture"), project.path());
    let rate_limited = Failure::RateLimited {
        window: Window::Minute,
        unit: Unit::Requests,
        limit: 10,
        used: 10,
        requested: 1,
        retry_after: Duration::from_secs(60),
    };
    let gemini = MockUpstream::builder(GeminiWire)
        .models(["gemini-2.0-flash"])
        .key(KeyScript::valid("gemini-1", "sk-test-gemini-1-secret"))
        .fault(FaultRule::always(Fault::Fail(rate_limited)))
        .start()
        .await
        .unwrap();
    let openai = MockUpstream::openai()
        .models(["gpt-4o-mini"])
        .key(KeyScript::valid("openai-1", "sk-test-openai-1-secret"))
        .reply(ReplyScript::Text(ANSWER.to_owned()))
        .start()
        .await
        .unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_coverage-optimizer"));
    command
        .args(["--project"])
        .arg(project.path())
        .args(["--python", &python, "--max-iterations", "1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GEMINI_KEYS", "sk-test-gemini-1-secret")
        .env("GEMINI_BASE_URL", format!("http://{}", gemini.addr()))
        .env("OPENAI_API_KEY", "sk-test-openai-1-secret")
        .env("OPENAI_BASE_URL", openai.base_url())
        .env("TARGET_COVERAGE", "100")
        .env("BATCH_SIZE", "10");
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the optimizer failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("secret"), "a secret reached the output:\n{stdout}");

    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["fallback_used"], Value::Bool(true), "{stdout}");
    assert_eq!(report["multi_key_rotation"], Value::Bool(false), "{stdout}");
    assert_eq!(report["target_achieved"], Value::Bool(true), "{stdout}");
    assert_eq!(openai.counts("openai-1").unwrap().served, 1, "{stdout}");
    assert_eq!(gemini.counts("gemini-1").unwrap().served, 0, "{stdout}");
    assert!(report["total_errors"].as_u64().unwrap() >= 1, "{stdout}");
}

#[test]
fn help_documents_every_flag_and_variable_and_shows_no_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_coverage-optimizer"))
        .arg("--help")
        .env("GEMINI_KEYS", "gem-secret-one,gem-secret-two")
        .env("OPENAI_API_KEY", "sk-secret-three")
        .env("ANTHROPIC_API_KEY", "ant-secret-four")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "--help exits 0");
    let help = String::from_utf8(output.stdout).expect("utf-8");
    for (flag, variable) in [
        ("--project", "PROJECT_DIR"),
        ("--coverage-json", "COVERAGE_JSON"),
        ("--target-coverage", "TARGET_COVERAGE"),
        ("--batch-size", "BATCH_SIZE"),
        ("--max-concurrent-batches", "MAX_CONCURRENT_BATCHES"),
        ("--max-iterations", "MAX_ITERATIONS"),
        ("--python", "PYTHON"),
        ("--gemini-keys", "GEMINI_KEYS"),
        ("--openai-api-key", "OPENAI_API_KEY"),
        ("--anthropic-api-key", "ANTHROPIC_API_KEY"),
        ("--gemini-model", "GEMINI_MODEL"),
        ("--openai-model", "OPENAI_MODEL"),
        ("--anthropic-model", "ANTHROPIC_MODEL"),
        ("--gemini-base-url", "GEMINI_BASE_URL"),
        ("--openai-base-url", "OPENAI_BASE_URL"),
        ("--anthropic-base-url", "ANTHROPIC_BASE_URL"),
    ] {
        assert!(help.contains(flag), "{flag} in --help:\n{help}");
        assert!(help.contains(&format!("[env: {variable}")), "{variable} in --help:\n{help}");
    }
    for secret in ["gem-secret-one", "gem-secret-two", "sk-secret-three", "ant-secret-four"] {
        assert!(!help.contains(secret), "--help shows a key from the environment");
    }
}
