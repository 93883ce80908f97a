//! `switchyard keys`: the encrypted key vault from the shell.
//!
//! Every command shows keys by id and fingerprint only. The passphrase and the keys
//! themselves never come from an argument (arguments show up in `ps` and shell history):
//! see [`input`].

mod api_stats;
mod input;
mod lifecycle;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use switchyard_core::KeyId;
use switchyard_vault::{
    AddOutcome, DEFAULT_ITERATIONS, EnvSource, KeyInfo, NewKey, Vault, VaultConfig, VaultError,
};

use input::KeysError;

/// Arguments of `switchyard keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    /// The vault file [default: keys.vault in the data directory; see `switchyard keys path`].
    #[arg(long, env = "SWITCHYARD_VAULT", global = true, value_name = "PATH")]
    vault: Option<PathBuf>,
    /// Read the vault passphrase from this file (one trailing newline is ignored) instead of
    /// SWITCHYARD_VAULT_PASSPHRASE or a prompt.
    #[arg(long, env = "SWITCHYARD_VAULT_KEYFILE", global = true, value_name = "PATH")]
    keyfile: Option<PathBuf>,
    /// A state file (`[state] path` of switchyard.toml) to record vault changes in its audit
    /// log, and whose key lifecycle `keys list` shows beside the vault's.
    #[arg(long, env = "SWITCHYARD_STATE", global = true, value_name = "PATH")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a key, read from standard input or a no-echo prompt (never from an argument).
    /// Creates the vault if there is none.
    Add {
        /// The provider the key is for (`groq`, `gemini`, `openai`, ...).
        #[arg(long)]
        provider: String,
        /// A label to tell keys apart.
        #[arg(long)]
        label: Option<String>,
        /// A tag; repeat for several.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// List the keys: id, provider, fingerprint, state, dates, label, tags. Never secrets.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show when each key is due for rotation, this many days after it was added.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        rotate_after_days: Option<u32>,
    },
    /// Remove a key.
    Remove {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
    /// Keep a key but stop handing it out.
    Disable {
        /// The key's id.
        id: String,
    },
    /// Hand a disabled key out again.
    Enable {
        /// The key's id.
        id: String,
    },
    /// Copy keys from environment variables (GEMINI_KEYS, GROQ_API_KEY, GROQ_API_KEY_1..n,
    /// OPENAI_API_KEY, ...) and ./.env into the vault. Keys already there are skipped.
    ImportEnv {
        /// Only show what would be imported; do not open the vault.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change the vault passphrase; the new one comes from SWITCHYARD_VAULT_NEW_PASSPHRASE
    /// or a prompt.
    Passwd,
    /// Print the vault path in use.
    Path,
    /// Probe every key of `switchyard.toml` against every model with a one-token
    /// completion; print a table, write the results JSON and seed the learned scores.
    /// Exit 0 when all pass, 1 when some fail, 2 when none work.
    Test(crate::keytest::KeyTestArgs),
    /// Reset every key a running gateway's ledger holds out (cooling, exhausted, invalid,
    /// billing), or one provider's, through its admin API; print the keys reset. Exit 2 when
    /// the gateway refuses or cannot be reached.
    Reset {
        #[command(flatten)]
        gateway: crate::status::GatewayArgs,
        /// Only this provider's keys.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Pin a key on a running gateway: every route that holds it tries it first (still
    /// skipping it while it is cooling or spent) until the pin ends. Exit 2 on refusal.
    Pin {
        /// The key, as `<provider>/<key>` (`switchyard status` shows both).
        key: String,
        /// How long the pin holds, in seconds (the gateway clamps it to a day).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        for_secs: u64,
        #[command(flatten)]
        gateway: crate::status::GatewayArgs,
    },
    /// Import or export the learned scores as the users' apiStats.json (flat
    /// `providers.<provider>_key<N>.models.<model>` counters; see docs/scoring.md). Import
    /// fills the `[state]` file's priors, which the gateway restores at start: run it while
    /// the gateway is stopped (a running one saves its own scores over them).
    #[command(group(clap::ArgGroup::new("direction").required(true).args(["import", "export"])))]
    Stats {
        /// Read this apiStats.json into the learned scores.
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
        /// Write the learned scores to this file as apiStats.json.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// The configuration naming the providers, their keys and the `[state]` file.
        #[arg(long, env = "SWITCHYARD_CONFIG", default_value = "switchyard.toml")]
        config: PathBuf,
    },
    /// Print the audit log of the state file given with --state (or SWITCHYARD_STATE): who or
    /// what read or changed a key, by id and fingerprint, oldest first.
    Audit {
        /// The newest entries shown.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// End a key's pin on a running gateway. Exit 2 on refusal.
    Unpin {
        /// The key, as `<provider>/<key>`.
        key: String,
        #[command(flatten)]
        gateway: crate::status::GatewayArgs,
    },
}

/// Runs `switchyard keys reset`: `POST /admin/keys/reset` on the gateway.
fn reset(
    gateway: &crate::status::GatewayArgs,
    provider: Option<String>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let body = match provider {
        Some(provider) => serde_json::json!({ "provider": provider }),
        None => serde_json::json!({}),
    };
    let client = gateway.client();
    let answer =
        runtime.block_on(client.post::<crate::admin_api::ResetView>("/admin/keys/reset", &body));
    match answer {
        Ok(view) => {
            for row in &view.reset {
                println!(
                    "reset {}/{} ({})",
                    row.provider,
                    row.key,
                    row.fingerprint.as_deref().unwrap_or("no fingerprint")
                );
            }
            println!("{} key(s) reset", view.reset.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("switchyard keys reset: {error}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs `switchyard keys pin` (`for_secs` given) or `keys unpin` on the gateway.
fn pin(
    gateway: &crate::status::GatewayArgs,
    name: &str,
    for_secs: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let Some((provider, key)) = name.split_once('/') else {
        eprintln!("switchyard keys: {name:?} is not <provider>/<key>");
        return Ok(ExitCode::from(2));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Path segments: the names are sent percent-encoded, never spliced raw into the URL.
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect()
    };
    let path = format!("/admin/keys/{}/{}/pin", encode(provider), encode(key));
    let client = gateway.client();
    let answer = runtime.block_on(async {
        match for_secs {
            Some(for_secs) => {
                client
                    .post::<serde_json::Value>(&path, &serde_json::json!({ "for_secs": for_secs }))
                    .await
            }
            None => client.delete::<serde_json::Value>(&path).await,
        }
    });
    match answer {
        Ok(answer) => {
            match answer["pinned_for_secs"].as_u64() {
                Some(secs) => println!("pinned {provider}/{key} for {secs}s"),
                None if answer["was_pinned"] == true => println!("unpinned {provider}/{key}"),
                None => println!("{provider}/{key} was not pinned"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("switchyard keys: {error}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs `switchyard keys`.
pub(crate) fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    // The key test reads the configuration, not the vault: it needs no vault path.
    let path = match (&args.command, args.vault) {
        (
            KeysCommand::Test(_)
            | KeysCommand::Reset { .. }
            | KeysCommand::Pin { .. }
            | KeysCommand::Unpin { .. }
            | KeysCommand::Stats { .. }
            | KeysCommand::Audit { .. },
            _,
        ) => PathBuf::new(),
        (_, Some(path)) => path,
        (_, None) => input::default_vault_path()?,
    };
    let keyfile = args.keyfile.as_deref();
    let state = args.state.as_deref();
    // Each change is audited by id and fingerprint, after it is done.
    let audit = |action: &str, info: Option<&KeyInfo>, detail: Option<String>| {
        let key = info.map(|info| (&info.provider, &info.id, info.fingerprint.to_string()));
        crate::keylife::audit_to(state, &[crate::keylife::audit_entry("cli", action, key, detail)]);
    };
    match args.command {
        KeysCommand::Add { provider, label, tags } => {
            let mut vault = add(&path, keyfile, provider, label, tags)?;
            if let Some(info) = vault.as_mut().and_then(|(vault, id)| vault.key(id)) {
                audit("vault-add", Some(info), None);
            }
        }
        KeysCommand::List { json, rotate_after_days } => {
            list(&path, keyfile, json, rotate_after_days, state)?;
            audit("vault-list", None, None);
        }
        KeysCommand::Remove { id } => {
            let removed = open(&path, keyfile)?.remove(&KeyId::new(id))?;
            println!("removed {} ({})", removed.id, removed.fingerprint);
            audit("vault-remove", Some(&removed), None);
        }
        KeysCommand::Disable { id } => {
            let id = KeyId::new(id);
            let mut vault = open(&path, keyfile)?;
            let changed = vault.disable(&id)?;
            audit("vault-disable", vault.key(&id), None);
            println!(
                "{}",
                if changed {
                    format!("disabled {id}")
                } else {
                    format!("{id} was already disabled")
                }
            );
        }
        KeysCommand::Enable { id } => {
            let id = KeyId::new(id);
            let mut vault = open(&path, keyfile)?;
            let changed = vault.enable(&id)?;
            audit("vault-enable", vault.key(&id), None);
            println!(
                "{}",
                if changed { format!("enabled {id}") } else { format!("{id} was already enabled") }
            );
        }
        KeysCommand::ImportEnv { dry_run } => {
            let imported = import_env(&path, keyfile, dry_run)?;
            if imported > 0 {
                audit("vault-import-env", None, Some(format!("{imported} keys added")));
            }
        }
        KeysCommand::Passwd => {
            let mut vault = open(&path, keyfile)?;
            let new = input::new_passphrase()?;
            vault.change_passphrase(new)?;
            audit("vault-rotate-passphrase", None, Some(format!("{} keys", vault.len())));
            println!(
                "passphrase changed for {} ({} PBKDF2 iterations); the backup is re-sealed too",
                path.display(),
                vault.iterations()
            );
        }
        KeysCommand::Path => println!("{}", path.display()),
        KeysCommand::Test(test) => return crate::keytest::run(test),
        KeysCommand::Reset { gateway, provider } => return reset(&gateway, provider),
        KeysCommand::Pin { key, for_secs, gateway } => return pin(&gateway, &key, Some(for_secs)),
        KeysCommand::Unpin { key, gateway } => return pin(&gateway, &key, None),
        KeysCommand::Audit { limit, json } => lifecycle::print_audit(state, limit, json)?,
        KeysCommand::Stats { import, export, config } => {
            api_stats::run(&config, import.as_deref(), export.as_deref())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing vault, warning when its iteration count is below today's default.
fn open(path: &Path, keyfile: Option<&Path>) -> Result<Vault, KeysError> {
    if !path.exists() {
        // Say so before asking for a passphrase that would open nothing.
        return Err(VaultError::NotFound { path: path.to_owned() }.into());
    }
    let passphrase = input::passphrase(keyfile, false)?;
    let vault = Vault::open(path, passphrase, VaultConfig::default())?;
    warn_if_weak(&vault);
    Ok(vault)
}

fn open_or_create(path: &Path, keyfile: Option<&Path>) -> Result<Vault, KeysError> {
    let passphrase = input::passphrase(keyfile, !path.exists())?;
    let (vault, created) = Vault::open_or_create(path, passphrase, VaultConfig::default())?;
    if created {
        eprintln!("created vault {}", path.display());
    }
    warn_if_weak(&vault);
    Ok(vault)
}

fn warn_if_weak(vault: &Vault) {
    if vault.iterations() < DEFAULT_ITERATIONS {
        eprintln!(
            "warning: vault {} uses {} PBKDF2 iterations, fewer than the recommended {}; \
             `switchyard keys passwd` raises it",
            vault.path().display(),
            vault.iterations(),
            DEFAULT_ITERATIONS
        );
    }
}

fn add(
    path: &Path,
    keyfile: Option<&Path>,
    provider: String,
    label: Option<String>,
    tags: Vec<String>,
) -> Result<Option<(Vault, KeyId)>, KeysError> {
    // The key first: bad input fails before a vault is created or a passphrase asked for.
    let secret = input::secret(&provider)?;
    let mut key = NewKey::new(provider, secret.as_str());
    key.label = label;
    key.tags = tags;
    key.validate()?;
    let mut vault = open_or_create(path, keyfile)?;
    let added = vault.add(key)?;
    for warning in &added.warnings {
        eprintln!("warning: {warning}");
    }
    println!("added {} ({})", added.id, added.fingerprint);
    Ok(Some((vault, added.id)))
}

fn list(
    path: &Path,
    keyfile: Option<&Path>,
    json: bool,
    rotate_after_days: Option<u32>,
    state: Option<&Path>,
) -> Result<(), KeysError> {
    let vault = open(path, keyfile)?;
    let keys: Vec<&KeyInfo> = vault.keys().collect();
    // The gateway's record: a use it saved after the vault's, and keys only the
    // configuration holds.
    let lifecycle = match state {
        Some(state) => switchyard_store::SqliteStore::open(state)
            .and_then(|store| store.key_lifecycle())
            .map_err(|error| KeysError::State(format!("{}: {error}", state.display())))?,
        None => Vec::new(),
    };
    let now = switchyard_core::Clock::utc(&switchyard_core::SystemClock);
    let mut rows: Vec<Row> = keys
        .iter()
        .map(|info| {
            let saved =
                lifecycle.iter().find(|row| row.provider == info.provider && row.key == info.id);
            Row {
                id: info.id.to_string(),
                provider: info.provider.to_string(),
                fingerprint: info.fingerprint.to_string(),
                state: if info.enabled { "enabled" } else { "disabled" }.to_owned(),
                created: info.created,
                last_used: info.last_used.max(saved.and_then(|row| row.last_used)),
                label: info.label.clone().unwrap_or_default(),
                tags: info.tags.join(","),
            }
        })
        .collect();
    for row in &lifecycle {
        if !keys.iter().any(|info| info.provider == row.provider && info.id == row.key) {
            rows.push(Row {
                id: row.key.to_string(),
                provider: row.provider.to_string(),
                fingerprint: row.fingerprint.clone(),
                state: "configured".to_owned(),
                created: row.created_at,
                last_used: row.last_used,
                label: String::new(),
                tags: String::new(),
            });
        }
    }
    if json {
        let values: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                let (age_days, rotation_due) = lifespan(row, now, rotate_after_days);
                serde_json::json!({
                    "id": row.id, "provider": row.provider, "fingerprint": row.fingerprint,
                    "state": row.state, "enabled": row.state != "disabled", "created": row.created, "last_used": row.last_used,
                    "age_days": age_days, "rotation_due": rotation_due,
                    "label": (!row.label.is_empty()).then_some(&row.label),
                    "tags": row.tags.split(',').filter(|tag| !tag.is_empty()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let text =
            serde_json::to_string_pretty(&values).expect("invariant: key metadata serializes");
        println!("{text}");
        return Ok(());
    }
    if rows.is_empty() {
        println!("no keys in {}", path.display());
        return Ok(());
    }
    let header = [
        "ID",
        "PROVIDER",
        "FINGERPRINT",
        "STATE",
        "CREATED",
        "AGE",
        "LAST USED",
        "ROTATION",
        "LABEL",
        "TAGS",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|row| {
            let (age_days, rotation_due) = lifespan(row, now, rotate_after_days);
            let rotation = match (rotation_due, rotate_after_days) {
                (Some(due), _) if due <= now => "due".to_owned(),
                (Some(due), _) => format!("in {}d", (due - now).num_days()),
                (None, _) => "-".to_owned(),
            };
            [
                row.id.clone(),
                row.provider.clone(),
                row.fingerprint.clone(),
                row.state.clone(),
                row.created.format("%Y-%m-%d %H:%M UTC").to_string(),
                format!("{age_days}d"),
                row.last_used.map_or_else(
                    || "never".to_owned(),
                    |used| used.format("%Y-%m-%d %H:%M UTC").to_string(),
                ),
                rotation,
                printable(&row.label),
                printable(&row.tags),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    println!("{}", line(&header.map(str::to_owned)));
    for row in &cells {
        println!("{}", line(row));
    }
    Ok(())
}

/// One row of `keys list`: a vault key, or a configured key the state file knows.
struct Row {
    id: String,
    provider: String,
    fingerprint: String,
    state: String,
    created: chrono::DateTime<chrono::Utc>,
    last_used: Option<chrono::DateTime<chrono::Utc>>,
    label: String,
    tags: String,
}

/// A key's age in whole days, and when it is due for rotation.
fn lifespan(
    row: &Row,
    now: chrono::DateTime<chrono::Utc>,
    rotate_after_days: Option<u32>,
) -> (i64, Option<chrono::DateTime<chrono::Utc>>) {
    let age_days = (now - row.created).num_days().max(0);
    let due = rotate_after_days
        .and_then(|days| row.created.checked_add_signed(chrono::TimeDelta::days(i64::from(days))));
    (age_days, due)
}

/// Labels and tags are free text: control characters (a newline, an escape sequence that
/// would restyle the terminal) are shown as `?` so one row stays one row.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn import_env(path: &Path, keyfile: Option<&Path>, dry_run: bool) -> Result<usize, KeysError> {
    let scan = EnvSource::from_process()?.scan();
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }
    for duplicate in &scan.duplicates {
        println!(
            "skipped {}: same key ({}) as {}",
            duplicate.origin, duplicate.fingerprint, duplicate.first_seen
        );
    }
    if scan.keys.is_empty() {
        println!("no keys found in the environment or ./.env");
        return Ok(0);
    }
    if dry_run {
        for key in &scan.keys {
            println!(
                "would import {} key {} from {}",
                key.provider,
                key.credential.fingerprint(),
                key.origin
            );
        }
        return Ok(0);
    }
    let mut vault = open_or_create(path, keyfile)?;
    let origins: Vec<String> = scan.keys.iter().map(|key| key.origin.clone()).collect();
    let new_keys = scan.keys.iter().map(|key| {
        let mut new = NewKey::new(key.provider.clone(), key.credential.expose_secret());
        new.label = Some(format!("from {}", key.origin));
        new.tags = vec!["env".to_owned()];
        new
    });
    let outcomes = vault.add_many(new_keys)?;
    let mut imported = 0;
    for (outcome, origin) in outcomes.iter().zip(&origins) {
        match outcome {
            AddOutcome::Added(added) => {
                imported += 1;
                println!("imported {} ({}) from {origin}", added.id, added.fingerprint);
            }
            AddOutcome::AlreadyPresent { id, fingerprint } => {
                println!("{origin}: already in the vault as {id} ({fingerprint})");
            }
        }
    }
    println!(
        "{imported} imported, {} already in the vault, {} duplicates in the environment",
        outcomes.len() - imported,
        scan.duplicates.len()
    );
    Ok(imported)
}
