//! The one-connection latency client of the end-to-end bench. It times chat completions the
//! way a user's code sees them: a `reqwest` POST on a kept-alive connection, the whole body
//! read and parsed as JSON, the answer's text checked, against two targets: the gateway and
//! the upstream behind it, called directly. Requests alternate between the two (gateway then
//! direct, then direct then gateway, ...) so drift on the machine hits both alike.
//!
//! Prints one JSON object: each target's summary, and the added p50 and p99 (the gateway's
//! minus the direct call's).
//!
//! Usage: `e2e-client --gateway URL --direct URL [--requests 2000] [--warmup 200]
//! [--gateway-model default] [--direct-model bench-model] [--key sk-bench]`, where each URL is
//! a full `/v1/chat/completions` address.
#![allow(clippy::print_stdout, reason = "the JSON report goes to the parent on stdout")]

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchyard_benches::latency::Summary;
use switchyard_core::{Clock as _, SystemClock};

struct Args {
    gateway: String,
    direct: String,
    requests: usize,
    warmup: usize,
    gateway_model: String,
    direct_model: String,
    key: String,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        gateway: String::new(),
        direct: String::new(),
        requests: 2000,
        warmup: 200,
        gateway_model: "default".to_owned(),
        direct_model: "bench-model".to_owned(),
        key: "sk-bench".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gateway" => args.gateway = value,
            "--direct" => args.direct = value,
            "--requests" => args.requests = value.parse().context("--requests")?,
            "--warmup" => args.warmup = value.parse().context("--warmup")?,
            "--gateway-model" => args.gateway_model = value,
            "--direct-model" => args.direct_model = value,
            "--key" => args.key = value,
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(
        !args.gateway.is_empty() && !args.direct.is_empty(),
        "--gateway and --direct are needed"
    );
    ensure!(args.requests > 0, "--requests must be at least 1");
    Ok(args)
}

/// One target: its own client (so its own kept-alive connection), URL and request body.
struct Target {
    client: reqwest::Client,
    url: String,
    body: Vec<u8>,
    key: String,
}

impl Target {
    fn new(url: &str, model: &str, key: &str) -> Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Say hello in one word."}],
            "max_tokens": 16,
        });
        Ok(Self {
            client,
            url: url.to_owned(),
            body: serde_json::to_vec(&body)?,
            key: key.to_owned(),
        })
    }

    /// One request, timed from before the send to after the answer is parsed and checked.
    async fn time_one(&self) -> Result<Duration> {
        let clock = SystemClock;
        let started = clock.now();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone())
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| format!("reading {}", self.url))?;
        let parsed: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!("{} answered {status} with a body that is not JSON", self.url)
        })?;
        let elapsed = clock.now().duration_since(started);
        ensure!(status.is_success(), "{} answered {status}: {parsed}", self.url);
        ensure!(
            parsed["choices"][0]["message"]["content"].is_string(),
            "{} answered without choices[0].message.content: {parsed}",
            self.url
        );
        Ok(elapsed)
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // One thread: the client's own scheduling adds nothing that differs between the targets.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(run(&args))?;
    println!("{report}");
    Ok(())
}

async fn run(args: &Args) -> Result<Value> {
    let gateway = Target::new(&args.gateway, &args.gateway_model, &args.key)?;
    let direct = Target::new(&args.direct, &args.direct_model, &args.key)?;
    let mut gateway_samples = Vec::with_capacity(args.requests);
    let mut direct_samples = Vec::with_capacity(args.requests);
    for round in 0..args.warmup + args.requests {
        // Alternate which goes first, so neither always follows the other's wake-ups.
        let (gateway_took, direct_took) = if round % 2 == 0 {
            let g = gateway.time_one().await?;
            (g, direct.time_one().await?)
        } else {
            let d = direct.time_one().await?;
            (gateway.time_one().await?, d)
        };
        if round >= args.warmup {
            gateway_samples.push(gateway_took);
            direct_samples.push(direct_took);
        }
    }
    let gateway_summary = Summary::of(&gateway_samples).context("no gateway samples")?;
    let direct_summary = Summary::of(&direct_samples).context("no direct samples")?;
    Ok(json!({
        "requests": args.requests,
        "warmup": args.warmup,
        "gateway": gateway_summary.to_json(),
        "direct": direct_summary.to_json(),
        "added_p50_us": gateway_summary.p50_us - direct_summary.p50_us,
        "added_p99_us": gateway_summary.p99_us - direct_summary.p99_us,
    }))
}
