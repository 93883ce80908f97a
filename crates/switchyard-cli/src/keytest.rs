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
//! Keys come from the configuration's `keys` and `keys_env`, named as `serve` names them, and
//! from its `[vault]` (a vault key is tested like a configured one, against its provider's
//! models; the same secret in both places is tested once). With `--all-models`, each key is
//! probed against its own model list instead (the provider's list endpoint, asked with that
//! key), at most `--max-models-per-key` of it. Every probe and every listing gives up after
//! `--timeout-secs`, measured on the [`Clock`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use comfy_table::{Cell, CellAlignment};
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_core::{
    Call, ChatRequest, Clock, Credential, LimitUnit, ModelId, Provider, SystemClock,
};
use switchyard_score::{StatsSnapshot, StatsStore as _};
use switchyard_vault::KeySource;

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
    /// Probe each key against its own model list (the provider's list endpoint, asked with
    /// that key) instead of the configured models.
    #[arg(long)]
    all_models: bool,
    /// With `--all-models`, the most models probed per key: the first ones of its list by
    /// name.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_models_per_key: u32,
    /// Seconds one probe or one model listing may take before it counts as a `timeout`.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=600))]
    timeout_secs: u32,
}

/// The longest model name taken from a provider's list; a longer one is skipped.
const MAX_MODEL_NAME: usize = 256;

/// The pseudo-model a failed model listing is reported under.
pub(crate) const LISTING: &str = "(model list)";

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
    pub(crate) provider: String,
    pub(crate) key: String,
    pub(crate) fingerprint: String,
    /// `config` or `vault`.
    pub(crate) source: &'static str,
    pub(crate) model: String,
    pub(crate) ok: bool,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) error_class: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) rate_limit: Option<RateLimitRow>,
}

/// What the rate-limit headers said was left.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RateLimitRow {
    pub(crate) remaining_requests: Option<u64>,
    pub(crate) remaining_tokens: Option<u64>,
}

/// One key of one provider, with the adapter that speaks for it and the models configured
/// for its provider.
#[derive(Clone)]
pub(crate) struct KeyUnderTest {
    pub(crate) provider: String,
    pub(crate) adapter: Arc<dyn Provider>,
    pub(crate) credential: Credential,
    /// `config` or `vault`.
    pub(crate) source: &'static str,
    pub(crate) models: Vec<String>,
}

/// One key on one model.
pub(crate) struct Probe {
    pub(crate) key: KeyUnderTest,
    pub(crate) model: String,
}

/// Every key of every configured provider: the configuration's `keys` and `keys_env`, then
/// the `[vault]`'s enabled keys of the configured providers (a secret already configured is
/// not repeated). What cannot be tested goes to `notes`.
///
/// # Errors
/// The configuration's errors, or a `[vault]` that cannot be opened.
pub(crate) fn keys_under_test(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    clock: &Arc<dyn Clock>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<KeyUnderTest>> {
    let limits = config::upstream_limits(loaded)?;
    let vault_keys = match &loaded.file.vault {
        Some(section) => KeySource::keys(&config::open_vault(loaded, section, vars)?)
            .context("reading the vault's keys")?,
        None => Vec::new(),
    };
    let mut found = Vec::new();
    for section in &loaded.file.providers {
        let name = section.name.get_ref().clone();
        let adapter = config::adapter(loaded, section, vars, clock, &limits)?;
        let mut keys: Vec<(Credential, &'static str)> = config::keys(loaded, section, vars, notes)?
            .into_iter()
            .map(|credential| (credential, "config"))
            .collect();
        for sourced in vault_keys.iter().filter(|key| key.provider.as_str() == name) {
            let fingerprint = sourced.credential.fingerprint();
            if keys.iter().any(|(known, _)| known.fingerprint() == fingerprint) {
                continue;
            }
            keys.push((sourced.credential.clone(), "vault"));
        }
        if keys.is_empty() {
            notes.push(format!("provider {name} has no keys to test"));
        }
        for (credential, source) in keys {
            found.push(KeyUnderTest {
                provider: name.clone(),
                adapter: Arc::clone(&adapter),
                credential,
                source,
                models: section.models.clone(),
            });
        }
    }
    for sourced in &vault_keys {
        let provider = sourced.provider.as_str();
        if !loaded.file.providers.iter().any(|section| section.name.get_ref() == provider) {
            notes.push(format!(
                "vault key {} is for provider {provider}, which the configuration does not define: not tested",
                sourced.credential.id()
            ));
        }
    }
    Ok(found)
}

/// `work`, or `None` when `timeout` passes first on `clock`.
pub(crate) async fn within<T>(
    clock: &dyn Clock,
    timeout: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    let deadline = clock.now() + timeout;
    let work = std::pin::pin!(work);
    match futures_util::future::select(work, clock.sleep_until(deadline)).await {
        futures_util::future::Either::Left((out, _)) => Some(out),
        futures_util::future::Either::Right(_) => None,
    }
}

/// The models `key` lists, sorted by name, at most `max` (names longer than
/// [`MAX_MODEL_NAME`] skipped), or the row saying why the listing failed.
async fn own_models(
    key: &KeyUnderTest,
    clock: &dyn Clock,
    timeout: Duration,
    max: usize,
) -> Result<Vec<String>, ProbeRow> {
    let failed = |error_class: String, status: Option<u16>| ProbeRow {
        provider: key.provider.clone(),
        key: key.credential.id().to_string(),
        fingerprint: key.credential.fingerprint().to_string(),
        source: key.source,
        model: LISTING.to_owned(),
        ok: false,
        latency_ms: None,
        error_class: Some(error_class),
        status,
        rate_limit: None,
    };
    match within(clock, timeout, key.adapter.list_models(Some(&key.credential))).await {
        None => Err(failed("timeout".to_owned(), None)),
        Some(Err(error)) => Err(failed(error.kind.as_str().to_owned(), error.status)),
        Some(Ok(listed)) => {
            let mut models: Vec<String> = listed
                .into_iter()
                .map(|info| info.id.as_str().to_owned())
                .filter(|name| !name.is_empty() && name.len() <= MAX_MODEL_NAME)
                .collect();
            models.sort();
            models.dedup();
            models.truncate(max);
            Ok(models)
        }
    }
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
    let timeout = Duration::from_secs(u64::from(args.timeout_secs));
    let loaded = Loaded::read(&args.config)?;
    let vars = crate::serve::variables()?;
    // Keys and adapters are made exactly as `serve` makes them (an empty key is skipped and
    // a repeated one tested once, with the same notes).
    let mut notes = Vec::new();
    let keys = keys_under_test(&loaded, &vars, &clock, &mut notes)?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    let mut probes = Vec::new();
    let mut listing_failures = Vec::new();
    if args.all_models {
        let max = args.max_models_per_key as usize;
        let clock_ref = clock.as_ref();
        let listed: Vec<(KeyUnderTest, Result<Vec<String>, ProbeRow>)> =
            futures_util::stream::iter(keys)
                .map(|key| async move {
                    let models = own_models(&key, clock_ref, timeout, max).await;
                    (key, models)
                })
                .buffer_unordered(args.concurrency as usize)
                .collect()
                .await;
        for (key, models) in listed {
            match models {
                Ok(models) if models.is_empty() => {
                    eprintln!("note: key {}/{} lists no models", key.provider, key.credential.id())
                }
                Ok(models) => {
                    for model in models {
                        probes.push(Probe { key: key.clone(), model });
                    }
                }
                Err(row) => listing_failures.push(row),
            }
        }
    } else {
        for key in keys {
            if key.models.is_empty() {
                eprintln!("note: provider {} has no models to test", key.provider);
                continue;
            }
            for model in key.models.clone() {
                probes.push(Probe { key: key.clone(), model });
            }
        }
    }
    if probes.is_empty() && listing_failures.is_empty() {
        return Err(KeyTestError::Nothing(args.config.clone()).into());
    }

    let bar = ui::progress(probes.len() as u64, "probes");
    let started_at = clock.utc();
    let mut rows: Vec<ProbeRow> = futures_util::stream::iter(probes)
        .map(|probe| {
            let clock = Arc::clone(&clock);
            let bar = bar.clone();
            async move {
                let row = probe_within(&probe, clock.as_ref(), timeout).await;
                bar.inc(1);
                row
            }
        })
        .buffer_unordered(args.concurrency as usize)
        .collect()
        .await;
    bar.finish_and_clear();
    rows.extend(listing_failures);
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

/// One one-token completion with one key on one model, given up after `timeout` (error
/// class `timeout`).
pub(crate) async fn probe_within(probe: &Probe, clock: &dyn Clock, timeout: Duration) -> ProbeRow {
    let request = ChatRequest::from_user("Reply with one word.").with_max_tokens(1);
    let model = ModelId::new(probe.model.as_str());
    let key = &probe.key;
    let call = Call::new(&request, &model, Some(&key.credential));
    let started = clock.now();
    let outcome = within(clock, timeout, key.adapter.chat(call)).await;
    let latency_ms = clock.now().saturating_duration_since(started).as_secs_f64() * 1000.0;
    let latency_ms = Some((latency_ms * 10.0).round() / 10.0);
    let mut row = ProbeRow {
        provider: key.provider.clone(),
        key: key.credential.id().to_string(),
        fingerprint: key.credential.fingerprint().to_string(),
        source: key.source,
        model: probe.model.clone(),
        ok: false,
        latency_ms,
        error_class: None,
        status: None,
        rate_limit: None,
    };
    let Some(outcome) = outcome else {
        row.error_class = Some("timeout".to_owned());
        return row;
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
            Cell::new(if row.source == "vault" {
                format!("{} ({}, vault)", row.key, row.fingerprint)
            } else {
                format!("{} ({})", row.key, row.fingerprint)
            }),
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
    // A failed listing names no model: nothing to score.
    for row in rows.iter().filter(|row| row.model != LISTING) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::ManualClock;

    #[tokio::test]
    async fn a_probe_gives_up_when_its_clock_passes_the_timeout_and_not_before() {
        let clock = Arc::new(ManualClock::default());
        let ready = within(clock.as_ref(), Duration::from_secs(10), async { 7 }).await;
        assert_eq!(ready, Some(7));

        let waiting = {
            let clock = Arc::clone(&clock);
            tokio::spawn(async move {
                within(clock.as_ref(), Duration::from_secs(10), std::future::pending::<()>()).await
            })
        };
        // Let the task start and read its deadline, then move the clock to just before it.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(9));
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "gave up before its timeout");
        // Past it: the probe gives up (bounded: the clock keeps moving until it does).
        let mut advanced = 0;
        while !waiting.is_finished() {
            assert!(advanced < 1000, "never gave up");
            clock.advance(Duration::from_secs(2));
            tokio::task::yield_now().await;
            advanced += 1;
        }
        assert_eq!(waiting.await.expect("joined"), None);
    }
}
