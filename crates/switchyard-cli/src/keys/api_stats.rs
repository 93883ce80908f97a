//! `switchyard keys stats --import F / --export F`: the learned scores in the shape the
//! intelligent key manager's users keep, `apiStats.json`:
//!
//! ```json
//! { "providers": { "groq_key1": { "models": { "llama-3.3-70b-versatile": {
//!     "successCount": 30, "failCount": 2, "avgResponseTime": 945.0, "qualityScore": 0.8,
//!     "totalTokensUsed": 3000, "lastSuccess": "2026-01-15T12:00:29Z", "lastError": null,
//!     "status": "healthy" } } } } }
//! ```
//!
//! One flat entry per key, `<provider>_key<N>`, where switchyard nests
//! `providers.<provider>.keys.<id>`. Key N of a provider is its N-th key in
//! `switchyard.toml` (`keys` then `keys_env`, as `serve` reads them); past those, the vault's
//! key `<provider>-<N>`. Both directions use that one rule, so an export imports back to the
//! same keys. The counters map field for field onto the scorer's snapshot (see
//! `docs/scoring.md`); other fields are ignored. Import goes into the `[state]` file's score
//! snapshot (the priors the gateway restores at start), replacing the entries it names.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use serde_json::{Map, Value, json};

/// The per-model fields carried across, all optional.
const FIELDS: [&str; 8] = [
    "successCount",
    "failCount",
    "avgResponseTime",
    "qualityScore",
    "totalTokensUsed",
    "lastSuccess",
    "lastError",
    "status",
];

/// Entries read at most: the file is an operator's, but a runaway one must not eat memory.
const MAX_ENTRIES: usize = 100_000;

/// Each provider's configured key ids, in configuration order.
pub(crate) type KeyLists = BTreeMap<String, Vec<String>>;

/// Why a file cannot be imported or the scores exported; names what is wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiStatsError {
    /// Not the users' shape at all.
    #[error("{file}: not an apiStats.json: {what}")]
    Shape {
        /// The file.
        file: String,
        /// What is wrong, with the JSON path.
        what: String,
    },
    /// A key the configuration does not have.
    #[error("{file}: {name}: {what}")]
    UnknownKey {
        /// The file.
        file: String,
        /// The flat key name.
        name: String,
        /// Why it resolves to nothing.
        what: String,
    },
}

/// Splits `groq_key3` into `("groq", 3)`.
fn split_flat(name: &str) -> Option<(&str, usize)> {
    let (provider, index) = name.rsplit_once("_key")?;
    let index: usize =
        index.parse().ok().filter(|n| *n >= 1 && index.bytes().all(|b| b.is_ascii_digit()))?;
    (!provider.is_empty()).then_some((provider, index))
}

/// The key id `<provider>_key<N>` names.
fn resolve(lists: &KeyLists, provider: &str, index: usize) -> Option<String> {
    let configured = lists.get(provider)?;
    match configured.get(index - 1) {
        Some(id) => Some(id.clone()),
        None => Some(format!("{provider}-{index}")),
    }
}

/// The flat name of `key` of `provider`, if the rule gives it one.
fn flat_name(lists: &KeyLists, provider: &str, key: &str) -> Option<String> {
    let configured = lists.get(provider).map_or(&[][..], Vec::as_slice);
    if let Some(position) = configured.iter().position(|id| id == key) {
        return Some(format!("{provider}_key{}", position + 1));
    }
    let index: usize = key.strip_prefix(provider)?.strip_prefix('-')?.parse().ok()?;
    (index > configured.len()).then(|| format!("{provider}_key{index}"))
}

/// Checks one model's counters and keeps the mapped fields.
fn counters(file: &str, path: &str, stats: &Value) -> Result<Map<String, Value>, ApiStatsError> {
    let shape = |what: String| ApiStatsError::Shape { file: file.to_owned(), what };
    let Some(object) = stats.as_object() else {
        return Err(shape(format!("{path}: expected an object of counters")));
    };
    let mut kept = Map::new();
    for field in FIELDS {
        let Some(value) = object.get(field) else { continue };
        let ok = match field {
            "successCount" | "failCount" | "totalTokensUsed" => value.is_u64(),
            "avgResponseTime" => {
                value.is_null() || value.as_f64().is_some_and(|v| v.is_finite() && v >= 0.0)
            }
            "qualityScore" => {
                value.is_null() || value.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v))
            }
            "lastSuccess" | "lastError" => {
                value.is_null()
                    || value
                        .as_str()
                        .is_some_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok())
            }
            _ => value.is_string() || value.is_null(),
        };
        if !ok {
            let expected = match field {
                "successCount" | "failCount" | "totalTokensUsed" => "a whole number from 0",
                "avgResponseTime" => "milliseconds from 0, or null",
                "qualityScore" => "a number from 0 to 1, or null",
                "lastSuccess" | "lastError" => "an RFC 3339 time, or null",
                _ => "a string",
            };
            return Err(shape(format!("{path}.{field}: expected {expected}, found {value}")));
        }
        // The status is derived by the scorer; carried out, never in.
        if field != "status" {
            kept.insert(field.to_owned(), value.clone());
        }
    }
    if !kept.contains_key("successCount") && !kept.contains_key("failCount") {
        return Err(shape(format!("{path}: no successCount or failCount")));
    }
    Ok(kept)
}

/// Reads the users' file into switchyard's nested snapshot shape (`providers.<p>.keys.<id>
/// .models.<m>`), resolving each flat key against `lists`.
pub(crate) fn from_flat(
    file: &str,
    json: &Value,
    lists: &KeyLists,
) -> Result<Value, ApiStatsError> {
    let shape = |what: String| ApiStatsError::Shape { file: file.to_owned(), what };
    let Some(top) = json.as_object() else {
        return Err(shape("expected a JSON object at the top".to_owned()));
    };
    let Some(providers) = top.get("providers").and_then(Value::as_object) else {
        let found: Vec<&str> = top.keys().map(String::as_str).take(8).collect();
        return Err(shape(format!("no \"providers\" object (found {found:?})")));
    };
    let mut nested: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
    let mut n_entries = 0_usize;
    for (name, entry) in providers {
        let path = format!("providers.{name}");
        let Some((provider, index)) = split_flat(name) else {
            let hint = if entry.get("keys").is_some() {
                "; this is switchyard's own score snapshot, not apiStats.json"
            } else {
                ""
            };
            return Err(shape(format!("{path}: expected a name like <provider>_key<N>{hint}")));
        };
        let Some(models) = entry.get("models").and_then(Value::as_object) else {
            return Err(shape(format!("{path}: expected a \"models\" object")));
        };
        let unknown = |what: String| ApiStatsError::UnknownKey {
            file: file.to_owned(),
            name: name.clone(),
            what,
        };
        if !lists.contains_key(provider) {
            let known: Vec<&str> = lists.keys().map(String::as_str).collect();
            return Err(unknown(format!(
                "provider {provider} is not configured (configured: {})",
                known.join(", ")
            )));
        }
        let key = resolve(lists, provider, index)
            .ok_or_else(|| unknown(format!("no key {index} of {provider}")))?;
        for (model, stats) in models {
            n_entries += 1;
            if n_entries > MAX_ENTRIES {
                return Err(shape(format!("more than {MAX_ENTRIES} model entries")));
            }
            let kept = counters(file, &format!("{path}.models.{model}"), stats)?;
            nested
                .entry(provider.to_owned())
                .or_default()
                .entry(key.clone())
                .or_default()
                .insert(model.clone(), Value::Object(kept));
        }
    }
    let mut out = Map::new();
    for (provider, keys) in nested {
        let keys: Map<String, Value> =
            keys.into_iter().map(|(key, models)| (key, json!({ "models": models }))).collect();
        out.insert(provider, json!({ "keys": keys }));
    }
    Ok(json!({ "version": 1, "providers": out }))
}

/// Writes switchyard's snapshot (as JSON) in the users' flat shape. Keys the naming rule
/// cannot name (a vault key whose number a configured key already takes) are returned by
/// `provider/key` so the caller can say so.
pub(crate) fn to_flat(snapshot: &Value, lists: &KeyLists) -> (Value, Vec<String>) {
    let mut providers = Map::new();
    let mut skipped = Vec::new();
    let empty = Map::new();
    let nested = snapshot["providers"].as_object().unwrap_or(&empty);
    for (provider, entry) in nested {
        for (key, models) in entry["keys"].as_object().unwrap_or(&empty) {
            let Some(name) = flat_name(lists, provider, key) else {
                skipped.push(format!("{provider}/{key}"));
                continue;
            };
            let mut out = Map::new();
            for (model, stats) in models["models"].as_object().unwrap_or(&empty) {
                let kept: Map<String, Value> = FIELDS
                    .iter()
                    .filter_map(|field| stats.get(*field).map(|v| ((*field).to_owned(), v.clone())))
                    .collect();
                out.insert(model.clone(), Value::Object(kept));
            }
            providers.insert(name, json!({ "models": out }));
        }
    }
    (json!({ "providers": providers }), skipped)
}

/// Reads `path` as JSON, naming the file in any error.
pub(crate) fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{}: not JSON (line {}, column {}): not an apiStats.json",
            path.display(),
            error.line(),
            error.column()
        )
    })
}

/// Runs `switchyard keys stats`: the `[state]` file's score snapshot from or to the users'
/// apiStats.json.
pub(crate) fn run(
    config: &Path,
    import: Option<&Path>,
    export: Option<&Path>,
) -> anyhow::Result<()> {
    use switchyard_score::{Scorer as _, StatsSnapshot, StatsStore as _};
    let loaded = crate::config::Loaded::read(config)?;
    let vars = crate::serve::variables()?;
    let mut lists = KeyLists::new();
    let mut notes = Vec::new();
    for section in &loaded.file.providers {
        let keys = crate::config::keys(&loaded, section, &vars, &mut notes)?;
        lists.insert(
            section.name.get_ref().clone(),
            keys.iter().map(|credential| credential.id().to_string()).collect(),
        );
    }
    let Some(state) = &loaded.file.state.path else {
        anyhow::bail!("no [state] path in {}: the learned scores live there", config.display());
    };
    let state = loaded.expand(state, "path", &vars)?;
    let state = loaded.path.parent().unwrap_or(Path::new(".")).join(state);
    let mut store = switchyard_store::SqliteStore::open(&state)
        .with_context(|| format!("cannot open the state file {}", state.display()))?;
    let saved = store.load().context("reading the saved scores")?;
    let mut snapshot = match saved {
        Some(snapshot) => serde_json::to_value(&snapshot).context("reading the saved scores")?,
        None => serde_json::json!({ "version": 1, "providers": {} }),
    };
    if let Some(path) = export {
        let (flat, skipped) = to_flat(&snapshot, &lists);
        for key in &skipped {
            eprintln!(
                "warning: {key} has no <provider>_key<N> name (a configured key takes its number); not exported"
            );
        }
        let n_keys = flat["providers"].as_object().map_or(0, serde_json::Map::len);
        let text = serde_json::to_string_pretty(&flat).context("serializing the scores")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("exported {n_keys} key(s) to {}", path.display());
    }
    if let Some(path) = import {
        let json = read_json(path)?;
        let nested = from_flat(&path.display().to_string(), &json, &lists)?;
        let imported: StatsSnapshot = serde_json::from_value(nested.clone())
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        // The scorer's own checks (counts, quality within its weight, times) before anything
        // is written: a bad file changes nothing.
        switchyard_score::AdaptiveScorer::new(std::sync::Arc::new(switchyard_core::SystemClock))
            .import(&imported)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let mut n_entries = 0;
        let empty = serde_json::Map::new();
        for (provider, entry) in nested["providers"].as_object().unwrap_or(&empty) {
            for (key, models) in entry["keys"].as_object().unwrap_or(&empty) {
                for (model, stats) in models["models"].as_object().unwrap_or(&empty) {
                    snapshot["providers"][provider]["keys"][key]["models"][model] = stats.clone();
                    n_entries += 1;
                }
            }
        }
        let merged: StatsSnapshot =
            serde_json::from_value(snapshot).context("building the score snapshot")?;
        store.save(&merged).context("saving the scores")?;
        println!("imported {n_entries} model entries into {}", state.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> KeyLists {
        BTreeMap::from([
            ("groq".to_owned(), vec!["GROQ_KEY_A".to_owned(), "GROQ_KEY_B".to_owned()]),
            ("gemini".to_owned(), vec![]),
        ])
    }

    fn users_file() -> Value {
        json!({ "providers": {
            "groq_key2": { "models": { "llama": {
                "successCount": 30, "failCount": 2, "avgResponseTime": 945.5,
                "qualityScore": 0.8, "totalTokensUsed": 3000,
                "lastSuccess": "2026-01-15T12:00:29Z", "lastError": null, "status": "healthy" } } },
            "gemini_key3": { "models": { "flash": { "successCount": 1, "failCount": 0 } } }
        }})
    }

    #[test]
    fn flat_keys_resolve_by_position_then_by_vault_id_and_back() {
        let nested = from_flat("f", &users_file(), &lists()).expect("imports");
        let groq = &nested["providers"]["groq"]["keys"]["GROQ_KEY_B"]["models"]["llama"];
        assert_eq!(groq["successCount"], 30);
        assert_eq!(groq["avgResponseTime"], 945.5);
        assert!(groq.get("status").is_none(), "status is derived, never imported");
        assert_eq!(
            nested["providers"]["gemini"]["keys"]["gemini-3"]["models"]["flash"]["failCount"],
            0
        );

        let (flat, skipped) = to_flat(&nested, &lists());
        assert!(skipped.is_empty(), "{skipped:?}");
        let again = from_flat("f", &flat, &lists()).expect("round trip");
        assert_eq!(again, nested);
    }

    #[test]
    fn a_vault_key_whose_number_a_configured_key_takes_is_skipped_on_export() {
        let nested = json!({ "providers": { "groq": { "keys": {
            "groq-1": { "models": { "llama": { "successCount": 1 } } },
            "groq-5": { "models": { "llama": { "successCount": 2 } } } } } } });
        let (flat, skipped) = to_flat(&nested, &lists());
        assert_eq!(skipped, ["groq/groq-1"]);
        assert_eq!(flat["providers"]["groq_key5"]["models"]["llama"]["successCount"], 2);
    }

    #[test]
    fn each_wrong_shape_is_named() {
        let cases = [
            (json!([1, 2]), "expected a JSON object at the top"),
            (json!({ "keys": {} }), "no \"providers\" object (found [\"keys\"])"),
            (json!({ "providers": { "groq": { "keys": {} } } }), "switchyard's own score snapshot"),
            (
                json!({ "providers": { "groq_key0": { "models": {} } } }),
                "providers.groq_key0: expected a name like",
            ),
            (
                json!({ "providers": { "groq_key1": {} } }),
                "providers.groq_key1: expected a \"models\" object",
            ),
            (
                json!({ "providers": { "groq_key1": { "models": { "m": { "successCount": -1 } } } } }),
                "providers.groq_key1.models.m.successCount: expected a whole number from 0, found -1",
            ),
            (
                json!({ "providers": { "groq_key1": { "models": { "m": { "successCount": 1, "qualityScore": 7 } } } } }),
                "qualityScore: expected a number from 0 to 1",
            ),
            (
                json!({ "providers": { "groq_key1": { "models": { "m": { "lastError": "yesterday", "failCount": 1 } } } } }),
                "lastError: expected an RFC 3339 time",
            ),
            (
                json!({ "providers": { "groq_key1": { "models": { "m": {} } } } }),
                "no successCount or failCount",
            ),
            (
                json!({ "providers": { "mistral_key1": { "models": {} } } }),
                "provider mistral is not configured (configured: gemini, groq)",
            ),
        ];
        for (file, expected) in cases {
            let error =
                from_flat("apiStats.json", &file, &lists()).expect_err("refused").to_string();
            assert!(error.contains(expected), "{file}: {error}");
            assert!(error.starts_with("apiStats.json: "), "{error}");
        }
    }
}
