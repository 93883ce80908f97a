//! `switchyard doctor`: one report on whether a configuration can serve, with an exit code
//! for scripts. It checks the configuration (the loader's `file:line` errors), lists every
//! key (the configuration's and the vault's) with its state, probes each key live with one
//! one-token completion on its provider's first configured model (bounded concurrency, each
//! probe given up after `--timeout-secs` on the [`Clock`]), and shows the last errors.
//!
//! Key states and the last errors come from a running gateway's admin API with `--url`
//! (`/admin/status`, `/admin/analytics/errors`), else from the configuration's `[state]` file
//! and its analytics log, when they exist. The doctor persists nothing: the configuration is
//! built without `[state]` (no state file created or written, no saver thread, no Redis), and
//! a state file that does not exist is not created.
//!
//! Exit codes: 0 every key works; 1 some keys are down; 2 no key works (or there is none);
//! 3 the configuration is invalid; 4 the gateway named by `--url` could not be asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use comfy_table::Cell;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_core::{Clock, SystemClock};
use switchyard_quota::{BucketRecord, HoldRecord, LedgerSnapshot, LedgerStore as _};
use switchyard_server::api::{ErrorsView, StatusView};

use crate::admin_api::{AdminClient, Token};
use crate::config::{self, Loaded};
use crate::keytest::{self, KeyUnderTest, Probe, ProbeRow};
use crate::ui;

/// Every key works.
const EXIT_OK: u8 = 0;
/// Some keys are down.
const EXIT_SOME_DOWN: u8 = 1;
/// No key works, or there is none.
const EXIT_NONE_WORKS: u8 = 2;
/// The configuration is invalid.
const EXIT_CONFIG_INVALID: u8 = 3;
/// The gateway named by `--url` could not be asked.
const EXIT_GATEWAY_UNREACHABLE: u8 = 4;

/// Arguments of `switchyard doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The configuration to check.
    #[arg(long, env = "SWITCHYARD_CONFIG", default_value = "switchyard.toml")]
    config: PathBuf,
    /// Read key states and the last errors from this running gateway's admin API instead of
    /// the state file.
    #[arg(long)]
    url: Option<String>,
    /// The gateway's admin token, for `--url`.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<Token>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Skip the live probe: key states only.
    #[arg(long)]
    no_probe: bool,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Seconds one probe may take before it counts as a `timeout`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=120))]
    timeout_secs: u32,
    /// How far back the last errors go, in hours.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    errors_hours: u32,
}

/// One key in the report.
#[derive(Debug, Serialize)]
struct KeyReport {
    provider: String,
    key: String,
    fingerprint: String,
    /// `config` or `vault`.
    source: &'static str,
    /// From the gateway or the state file: `available`, `disabled`, `cooling`, ...; or
    /// `configured` when nothing records one.
    state: String,
    reason: Option<String>,
    /// The live probe, unless `--no-probe` or the provider has no model.
    probe: Option<ProbeRow>,
    /// Whether the key can serve: its probe passed (without a probe, its state is
    /// available) and no operator disabled it.
    works: bool,
}

/// What the state source says about one key.
struct KnownState {
    state: String,
    reason: Option<String>,
}

/// Runs `switchyard doctor`.
pub(crate) fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(doctor(args))
}

async fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let vars = crate::serve::variables()?;

    // 1. The configuration, built as `serve` builds it but without persistence.
    let mut warnings = Vec::new();
    let checked = Loaded::read(&args.config).map_err(anyhow::Error::from).and_then(|mut loaded| {
        let built = config::build_without_state(&mut loaded, &vars, Arc::clone(&clock))?;
        warnings.extend(built.warnings);
        // `[state]` was set aside by the build: its path must still expand.
        state_file(&loaded, &vars)?;
        Ok(loaded)
    });
    let loaded = match checked {
        Ok(loaded) => loaded,
        Err(error) => {
            let report = json!({
                "config": {"path": args.config.display().to_string(), "ok": false, "error": format!("{error:#}")},
                "keys": [],
                "verdict": "config invalid",
                "exit_code": EXIT_CONFIG_INVALID,
            });
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).context("printing")?);
            } else {
                println!("config {}: INVALID\n  {error:#}", args.config.display());
                println!("verdict: config invalid (exit {EXIT_CONFIG_INVALID})");
            }
            return Ok(ExitCode::from(EXIT_CONFIG_INVALID));
        }
    };

    // 2. Every key, and what the state source says of it.
    let mut notes = Vec::new();
    let keys = keytest::keys_under_test(&loaded, &vars, &clock, &mut notes)?;
    warnings.extend(notes);
    let since = clock.utc() - chrono::Duration::hours(i64::from(args.errors_hours));
    let (source, states, last_errors) = match &args.url {
        Some(url) => {
            let client = AdminClient::new(url, args.admin_token.clone());
            let start = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let asked = async {
                let status = client.get::<StatusView>("/admin/status").await?;
                let errors = client
                    .get::<ErrorsView>(&format!("/admin/analytics/errors?start={start}"))
                    .await;
                Ok::<_, crate::admin_api::AdminApiError>((status, errors))
            }
            .await;
            let (status, errors) = match asked {
                Ok(asked) => asked,
                Err(error) => {
                    let message = format!("gateway {url} could not be asked: {error}");
                    if args.json {
                        let report = json!({
                            "config": {"path": args.config.display().to_string(), "ok": true},
                            "gateway": {"url": url, "ok": false, "error": message},
                            "verdict": "gateway unreachable",
                            "exit_code": EXIT_GATEWAY_UNREACHABLE,
                        });
                        println!("{}", serde_json::to_string_pretty(&report).context("printing")?);
                    } else {
                        println!("{message}");
                        println!("verdict: gateway unreachable (exit {EXIT_GATEWAY_UNREACHABLE})");
                    }
                    return Ok(ExitCode::from(EXIT_GATEWAY_UNREACHABLE));
                }
            };
            let mut states = HashMap::new();
            for provider in status.providers {
                for key in provider.keys {
                    states.insert(
                        (provider.name.clone(), key.id),
                        KnownState { state: key.state, reason: key.reason },
                    );
                }
            }
            // An analytics-less gateway answers the status but not the errors.
            let errors = errors.map_err(|error| format!("the gateway did not answer: {error}"));
            (format!("gateway {url}"), states, errors)
        }
        None => local_state(&loaded, &vars, since, clock.utc())?,
    };

    // 3. The live probe: each key once, on its provider's first model.
    let timeout = Duration::from_secs(u64::from(args.timeout_secs));
    let probes: Vec<Option<ProbeRow>> = if args.no_probe {
        keys.iter().map(|_| None).collect()
    } else {
        let clock_ref = clock.as_ref();
        let mut rows: Vec<(usize, Option<ProbeRow>)> =
            futures_util::stream::iter(keys.iter().cloned().enumerate())
                .map(|(idx, key)| async move {
                    let Some(model) = key.models.first().cloned() else { return (idx, None) };
                    let probe = Probe { key, model };
                    (idx, Some(keytest::probe_within(&probe, clock_ref, timeout).await))
                })
                .buffer_unordered(args.concurrency as usize)
                .collect()
                .await;
        rows.sort_by_key(|(idx, _)| *idx);
        rows.into_iter().map(|(_, row)| row).collect()
    };
    let reports: Vec<KeyReport> =
        keys.iter().zip(probes).map(|(key, probe)| key_report(key, probe, &states)).collect();

    // 4. The verdict.
    let n_works = reports.iter().filter(|key| key.works).count();
    let (code, verdict) = if n_works == 0 {
        (EXIT_NONE_WORKS, "no key works")
    } else if n_works == reports.len() {
        (EXIT_OK, "all good")
    } else {
        (EXIT_SOME_DOWN, "some keys down")
    };
    let (errors, errors_omitted) = match last_errors {
        Ok(errors) => (Some(errors), None),
        Err(reason) => (None, Some(reason)),
    };
    if args.json {
        let mut report = json!({
            "config": {"path": args.config.display().to_string(), "ok": true, "warnings": warnings},
            "state_source": source,
            "keys": reports,
            "summary": {"keys": reports.len(), "working": n_works, "down": reports.len() - n_works},
            "last_errors": errors,
            "verdict": verdict,
            "exit_code": code,
        });
        if let Some(reason) = errors_omitted {
            report["last_errors_omitted"] = Value::String(reason);
        }
        println!("{}", serde_json::to_string_pretty(&report).context("printing the report")?);
    } else {
        print_report(&args.config, &warnings, &source, &reports, errors.as_ref(), errors_omitted);
        println!("verdict: {verdict} ({n_works} of {} keys work; exit {code})", reports.len());
    }
    Ok(ExitCode::from(code))
}

fn key_report(
    key: &KeyUnderTest,
    probe: Option<ProbeRow>,
    states: &HashMap<(String, String), KnownState>,
) -> KeyReport {
    let id = key.credential.id().to_string();
    let known = states.get(&(key.provider.clone(), id.clone()));
    let state = known.map_or_else(|| "configured".to_owned(), |known| known.state.clone());
    let disabled = state == "disabled";
    let works = !disabled
        && match &probe {
            Some(row) => row.ok,
            None => matches!(state.as_str(), "available" | "configured"),
        };
    KeyReport {
        provider: key.provider.clone(),
        key: id,
        fingerprint: key.credential.fingerprint().to_string(),
        source: key.source,
        state,
        reason: known.and_then(|known| known.reason.clone()),
        probe,
        works,
    }
}

/// The `[state] path` file, resolved against the configuration's directory, when given.
fn state_file(loaded: &Loaded, vars: &HashMap<String, String>) -> anyhow::Result<Option<PathBuf>> {
    let Some(path) = &loaded.file.state.path else { return Ok(None) };
    let expanded = loaded.expand(path, "path", vars)?;
    Ok(Some(loaded.path.parent().unwrap_or(Path::new(".")).join(expanded)))
}

type LocalState = (String, HashMap<(String, String), KnownState>, Result<ErrorsView, String>);

/// Key states from the state file (keys an operator disabled, then the quota ledger's holds
/// still in force: invalid or billing-stopped keys, exhausted or cooling quotas) and the last
/// errors from its analytics log; neither file is created when missing.
fn local_state(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<LocalState> {
    let mut states = HashMap::new();
    let source = match state_file(loaded, vars)? {
        None => "configuration only (no [state] path)".to_owned(),
        Some(path) if !path.exists() => {
            format!("configuration only ({} does not exist yet)", path.display())
        }
        Some(path) => {
            let mut store = switchyard_store::SqliteStore::open(&path)
                .with_context(|| format!("cannot open the state file {}", path.display()))?;
            let admin = store.load_admin_state().context("reading the admin state")?;
            let ledger = store.load().context("reading the saved quota state")?;
            for action in admin.disabled {
                let since = action.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                states.insert(
                    (action.provider.to_string(), action.key.to_string()),
                    KnownState {
                        state: "disabled".to_owned(),
                        reason: Some(format!("disabled by an operator at {since}")),
                    },
                );
            }
            held_keys(loaded, vars, &ledger, now, &mut states);
            // A key the file records nothing against is available.
            for section in &loaded.file.providers {
                for key in config::keys(loaded, section, vars, &mut Vec::new())? {
                    states
                        .entry((section.name.get_ref().clone(), key.id().to_string()))
                        .or_insert_with(|| KnownState {
                            state: "available".to_owned(),
                            reason: None,
                        });
                }
            }
            format!("state file {}", path.display())
        }
    };
    let errors = match config::analytics_settings(loaded, vars)? {
        None => Err("analytics are off (no [state] path, or enabled = false)".to_owned()),
        Some(settings) if !settings.path.exists() => {
            Err(format!("no analytics log at {} yet", settings.path.display()))
        }
        Some(settings) => switchyard_store::Analytics::open(&settings.path)
            .and_then(|analytics| analytics.errors(since, now))
            .map_err(|error| format!("the analytics log cannot be read: {error}")),
    };
    Ok((source, states, errors))
}

/// The ledger's holds still in force at `now`, into `states` (a state already there wins):
/// a key's own hold first, then an exhausted quota, then a cooldown. A bucket of a quota
/// group (`group:<name>`) holds every key of the providers that share it.
fn held_keys(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    ledger: &LedgerSnapshot,
    now: chrono::DateTime<chrono::Utc>,
    states: &mut HashMap<(String, String), KnownState>,
) {
    let in_force = |hold: &HoldRecord| hold.until.is_none_or(|until| until > now);
    let until = |hold: &HoldRecord| {
        hold.until.map_or_else(
            || "until re-enabled".to_owned(),
            |until| format!("until {}", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        )
    };
    for record in &ledger.keys {
        if let Some((kind, hold)) = &record.hold
            && in_force(hold)
        {
            states.entry((record.provider.to_string(), record.key.to_string())).or_insert_with(
                || KnownState {
                    state: kind.as_str().to_owned(),
                    reason: Some(format!("{} ({})", hold.reason, until(hold))),
                },
            );
        }
    }
    let mut hold = |state: &str, bucket: &BucketRecord, hold: &HoldRecord| {
        let provider = bucket.provider.as_str();
        let keys: Vec<String> = match bucket.group.split_once(':') {
            Some(("key", key)) => vec![key.to_owned()],
            Some(("group", group)) => loaded
                .file
                .providers
                .iter()
                .filter(|section| {
                    section.name.get_ref() == provider && section.group.as_deref() == Some(group)
                })
                .flat_map(|section| {
                    config::keys(loaded, section, vars, &mut Vec::new()).unwrap_or_default()
                })
                .map(|key| key.id().to_string())
                .collect(),
            _ => Vec::new(),
        };
        for key in keys {
            states.entry((provider.to_owned(), key)).or_insert_with(|| KnownState {
                state: state.to_owned(),
                reason: Some(format!("{} on {} ({})", hold.reason, bucket.pool, until(hold))),
            });
        }
    };
    for bucket in &ledger.buckets {
        if let Some(exhausted) = bucket.exhausted.as_ref().filter(|h| in_force(h)) {
            hold("exhausted", bucket, exhausted);
        }
    }
    for bucket in &ledger.buckets {
        if let Some(cooldown) = bucket.cooldown.as_ref().filter(|h| in_force(h)) {
            hold("cooling", bucket, cooldown);
        }
    }
}

fn print_report(
    config: &Path,
    warnings: &[String],
    source: &str,
    keys: &[KeyReport],
    errors: Option<&ErrorsView>,
    errors_omitted: Option<String>,
) {
    let colour = ui::colour();
    println!("config {}: ok", config.display());
    for warning in warnings {
        println!("  warning: {warning}");
    }
    println!("key states from {source}");
    let mut table =
        ui::table(["provider", "key", "state", "probe", "model", "latency ms", "error"]);
    for key in keys {
        let label = match key.source {
            "vault" => format!("{} ({}, vault)", key.key, key.fingerprint),
            _ => format!("{} ({})", key.key, key.fingerprint),
        };
        let state = match &key.reason {
            Some(reason) => format!("{} {reason}", key.state),
            None => key.state.clone(),
        };
        let probe = key.probe.as_ref();
        table.add_row(vec![
            Cell::new(&key.provider),
            Cell::new(label),
            ui::state_cell(&state, colour),
            ui::state_cell(
                match probe {
                    Some(row) if row.ok => "ok",
                    Some(_) => "FAIL",
                    None => "-",
                },
                colour,
            ),
            Cell::new(probe.map_or("-", |row| row.model.as_str())),
            Cell::new(
                probe
                    .and_then(|row| row.latency_ms)
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}")),
            ),
            Cell::new(probe.and_then(|row| row.error_class.as_deref()).unwrap_or("-")),
        ]);
    }
    println!("{table}");
    match (errors, errors_omitted) {
        (Some(errors), _) if errors.errors.is_empty() => println!("last errors: none"),
        (Some(errors), _) => {
            let mut table = ui::table(["error class", "count", "keys"]);
            for row in &errors.errors {
                table.add_row(vec![
                    Cell::new(&row.class),
                    Cell::new(row.count),
                    Cell::new(row.keys.join(", ")),
                ]);
            }
            println!(
                "last errors, {} to {}",
                errors.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                errors.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            println!("{table}");
        }
        (None, Some(reason)) => println!("last errors: not shown ({reason})"),
        (None, None) => {}
    }
}
