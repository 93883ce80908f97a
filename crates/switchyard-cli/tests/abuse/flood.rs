//! 10,000 distinct junk model names: each refused with a 4xx, and nothing the gateway keeps
//! grows with them (`/v1/models`, `/metrics`, the `[state]` file, its memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde_json::{Value, json};
use switchyard_mock::MockUpstream;

use crate::harness::{
    Answer, Gateway, Workdir, chat, client, metrics, millis, mock, now, post, report, secret, start,
};

const N_NAMES: usize = 10_000;
const N_CONNECTIONS: usize = 8;
/// Why 15 MB: the allocator keeps pages it freed (one arena per worker thread), the
/// analytics queue may hold up to 10,000 events while its writer catches up, and tracing
/// buffers a burst of log lines. None of that grows with the number of distinct names; a
/// router that keeps a candidate, quota buckets, scorer stats and metric series per junk
/// name grows far more over 10,000 of them.
const RSS_SLACK_KIB: u64 = 15 * 1024;
/// Counters that change value change the length of their digits, never the set of series.
const METRICS_SLACK_BYTES: usize = 4096;
/// The state file is measured after a clean exit (everything checkpointed into it); values
/// that change in place may still move a few pages between the tree and the freelist.
const STATE_SLACK_BYTES: u64 = 16 * 1024;

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
admin_token = "${{ABUSE_ADMIN}}"
client_tokens = ["${{ABUSE_CLIENT}}"]

[state]
path = "state.db"

[[providers]]
name = "mockA"
kind = "openai"
base_url = "{base_url}"
keys = ["${{KEY_A}}"]
models = ["gpt-4o-mini"]
limits = {{ requests_per_minute = 100000, requests_per_day = 1000000 }}

[[routes]]
name = "default"
targets = ["mockA/gpt-4o-mini"]
"#
    )
}

/// The `i`-th junk name: half aimed at the configured provider, half plain junk.
fn junk_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("mockA/nope-{}", i / 2 + 1)
    } else {
        format!("junk-{i}-{:x}", i.wrapping_mul(0x9e37_79b9))
    }
}

/// Sends `names` over a few keep-alive connections; returns statuses by class and the hangs.
async fn flood(gateway: &Gateway, names: Vec<String>) -> (Vec<(u16, u64)>, u64, Vec<String>) {
    let names = Arc::new(names);
    let next = Arc::new(AtomicUsize::new(0));
    let hangs = Arc::new(AtomicU64::new(0));
    let url = gateway.url("/v1/chat/completions");
    let mut workers = Vec::new();
    for _ in 0..N_CONNECTIONS {
        let (names, next, hangs, url) =
            (Arc::clone(&names), Arc::clone(&next), Arc::clone(&hangs), url.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            let mut statuses: Vec<u16> = Vec::new();
            let mut odd: Vec<String> = Vec::new();
            loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(idx) else { break };
                match post(&client, &url, &chat(name, "hi", false)).await {
                    Answer::Done { status, .. } => statuses.push(status),
                    Answer::Hang => {
                        hangs.fetch_add(1, Ordering::Relaxed);
                    }
                    Answer::Broken(error) => odd.push(format!("{name}: {error}")),
                }
            }
            (statuses, odd)
        }));
    }
    let mut by_status = std::collections::BTreeMap::<u16, u64>::new();
    let mut broken = Vec::new();
    for worker in workers {
        let (statuses, odd) = worker.await.expect("a flood worker");
        for status in statuses {
            *by_status.entry(status).or_default() += 1;
        }
        broken.extend(odd);
    }
    (by_status.into_iter().collect(), hangs.load(Ordering::Relaxed), broken)
}

/// The state file's size once the gateway has exited cleanly (SQLite folded its log in).
fn state_bytes(workdir: &Workdir) -> u64 {
    ["state.db", "state.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(workdir.path(name)).ok())
        .map(|meta| meta.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_model_names_are_refused_and_nothing_grows() {
    let upstream =
        start(mock(MockUpstream::openai(), &["a1"]).models(["gpt-4o-mini"]).log_limit(0)).await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let env = [("KEY_A", secret("a1"))];

    // A first run serves and refuses a little, then exits cleanly: the state file now holds
    // what a warm gateway holds, and its size is the baseline.
    let mut gateway = Gateway::start(&workdir, &env);
    let warm_up: Vec<String> = (0..50)
        .map(|i| if i % 5 == 0 { "default".to_owned() } else { junk_name(N_NAMES + i) })
        .collect();
    let _ = flood(&gateway, warm_up.clone()).await;
    gateway.terminate().await;
    let state_before = state_bytes(&workdir);

    let gateway = Gateway::start(&workdir, &env);
    let (warm_statuses, _, _) = flood(&gateway, warm_up).await;
    let models_before: Value = gateway.client_json("/v1/models").await;
    let (metrics_bytes_before, series_before) = metrics(&gateway).await;
    let rss_before = gateway.rss_kib();

    let started = now();
    let names: Vec<String> = (0..N_NAMES).map(junk_name).collect();
    let (statuses, hangs, broken) = flood(&gateway, names).await;
    let elapsed = now() - started;

    let models_after: Value = gateway.client_json("/v1/models").await;
    let (metrics_bytes_after, series_after) = metrics(&gateway).await;
    let rss_after = gateway.rss_kib();
    let panics = gateway.panics();
    let mut gateway = gateway;
    gateway.terminate().await;
    let state_after = state_bytes(&workdir);
    let new_series: Vec<&String> =
        series_after.iter().filter(|series| !series_before.contains(series)).collect();
    let n_refused_4xx: u64 =
        statuses.iter().filter(|(status, _)| (400..500).contains(status)).map(|(_, n)| n).sum();

    report(
        "junk_model_names",
        json!({
            "requests_sent": N_NAMES, "connections": N_CONNECTIONS, "elapsed_ms": millis(elapsed),
            "statuses": statuses.iter().map(|(s, n)| json!([s, n])).collect::<Vec<_>>(),
            "warm_up_statuses": warm_statuses.iter().map(|(s, n)| json!([s, n])).collect::<Vec<_>>(),
            "hangs": hangs, "broken": broken.len(), "panics": panics,
            "rss_kib_before": rss_before, "rss_kib_after": rss_after,
            "metrics_bytes_before": metrics_bytes_before, "metrics_bytes_after": metrics_bytes_after,
            "series_before": series_before.len(), "series_after": series_after.len(),
            "state_bytes_before": state_before, "state_bytes_after": state_after,
            "models_listed_before": models_before["data"].as_array().map_or(0, Vec::len),
            "models_listed_after": models_after["data"].as_array().map_or(0, Vec::len),
            "upstream_calls": upstream.n_requests(),
        }),
    );
    assert_eq!(hangs, 0, "requests that hung");
    assert!(broken.is_empty(), "broken connections: {:?}", &broken[..broken.len().min(5)]);
    assert_eq!(n_refused_4xx, N_NAMES as u64, "every junk name gets a 4xx: {statuses:?}");
    assert_eq!(panics, 0, "panics in the gateway's log");
    assert_eq!(models_after, models_before, "/v1/models changed");
    assert!(
        new_series.is_empty(),
        "{} new metric series, e.g. {:?}",
        new_series.len(),
        &new_series[..new_series.len().min(5)]
    );
    assert!(
        metrics_bytes_after <= metrics_bytes_before + METRICS_SLACK_BYTES,
        "/metrics grew from {metrics_bytes_before} to {metrics_bytes_after} bytes"
    );
    assert!(
        state_after <= state_before + STATE_SLACK_BYTES,
        "the state file grew from {state_before} to {state_after} bytes"
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
