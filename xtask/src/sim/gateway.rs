//! Gateway mode: the scenario's demand through the real release `switchyard serve` over HTTP.
//! The simulator writes a `switchyard.toml` pointing at the mocks (with or without the
//! scenario's limits declared), starts the binary on a free loopback port, waits a bounded
//! time for it to listen and answer `/healthz`, sends the demand as OpenAI chat requests, and
//! stops it. A gateway that does not come up fails the run with its log; one left running is
//! killed when its handle drops.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchyard_core::{Clock, SystemClock};
use switchyard_mock::MockUpstream;
use tokio::sync::Semaphore;

use super::Arrival;
use super::run::{ClientResult, Failed, GatewayFiles, prompt, secret};
use super::scenario::{Hints, LimitSpec, LimitUnit, ProviderSpec, Scenario};

/// How long the gateway may take to print its address (a loaded machine starts it slowly).
const START_WAIT: Duration = Duration::from_secs(60);
/// How long it may then take to answer `/healthz`, and to exit once killed.
const READY_WAIT: Duration = Duration::from_secs(30);
/// The route the demand names.
const ROUTE: &str = "sim";

/// The gateway's `switchyard.toml` for `scenario` against `mocks` (one per provider, in
/// order). Limits are declared when the scenario says so; only per-minute and per-day windows
/// can be (the file has no other), so a compressed scenario runs here undeclared only.
pub(crate) fn config(scenario: &Scenario, base_urls: &[String]) -> Result<String> {
    let spec = &scenario.router;
    let deadline = scenario.demand.deadline_secs;
    let mut text = format!(
        "# Written by `cargo xtask sim` for scenario {} (limits {}).\n\
         [server]\nlisten = \"127.0.0.1:0\"\n",
        scenario.name,
        if spec.declare_limits { "declared" } else { "not declared" },
    );
    let mut targets = Vec::new();
    for (provider, base_url) in scenario.providers.iter().zip(base_urls) {
        let keys: Vec<String> =
            (1..=provider.keys).map(|n| format!("\"{}\"", secret(&provider.key_id(n)))).collect();
        write!(
            text,
            "\n[[providers]]\nname = \"{}\"\nkind = \"openai\"\npreset = \"{}\"\n\
             base_url = \"{base_url}\"\nkeys = [{}]\nmodels = [\"{}\"]\ntimeout_secs = {deadline:?}\n",
            provider.name,
            preset_name(provider.hints),
            keys.join(", "),
            provider.model,
        )?;
        if spec.declare_limits && !provider.limits.is_empty() {
            let limits: Vec<String> = provider
                .limits
                .iter()
                .map(|limit| declared(provider, limit))
                .collect::<Result<_>>()?;
            writeln!(text, "limits = {{ {} }}", limits.join(", "))?;
        }
        if spec.declare_groups && !provider.groups.is_empty() {
            let whole =
                provider.groups.len() == 1 && provider.groups[0].len() == provider.keys as usize;
            ensure!(
                whole,
                "gateway mode: provider {} has quota groups that are not all of its keys; a \
                 switchyard.toml group is the whole provider (run it --via router)",
                provider.name
            );
            writeln!(text, "group = \"{}-g1\"", provider.name)?;
        }
        if spec.tell_prices {
            let price = provider.price;
            writeln!(
                text,
                "price = {{ input_per_mtok = {:?}, output_per_mtok = {:?}, cost_per_request = {:?} }}",
                price.input_per_mtok, price.output_per_mtok, price.per_request
            )?;
        }
        targets.push(format!("\"{}/{}\"", provider.name, provider.model));
    }
    write!(
        text,
        "\n[[routes]]\nname = \"{ROUTE}\"\nstrategy = \"{}\"\nprefer = \"{}\"\n\
         timeout_secs = {deadline:?}\ntargets = [{}]\n",
        spec.strategy,
        spec.prefer,
        targets.join(", "),
    )?;
    // The file takes a positive wait only; none is its default.
    if spec.max_wait_secs > 0.0 {
        writeln!(text, "max_wait_secs = {:?}", spec.max_wait_secs)?;
    }
    Ok(text)
}

fn preset_name(hints: Hints) -> &'static str {
    match hints {
        Hints::Openai => "openai",
        Hints::Groq => "groq",
        Hints::GeminiOpenai => "compatible",
        Hints::None => "openrouter",
    }
}

/// One limit as `switchyard.toml` declares it, if it can.
fn declared(provider: &ProviderSpec, limit: &LimitSpec) -> Result<String> {
    let per = if limit.per_secs == 60.0 && !limit.day {
        "minute"
    } else if limit.per_secs == 86_400.0 {
        "day"
    } else {
        bail!(
            "gateway mode declares per-minute and per-day limits only; provider {} has {} per \
             {} s (run it --via router, or undeclared)",
            provider.name,
            limit.amount,
            limit.per_secs
        );
    };
    let unit = match limit.unit {
        LimitUnit::Requests => "requests",
        LimitUnit::Tokens => "tokens",
    };
    Ok(format!("{unit}_per_{per} = {}", limit.amount))
}

/// A running `switchyard serve`, killed and reaped when dropped.
pub(crate) struct Gateway {
    base_url: String,
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Gateway {
    /// Writes the configuration for `scenario` against `mocks` and starts the gateway on it,
    /// waiting a bounded time until it listens and answers `/healthz`.
    pub(crate) async fn start(
        scenario: &Scenario,
        mocks: &[MockUpstream],
        files: &GatewayFiles,
        label: &str,
    ) -> Result<Self> {
        ensure!(
            files.binary.is_file(),
            "no gateway binary at {} (cargo build --release -p switchyard-cli)",
            files.binary.display()
        );
        let base_urls: Vec<String> = mocks.iter().map(MockUpstream::base_url).collect();
        let text = config(scenario, &base_urls)?;
        std::fs::create_dir_all(&files.dir)
            .with_context(|| format!("creating {}", files.dir.display()))?;
        let config_path = files.dir.join(format!("{label}.toml"));
        std::fs::write(&config_path, text)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log = files.dir.join(format!("{label}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(&files.binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            // Its own directory: no stray `.env` is read.
            .current_dir(&files.dir)
            .env_remove("SWITCHYARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", files.binary.display()))?;
        let stdout = child.stdout.take().context("the gateway has no stdout")?;
        let mut gateway = Self { base_url: String::new(), child: Some(child), log };
        let line = first_line(stdout, START_WAIT);
        let Some(url) = line.as_deref().and_then(|line| line.split_once("listening on ")) else {
            bail!(
                "switchyard serve exited or did not say where it listens within {} s (it printed \
                 {line:?}); its log:\n{}",
                START_WAIT.as_secs(),
                gateway.log_tail()
            );
        };
        gateway.base_url = url.1.trim().to_owned();
        gateway.wait_healthy().await?;
        Ok(gateway)
    }

    async fn wait_healthy(&self) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.base_url);
        let ready = tokio::time::timeout(READY_WAIT, async {
            loop {
                if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                SystemClock.sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if ready.is_err() {
            bail!(
                "switchyard serve at {} did not answer /healthz within {} s; its log:\n{}",
                self.base_url,
                READY_WAIT.as_secs(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its log, for an error.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends the demand in real time; also returns when the first arrival was due.
    pub(crate) async fn drive(
        &self,
        scenario: &Scenario,
        arrivals: &[Arrival],
    ) -> Result<(Vec<ClientResult>, Instant)> {
        let demand = &scenario.demand;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(demand.concurrency)
            .timeout(Duration::from_secs_f64(demand.deadline_secs + 30.0))
            .build()
            .context("building the HTTP client")?;
        let url = Arc::new(format!("{}/v1/chat/completions", self.base_url));
        let prices: Arc<Vec<(String, super::scenario::PriceSpec)>> =
            Arc::new(scenario.providers.iter().map(|p| (p.name.clone(), p.price)).collect());
        let clock = SystemClock;
        let started = clock.now();
        let gate = Arc::new(Semaphore::new(demand.concurrency));
        let max_tokens = demand.max_tokens;
        let tasks: Vec<_> = arrivals
            .iter()
            .enumerate()
            .map(|(idx, arrival)| {
                let (client, url, prices, gate) =
                    (client.clone(), Arc::clone(&url), Arc::clone(&prices), Arc::clone(&gate));
                let at = started + Duration::from_secs_f64(arrival.at_secs);
                let body = json!({
                    "model": ROUTE,
                    "messages": [{"role": "user", "content": prompt(idx, arrival.words)}],
                    "max_tokens": max_tokens,
                });
                tokio::spawn(async move {
                    let clock = SystemClock;
                    clock.sleep_until(at).await;
                    let permit =
                        gate.acquire_owned().await.expect("invariant: the gate is never closed");
                    let outcome = send(&client, &url, &body, &prices).await;
                    drop(permit);
                    ClientResult { latency: clock.now().saturating_duration_since(at), outcome }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.context("a client task panicked")?);
        }
        Ok((results, started))
    }

    /// Kills the gateway and checks it is gone: reaped, and its port no longer answering.
    pub(crate) async fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().context("the gateway was stopped twice")?;
        child.kill().context("killing the gateway")?;
        let status = child.wait().context("reaping the gateway")?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("building the HTTP client")?;
        let answered = client.get(format!("{}/healthz", self.base_url)).send().await.is_ok();
        ensure!(
            !answered,
            "the gateway at {} still answers after it was killed ({status})",
            self.base_url
        );
        Ok(())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first line `stdout` prints within `wait` (`None`: nothing, or it closed first). A thread
/// reads it, then keeps draining so the gateway never blocks on a full pipe.
fn first_line(stdout: std::process::ChildStdout, wait: Duration) -> Option<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        let _ = sender.send(read.ok().filter(|&n| n > 0).map(|_| line));
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    receiver.recv_timeout(wait).ok().flatten()
}

/// One client request to the gateway: the provider that served it and what it cost by the
/// scenario's true prices, or the typed error code and its retry time.
async fn send(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    prices: &[(String, super::scenario::PriceSpec)],
) -> Result<(String, f64), Failed> {
    let failed = |code: &str| Failed { code: code.to_owned(), retry_in: None };
    let response = client.post(url).json(body).send().await.map_err(|error| {
        failed(if error.is_timeout() { "CLIENT_TIMEOUT" } else { "CLIENT_TRANSPORT" })
    })?;
    let status = response.status();
    let provider = response
        .headers()
        .get("x-switchyard-provider")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let retry_in = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok());
    let answer: Value = response.json().await.map_err(|_| failed("CLIENT_BAD_BODY"))?;
    if !status.is_success() {
        let code = answer.pointer("/error/code").and_then(Value::as_str).unwrap_or("HTTP_ERROR");
        return Err(Failed { code: code.to_owned(), retry_in });
    }
    let provider = provider.ok_or_else(|| failed("NO_PROVIDER_HEADER"))?;
    let tokens = |field: &str| answer.pointer(&format!("/usage/{field}")).and_then(Value::as_u64);
    let cost = prices
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(_, price)| {
            price.cost(
                tokens("prompt_tokens").unwrap_or(0),
                tokens("completion_tokens").unwrap_or(0),
            )
        })
        .unwrap_or(0.0);
    Ok((provider, cost))
}

/// The gateway binary next to the running simulator (both in the release target directory).
pub(crate) fn binary_beside_self() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("finding the simulator's own path")?;
    let dir = exe.parent().map(Path::to_path_buf).context("the simulator has no directory")?;
    Ok(dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Scenario;

    fn scenario(text: &str) -> Scenario {
        let mut scenario: Scenario = toml::from_str(text).expect("a scenario");
        scenario.name = "t".to_owned();
        scenario
    }

    const BASE: &str = r#"
description = "d"
seed = 1
[demand]
rate_per_sec = 1.0
duration_secs = 10.0
concurrency = 4
prompt_words = [8, 40]
max_tokens = 16
deadline_secs = 30.0
[router]
declare_limits = true
strategy = "adaptive"
prefer = "latency"
[[provider]]
name = "gemini"
keys = 2
latency_ms = [10, 20]
hints = "gemini-openai"
groups = [[1, 2]]
limits = [{ amount = 5, per_secs = 60.0 }, { amount = 100, per_secs = 86400.0, day = true }]
[[provider]]
name = "paid"
keys = 1
latency_ms = [10, 20]
price = { per_request = 0.002 }
"#;

    #[test]
    fn the_config_declares_minute_and_day_limits_groups_presets_and_prices() {
        let urls =
            ["http://127.0.0.1:1/v1beta/openai".to_owned(), "http://127.0.0.1:2/v1".to_owned()];
        let text = config(&scenario(BASE), &urls).expect("a config");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let gemini = &parsed["providers"][0];
        assert_eq!(gemini["preset"].as_str(), Some("compatible"));
        assert_eq!(gemini["base_url"].as_str(), Some(urls[0].as_str()));
        assert_eq!(gemini["keys"][1].as_str(), Some(secret("gemini-2").as_str()));
        assert_eq!(gemini["limits"]["requests_per_minute"].as_integer(), Some(5));
        assert_eq!(gemini["limits"]["requests_per_day"].as_integer(), Some(100));
        assert_eq!(gemini["group"].as_str(), Some("gemini-g1"));
        assert_eq!(parsed["providers"][1]["price"]["cost_per_request"].as_float(), Some(0.002));
        assert_eq!(parsed["routes"][0]["targets"][1].as_str(), Some("paid/model"));
        assert_eq!(parsed["server"]["listen"].as_str(), Some("127.0.0.1:0"));
        // The file takes a positive wait only.
        assert!(parsed["routes"][0].get("max_wait_secs").is_none(), "{text}");
    }

    #[test]
    fn undeclared_limits_stay_out_and_compressed_windows_are_refused_when_declared() {
        let urls = ["http://a/v1".to_owned(), "http://b/v1".to_owned()];
        let undeclared = BASE.replace("declare_limits = true", "declare_limits = false");
        let text = config(&scenario(&undeclared), &urls).expect("a config");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert!(parsed["providers"][0].get("limits").is_none(), "{text}");
        let compressed = BASE.replace("per_secs = 60.0", "per_secs = 5.0");
        let error = config(&scenario(&compressed), &urls).expect_err("5 s is not declarable");
        assert!(error.to_string().contains("per-minute and per-day"), "{error}");
    }
}
