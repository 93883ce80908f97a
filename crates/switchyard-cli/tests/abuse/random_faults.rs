//! 30 % of upstream calls fail in random ways (the hostile faults plus 500, 503 and a reset
//! connection) with one healthy candidate left: every request is answered 200 with its own
//! answer, none hangs, nothing panics.

use std::sync::Arc;

use serde_json::json;
use switchyard_mock::{AnthropicWire, Fault, FaultRule, MockBuilder, MockUpstream};
use tokio::task::JoinSet;

use crate::harness::{Gateway, Workdir, chat, client, millis, mock, now, post, report, start};
use crate::upstream::{Bad, Outcome, config, env};

const N_REQUESTS: usize = 300;
const CONCURRENCY: usize = 8;
/// The share of calls to a flaky upstream that fail.
const FAULT_SHARE: f64 = 0.3;

/// The fault kinds drawn from, each equally likely.
fn kinds() -> Vec<Fault> {
    vec![
        Fault::HugeBody { bytes: 50 * 1024 * 1024 },
        Fault::EndlessStream,
        Fault::GarbageStream,
        Fault::CutMidFrame { after_frames: 2 },
        Fault::Raw {
            status: 429,
            content_type: "application/json".to_owned(),
            headers: vec![
                ("retry-after".to_owned(), "1e14".to_owned()),
                ("x-ratelimit-reset-requests".to_owned(), "1e15s".to_owned()),
            ],
            body: r#"{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}"#
                .to_owned(),
        },
        Fault::server_error(),
        Fault::overloaded(),
        Fault::Reset,
    ]
}

/// A mock where each call fails with probability [`FAULT_SHARE`], the kind drawn evenly:
/// rules are tried in order, so each fires with `p` where `1 - (1 - p)^kinds = share`.
fn flaky(builder: MockBuilder, seed: u64) -> MockBuilder {
    let kinds = kinds();
    let exponent = 1.0 / kinds.len() as f64;
    let per_rule = 1.0 - (1.0 - FAULT_SHARE).powf(exponent);
    kinds.into_iter().fold(builder.seed(seed), |builder, fault| {
        builder.fault(FaultRule::always(fault).with_probability(per_rule))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_upstream_faults_with_one_healthy_candidate_left() {
    let bad = vec![
        Bad {
            name: "flaky",
            kind: "openai",
            model: "gpt-4o-mini",
            upstream: start(flaky(mock(MockUpstream::openai(), &["flaky"]), 11)).await,
        },
        Bad {
            name: "flakyant",
            kind: "anthropic",
            model: "claude-3-5-haiku-latest",
            upstream: start(flaky(mock(MockUpstream::builder(AnthropicWire), &["flakyant"]), 12))
                .await,
        },
    ];
    let healthy = start(mock(MockUpstream::openai(), &["healthy"])).await;
    let workdir = Workdir::new(&config(&bad, &healthy.base_url()));
    let env = env(&bad);
    let env: Vec<(&str, String)> =
        env.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
    let gateway = Arc::new(Gateway::start(&workdir, &env));

    let started = now();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for idx in 0..N_REQUESTS {
        let (gateway, permits) = (Arc::clone(&gateway), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("a permit");
            let text = format!("request {idx}");
            let answer = post(
                &client(),
                &gateway.url("/v1/chat/completions"),
                &chat("default", &text, false),
            )
            .await;
            Outcome::plain(answer, &text)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.expect("a client task"));
    }
    let elapsed = now() - started;
    let faults: u64 = bad.iter().map(|bad| bad.upstream.totals().faulted).sum();
    let bad_calls: u64 = bad.iter().map(|bad| bad.upstream.n_requests()).sum();
    let hangs = outcomes.iter().filter(|outcome| outcome.kind == "hang").count();
    let wrong: Vec<&Outcome> = outcomes.iter().filter(|outcome| !outcome.ok).collect();
    let panics = gateway.panics();
    report(
        "random_30_percent_faults",
        json!({
            "requests_sent": N_REQUESTS, "concurrency": CONCURRENCY,
            "faults_injected": faults, "calls_to_flaky_upstreams": bad_calls,
            "served_by_flaky": bad.iter().map(|bad| bad.upstream.totals().served).sum::<u64>(),
            "served_by_healthy": healthy.totals().served,
            "answered_200": outcomes.iter().filter(|outcome| outcome.ok).count(),
            "wrong": wrong.len(), "hangs": hangs, "panics": panics,
            "wrong_examples": wrong.iter().take(3).map(|outcome| format!("{}: {:.200}", outcome.kind, outcome.detail)).collect::<Vec<_>>(),
            "elapsed_ms": millis(elapsed),
        }),
    );
    assert!(faults > 0, "no fault reached the gateway: the scenario tested nothing");
    assert_eq!(hangs, 0, "requests that hung");
    assert!(
        wrong.is_empty(),
        "{} of {N_REQUESTS} requests not answered 200 with their own answer, e.g. {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(panics, 0, "panics in the gateway's log");
    gateway.assert_no_panic();
}
