//! `switchyard keys test`: every key of every configured provider against every model it
//! lists, concurrently (bounded), each probe a one-token completion: a model listing can
//! succeed for a key with no credit, and Gemini's per-model `limit: 0` only shows on a
//! generate call, so only a real completion tells the truth.
//!
//! Each probe records whether the key authenticated and reached the model, the rate-limit
//! headers' remaining counts, the latency and the error class. The results are printed as a
//! table sorted by latency with the pass rate and the fastest, written as JSON (the body of
//! the admin API's `POST /admin/scores/import`), and seed the scorer: through that endpoint
//! with `--url`, else into the score snapshot of the configuration's `[state]` file, so the
//! first routed request already knows which keys work.
//!
//! Keys come from the configuration's `keys` and `keys_env`, named as `serve` names them;
//! keys held only in the vault are not probed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use comfy_table::{Cell, CellAlignment};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_core::{
    Call, ChatRequest, Clock, Credential, LimitUnit, ModelId, Provider, SystemClock,
};
use switchyard_score::{StatsSnapshot, StatsStore as _};

use crate::admin_api::{AdminClient, Token};
use crate::config::{self, Loaded};
use crate::ui;

/// Arguments of `switchyard keys test`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyTestArgs {
    /// The configuration whose providers, keys and models are tested.
    #[arg(long, env = "SWITCHYARD_CONFIG", default_value = "switchyard.toml")]
    config: PathBuf,
    /// Where the results JSON goes.
    #[arg(long, value_name = "FILE", default_value = "api-test-results.json")]
    json: PathBuf,
    /// Seed a running gateway's scorer (`POST /admin/scores/import`) instead of the state
    /// file.
    #[arg(long)]
    url: Option<String>,
    /// The gateway's admin token, for `--url`.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<Token>,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
}

/// Why the keys cannot be tested.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyTestError {
    /// Nothing to test.
    #[error("{}: no provider has both keys and models to test", .0.display())]
    Nothing(PathBuf),
}

/// One probe's result, as the admin API's import reads it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ProbeRow {
    provider: String,
    key: String,
    fingerprint: String,
    model: String,
    ok: bool,
    latency_ms: Option<f64>,
    error_class: Option<String>,
    status: Option<u16>,
    rate_limit: Option<RateLimitRow>,
}

/// What the rate-limit headers said was left.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RateLimitRow {
    remaining_requests: Option<u64>,
    remaining_tokens: Option<u64>,
}

/// One key of one provider, with the adapter that speaks for it.
struct Probe {
    provider: String,
    adapter: Arc<dyn Provider>,
    credential: Credential,
    model: String,
}

/// Runs `switchyard keys test`.
pub(crate) fn run(args: KeyTestArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(test_keys(args))
}

async fn test_keys(args: KeyTestArgs) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let loaded = Loaded::read(&args.config)?;
    let vars = crate::serve::variables()?;
    let mut probes = Vec::new();
    // Keys and adapters are made exactly as `serve` makes them (an empty key is skipped and
    // a repeated one tested once, with the same notes).
    let mut notes = Vec::new();
    let limits = config::upstream_limits(&loaded)?;
    for section in &loaded.file.providers {
        let name = section.name.get_ref().clone();
        let keys = config::keys(&loaded, section, &vars, &mut notes)?;
        if keys.is_empty() || section.models.is_empty() {
            eprintln!("note: provider {name} has no keys or no models to test");
            continue;
        }
        let adapter = config::adapter(&loaded, section, &vars, &clock, &limits)?;
        for credential in &keys {
            for model in &section.models {
                probes.push(Probe {
                    provider: name.clone(),
                    adapter: Arc::clone(&adapter),
                    credential: credential.clone(),
                    model: model.clone(),
                });
            }
        }
    }
    for note in &notes {
        eprintln!("note: {note}");
    }
    if probes.is_empty() {
        return Err(KeyTestError::Nothing(args.config.clone()).into());
    }

    let bar = ui::progress(probes.len() as u64, "probes");
    let started_at = clock.utc();
    let mut rows: Vec<ProbeRow> = futures_util::stream::iter(probes)
        .map(|probe| {
            let clock = Arc::clone(&clock);
            let bar = bar.clone();
            async move {
                let row = probe_once(&probe, clock.as_ref()).await;
                bar.inc(1);
                row
            }
        })
        .buffer_unordered(args.concurrency as usize)
        .collect()
        .await;
    bar.finish_and_clear();
    // Passing probes by latency first, then the failures by latency.
    rows.sort_by(|a, b| {
        b.ok.cmp(&a.ok)
            .then_with(|| {
                a.latency_ms.unwrap_or(f64::MAX).total_cmp(&b.latency_ms.unwrap_or(f64::MAX))
            })
            .then_with(|| (&a.provider, &a.key, &a.model).cmp(&(&b.provider, &b.key, &b.model)))
    });
    print_table(&rows);

    let file = json!({
        "generated_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "results": rows,
    });
    let text = serde_json::to_string_pretty(&file).context("serializing the results")?;
    std::fs::write(&args.json, text + "\n")
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    println!("results written to {}", args.json.display());

    match &args.url {
        Some(url) => {
            let client = AdminClient::new(url, args.admin_token.clone());
            let answer: Value = client.post("/admin/scores/import", &file).await?;
            println!(
                "seeded the gateway's scorer at {url}: {} imported, {} unknown",
                answer["imported"], answer["unknown"]
            );
        }
        None => match state_path(&loaded, &vars)? {
            Some(path) => {
                let n = seed_state(&path, &rows, started_at)?;
                println!("seeded the learned scores in {} ({n} candidates)", path.display());
            }
            None => println!(
                "no [state] path in {}: the scores are not seeded (pass --url to seed a running gateway)",
                args.config.display()
            ),
        },
    }

    let passed = rows.iter().filter(|row| row.ok).count();
    Ok(ExitCode::from(match passed {
        0 => 2,
        n if n == rows.len() => 0,
        _ => 1,
    }))
}

/// One one-token completion with one key on one model.
async fn probe_once(probe: &Probe, clock: &dyn Clock) -> ProbeRow {
    let request = ChatRequest::from_user("Reply with one word.").with_max_tokens(1);
    let model = ModelId::new(probe.model.as_str());
    let call = Call::new(&request, &model, Some(&probe.credential));
    let started = clock.now();
    let outcome = probe.adapter.chat(call).await;
    let latency_ms = clock.now().saturating_duration_since(started).as_secs_f64() * 1000.0;
    let latency_ms = Some((latency_ms * 10.0).round() / 10.0);
    let mut row = ProbeRow {
        provider: probe.provider.clone(),
        key: probe.credential.id().to_string(),
        fingerprint: probe.credential.fingerprint().to_string(),
        model: probe.model.clone(),
        ok: false,
        latency_ms,
        error_class: None,
        status: None,
        rate_limit: None,
    };
    let limits = match outcome {
        Ok(reply) => {
            row.ok = true;
            row.status = Some(200);
            reply.rate_limits
        }
        Err(error) => {
            row.error_class = Some(error.kind.as_str().to_owned());
            row.status = error.status;
            error.rate_limits.clone()
        }
    };
    let remaining = |unit| limits.reading(unit).and_then(|reading| reading.remaining);
    let (requests, tokens) = (remaining(LimitUnit::Requests), remaining(LimitUnit::Tokens));
    if requests.is_some() || tokens.is_some() {
        row.rate_limit =
            Some(RateLimitRow { remaining_requests: requests, remaining_tokens: tokens });
    }
    row
}

fn print_table(rows: &[ProbeRow]) {
    let colour = ui::colour();
    let mut table = ui::table([
        "provider",
        "key",
        "model",
        "result",
        "latency ms",
        "status",
        "error",
        "requests left",
        "tokens left",
    ]);
    let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
    let or_dash = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for row in rows {
        let limits = row.rate_limit.as_ref();
        table.add_row(vec![
            Cell::new(&row.provider),
            Cell::new(format!("{} ({})", row.key, row.fingerprint)),
            Cell::new(&row.model),
            ui::state_cell(if row.ok { "ok" } else { "FAIL" }, colour),
            right(row.latency_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"))),
            right(or_dash(row.status.map(u64::from))),
            Cell::new(row.error_class.as_deref().unwrap_or("-")),
            right(or_dash(limits.and_then(|limits| limits.remaining_requests))),
            right(or_dash(limits.and_then(|limits| limits.remaining_tokens))),
        ]);
    }
    println!("{table}");
    let passed = rows.iter().filter(|row| row.ok).count();
    let rate = passed as f64 * 100.0 / rows.len().max(1) as f64;
    println!("passed {passed} of {} ({rate:.0}%)", rows.len());
    match rows.iter().find(|row| row.ok) {
        Some(row) => println!(
            "fastest: {}/{} {} in {:.1} ms",
            row.provider,
            row.key,
            row.model,
            row.latency_ms.unwrap_or_default()
        ),
        None => println!("fastest: none passed"),
    }
}

/// The `[state] path` of the configuration, relative to its directory, as `serve` reads it.
fn state_path(loaded: &Loaded, vars: &HashMap<String, String>) -> anyhow::Result<Option<PathBuf>> {
    let Some(path) = &loaded.file.state.path else { return Ok(None) };
    let expanded = loaded.expand(path, "path", vars)?;
    Ok(Some(loaded.path.parent().unwrap_or(Path::new(".")).join(expanded)))
}

/// Merges the results into the state file's score snapshot the way the gateway's import
/// does: a pass adds a success and blends its latency into the mean, a failure adds a
/// failure. Returns how many candidates the snapshot holds.
fn seed_state(
    path: &Path,
    rows: &[ProbeRow],
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<usize> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut store = switchyard_store::SqliteStore::open(path)
        .with_context(|| format!("cannot open the state file {}", path.display()))?;
    let existing = store.load().context("reading the saved scores")?;
    let mut snapshot = match existing {
        Some(snapshot) => serde_json::to_value(&snapshot).context("reading the saved scores")?,
        None => json!({"version": 1, "providers": {}}),
    };
    for row in rows {
        let stats = &mut snapshot["providers"][row.provider.as_str()]["keys"][row.key.as_str()]["models"]
            [row.model.as_str()];
        if !stats.is_object() {
            *stats = json!({});
        }
        if row.ok {
            let successes = stats["successCount"].as_u64().unwrap_or(0);
            if let Some(latency) = row.latency_ms {
                let blended = match stats["avgResponseTime"].as_f64() {
                    Some(mean) => (mean * successes as f64 + latency) / (successes + 1) as f64,
                    None => latency,
                };
                stats["avgResponseTime"] = json!(blended);
            }
            stats["successCount"] = json!(successes + 1);
            stats["lastSuccess"] = json!(at.to_rfc3339());
        } else {
            let failures = stats["failCount"].as_u64().unwrap_or(0);
            stats["failCount"] = json!(failures + 1);
            stats["lastError"] = json!(at.to_rfc3339());
        }
    }
    let snapshot: StatsSnapshot =
        serde_json::from_value(snapshot).context("building the score snapshot")?;
    store.save(&snapshot).context("saving the scores")?;
    Ok(snapshot.len())
}
