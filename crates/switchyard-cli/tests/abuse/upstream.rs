//! Hostile upstreams in front of one healthy candidate: absurd retry hints, 50 MB bodies,
//! endless streams, streams cut mid-token, garbage SSE. Every request is answered by the
//! healthy candidate (a stream that already started may end in a clean error event
//! instead), none hangs, nothing panics.

use std::sync::Arc;

use serde_json::json;
use switchyard_mock::{AnthropicWire, Fault, FaultRule, MockBuilder, MockUpstream};
use tokio::task::JoinSet;

use crate::harness::{
    Answer, Gateway, StreamEnd, Workdir, chat, client, echoed, millis, mock, now, post, report,
    secret, start, stream,
};

/// Requests of each kind (plain, streamed) per scenario, sent a few at a time.
const N_EACH: usize = 6;
const CONCURRENCY: usize = 4;

/// A misbehaving upstream in the route, before the healthy one.
pub(crate) struct Bad {
    /// The provider's name in the config.
    pub(crate) name: &'static str,
    /// `openai` or `anthropic`.
    pub(crate) kind: &'static str,
    /// The model its target names.
    pub(crate) model: &'static str,
    /// The running mock.
    pub(crate) upstream: MockUpstream,
}

impl Bad {
    /// An OpenAI-format upstream answering every call with `fault`.
    pub(crate) async fn openai(name: &'static str, fault: Fault) -> Self {
        let upstream =
            start(mock(MockUpstream::openai(), &[name]).fault(FaultRule::always(fault))).await;
        Self { name, kind: "openai", model: "gpt-4o-mini", upstream }
    }

    /// An Anthropic-format upstream answering every call with `fault`.
    pub(crate) async fn anthropic(name: &'static str, fault: Fault) -> Self {
        let builder: MockBuilder = MockUpstream::builder(AnthropicWire);
        let upstream = start(mock(builder, &[name]).fault(FaultRule::always(fault))).await;
        Self { name, kind: "anthropic", model: "claude-3-5-haiku-latest", upstream }
    }
}

/// The config: each bad provider (8 s per call), then `healthy`, in a priority route, with
/// the `[upstream]` bounds the gateway must apply.
pub(crate) fn config(bad: &[Bad], healthy_url: &str) -> String {
    let mut config = String::from(
        r#"
[server]
client_tokens = ["${ABUSE_CLIENT}"]
admin_token = "${ABUSE_ADMIN}"

[upstream]
stream_idle_timeout_secs = 2
stream_deadline_secs = 5
max_body_bytes = 1048576
"#,
    );
    let mut targets = Vec::new();
    for (idx, bad) in bad.iter().enumerate() {
        config.push_str(&format!(
            "\n[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\nkeys = [\"${{BAD_KEY_{idx}}}\"]\nmodels = [\"{model}\"]\ntimeout_secs = 8\n",
            name = bad.name,
            kind = bad.kind,
            url = bad.upstream.base_url(),
            model = bad.model,
        ));
        targets.push(format!("\"{}/{}\"", bad.name, bad.model));
    }
    config.push_str(&format!(
        "\n[[providers]]\nname = \"healthy\"\nkind = \"openai\"\nbase_url = \"{healthy_url}\"\nkeys = [\"${{HEALTHY_KEY}}\"]\nmodels = [\"gpt-4o-mini\"]\n"
    ));
    targets.push("\"healthy/gpt-4o-mini\"".to_owned());
    config.push_str(&format!(
        "\n[[routes]]\nname = \"default\"\nstrategy = \"priority\"\ntimeout_secs = 30\nmax_attempts = {}\ntargets = [{}]\n",
        bad.len() + 2,
        targets.join(", ")
    ));
    config
}

/// The environment for [`config`].
pub(crate) fn env(bad: &[Bad]) -> Vec<(String, String)> {
    bad.iter()
        .enumerate()
        .map(|(idx, bad)| (format!("BAD_KEY_{idx}"), secret(bad.name)))
        .chain(std::iter::once(("HEALTHY_KEY".to_owned(), secret("healthy"))))
        .collect()
}

/// Starts the healthy upstream, the gateway, sends [`N_EACH`] plain and streamed requests
/// and checks and reports how each ended.
async fn run(scenario: &str, bad: Vec<Bad>, streams_may_end_in_error: bool) {
    let healthy = start(mock(MockUpstream::openai(), &["healthy"])).await;
    let workdir = Workdir::new(&config(&bad, &healthy.base_url()));
    let env = env(&bad);
    let env: Vec<(&str, String)> =
        env.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
    let gateway = Arc::new(Gateway::start(&workdir, &env));

    let started = now();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for idx in 0..2 * N_EACH {
        let (gateway, permits) = (Arc::clone(&gateway), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("a permit");
            let text = format!("request {idx}");
            let url = gateway.url("/v1/chat/completions");
            if idx % 2 == 0 {
                let answer = post(&client(), &url, &chat("default", &text, false)).await;
                Outcome::plain(answer, &text)
            } else {
                let end = stream(&client(), &url, &chat("default", &text, true)).await;
                Outcome::streamed(end, &text, streams_may_end_in_error)
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.expect("a client task"));
    }
    let elapsed = now() - started;
    let last =
        post(&client(), &gateway.url("/v1/chat/completions"), &chat("default", "last", false))
            .await;
    let faults: u64 = bad.iter().map(|bad| bad.upstream.totals().faulted).sum();
    let hangs = outcomes.iter().filter(|outcome| outcome.kind == "hang").count();
    let wrong: Vec<&Outcome> = outcomes.iter().filter(|outcome| !outcome.ok).collect();
    let count = |kind: &str| outcomes.iter().filter(|outcome| outcome.kind == kind).count();
    let panics = gateway.panics();
    report(
        scenario,
        json!({
            "requests_sent": 2 * N_EACH + 1, "faults_injected": faults,
            "healthy_served": healthy.totals().served,
            "answered_by_healthy": count("answered"), "streams_completed": count("completed"),
            "streams_error_event": count("error_event"), "wrong": wrong.len(),
            "hangs": hangs, "panics": panics,
            "wrong_examples": wrong.iter().take(3).map(|outcome| format!("{}: {:.200}", outcome.kind, outcome.detail)).collect::<Vec<_>>(), "elapsed_ms": millis(elapsed),
            "bad_formats": bad.iter().map(|bad| bad.kind).collect::<Vec<_>>(),
        }),
    );
    assert!(faults > 0, "no fault reached the gateway: the scenario tested nothing");
    assert_eq!(hangs, 0, "requests that hung: {wrong:#?}");
    assert!(
        wrong.is_empty(),
        "{} of {} requests answered wrongly: {wrong:#?}",
        wrong.len(),
        outcomes.len()
    );
    assert!(
        matches!(last, Answer::Done { status: 200, .. }),
        "the gateway still serves afterwards: {last:?}"
    );
    assert_eq!(panics, 0, "panics in the gateway's log");
    gateway.assert_no_panic();
}

/// How one request of a scenario ended, judged.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) kind: &'static str,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

impl Outcome {
    /// A plain request is right when answered 200 with its own echo.
    pub(crate) fn plain(answer: Answer, text: &str) -> Self {
        match answer {
            Answer::Done { status: 200, provider, body } => {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let content = &body["choices"][0]["message"]["content"];
                let ok = *content == echoed(text);
                Self { kind: "answered", ok, detail: format!("{provider:?}: {content}") }
            }
            Answer::Done { status, body, .. } => Self {
                kind: "refused",
                ok: false,
                detail: format!("{status}: {:.300}", String::from_utf8_lossy(&body)),
            },
            Answer::Hang => Self { kind: "hang", ok: false, detail: String::new() },
            Answer::Broken(error) => Self { kind: "broken", ok: false, detail: error },
        }
    }

    /// A stream is right when it completes with its own echo, or (where allowed) ends in a
    /// clean error event.
    pub(crate) fn streamed(end: StreamEnd, text: &str, may_end_in_error: bool) -> Self {
        match end {
            StreamEnd::Completed(got) => {
                let ok = got == echoed(text);
                Self { kind: "completed", ok, detail: got }
            }
            StreamEnd::ErrorEvent(code) => {
                Self { kind: "error_event", ok: may_end_in_error, detail: code }
            }
            StreamEnd::Refused(status) => {
                Self { kind: "refused", ok: false, detail: status.to_string() }
            }
            StreamEnd::Broken(why) => Self { kind: "broken", ok: false, detail: why },
            StreamEnd::Hang => Self { kind: "hang", ok: false, detail: String::new() },
        }
    }
}

/// A 429 or 503 whose hints are absurd: `retry-after: 1e14`, resets of 1e15 seconds.
fn absurd_hints(status: u16) -> Fault {
    Fault::Raw {
        status,
        content_type: "application/json".to_owned(),
        headers: vec![
            ("retry-after".to_owned(), "1e14".to_owned()),
            ("retry-after-ms".to_owned(), "100000000000000000".to_owned()),
            ("x-ratelimit-limit-requests".to_owned(), "100000000000000000000".to_owned()),
            ("x-ratelimit-remaining-requests".to_owned(), "0".to_owned()),
            ("x-ratelimit-reset-requests".to_owned(), "1e15s".to_owned()),
            ("x-ratelimit-reset-tokens".to_owned(), "99999999999999999h".to_owned()),
        ],
        body: r#"{"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}"#
            .to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_with_absurd_retry_hints_fall_back_to_the_healthy_one() {
    let bad = vec![
        Bad::openai("hints429", absurd_hints(429)).await,
        Bad::openai("hints503", absurd_hints(503)).await,
    ];
    // The failure comes before any chunk, so a stream must fall back too.
    run("upstream_absurd_retry_hints", bad, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_sending_50_mb_bodies_fall_back_to_the_healthy_one() {
    let bad = vec![Bad::openai("huge", Fault::HugeBody { bytes: 50 * 1024 * 1024 }).await];
    run("upstream_50mb_bodies", bad, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_streaming_forever_are_cut_off() {
    let bad = vec![Bad::openai("endless", Fault::EndlessStream).await];
    run("upstream_endless_streams", bad, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_streams_cut_mid_token_end_cleanly() {
    let bad = vec![
        Bad::openai("cut", Fault::CutMidFrame { after_frames: 2 }).await,
        Bad::anthropic("cutant", Fault::CutMidFrame { after_frames: 4 }).await,
    ];
    run("upstream_cut_mid_token", bad, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_sending_garbage_sse_end_cleanly() {
    let bad = vec![
        Bad::openai("garbage", Fault::GarbageStream).await,
        Bad::anthropic("garbageant", Fault::GarbageStream).await,
    ];
    run("upstream_garbage_sse", bad, true).await;
}
