//! `switchyard.toml`: the gateway's configuration file, read into plain data with every
//! `${VAR}` expanded, and checked before anything starts. An error names the file, the line
//! and the field, and says what was expected; nothing starts half-configured.
//!
//! Expansion happens after parsing, on the string fields that may hold secrets or paths
//! (`keys`, `base_url`, tokens, state paths), so a `${VAR}` in a comment is never read and a
//! line number always points into the file as written. `${VAR}` must be set (an unset one is
//! an error naming it); `${VAR:-}` may be unset or empty, and `${VAR:-text}` falls back to
//! `text`. A key that expands to nothing is dropped with a warning.

mod build;
mod library;
mod scores;
mod telemetry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

#[allow(unused_imports, reason = "`build` serves tests and commands that need no event sink")]
pub(crate) use build::build;
pub(crate) use build::{Built, adapter, analytics_settings, build_with, keys, upstream_limits};
pub(crate) use build::{build_without_state, open_vault};
pub(crate) use scores::ScoreSaver;
pub(crate) use telemetry::telemetry_settings;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong name or type.
    #[error("{}:{line}:{column}: {field}{message}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field on that line, with a trailing `: `, when one can be named.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("{}:{line}: {field}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The field.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The listener and client-facing settings.
    #[serde(default)]
    pub(crate) server: ServerSection,
    /// Where quota state lives.
    #[serde(default)]
    pub(crate) state: StateSection,
    /// An encrypted key vault to read keys from, besides `keys`.
    pub(crate) vault: Option<VaultSection>,
    /// The upstream providers.
    #[serde(default)]
    pub(crate) providers: Vec<ProviderSection>,
    /// The routes clients name as `model`.
    #[serde(default)]
    pub(crate) routes: Vec<RouteSection>,
    /// Named clients with their own tokens, routes and limits.
    #[serde(default)]
    pub(crate) clients: Vec<ClientSection>,
    /// The analytics event log.
    pub(crate) analytics: Option<AnalyticsSection>,
    /// Alert webhooks.
    pub(crate) alerts: Option<AlertsSection>,
    /// OpenTelemetry traces.
    pub(crate) telemetry: Option<telemetry::TelemetrySection>,
    /// Limits on what upstreams send back.
    #[serde(default)]
    pub(crate) upstream: UpstreamSection,
    /// Retries, backoff, circuit breakers and the overload cap.
    pub(crate) router: Option<library::RouterSection>,
    /// The response cache.
    pub(crate) cache: Option<library::CacheSection>,
    /// Health probes.
    pub(crate) probes: Option<library::ProbesSection>,
}

/// `[upstream]`: bounds on what upstreams send back, for every provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamSection {
    /// The largest response body read from an upstream, in bytes (default 8 MiB).
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    /// The longest SSE or NDJSON line of a stream, in bytes (default 1 MiB).
    pub(crate) max_line_bytes: Option<Spanned<u64>>,
    /// How long a stream may go without a byte, in seconds (default 60).
    pub(crate) stream_idle_timeout_secs: Option<Spanned<f64>>,
    /// How long a whole stream may last, in seconds (default 600).
    pub(crate) stream_deadline_secs: Option<Spanned<f64>>,
}

/// One `[[clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSection {
    /// The name analytics and errors use.
    pub(crate) name: Spanned<String>,
    /// Its bearer token, usually `${VAR}`.
    pub(crate) token: Spanned<String>,
    /// The routes (or `provider/model` targets) it may use; all when absent.
    pub(crate) routes: Option<Spanned<Vec<String>>>,
    /// Requests it may make in any 60 seconds.
    pub(crate) requests_per_minute: Option<Spanned<u32>>,
    /// Dollars it may spend a UTC day, by the configured prices.
    pub(crate) daily_budget: Option<Spanned<f64>>,
}

/// `[analytics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnalyticsSection {
    /// Whether events are recorded (default: when `[state]` has a path).
    pub(crate) enabled: Option<Spanned<bool>>,
    /// Days events are kept (default 30).
    pub(crate) retention_days: Option<Spanned<u32>>,
}

/// `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsSection {
    /// The URL that receives each alert as a JSON POST; may hold `${VAR}`s.
    pub(crate) webhook_url: Spanned<String>,
    /// `key_low_success` below this percentage of successes (0 to 100).
    #[serde(default)]
    pub(crate) low_success_percent: Option<Spanned<u32>>,
    /// The recent attempts a key needs before its success rate counts (1 to 20).
    #[serde(default)]
    pub(crate) low_success_min_attempts: Option<Spanned<u32>>,
    /// `latency_high` above this p95 in milliseconds; 0 turns it off.
    #[serde(default)]
    pub(crate) latency_p95_ms: Option<Spanned<u64>>,
    /// The recent successes a provider needs before its p95 counts (1 to 100).
    #[serde(default)]
    pub(crate) latency_min_samples: Option<Spanned<u32>>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    /// `host:port` to listen on.
    pub(crate) listen: Option<Spanned<String>>,
    /// The token of the admin API (`/admin/*`); the API is closed without one.
    pub(crate) admin_token: Option<Spanned<String>>,
    /// Tokens clients send as `Authorization: Bearer` (all routes, no limits).
    #[serde(default)]
    pub(crate) client_tokens: Vec<Spanned<String>>,
    /// The largest request body, in bytes.
    pub(crate) body_limit_bytes: Option<usize>,
    /// A deadline for every request, in seconds.
    pub(crate) request_timeout_secs: Option<Spanned<f64>>,
    /// How long a client may take to send a request's head, in seconds (default 10).
    pub(crate) header_read_timeout_secs: Option<Spanned<f64>>,
    /// How long a connection may wait for its next request, in seconds (default 60).
    pub(crate) idle_timeout_secs: Option<Spanned<f64>>,
    /// How long a client may take to send a request's body, in seconds (default 30).
    pub(crate) body_read_timeout_secs: Option<Spanned<f64>>,
    /// The most connections served at once (default 1024).
    pub(crate) max_connections: Option<Spanned<u64>>,
    /// Host names accepted in `Host` besides the loopback names, when no client token is set.
    #[serde(default)]
    pub(crate) allowed_hosts: Vec<Spanned<String>>,
}

/// `[state]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSection {
    /// The SQLite file quota state is saved to.
    pub(crate) path: Option<Spanned<String>>,
    /// A Redis URL, for several gateways sharing keys.
    pub(crate) redis_url: Option<Spanned<String>>,
    /// The prefix of every Redis key (several deployments on one server).
    pub(crate) redis_prefix: Option<String>,
}

/// `[vault]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VaultSection {
    /// The vault file (`switchyard keys` writes it); its passphrase comes from
    /// `SWITCHYARD_VAULT_PASSPHRASE`.
    pub(crate) path: Spanned<String>,
}

/// One `[[providers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderSection {
    /// The provider's name, used in targets (`name/model`).
    pub(crate) name: Spanned<String>,
    /// The wire protocol: `openai`, `anthropic`, `gemini` or `ollama`.
    pub(crate) kind: Spanned<String>,
    /// For `kind = "openai"`: `openai`, `groq`, `mistral`, `openrouter` or `compatible`.
    pub(crate) preset: Option<Spanned<String>>,
    /// The API's base URL, when not the preset's.
    pub(crate) base_url: Option<Spanned<String>>,
    /// The keys, usually `${VAR}`s.
    #[serde(default)]
    pub(crate) keys: Vec<Spanned<String>>,
    /// Every environment variable whose name matches, `*` at the end: `GROQ_API_KEY*`, or
    /// one variable by name; a value holding commas is several keys.
    pub(crate) keys_env: Option<Spanned<String>>,
    /// A quota preset filling `limits`: `groq-free`, `gemini-free`, `openrouter-free`,
    /// `openrouter-free-credits`.
    pub(crate) tier: Option<Spanned<String>>,
    /// Whether this provider's keys are probed (default: when `[probes]` is on).
    pub(crate) probe: Option<bool>,
    /// This provider's probe interval, in seconds, over `[probes] interval_secs`.
    pub(crate) probe_interval_secs: Option<Spanned<f64>>,
    /// The weight of every model for the weighted strategy (default 1).
    pub(crate) weight: Option<Spanned<u64>>,
    /// The models this provider serves.
    #[serde(default)]
    pub(crate) models: Vec<String>,
    /// Limits of every key, for every model.
    pub(crate) limits: Option<Spanned<LimitsSection>>,
    /// When the daily limits reset: `"00:00 America/Los_Angeles"`; else a rolling day.
    pub(crate) reset: Option<Spanned<String>>,
    /// A quota group all keys of this provider share (one organization's limits).
    pub(crate) group: Option<String>,
    /// The price of every model.
    pub(crate) price: Option<PriceSection>,
    /// The models' context window, in tokens.
    pub(crate) context_window: Option<u32>,
    /// The upstream request timeout, in seconds.
    pub(crate) timeout_secs: Option<Spanned<f64>>,
    /// Whether the models take images (`false` keeps image requests away from them).
    pub(crate) vision: Option<bool>,
    /// The most dollars this provider may cost a day (UTC days), by its `price`.
    pub(crate) budget_per_day: Option<Spanned<f64>>,
    /// Limits, prices and facts of single models, over the provider's.
    #[serde(default)]
    pub(crate) per_model: std::collections::BTreeMap<String, ModelSection>,
    /// Days after which a key is due for rotation (a `key_rotation_due` alert, `keys list`).
    pub(crate) rotate_after_days: Option<Spanned<u32>>,
}

/// `[providers.per_model."<model>"]`: what differs for one model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSection {
    /// This model's limits, instead of the provider's.
    pub(crate) limits: Option<Spanned<LimitsSection>>,
    /// This model's price.
    pub(crate) price: Option<PriceSection>,
    /// This model's context window.
    pub(crate) context_window: Option<u32>,
    /// Whether this model takes images.
    pub(crate) vision: Option<bool>,
    /// This model's weight for the weighted strategy.
    pub(crate) weight: Option<Spanned<u64>>,
}

/// `limits = { ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSection {
    /// Requests a minute, sliding.
    pub(crate) requests_per_minute: Option<u64>,
    /// Requests a day.
    pub(crate) requests_per_day: Option<u64>,
    /// Tokens a minute, sliding.
    pub(crate) tokens_per_minute: Option<u64>,
    /// Tokens a day.
    pub(crate) tokens_per_day: Option<u64>,
}

/// `price = { ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceSection {
    /// Dollars per million input tokens.
    #[serde(default)]
    pub(crate) input_per_mtok: f64,
    /// Dollars per million output tokens.
    #[serde(default)]
    pub(crate) output_per_mtok: f64,
    /// Dollars per request.
    #[serde(default)]
    pub(crate) cost_per_request: f64,
}

/// One `[[routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    /// The name clients send as `model`.
    pub(crate) name: Spanned<String>,
    /// How candidates are ranked (default `adaptive`).
    pub(crate) strategy: Option<Spanned<String>>,
    /// `provider/model` targets, in order of preference.
    pub(crate) targets: Spanned<Vec<String>>,
    /// The most attempts one request makes on this route.
    pub(crate) max_attempts: Option<u32>,
    /// The route's deadline, in seconds.
    pub(crate) timeout_secs: Option<Spanned<f64>>,
    /// Whether a refused prompt moves to the next provider.
    #[serde(default)]
    pub(crate) content_filter_fallback: bool,
    /// The most dollars this route may cost a day (UTC days).
    pub(crate) budget_per_day: Option<Spanned<f64>>,
    /// How long a request may wait for a spent candidate to free before it is answered with
    /// a 429, in seconds (default 0: answer at once).
    pub(crate) max_wait_secs: Option<Spanned<f64>>,
    /// Free candidates before paid ones (default: yes, except under `priority`).
    pub(crate) free_first: Option<bool>,
    /// Free candidates most-headroom first (default: yes, except under `priority`).
    pub(crate) spread: Option<bool>,
    /// `"latency"` (default: pay now when free keys are spent) or `"cost"` (wait for a free
    /// key that frees within the deadline).
    pub(crate) prefer: Option<Spanned<String>>,
    /// Whether answers on this route are cached (default no; see `[cache]`).
    pub(crate) cache: Option<bool>,
    /// A provider of the route's targets tried before the others.
    pub(crate) prefer_provider: Option<Spanned<String>>,
}

/// A configuration read from a file, with the text kept to turn spans into line numbers.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The file.
    pub(crate) path: PathBuf,
    text: String,
    /// What it says.
    pub(crate) file: FileConfig,
}

impl Loaded {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Syntax`].
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(path, text)
    }

    /// Parses `text` as the contents of `path`.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] naming line, column and field.
    pub(crate) fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        match toml::from_str::<FileConfig>(&text) {
            Ok(file) => Ok(Self { path: path.to_owned(), text, file }),
            Err(error) => {
                let offset = error.span().map_or(0, |span| span.start);
                let (line, column) = line_col(&text, offset);
                let field =
                    field_on_line(&text, line).map(|f| format!("{f}: ")).unwrap_or_default();
                Err(ConfigError::Syntax {
                    path: path.to_owned(),
                    line,
                    column,
                    field,
                    message: without_values(error.message().trim()),
                })
            }
        }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        line_col(&self.text, offset).0
    }

    /// An [`ConfigError::Invalid`] at `span`.
    pub(crate) fn invalid(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: self.line_of(span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Expands the `${VAR}`s of a spanned string field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable when it is unset, or the syntax.
    pub(crate) fn expand(
        &self,
        value: &Spanned<String>,
        field: &str,
        vars: &HashMap<String, String>,
    ) -> Result<String, ConfigError> {
        expand(value.get_ref(), vars).map_err(|message| self.invalid(value.span(), field, message))
    }
}

/// serde's message without the value it quotes: `invalid type: string "sk-...", expected
/// u64` becomes `invalid type: string, expected u64`. A secret pasted into the wrong field
/// must not reach the log or a reload's answer; the line and field say where to look.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (index, line) in message.lines().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let Some((head, rest)) = ["invalid type: ", "invalid value: ", "invalid length "]
            .iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (*prefix, rest)))
        else {
            out.push_str(line);
            continue;
        };
        let (unexpected, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let kind = unexpected
            .find(['"', '`', '\''])
            .map_or(unexpected, |quote| &unexpected[..quote])
            .trim_end();
        out.push_str(head);
        out.push_str(kind);
        if !expected.is_empty() {
            out.push_str(", expected ");
            out.push_str(expected);
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |at| before.len() - at - 1) + 1;
    (line, column)
}

/// The key assigned on a line (`kind = "x"` gives `kind`), or the table a header opens.
fn field_on_line(text: &str, line: usize) -> Option<String> {
    let content = text.lines().nth(line.checked_sub(1)?)?.trim();
    if content.starts_with('[') {
        return Some(content.trim_matches(|c| c == '[' || c == ']').to_owned());
    }
    let (key, _) = content.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('#')).then(|| key.to_owned())
}

/// Expands `${VAR}`, `${VAR:-}` and `${VAR:-default}` in `text` from `vars`.
///
/// # Errors
/// A message naming an unset variable or an unclosed `${`.
pub(crate) fn expand(text: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // Messages name no part of the value: it may be a secret.
        let end = after.find('}').ok_or_else(|| "unclosed `${`".to_owned())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("a `${...}` holds something other than a variable name".to_owned());
        }
        match (vars.get(name).filter(|value| !value.is_empty()), default) {
            (Some(value), _) => out.push_str(value),
            (None, Some(default)) => out.push_str(default),
            (None, None) if vars.contains_key(name) => {}
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-}} if it may be)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable a value is exactly one reference to: `${GROQ_API_KEY}` gives `GROQ_API_KEY`.
pub(crate) fn sole_variable(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    let name = inner.split_once(":-").map_or(inner, |(name, _)| name);
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::build::UpstreamLimits;
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn expands_set_empty_and_default_variables() {
        let vars = vars(&[("A", "one"), ("EMPTY", "")]);
        assert_eq!(expand("x-${A}-y", &vars).as_deref(), Ok("x-one-y"));
        assert_eq!(expand("${MISSING:-}", &vars).as_deref(), Ok(""));
        assert_eq!(expand("${MISSING:-dflt}", &vars).as_deref(), Ok("dflt"));
        assert_eq!(expand("${EMPTY}", &vars).as_deref(), Ok(""));
        let error = expand("${MISSING}", &vars).expect_err("unset");
        assert!(error.contains("MISSING is not set"), "{error}");
        assert!(expand("${A", &vars).expect_err("unclosed").contains("unclosed"));
        assert_eq!(sole_variable("${GROQ_API_KEY_1}"), Some("GROQ_API_KEY_1"));
        assert_eq!(sole_variable("sk-${A}"), None);
    }

    #[test]
    fn a_syntax_error_names_file_line_and_field() {
        let text =
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[[providers]]\nname = \"groq\"\nkind = 5\n";
        let error = Loaded::parse(Path::new("conf/switchyard.toml"), text.to_owned())
            .expect_err("kind is not a string");
        let message = error.to_string();
        assert!(message.starts_with("conf/switchyard.toml:6:"), "{message}");
        assert!(message.contains("kind: "), "{message}");
        assert!(message.contains("expected a string"), "{message}");

        let text = "[[routes]]\nname = \"r\"\ntargets = [\"a/b\"]\nstrateg = \"priority\"\n";
        let message = Loaded::parse(Path::new("s.toml"), text.to_owned())
            .expect_err("unknown field")
            .to_string();
        assert!(message.starts_with("s.toml:4:"), "{message}");
        assert!(message.contains("unknown field `strateg`"), "{message}");
    }

    /// Every example in `examples/` builds, with placeholder keys and its state redirected
    /// to a temporary directory.
    #[test]
    fn the_examples_build() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let vars = vars(&[
            ("GROQ_API_KEY", "gsk_a"),
            ("MISTRAL_API_KEY", "m_a"),
            ("GEMINI_API_KEY", "AIza_a"),
            ("GEMINI_API_KEY_2", "AIza_b"),
            ("APP_TOKEN", "app"),
            ("EVALS_TOKEN", "evals"),
            ("SWITCHYARD_ADMIN_TOKEN", "admin"),
            ("OPENAI_API_KEY", "sk-a"),
            ("ANTHROPIC_API_KEY", "sk-ant-a"),
        ]);
        let state = tempfile::tempdir().expect("temporary directory");
        let clock: std::sync::Arc<dyn switchyard_core::Clock> =
            std::sync::Arc::new(switchyard_core::ManualClock::default());
        for name in ["free-tier.toml", "paid.toml"] {
            let path = examples.join(name);
            let text = std::fs::read_to_string(&path).expect("example readable");
            let db = state.path().join(name).with_extension("db");
            let text: String = text
                .lines()
                .map(|line| {
                    if line.starts_with("path = ") {
                        format!("path = {:?}", db.display().to_string())
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let loaded = Loaded::parse(&path, text).expect("example parses");
            let built = build(&loaded, &vars, std::sync::Arc::clone(&clock))
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(built.router.route_names().contains(&"default".to_owned()), "{name}");
            assert!(built.persistence.is_some());
            if name == "paid.toml" {
                let clients: Vec<&str> =
                    built.gateway.clients.iter().map(|client| client.name.as_str()).collect();
                assert_eq!(clients, ["app", "evals"]);
                assert_eq!(built.gateway.admin_token.as_deref(), Some("admin"));
                let analytics = analytics_settings(&loaded, &vars).expect("valid").expect("on");
                assert_eq!(analytics.retention, std::time::Duration::from_secs(90 * 86_400));
            }
            if name == "free-tier.toml" {
                // GROQ_API_KEY_1 is unset and `:-`: dropped with a warning, not an error.
                assert!(
                    built.warnings.iter().any(|w| w.contains("GROQ_API_KEY_1 is empty")),
                    "{:?}",
                    built.warnings
                );
                let gemini = built.router.candidates("default").expect("route");
                let keys: Vec<&str> = gemini
                    .iter()
                    .filter(|c| c.provider.as_str() == "gemini")
                    .map(|c| c.key.as_str())
                    .collect();
                assert_eq!(keys, ["GEMINI_API_KEY", "GEMINI_API_KEY_2"]);
            }
        }
    }

    /// The gateway-part-2 sections refuse what cannot work, naming the line and field.
    #[test]
    fn clients_analytics_and_alerts_are_checked() {
        let base = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nkeys = [\"gsk_a\"]\nmodels = [\"m\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\n";
        let vars = vars(&[("T", "same-token")]);
        let clock: std::sync::Arc<dyn switchyard_core::Clock> =
            std::sync::Arc::new(switchyard_core::ManualClock::default());
        let error = |extra: &str| -> String {
            let loaded = match Loaded::parse(Path::new("s.toml"), format!("{base}{extra}")) {
                Ok(loaded) => loaded,
                Err(error) => return error.to_string(),
            };
            if let Err(error) = analytics_settings(&loaded, &vars) {
                return error.to_string();
            }
            match build(&loaded, &vars, std::sync::Arc::clone(&clock)) {
                Ok(_) => String::new(),
                Err(error) => error.to_string(),
            }
        };
        assert_eq!(
            error("[analytics]\nenabled = true\n"),
            "s.toml:12: enabled: analytics need a file: give [state] a path"
        );
        assert!(
            error("[state]\npath = \"x.db\"\n[analytics]\nretention_days = 0\n")
                .starts_with("s.toml:14: retention_days: expected at least 1 day")
        );
        assert_eq!(
            error("[alerts]\nwebhook_url = \"ftp://example.com\"\n"),
            "s.toml:12: webhook_url: expected an http:// or https:// URL"
        );
        let hook = "[alerts]\nwebhook_url = \"http://127.0.0.1:9/hook\"\n";
        assert_eq!(
            error(&format!("{hook}low_success_percent = 101\n")),
            "s.toml:13: low_success_percent: expected 0 to 100"
        );
        assert_eq!(
            error(&format!("{hook}low_success_min_attempts = 21\n")),
            "s.toml:13: low_success_min_attempts: expected 1 to 20 (the attempts kept per key)"
        );
        assert_eq!(
            error(&format!("{hook}latency_min_samples = 0\n")),
            "s.toml:13: latency_min_samples: expected 1 to 100 (the successes kept per provider)"
        );
        assert_eq!(
            error(&format!("{hook}low_success_percent = 60\nlatency_p95_ms = 0\n")),
            "",
            "valid thresholds; 0 turns the latency alert off"
        );
        let twice = "[[clients]]\nname = \"a\"\ntoken = \"${T}\"\n[[clients]]\nname = \"b\"\ntoken = \"${T}\"\n";
        let message = error(twice);
        assert!(message.starts_with("s.toml:16: token: client b has the same token"), "{message}");
        assert!(!message.contains("same-token"), "a token in an error: {message}");
        assert_eq!(
            error("[[clients]]\nname = \"a\"\ntoken = \"t\"\nrequests_per_minute = 0\n"),
            "s.toml:14: requests_per_minute: expected at least 1 (leave it out for no limit)"
        );
        assert_eq!(error("[[clients]]\nname = \"a\"\ntoken = \"t\"\nroutes = [\"groq/m\"]\n"), "");
    }

    #[test]
    fn a_routes_free_first_spread_prefer_and_wait_are_read_and_checked() {
        let provider = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nkeys = [\"gsk_a\"]\nmodels = [\"m\"]\n\n";
        let vars = vars(&[]);
        let clock: std::sync::Arc<dyn switchyard_core::Clock> =
            std::sync::Arc::new(switchyard_core::ManualClock::default());
        let build_route = |route: &str| -> Result<(), String> {
            let text = format!(
                "{provider}[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\n{route}"
            );
            let loaded = Loaded::parse(Path::new("s.toml"), text).map_err(|e| e.to_string())?;
            build(&loaded, &vars, std::sync::Arc::clone(&clock))
                .map(drop)
                .map_err(|e| e.to_string())
        };
        build_route("prefer = \"cost\"\nfree_first = true\nspread = false\nmax_wait_secs = 2.5\n")
            .expect("valid route options");
        build_route("prefer = \"latency\"\n").expect("latency is valid");
        assert_eq!(
            build_route("prefer = \"cheap\"\n").expect_err("unknown preference"),
            "s.toml:11: prefer: expected \"latency\" or \"cost\""
        );
        assert_eq!(
            build_route("max_wait_secs = -1\n").expect_err("negative wait"),
            "s.toml:11: max_wait_secs: expected a positive number of seconds"
        );
    }

    const BASE: &str = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\nkeys = [\"gsk_a\"]\nmodels = [\"m\"]\n\n[[routes]]\nname = \"default\"\ntargets = [\"groq/m\"]\n";

    /// Builds `BASE` followed by `extra` (its first line is line 11) with `vars`.
    fn built(extra: &str, vars: &HashMap<String, String>) -> Result<Built, String> {
        let clock: std::sync::Arc<dyn switchyard_core::Clock> =
            std::sync::Arc::new(switchyard_core::ManualClock::default());
        let loaded = Loaded::parse(Path::new("s.toml"), format!("{BASE}{extra}"))
            .map_err(|error| error.to_string())?;
        build(&loaded, vars, clock).map_err(|error| error.to_string())
    }

    #[test]
    fn connection_limits_default_and_are_read() {
        let gateway = built("", &vars(&[])).expect("builds").gateway;
        assert_eq!(gateway.header_read_timeout, std::time::Duration::from_secs(10));
        assert_eq!(gateway.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(gateway.body_read_timeout, std::time::Duration::from_secs(30));
        assert_eq!(gateway.max_connections, 1024);
        assert!(gateway.allowed_hosts.is_empty());
        let server = "[server]\nheader_read_timeout_secs = 2.5\nidle_timeout_secs = 5\nbody_read_timeout_secs = 7\nmax_connections = 3\nallowed_hosts = [\"gateway.lan\", \"10.0.0.5:8080\"]\n";
        let gateway = built(server, &vars(&[])).expect("builds").gateway;
        assert_eq!(gateway.header_read_timeout, std::time::Duration::from_millis(2_500));
        assert_eq!(gateway.idle_timeout, std::time::Duration::from_secs(5));
        assert_eq!(gateway.body_read_timeout, std::time::Duration::from_secs(7));
        assert_eq!(gateway.max_connections, 3);
        assert_eq!(gateway.allowed_hosts, ["gateway.lan", "10.0.0.5:8080"]);
        let warnings = built(server, &vars(&[])).expect("builds").warnings;
        assert!(
            warnings.iter().any(|w| w.contains(
                "idle_timeout_secs (5s) is shorter than [upstream] stream_idle_timeout_secs (60s)"
            )),
            "{warnings:?}"
        );
        assert!(built("", &vars(&[])).expect("builds").warnings.is_empty(), "the defaults agree");
    }

    #[test]
    fn connection_limits_are_checked_with_their_line() {
        let error = |server: &str| {
            built(&format!("[server]\n{server}\n"), &vars(&[])).map(drop).expect_err(server)
        };
        assert_eq!(
            error("header_read_timeout_secs = 0"),
            "s.toml:12: header_read_timeout_secs: expected a positive number of seconds"
        );
        assert_eq!(
            error("idle_timeout_secs = 1e15"),
            "s.toml:12: idle_timeout_secs: expected at most 86400 seconds (a day)"
        );
        assert_eq!(
            error("max_connections = 0"),
            "s.toml:12: max_connections: expected a whole number from 1 to 1048576"
        );
        assert_eq!(
            error("allowed_hosts = [\"https://gateway.lan/\"]"),
            "s.toml:12: allowed_hosts: expected a host name, or name:port (no scheme, path or spaces)"
        );
        assert_eq!(
            error("request_timeout_secs = 1e300"),
            "s.toml:12: request_timeout_secs: expected at most 86400 seconds (a day)"
        );
    }

    /// A huge deadline would overflow instant and date arithmetic on every request.
    #[test]
    fn huge_timeouts_are_config_errors() {
        let provider_timeout =
            BASE.replace("models = [\"m\"]\n", "models = [\"m\"]\ntimeout_secs = 1e18\n");
        let clock: std::sync::Arc<dyn switchyard_core::Clock> =
            std::sync::Arc::new(switchyard_core::ManualClock::default());
        let loaded = Loaded::parse(Path::new("s.toml"), provider_timeout).expect("parses");
        let error = build(&loaded, &vars(&[]), clock).map(drop).expect_err("a 1e18 s timeout");
        assert_eq!(
            error.to_string(),
            "s.toml:7: timeout_secs: expected at most 86400 seconds (a day)"
        );
        let error =
            built("timeout_secs = 1e12\n", &vars(&[])).map(drop).expect_err("route timeout");
        assert_eq!(error, "s.toml:11: timeout_secs: expected at most 86400 seconds (a day)");
    }

    /// Closed by default: a token that expands to nothing is an error naming its line, never
    /// an open gateway.
    #[test]
    fn empty_or_blank_client_tokens_are_errors() {
        let unset = vars(&[]);
        for tokens in ["[\"${T:-}\"]", "[\"   \"]", "[\"\"]", "[\"good\", \"${T:-}\"]"] {
            let error = built(&format!("[server]\nclient_tokens = {tokens}\n"), &unset)
                .map(drop)
                .expect_err(tokens);
            assert!(
                error.starts_with("s.toml:12: client_tokens: a client token is empty or blank"),
                "{tokens}: {error}"
            );
        }
        let blank = vars(&[("T", "  ")]);
        for token in ["${T:-}", "${T}", " "] {
            let error =
                built(&format!("[[clients]]\nname = \"app\"\ntoken = \"{token}\"\n"), &blank)
                    .map(drop)
                    .expect_err(token);
            assert_eq!(
                error, "s.toml:13: token: client app has an empty or blank token; set its variable",
                "{token}"
            );
        }
        let set = vars(&[("T", "tok-1")]);
        let gateway =
            built("[server]\nclient_tokens = [\"${T}\"]\n", &set).expect("builds").gateway;
        assert_eq!(gateway.client_tokens, ["tok-1"]);
        // No list at all is the one way to run without tokens.
        assert!(built("", &unset).expect("builds").gateway.client_tokens.is_empty());
    }

    /// Type errors, unknown names and variable syntax name the line and field, never the value:
    /// a secret pasted in the wrong place stays out of the log and the reload's answer.
    #[test]
    fn config_errors_never_quote_a_value() {
        const SECRET: &str = "sk-live-4f9a8b7c6d5e4f3a2b1c";
        let cases = [
            format!("[server]\nbody_limit_bytes = \"{SECRET}\"\n"),
            format!("[server]\nmax_connections = \"{SECRET}\"\n"),
            format!("[server]\nheader_read_timeout_secs = \"{SECRET}\"\n"),
            format!("[server]\nlisten = 8080\nadmin_token = 5\nclient_tokens = \"{SECRET}\"\n"),
            format!("[upstream]\nmax_body_bytes = \"{SECRET}\"\n"),
            format!("[server]\nclient_tokens = [\"${{{SECRET}\"]\n"),
            format!("[server]\nclient_tokens = [\"${{{SECRET}}}\"]\n"),
            format!(
                "[[clients]]\nname = \"a\"\ntoken = \"{SECRET}\"\nrequests_per_minute = \"{SECRET}\"\n"
            ),
            format!("[[clients]]\nname = \"a\"\ntoken = \"{SECRET}\"\ndaily_budget = true\n"),
            format!("[[providers]]\nname = \"x\"\nkind = \"{SECRET}\"\n"),
            format!("[[providers]]\nname = \"x\"\nkind = \"openai\"\npreset = \"{SECRET}\"\n"),
            format!("[[providers]]\nname = \"x\"\nkind = \"gemini\"\nreset = \"00:00 {SECRET}\"\n"),
            format!("strategy = \"{SECRET}\"\n"),
            format!("prefer_provider = \"{SECRET}\"\n"),
            format!("[[providers]]\nname = \"x\"\nkind = \"openai\"\ntier = \"{SECRET}\"\n"),
            format!("[router]\nretries_same = \"{SECRET}\"\n"),
            format!("[cache]\nttl_secs = \"{SECRET}\"\n"),
            format!("max_attempts = \"{SECRET}\"\n"),
        ];
        for extra in cases {
            let error = built(&extra, &vars(&[])).map(drop).expect_err(&extra);
            assert!(error.starts_with("s.toml:1"), "names the line: {error}");
            assert!(!error.contains("sk-live"), "quotes the value: {error}");
        }
        let error = built(&format!("[server]\nbody_limit_bytes = \"{SECRET}\"\n"), &vars(&[]))
            .map(drop)
            .expect_err("a string for a number");
        assert_eq!(error, "s.toml:12:20: body_limit_bytes: invalid type: string, expected usize");
    }

    #[test]
    fn upstream_limits_default_and_are_read_and_checked() {
        let limits = built("", &vars(&[])).expect("builds").upstream;
        assert_eq!(limits, UpstreamLimits::default());
        assert_eq!(limits.max_body_bytes, 8 << 20);
        assert_eq!(limits.max_line_bytes, 1 << 20);
        assert_eq!(limits.stream_idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(limits.stream_deadline, std::time::Duration::from_secs(600));
        let given = "[upstream]\nmax_body_bytes = 65536\nmax_line_bytes = 4096\nstream_idle_timeout_secs = 5\nstream_deadline_secs = 120\n";
        let limits = built(given, &vars(&[])).expect("builds").upstream;
        assert_eq!(
            limits,
            UpstreamLimits {
                max_body_bytes: 65_536,
                max_line_bytes: 4_096,
                stream_idle_timeout: std::time::Duration::from_secs(5),
                stream_deadline: std::time::Duration::from_secs(120),
            }
        );
        let error = |section: &str| {
            built(&format!("[upstream]\n{section}\n"), &vars(&[])).map(drop).expect_err(section)
        };
        assert_eq!(
            error("max_body_bytes = 0"),
            "s.toml:12: max_body_bytes: expected a whole number from 1024 to 1073741824"
        );
        assert_eq!(
            error("max_body_bytes = 4096\nmax_line_bytes = 8192"),
            "s.toml:13: max_line_bytes: expected at most max_body_bytes (a line is part of a body)"
        );
        assert_eq!(
            error("stream_deadline_secs = 1e9"),
            "s.toml:12: stream_deadline_secs: expected at most 86400 seconds (a day)"
        );
        assert_eq!(
            error("stream_idle_timeout_secs = -1"),
            "s.toml:12: stream_idle_timeout_secs: expected a positive number of seconds"
        );
        assert!(
            error("max_frame = 1").starts_with("s.toml:12:1: max_frame: unknown field `max_frame`")
        );
    }

    #[test]
    fn serde_messages_lose_their_values() {
        assert_eq!(
            without_values("invalid type: string \"sk-1\", expected u64"),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            without_values("invalid value: integer `-1`, expected u32"),
            "invalid value: integer, expected u32"
        );
        assert_eq!(
            without_values("invalid type: floating point `1.5`, expected usize"),
            "invalid type: floating point, expected usize"
        );
        assert_eq!(
            without_values("invalid type: character 'x', expected a string"),
            "invalid type: character, expected a string"
        );
        assert_eq!(
            without_values("unknown field `strateg`, expected one of `a`, `b`"),
            "unknown field `strateg`, expected one of `a`, `b`"
        );
    }

    #[test]
    fn rotate_after_days_is_read_per_provider_and_bounded() {
        let build_with_days = |days: &str| -> Result<Built, String> {
            let text = BASE.replacen(
                "models = [\"m\"]\n",
                &format!("models = [\"m\"]\nrotate_after_days = {days}\n"),
                1,
            );
            let clock: std::sync::Arc<dyn switchyard_core::Clock> =
                std::sync::Arc::new(switchyard_core::ManualClock::default());
            let loaded =
                Loaded::parse(Path::new("s.toml"), text).map_err(|error| error.to_string())?;
            build(&loaded, &vars(&[]), clock).map_err(|error| error.to_string())
        };
        let built = build_with_days("90").expect("builds");
        let groq = switchyard_core::ProviderId::from("groq");
        assert_eq!(
            built.gateway.rotate_after.get(&groq),
            Some(&std::time::Duration::from_secs(90 * 86_400))
        );
        for bad in ["0", "3651"] {
            let error = build_with_days(bad).map(drop).expect_err("out of range");
            assert!(error.starts_with("s.toml:7:"), "{error}");
            assert!(error.contains("rotate_after_days: expected days from 1 to 3650"), "{error}");
        }
        assert!(built_without_rotation().gateway.rotate_after.is_empty());
    }

    fn built_without_rotation() -> Built {
        built("", &vars(&[])).expect("builds")
    }
}
