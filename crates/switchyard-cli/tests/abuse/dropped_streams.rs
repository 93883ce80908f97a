//! Clients that drop their stream after the first words, on a priced route with a small
//! daily budget: what the dropped streams cost is spent, so the budget runs out.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_mock::{MockUpstream, ReplyScript};

use crate::harness::{
    CLIENT_TIMEOUT, Gateway, Workdir, chat, client, metrics, mock, poll_until, report, secret,
    start,
};

/// Each call costs this much by the config's price.
const COST_PER_REQUEST: f64 = 0.01;
/// The route's budget: spent after four calls.
const BUDGET: f64 = 0.035;
const MAX_DROPPED: usize = 10;

fn config(base_url: &str) -> String {
    format!(
        r#"
[server]
client_tokens = ["${{ABUSE_CLIENT}}"]
admin_token = "${{ABUSE_ADMIN}}"

[[providers]]
name = "priced"
kind = "openai"
base_url = "{base_url}"
keys = ["${{PRICED_KEY}}"]
models = ["gpt-4o-mini"]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0, cost_per_request = {COST_PER_REQUEST} }}

[[routes]]
name = "paid"
targets = ["priced/gpt-4o-mini"]
budget_per_day = {BUDGET}
"#
    )
}

/// How one attempt at a stream went.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// It started; the client read a few words and went away.
    Dropped,
    /// Refused before it started, with this status and code.
    Refused(u16, String),
}

/// Starts a stream, reads two text frames, and drops the connection.
async fn start_and_drop(gateway: &Gateway, idx: usize) -> Attempt {
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("paid", &format!("stream {idx}"), true))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    if status != 200 {
        let body: Value = response.json().await.unwrap_or_default();
        return Attempt::Refused(status, body["error"]["code"].as_str().unwrap_or("").to_owned());
    }
    let mut response = response;
    let mut text = String::new();
    let read = tokio::time::timeout(CLIENT_TIMEOUT, async {
        while text.matches("\"content\"").count() < 3 {
            match response.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stream sent no words within {CLIENT_TIMEOUT:?}");
    assert!(!text.contains("[DONE]"), "the stream ended before the client dropped it: {text}");
    drop(response);
    Attempt::Dropped
}

/// The route's cost in `/metrics`.
async fn route_cost(gateway: &Gateway) -> f64 {
    let (status, text) = gateway.get_text("/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .filter(|line| {
            line.starts_with("switchyard_cost_dollars_total") && line.contains("route=\"paid\"")
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_dropped_mid_way_are_spent_against_the_budget() {
    // A long answer, slowly: the client always leaves before the end.
    let words = vec!["word"; 200].join(" ");
    let upstream = start(
        mock(MockUpstream::openai(), &["priced"])
            .reply(ReplyScript::Text(words))
            .stream_interval(Duration::from_millis(50)),
    )
    .await;
    let workdir = Workdir::new(&config(&upstream.base_url()));
    let gateway = Gateway::start(&workdir, &[("PRICED_KEY", secret("priced"))]);

    let mut attempts = Vec::new();
    for idx in 0..MAX_DROPPED {
        let attempt = start_and_drop(&gateway, idx).await;
        let refused = matches!(attempt, Attempt::Refused(..));
        attempts.push(attempt);
        if refused {
            break;
        }
    }
    let n_dropped = attempts.iter().filter(|attempt| **attempt == Attempt::Dropped).count();
    // Spending a dropped stream may happen a moment after the connection closes.
    let spend_seen = poll_until(Duration::from_secs(20), || {
        let gateway = &gateway;
        async move { route_cost(gateway).await >= BUDGET }
    })
    .await;
    let cost = route_cost(&gateway).await;
    let probe = client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat("paid", "one more", false))
        .send()
        .await
        .expect("an answer");
    let probe_status = probe.status().as_u16();
    let probe_body: Value = probe.json().await.unwrap_or_default();
    let (_, series) = metrics(&gateway).await;
    report(
        "dropped_streams_spend",
        json!({
            "streams_dropped": n_dropped, "attempts": attempts.len(),
            "refused_stream": attempts.iter().find_map(|attempt| match attempt {
                Attempt::Refused(status, code) => Some(json!([status, code])),
                Attempt::Dropped => None,
            }),
            "route_cost_in_metrics": cost, "budget": BUDGET, "spend_seen_in_metrics": spend_seen,
            "probe_status": probe_status, "probe_code": probe_body["error"]["code"],
            "upstream_calls": upstream.n_requests(), "metric_series": series.len(),
            "panics": gateway.panics(),
        }),
    );
    let refused_stream = attempts.iter().find_map(|attempt| match attempt {
        Attempt::Refused(status, code) => Some((*status, code.clone())),
        Attempt::Dropped => None,
    });
    if let Some((status, code)) = refused_stream {
        assert_eq!((status, code.as_str()), (429, "BUDGET_EXCEEDED"), "a stream refused otherwise");
    }
    assert_eq!(
        probe_status, 429,
        "after {n_dropped} dropped streams the budget is spent: {probe_body}"
    );
    assert_eq!(probe_body["error"]["code"], "BUDGET_EXCEEDED", "{probe_body}");
    assert!(cost > 0.0, "the dropped streams cost nothing in /metrics");
    gateway.assert_no_panic();
}
