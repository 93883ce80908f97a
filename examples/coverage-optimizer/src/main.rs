//! `coverage-optimizer`: many Gemini keys write unit tests for a Python project until
//! coverage.py says it reaches a target. OpenAI and Anthropic are fallbacks on the same route.
//!
//! It shows the Switchyard crates used alone, as a library user meets them: the router is
//! built in [`router`] from the adapters and the keys, and every request goes through
//! [`Router::chat`]. Each round reads the coverage.py JSON report, finds the functions with
//! missing lines, asks for tests in batches, writes the answers as `test_switchyard_*.py`
//! files in the project, and reruns coverage. It prints a per-key table (key ids and
//! fingerprints, never a secret) after each round and ends with a JSON report on stdout.

#![allow(
    clippy::print_stdout,
    reason = "an example binary: the table and the report are its output"
)]

mod python;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Serialize;
use switchyard::{
    ChatRequest, Clock, Credential, ProviderId, RouteConfig, Router, RouterError, StrategyKind,
    SystemClock, Trace,
};
use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use tokio::task::JoinSet;

use crate::python::{Gap, coverage_report, extract_python, uncovered_functions};

/// The route every request names.
const ROUTE: &str = "tests";

/// Writes unit tests with an LLM until coverage.py reports the target coverage.
///
/// No `Debug`: it holds the API keys.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The Python project; generated tests are written to its root as `test_switchyard_*.py`.
    #[arg(long, env = "PROJECT_DIR", default_value = ".")]
    project: PathBuf,
    /// A coverage.py JSON report (`coverage json`) to start from; without it the tests are run
    /// once first.
    #[arg(long, env = "COVERAGE_JSON")]
    coverage_json: Option<PathBuf>,
    /// The total line coverage to reach, in percent.
    #[arg(long, env = "TARGET_COVERAGE", default_value_t = 80.0)]
    target_coverage: f64,
    /// Uncovered functions per request.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    batch_size: u32,
    /// Requests in flight at once.
    #[arg(long, env = "MAX_CONCURRENT_BATCHES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_concurrent_batches: u32,
    /// Rounds of (ask, write, rerun coverage) at most.
    #[arg(long, env = "MAX_ITERATIONS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_iterations: u32,
    /// The Python interpreter, with coverage.py installed (`pip install coverage`).
    #[arg(long, env = "PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Gemini API keys, comma-separated (prefer the env variables for keys: flags show in `ps`); named gemini-1, gemini-2, ... in the table.
    #[arg(long, env = "GEMINI_KEYS", value_delimiter = ',', hide_env_values = true)]
    gemini_keys: Vec<String>,
    /// An OpenAI API key: the first fallback.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    openai_api_key: Option<String>,
    /// An Anthropic API key: the second fallback.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    anthropic_api_key: Option<String>,
    /// The Gemini model.
    #[arg(long, env = "GEMINI_MODEL", default_value = "gemini-2.0-flash")]
    gemini_model: String,
    /// The OpenAI model.
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    openai_model: String,
    /// The Anthropic model.
    #[arg(long, env = "ANTHROPIC_MODEL", default_value = "claude-3-5-haiku-latest")]
    anthropic_model: String,
    /// Gemini's base URL (default: Google's).
    #[arg(long, env = "GEMINI_BASE_URL")]
    gemini_base_url: Option<String>,
    /// OpenAI's base URL (default: OpenAI's).
    #[arg(long, env = "OPENAI_BASE_URL")]
    openai_base_url: Option<String>,
    /// Anthropic's base URL (default: Anthropic's).
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    anthropic_base_url: Option<String>,
}

/// The router: Gemini's keys first, OpenAI then Anthropic as fallbacks, on one route.
fn router(args: &Args, clock: &Arc<dyn Clock>) -> anyhow::Result<Router> {
    let mut builder = Router::builder().clock(Arc::clone(clock));
    let mut targets = Vec::new();
    // `GEMINI_KEYS=k1,,k2,` has empty entries: skipped, never sent as a key.
    let gemini_keys: Vec<&str> =
        args.gemini_keys.iter().map(|key| key.trim()).filter(|key| !key.is_empty()).collect();
    if !gemini_keys.is_empty() {
        let mut config = GeminiConfig::new("gemini");
        if let Some(url) = &args.gemini_base_url {
            config.base_url.clone_from(url);
        }
        builder = builder.provider(Arc::new(Gemini::try_new(config, Arc::clone(clock))?));
        for (idx, secret) in gemini_keys.iter().enumerate() {
            let credential = Credential::new(format!("gemini-{}", idx + 1), *secret);
            builder = builder.credential("gemini", credential);
        }
        targets.push(format!("gemini/{}", args.gemini_model));
    }
    if let Some(secret) = &args.openai_api_key {
        let mut config = OpenAiConfig::new("openai", Preset::OpenAi);
        if let Some(url) = &args.openai_base_url {
            config = config.at(url.clone());
        }
        builder = builder.provider(Arc::new(OpenAiProvider::try_new(config, Arc::clone(clock))?));
        builder = builder.credential("openai", Credential::new("openai-1", secret.trim()));
        targets.push(format!("openai/{}", args.openai_model));
    }
    if let Some(secret) = &args.anthropic_api_key {
        let mut config = AnthropicConfig::new("anthropic");
        if let Some(url) = &args.anthropic_base_url {
            config.base_url.clone_from(url);
        }
        builder = builder.provider(Arc::new(Anthropic::try_new(config, Arc::clone(clock))?));
        builder = builder.credential("anthropic", Credential::new("anthropic-1", secret.trim()));
        targets.push(format!("anthropic/{}", args.anthropic_model));
    }
    if targets.is_empty() {
        bail!(
            "no keys: set GEMINI_KEYS=k1,k2,... (and OPENAI_API_KEY or ANTHROPIC_API_KEY as fallbacks)"
        );
    }
    // Round-robin spreads the requests over Gemini's keys; the other providers only serve
    // when every Gemini key failed or is out of quota.
    let route = RouteConfig {
        prefer_provider: Some(ProviderId::from("gemini")),
        ..RouteConfig::new(ROUTE, StrategyKind::RoundRobin, targets)
    };
    Ok(builder.route_config(route).build()?)
}

/// One key's line in the table.
#[derive(Debug, Default)]
struct KeyStats {
    fingerprint: String,
    requests: u64,
    errors: u64,
    served: u64,
}

/// What every request did, per `provider/key`.
#[derive(Debug, Default)]
struct Tally {
    keys: BTreeMap<(String, String), KeyStats>,
    failed_batches: u64,
}

impl Tally {
    fn add(&mut self, trace: &Trace) {
        for attempt in &trace.attempts {
            let name = (attempt.candidate.provider.to_string(), attempt.candidate.key.to_string());
            let stats = self.keys.entry(name).or_default();
            stats.fingerprint = attempt.fingerprint.to_string();
            stats.requests = stats.requests.saturating_add(1);
            if attempt.error.is_some() {
                stats.errors = stats.errors.saturating_add(1);
            } else {
                stats.served = stats.served.saturating_add(1);
            }
        }
    }

    fn total(&self, pick: impl Fn(&KeyStats) -> u64) -> u64 {
        self.keys.values().map(pick).sum()
    }

    fn print(&self) {
        println!(
            "{:<10} {:<12} {:<10} {:>8} {:>6}",
            "provider", "key", "fingerprint", "requests", "errors"
        );
        for ((provider, key), stats) in &self.keys {
            println!(
                "{provider:<10} {key:<12} {:<10} {:>8} {:>6}",
                stats.fingerprint, stats.requests, stats.errors
            );
        }
    }
}

/// The JSON report, the last line on stdout: the fields CI reads.
#[derive(Debug, Serialize)]
struct Report {
    target_achieved: bool,
    initial_coverage: f64,
    final_coverage: f64,
    iterations: u32,
    tests_written: u64,
    total_requests: u64,
    total_errors: u64,
    error_rate: f64,
    elapsed_seconds: f64,
    multi_key_rotation: bool,
    fallback_used: bool,
}

fn prompt(batch: &[Gap]) -> String {
    let mut text = String::from(
        "Write a Python unittest file that imports and tests these functions. Cover every \
         branch. Answer with the file only, in one ```python block.\n",
    );
    for gap in batch {
        text.push_str(&format!(
            "\n# module `{}`, function `{}`:\n{}\n",
            gap.module, gap.name, gap.source
        ));
    }
    text
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let started = clock.now();
    let router = router(&args, &clock)?;
    let project = args
        .project
        .canonicalize()
        .with_context(|| format!("no project at {}", args.project.display()))?;
    let report_path = project.join("coverage.json");
    let mut coverage = match &args.coverage_json {
        Some(path) => python::read_report(path)?,
        None => coverage_report(&args.python, &project, &report_path)?,
    };
    let initial_coverage = coverage.percent;
    println!("coverage {initial_coverage:.1}% (target {:.1}%)", args.target_coverage);
    let mut tally = Tally::default();
    let mut tests_written = 0u64;
    let mut iterations = 0;
    while coverage.percent < args.target_coverage && iterations < args.max_iterations {
        iterations += 1;
        let gaps = uncovered_functions(&project, &coverage)?;
        if gaps.is_empty() {
            println!("no uncovered function left");
            break;
        }
        let batches: Vec<Vec<Gap>> =
            gaps.chunks(args.batch_size as usize).map(<[Gap]>::to_vec).collect();
        println!(
            "round {iterations}: {} uncovered functions in {} batches",
            gaps.len(),
            batches.len()
        );
        for (wave_idx, wave) in batches.chunks(args.max_concurrent_batches as usize).enumerate() {
            let mut tasks = JoinSet::new();
            for (batch_idx, batch) in wave.iter().enumerate() {
                let router = router.clone();
                let request = ChatRequest::from_user(prompt(batch)).with_max_tokens(4096);
                let name = format!("test_switchyard_r{iterations}_w{wave_idx}_b{batch_idx}.py");
                tasks.spawn(async move { (name, router.chat(ROUTE, &request).await) });
            }
            while let Some(joined) = tasks.join_next().await {
                let (name, result) = joined.context("a batch task panicked")?;
                match result {
                    Ok(answer) => {
                        tally.add(&answer.trace);
                        let code = extract_python(&answer.response.text);
                        std::fs::write(project.join(&name), code)
                            .with_context(|| format!("cannot write {name}"))?;
                        tests_written += 1;
                    }
                    Err(error) => {
                        if let Some(trace) = error.trace() {
                            tally.add(trace);
                        }
                        tally.failed_batches += 1;
                        print_failure(&error);
                    }
                }
            }
        }
        coverage = coverage_report(&args.python, &project, &report_path)?;
        println!("round {iterations}: coverage {:.1}%", coverage.percent);
        tally.print();
    }
    let total_requests = tally.total(|stats| stats.requests);
    let total_errors = tally.total(|stats| stats.errors);
    let gemini_served = tally
        .keys
        .iter()
        .filter(|((provider, _), stats)| provider == "gemini" && stats.served > 0)
        .count();
    let report = Report {
        target_achieved: coverage.percent >= args.target_coverage,
        initial_coverage,
        final_coverage: coverage.percent,
        iterations,
        tests_written,
        total_requests,
        total_errors,
        #[expect(clippy::cast_precision_loss, reason = "a ratio of small counts")]
        error_rate: if total_requests == 0 {
            0.0
        } else {
            total_errors as f64 / total_requests as f64
        },
        elapsed_seconds: clock.now().duration_since(started).as_secs_f64(),
        multi_key_rotation: gemini_served > 1,
        fallback_used: tally
            .keys
            .iter()
            .any(|((provider, _), stats)| provider != "gemini" && stats.served > 0),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn print_failure(error: &RouterError) {
    // The router's errors name keys by id and fingerprint only, never by secret.
    println!("a batch failed: {error}");
}
