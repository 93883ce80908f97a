//! `switchyard demo --requests 300 --exit` as a user (or a script) runs it: the binary with
//! its four simulated upstreams and the real gateway, its summary and its exit code.

use std::collections::BTreeMap;
use std::process::Command;

struct Summary {
    stdout: String,
    served: u32,
    total: u32,
    per_key: BTreeMap<String, u32>,
    fallbacks: u32,
    provider_fallbacks: u32,
}

fn run_demo(args: &[&str]) -> (std::process::Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("demo")
        .args(args)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout.clone()).expect("utf-8");
    (output, stdout)
}

fn parse(stdout: &str) -> Summary {
    let last = stdout.lines().last().unwrap_or_default();
    let (served, total) = last
        .strip_prefix("served ")
        .and_then(|rest| rest.split_once(" of "))
        .map(|(served, total)| (served.parse().expect("served"), total.parse().expect("total")))
        .unwrap_or_else(|| panic!("no `served X of Y` line at the end:\n{stdout}"));
    let mut per_key = BTreeMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("  ")
            && let Some((key, count)) = rest.split_once(": ")
            && let Some(count) = count.strip_suffix(" served")
        {
            per_key.insert(key.to_owned(), count.parse().expect("a count"));
        }
    }
    let fallbacks_line = stdout
        .lines()
        .find(|line| line.starts_with("fallbacks: "))
        .unwrap_or_else(|| panic!("no fallbacks line:\n{stdout}"));
    let numbers: Vec<u32> = fallbacks_line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().expect("a number"))
        .collect();
    Summary {
        stdout: stdout.to_owned(),
        served,
        total,
        per_key,
        fallbacks: numbers[0],
        provider_fallbacks: numbers[1],
    }
}

#[test]
fn three_hundred_requests_rotate_keys_fall_back_and_drop_the_invalid_key() {
    let (output, stdout) = run_demo(&["--requests", "300", "--exit"]);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = parse(&stdout);
    let out = &summary.stdout;
    assert_eq!(summary.total, 300, "{out}");
    assert_eq!(summary.served, 300, "every request is served within the waits:\n{out}");
    // Every configured key is listed, and the counts add up to what was served.
    for key in [
        "gemini/gemini-1",
        "gemini/gemini-2",
        "groq/groq-1",
        "groq/groq-2",
        "openai/openai-1",
        "anthropic/anthropic-1",
    ] {
        assert!(summary.per_key.contains_key(key), "{key} missing:\n{out}");
    }
    assert_eq!(summary.per_key.values().sum::<u32>(), summary.served, "{out}");
    // Rotation: both Gemini keys served, and the traffic went to every working provider.
    assert!(
        summary.per_key["gemini/gemini-1"] > 0 && summary.per_key["gemini/gemini-2"] > 0,
        "{out}"
    );
    for key in ["groq/groq-1", "openai/openai-1", "anthropic/anthropic-1"] {
        assert!(summary.per_key[key] > 0, "{key} never served:\n{out}");
    }
    // Groq's good key has 30 requests a day: it cannot serve more.
    assert_eq!(summary.per_key["groq/groq-1"], 30, "{out}");
    assert!(summary.fallbacks >= 1, "{out}");
    assert!(summary.provider_fallbacks >= 1, "{out}");
    assert!(summary.provider_fallbacks <= summary.fallbacks, "{out}");
    // The invalid key is named, taken out of rotation and never serves.
    let invalid = out
        .lines()
        .find(|line| line.starts_with("invalid key taken out of rotation: groq/groq-2"))
        .unwrap_or_else(|| panic!("the invalid key is not named:\n{out}"));
    assert!(invalid.ends_with("served 0 after)"), "{invalid}");
    assert_eq!(summary.per_key["groq/groq-2"], 0, "{out}");
    // Groq's key ran out of its day and is shown exhausted until midnight UTC.
    assert!(
        out.lines().any(|line| line.starts_with("key exhausted: groq/groq-1 (until ")
            && line.contains(" 00:00:00 +00:00; limit requests/day-UTC spent (30/30))")),
        "{out}"
    );
    // The learned ranking lists every candidate, scores descending.
    let ranking: Vec<f64> = out
        .lines()
        .skip_while(|line| !line.starts_with("final ranking"))
        .skip(1)
        .take_while(|line| line.starts_with("   "))
        .map(|line| line.rsplit(' ').next().expect("a score").parse().expect("a number"))
        .collect();
    assert_eq!(ranking.len(), 6, "{out}");
    assert!(ranking.windows(2).all(|pair| pair[0] >= pair[1]), "{ranking:?}");
    assert!(!out.contains("sk-demo"), "no secret is printed:\n{out}");
}

#[test]
fn a_bad_argument_is_refused_with_a_message() {
    let (output, _) = run_demo(&["--requests", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--requests"), "{stderr}");
}
