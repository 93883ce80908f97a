//! `switchyard demo` as a user runs it: the binary, its output and its exit code.

use std::process::Command;

fn demo(args: &[&str]) -> (String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("demo")
        .args(args)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert!(stderr.is_empty() || output.status.success(), "stderr: {stderr}");
    (stdout, output.status.success())
}

#[test]
fn the_demo_rotates_keys_when_a_quota_is_spent_and_exits_0() {
    let (stdout, success) = demo(&[]);
    assert!(success, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    // Three answers on the first key, then its 429 classified, then the second key.
    let served_first = lines.iter().filter(|line| line.contains("demo-key-1  200")).count();
    assert_eq!(served_first, 3, "{stdout}");
    let refusal = lines
        .iter()
        .find(|line| line.contains("demo-key-1  429"))
        .unwrap_or_else(|| panic!("no 429 for the first key:\n{stdout}"));
    assert!(refusal.contains("rate_limited (per-minute)"), "{refusal}");
    assert!(
        refusal.contains("retry after 60.0s") || refusal.contains("retry after 59."),
        "{refusal}"
    );
    assert!(refusal.contains("next step: NextKey"), "{refusal}");
    assert!(stdout.contains("-> next key: demo-key-2"), "{stdout}");
    assert_eq!(lines.iter().filter(|line| line.contains("demo-key-2  200")).count(), 3, "{stdout}");
    assert!(
        stdout.contains("-> every key is rate limited; demo-key-1 is usable again in"),
        "the key refused first is usable first:\n{stdout}"
    );
    assert!(stdout.contains("streamed") && stdout.contains("plain"), "{stdout}");
    assert!(stdout.contains("\"You said: What is a railway switchyard? (#1)\""), "{stdout}");
    assert!(stdout.contains("demo-key-1: 4 requests, 3 served, 1 rate limited"), "{stdout}");
    assert!(!stdout.contains("sk-demo"), "no secret is printed:\n{stdout}");
}

#[test]
fn a_larger_quota_serves_every_request_on_the_first_key() {
    let (stdout, success) = demo(&["--requests", "4", "--per-minute", "10"]);
    assert!(success, "{stdout}");
    assert_eq!(stdout.lines().filter(|line| line.contains("demo-key-1  200")).count(), 4);
    assert!(!stdout.contains("  429 "), "no key was refused:\n{stdout}");
    assert!(stdout.contains("6 left this minute"), "{stdout}");
}

#[test]
fn a_bad_argument_is_refused_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["demo", "--requests", "0"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--requests"), "{stderr}");
}
