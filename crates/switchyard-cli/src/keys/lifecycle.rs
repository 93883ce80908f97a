//! `switchyard keys audit`: the state file's audit log from the shell.

use std::path::Path;

use anyhow::Context as _;

/// `switchyard keys audit`: the newest `limit` entries of the state file's audit log, oldest
/// first, one line each (or JSON).
///
/// # Errors
/// No state file given, or it cannot be read.
pub(crate) fn print_audit(state: Option<&Path>, limit: u32, json: bool) -> anyhow::Result<()> {
    let Some(state) = state else {
        anyhow::bail!("no state file: pass --state <[state] path> or set SWITCHYARD_STATE");
    };
    let store = switchyard_store::SqliteStore::open(state)
        .with_context(|| format!("cannot open the state file {}", state.display()))?;
    let records = store.audit(None, limit as usize).context("reading the audit log")?;
    if json {
        let text =
            serde_json::to_string_pretty(&records).expect("invariant: audit records serialize");
        println!("{text}");
    }
    for record in records.iter().filter(|_| !json) {
        let entry = &record.entry;
        let key = match (&entry.provider, &entry.key) {
            (Some(provider), Some(key)) => format!(" {provider}/{key}"),
            _ => String::new(),
        };
        let fingerprint =
            entry.fingerprint.as_deref().map(|fp| format!(" ({fp})")).unwrap_or_default();
        let detail = entry
            .detail
            .as_deref()
            .map(|d| format!(": {}", super::printable(d)))
            .unwrap_or_default();
        println!(
            "{} {} {}{key}{fingerprint}{detail}",
            entry.at.format("%Y-%m-%d %H:%M:%S UTC"),
            super::printable(&entry.actor),
            super::printable(&entry.action)
        );
    }
    Ok(())
}
