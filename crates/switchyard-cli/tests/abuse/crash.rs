//! `kill -9` of the gateway under load, then a restart on the same `[state]` file: the quota
//! counts lost are at most about one second of traffic, and the upstream is never called
//! past its declared limit over the whole run (what the crash lost, the gateway must learn
//! back, e.g. from the upstream's rate-limit headers, before it overspends).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_mock::{KeyScript, Latency, MockUpstream, WindowQuota};
use tokio::task::JoinSet;

use crate::harness::{
    Answer, Gateway, Workdir, chat, client, millis, now, pause, post, report, secret, start,
    wait_until,
};

/// The declared limit, in the config and in the mock alike.
const LIMIT: u64 = 200;
const WORKERS: usize = 2;
/// The mock's count at which the gateway is killed: mid-way to the limit.
const KILL_AT: u64 = 100;

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
client_tokens = ["${{ABUSE_CLIENT}}"]
admin_token = "${{ABUSE_ADMIN}}"

[state]
path = "state.db"

[[providers]]
name = "limited"
kind = "openai"
base_url = "{base_url}"
keys = ["${{LIMITED_KEY}}"]
models = ["gpt-4o-mini"]
limits = {{ requests_per_day = {LIMIT} }}

[[routes]]
name = "default"
targets = ["limited/gpt-4o-mini"]
"#
    )
}

/// Counts of one load phase.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    refused: AtomicU64,
    broken: AtomicU64,
    hangs: AtomicU64,
    /// Refusals in a row (any worker): the limit is reached.
    refused_in_a_row: AtomicU64,
    stop: AtomicBool,
}

fn spawn_load(url: String, load: &Arc<Load>) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for worker_idx in 0..WORKERS {
        let (url, load) = (url.clone(), Arc::clone(load));
        workers.spawn(async move {
            let client = client();
            let mut request_idx = 0_u64;
            while !load.stop.load(Ordering::Relaxed) {
                request_idx += 1;
                let text = format!("worker {worker_idx} request {request_idx}");
                match post(&client, &url, &chat("default", &text, false)).await {
                    Answer::Done { status: 200, .. } => {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                        load.refused_in_a_row.store(0, Ordering::Relaxed);
                    }
                    Answer::Done { .. } => {
                        load.refused.fetch_add(1, Ordering::Relaxed);
                        load.refused_in_a_row.fetch_add(1, Ordering::Relaxed);
                    }
                    Answer::Hang => {
                        load.hangs.fetch_add(1, Ordering::Relaxed);
                    }
                    Answer::Broken(_) => {
                        // The gateway was killed under this request; try again a little later.
                        load.broken.fetch_add(1, Ordering::Relaxed);
                        pause(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    workers
}

/// The largest `used` of a limit of `LIMIT` on provider `limited`, from `/admin/status`;
/// `None` when the status lists no such limit (the gateway counted nothing against it).
fn used_in_status(status: &Value) -> Option<u64> {
    let providers = status["providers"].as_array().expect("providers");
    let provider = providers.iter().find(|p| p["name"] == "limited").expect("provider limited");
    let mut used = None;
    for key in provider["keys"].as_array().expect("keys") {
        for model in key["models"].as_array().expect("models") {
            for limit in model["limits"].as_array().expect("limits") {
                if limit["limit"] == LIMIT {
                    let value = limit["used"].as_u64().expect("used");
                    used = Some(used.map_or(value, |seen: u64| seen.max(value)));
                }
            }
        }
    }
    used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_at_most_a_second_and_stays_within_the_limit() {
    // A window far longer than the test, so no calendar midnight can reset it mid-run.
    let window =
        WindowQuota::requests_fixed(LIMIT, Duration::from_secs(30 * 86_400), Duration::ZERO)
            .as_day();
    let upstream = start(
        MockUpstream::openai()
            .key(KeyScript::valid("limited", secret("limited")).window(window))
            .latency(Latency::Fixed(Duration::from_millis(20))),
    )
    .await;
    let calls = || upstream.counts("limited").expect("scripted key").requests;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let env = [("LIMITED_KEY", secret("limited"))];

    let mut gateway = Gateway::start(&workdir, &env);
    let load = Arc::new(Load::default());
    let mut workers = spawn_load(gateway.url("/v1/chat/completions"), &load);
    wait_until("half the limit's calls before the kill", Duration::from_secs(120), || {
        let n_calls = calls();
        async move { n_calls >= KILL_AT / 2 }
    })
    .await;
    let (rate_from, rate_from_calls) = (now(), calls());
    wait_until("the calls at which the gateway is killed", Duration::from_secs(120), || {
        let n_calls = calls();
        async move { n_calls >= KILL_AT }
    })
    .await;
    let (rate_until, rate_until_calls) = (now(), calls());
    gateway.kill9();
    let panics_before_kill = gateway.panics();
    load.stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    // Requests the mock was already answering when the gateway died still count there.
    let mut calls_at_kill = calls();
    wait_until("the mock's count to settle", Duration::from_secs(10), || {
        let settled = calls() == calls_at_kill;
        calls_at_kill = calls();
        async move { settled }
    })
    .await;
    let calls_per_second = (rate_until_calls - rate_from_calls) as f64
        / (rate_until - rate_from).as_secs_f64().max(0.001);

    let gateway = Gateway::start(&workdir, &env);
    // A ledger may show a limit only once it is used: one request first, counted on both
    // sides, then the restarted gateway's count is compared with the mock's.
    let probe =
        post(&client(), &gateway.url("/v1/chat/completions"), &chat("default", "probe", false))
            .await;
    assert!(matches!(probe, Answer::Done { .. }), "the restarted gateway answers: {probe:?}");
    let calls_after_probe = calls();
    let restored_listed = used_in_status(&gateway.admin_json("/admin/status").await);
    let restored = restored_listed.unwrap_or(0);
    let lost = calls_after_probe.saturating_sub(restored);

    let load_after = Arc::new(Load::default());
    let mut workers = spawn_load(gateway.url("/v1/chat/completions"), &load_after);
    let phase = now();
    wait_until("the gateway to refuse at the limit", Duration::from_secs(120), || {
        let in_a_row = load_after.refused_in_a_row.load(Ordering::Relaxed);
        async move { in_a_row >= 20 }
    })
    .await;
    load_after.stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    let phase_elapsed = now() - phase;
    let used_at_end = used_in_status(&gateway.admin_json("/admin/status").await).unwrap_or(0);
    let counts = upstream.counts("limited").expect("scripted key");
    let panics = panics_before_kill + gateway.panics();
    // One second of traffic, plus the requests in flight when the process died.
    let allowed_loss = calls_per_second.ceil() as u64 + WORKERS as u64;
    report(
        "kill_9_restart",
        json!({
            "limit": LIMIT, "calls_per_second": calls_per_second,
            "mock_calls_at_kill": calls_at_kill, "mock_calls_after_probe": calls_after_probe,
            "restored_used_after_probe": restored, "limit_listed": restored_listed.is_some(),
            "lost": lost,
            "allowed_loss": allowed_loss,
            "requests_before_kill": load.ok.load(Ordering::Relaxed) + load.refused.load(Ordering::Relaxed),
            "broken_by_the_kill": load.broken.load(Ordering::Relaxed),
            "requests_after_restart": load_after.ok.load(Ordering::Relaxed) + load_after.refused.load(Ordering::Relaxed),
            "served_after_restart": load_after.ok.load(Ordering::Relaxed),
            "refused_after_restart": load_after.refused.load(Ordering::Relaxed),
            "mock_calls_total": counts.requests, "mock_served": counts.served,
            "mock_refused": counts.rate_limited + counts.refused,
            "used_at_end": used_at_end, "after_restart_ms": millis(phase_elapsed),
            "hangs": load.hangs.load(Ordering::Relaxed) + load_after.hangs.load(Ordering::Relaxed),
            "panics": panics,
        }),
    );
    assert_eq!(
        load.hangs.load(Ordering::Relaxed) + load_after.hangs.load(Ordering::Relaxed),
        0,
        "hangs"
    );
    assert!(
        lost <= allowed_loss,
        "{lost} counted calls lost by the crash; about one second of traffic is {allowed_loss}"
    );
    assert_eq!(counts.served, LIMIT, "the run reached the limit");
    assert!(
        counts.requests <= LIMIT,
        "the upstream was called {} times for a limit of {LIMIT} ({lost} counts lost in the crash)",
        counts.requests
    );
    assert!(used_at_end <= LIMIT, "the gateway counts {used_at_end} of {LIMIT}");
    assert_eq!(panics, 0, "panics in the gateway's log");
}
