//! `keys test --url` and `batch --url` against a real gateway (in this process, over
//! loopback): the key test's results seed the gateway's scorer through
//! `POST /admin/scores/import`, and a batch goes through `/v1/chat/completions`.

mod cli_gateway;

use cli_gateway::{MODEL, TOKEN, secret, start, switchyard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_test_with_url_seeds_the_gateways_scorer() {
    let gateway = start(&["bad_1", "good_1"], false).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    // The same upstream and keys, and one model the gateway does not route.
    let config = format!(
        "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nbase_url = \"{}\"\nkeys = [\"${{good_1}}\", \"${{bad_1}}\"]\nmodels = [\"{MODEL}\", \"not-routed\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/{MODEL}\"]\n",
        gateway.mock.base_url()
    );
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(&config_path, config).expect("config");
    let json_path = dir.path().join("results.json");
    let output = tokio::task::spawn_blocking({
        let (base, config_path, json_path) =
            (gateway.base.clone(), config_path.clone(), json_path.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["keys", "test", "--url", &base, "--admin-token", TOKEN, "--config"])
                .arg(&config_path)
                .arg("--json")
                .arg(&json_path)
                .env("good_1", secret("good_1"))
                .env("bad_1", secret("bad_1"))
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // good_1 on the routed model passes; the other three probes fail.
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed 1 of 4 (25%)"), "{stdout}");
    // Two rows name routed candidates; the two on the unrouted model are unknown to it.
    assert!(
        stdout.contains(&format!(
            "seeded the gateway's scorer at {}: 2 imported, 2 unknown",
            gateway.base
        )),
        "{stdout}"
    );

    let scores: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/admin/scores", gateway.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("scores")
        .json()
        .await
        .expect("JSON");
    let candidate = |key: &str| {
        scores["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|row| row["key"] == key && row["model"] == MODEL)
            .unwrap_or_else(|| panic!("{key} not scored: {scores}"))
            .clone()
    };
    let (good, bad) = (candidate("good_1"), candidate("bad_1"));
    assert!(good["successes"].as_f64().is_some_and(|n| n >= 1.0), "{good}");
    assert!(bad["failures"].as_f64().is_some_and(|n| n >= 1.0), "{bad}");
    assert!(good["score"].as_f64() > bad["score"].as_f64(), "{scores}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_url_goes_through_the_gateway() {
    let gateway = start(&["good_1"], false).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = (1..=10)
        .map(|n| format!("{{\"custom_id\":\"r{n}\",\"messages\":[{{\"role\":\"user\",\"content\":\"q{n}\"}}]}}"))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let output_path = dir.path().join("out.jsonl");
    let output = switchyard(vec![
        "batch".into(),
        "--url".into(),
        gateway.base.clone(),
        "--input".into(),
        input.display().to_string(),
        "--output".into(),
        output_path.display().to_string(),
        "--max-concurrent".into(),
        "4".into(),
    ])
    .await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert!(output.status.success(), "{report}");
    assert_eq!(report["served"], 10, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let answers = std::fs::read_to_string(&output_path).expect("output");
    assert_eq!(answers.lines().count(), 10);
    for line in answers.lines() {
        let answer: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(answer["provider"], "groq", "{answer}");
        let id = answer["custom_id"].as_str().expect("id");
        let text = answer["response"]["choices"][0]["message"]["content"].as_str().expect("text");
        // The mock echoes the prompt: each answer belongs to its own request.
        assert_eq!(text, format!("You said: q{}", &id[1..]), "{answer}");
    }
    assert_eq!(gateway.mock.totals().served, 10);
}
