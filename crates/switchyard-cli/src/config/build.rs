//! From a checked configuration to a running setup: each provider's `kind` mapped to its
//! adapter, keys expanded into credentials, limits into the quota ledger, routes into the
//! router. This is the composition root's one place that knows every adapter.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use switchyard::{
    BudgetConfig, EventSink, MemorySpendStore, ModelFacts, Prefer, Price, ProbeConfig, RouteConfig,
    Router, SpendStore, SpendWriteBehind, StrategyKind,
};
use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{Clock, Credential, KeyId, Provider, ProviderId};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_ollama::{Ollama, OllamaConfig};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{
    DayBoundary, LedgerStore, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig,
    QuotaGroup, QuotaLedger, WriteBehind,
};
use switchyard_redis::{RedisLedger, RedisOptions};
use switchyard_server::{AlertConfig, ClientConfig, GatewayConfig};
use switchyard_store::SqliteSpendStore;
use switchyard_vault::{KeySource, Passphrase, Vault, VaultConfig};

use super::library;
use super::scores::ScoreSaver;
use super::{ConfigError, Loaded, ProviderSection, sole_variable};

/// What a configuration builds.
pub(crate) struct Built {
    /// The router.
    pub(crate) router: Router,
    /// The gateway's own settings.
    pub(crate) gateway: GatewayConfig,
    /// `[server] listen`, when given.
    pub(crate) listen: Option<String>,
    /// Things the operator should know (a key dropped for being empty).
    pub(crate) warnings: Vec<String>,
    /// Saves quota state to `[state] path`; dropping it saves once more.
    pub(crate) persistence: Option<WriteBehind>,
    /// Saves learned scores to `[state] path`; dropping it saves once more.
    pub(crate) scores: Option<ScoreSaver>,
    /// Alert webhooks, when `[alerts]` is given.
    pub(crate) alerts: Option<AlertConfig>,
    /// `[upstream]`: bounds on upstream bodies, stream lines and stream times, checked and
    /// already handed to the adapters and the router.
    pub(crate) upstream: UpstreamLimits,
    /// Saves the day's spend (budgets) behind the requests; dropping it saves once more.
    pub(crate) spend: Option<SpendWriteBehind>,
    /// The `[state] path` file, resolved, when given: admin state is kept there too.
    pub(crate) state_file: Option<PathBuf>,
    /// The health probe tasks `serve` runs, one per interval (none without `[probes]` or a
    /// provider's `probe_interval_secs`).
    pub(crate) probes: Vec<ProbeConfig>,
    /// Key lifecycle: rotation deadlines, the vault's dates and a vault handle for uses.
    pub(crate) keylife: crate::keylife::KeyLifeSettings,
}

/// Where analytics go and how long they stay.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnalyticsSettings {
    /// The SQLite file, next to the state file: `<state>.analytics.db`.
    pub(crate) path: PathBuf,
    /// How long events are kept.
    pub(crate) retention: Duration,
}

/// The `[alerts]` thresholds over `config`'s defaults, each checked against what the gateway
/// keeps (20 attempts per key, 100 successes per provider).
fn alert_thresholds(
    loaded: &Loaded,
    section: &super::AlertsSection,
    mut config: AlertConfig,
) -> Result<AlertConfig, ConfigError> {
    if let Some(percent) = &section.low_success_percent {
        if *percent.get_ref() > 100 {
            return Err(loaded.invalid(percent.span(), "low_success_percent", "expected 0 to 100"));
        }
        config.low_success_rate = f64::from(*percent.get_ref()) / 100.0;
    }
    if let Some(attempts) = &section.low_success_min_attempts {
        if !(1..=20).contains(attempts.get_ref()) {
            return Err(loaded.invalid(
                attempts.span(),
                "low_success_min_attempts",
                "expected 1 to 20 (the attempts kept per key)",
            ));
        }
        config.low_success_min_attempts = usize::try_from(*attempts.get_ref()).unwrap_or(20);
    }
    if let Some(millis) = &section.latency_p95_ms {
        // Past a day a p95 means nothing: the gateway's own timeouts end calls long before.
        let millis = (*millis.get_ref()).min(86_400_000);
        config.latency_p95 = (millis > 0).then_some(Duration::from_millis(millis));
    }
    if let Some(samples) = &section.latency_min_samples {
        if !(1..=100).contains(samples.get_ref()) {
            return Err(loaded.invalid(
                samples.span(),
                "latency_min_samples",
                "expected 1 to 100 (the successes kept per provider)",
            ));
        }
        config.latency_min_samples = usize::try_from(*samples.get_ref()).unwrap_or(100);
    }
    Ok(config)
}

/// Days analytics events are kept when `[analytics] retention_days` is not given.
const DEFAULT_RETENTION_DAYS: u32 = 30;

/// The analytics settings of `loaded`: on by default when `[state]` has a path (the event log
/// goes next to it), off without one.
///
/// # Errors
/// [`ConfigError::Invalid`] when analytics are enabled without a state path, or the retention
/// is zero.
pub(crate) fn analytics_settings(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
) -> Result<Option<AnalyticsSettings>, ConfigError> {
    let file = &loaded.file;
    let section = file.analytics.as_ref();
    let enabled = section.and_then(|section| section.enabled.as_ref());
    let retention_days = match section.and_then(|section| section.retention_days.as_ref()) {
        Some(days) if *days.get_ref() == 0 => {
            return Err(loaded.invalid(
                days.span(),
                "retention_days",
                "expected at least 1 day (set enabled = false to keep no events)",
            ));
        }
        Some(days) => *days.get_ref(),
        None => DEFAULT_RETENTION_DAYS,
    };
    let Some(state) = &file.state.path else {
        return match enabled {
            Some(enabled) if *enabled.get_ref() => Err(loaded.invalid(
                enabled.span(),
                "enabled",
                "analytics need a file: give [state] a path",
            )),
            _ => Ok(None),
        };
    };
    if enabled.is_some_and(|enabled| !*enabled.get_ref()) {
        return Ok(None);
    }
    let state =
        loaded.path.parent().unwrap_or(Path::new(".")).join(loaded.expand(state, "path", vars)?);
    Ok(Some(AnalyticsSettings {
        path: state.with_extension("analytics.db"),
        retention: Duration::from_secs(u64::from(retention_days) * 86_400),
    }))
}

/// Builds everything `loaded` describes, reading `${VAR}`s from `vars`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the line and field of the first thing that is wrong.
#[allow(dead_code, reason = "tests and commands that need no event sink build with it")]
pub(crate) fn build(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
) -> Result<Built, ConfigError> {
    build_with(loaded, vars, clock, None, None)
}

/// As [`build`], with no persistence: `[state]` is set aside while building, so no state
/// file is opened, created or written, no saver thread starts and no Redis is reached
/// (`switchyard doctor` checks a configuration a running gateway may be using).
///
/// # Errors
/// As [`build`]; `[state]` itself is not checked.
pub(crate) fn build_without_state(
    loaded: &mut Loaded,
    vars: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
) -> Result<Built, ConfigError> {
    let state = std::mem::take(&mut loaded.file.state);
    let built = build(loaded, vars, clock);
    loaded.file.state = state;
    built
}

/// As [`build`], with the router's events going to `events` (the gateway's analytics and
/// alert hub). On a reload, `previous` is the router being replaced: the new one shares its
/// spend books (calls still in flight settle into the same day) and keeps its disabled keys.
///
/// # Errors
/// As [`build`].
pub(crate) fn build_with(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
    events: Option<Arc<dyn EventSink>>,
    previous: Option<&Router>,
) -> Result<Built, ConfigError> {
    let file = &loaded.file;
    let mut warnings = Vec::new();
    let upstream = upstream_limits(loaded)?;
    if file.providers.is_empty() {
        return Err(ConfigError::Invalid {
            path: loaded.path.clone(),
            line: 1,
            field: "providers".into(),
            message: "at least one [[providers]] table is required".into(),
        });
    }
    if file.routes.is_empty() {
        return Err(ConfigError::Invalid {
            path: loaded.path.clone(),
            line: 1,
            field: "routes".into(),
            message: "at least one [[routes]] table is required".into(),
        });
    }

    let probes = library::probes(loaded)?;
    let mut builder = Router::builder()
        .clock(Arc::clone(&clock))
        .config(library::router_config(loaded, &upstream)?);
    if let Some(previous) = previous {
        builder = builder.carry_over(previous);
    }
    if let Some(events) = events {
        builder = builder.event_sink(events);
    }
    // Fingerprints for the admin status, which shows keys by id and fingerprint only.
    let mut fingerprints: BTreeMap<(ProviderId, KeyId), String> = BTreeMap::new();
    let mut keylife = crate::keylife::KeyLifeSettings::default();
    // `rotate_after_days` per provider, for the gateway's settings (a reload takes them).
    let mut rotate_after: BTreeMap<ProviderId, std::time::Duration> = BTreeMap::new();
    if let Some(section) = &file.vault {
        let vault = open_vault(loaded, section, vars)?;
        // A second handle records key uses in batches, when there is a state file to run it
        // (at start only: a reload keeps the running gateway's).
        let uses = (file.state.path.is_some() && previous.is_none())
            .then(|| open_vault(loaded, section, vars))
            .transpose()?;
        keylife.read_vault(&vault, uses);
        if let Ok(keys) = KeySource::keys(&vault) {
            for key in keys {
                fingerprints.insert(
                    (key.provider.clone(), key.credential.id().clone()),
                    key.credential.fingerprint().to_string(),
                );
            }
        }
        builder = builder.keys(vault);
    }
    let mut time_zones: BTreeMap<ProviderId, Tz> = BTreeMap::new();
    let mut quota = QuotaConfig::default();
    let mut budgets = BudgetConfig::new(Tz::UTC);
    let mut names: Vec<String> = Vec::new();
    for section in &file.providers {
        let name = section.name.get_ref().clone();
        if names.contains(&name) {
            return Err(loaded.invalid(
                section.name.span(),
                "name",
                format!("provider {name} is defined twice"),
            ));
        }
        names.push(name.clone());
        builder = builder.provider(adapter(loaded, section, vars, &clock, &upstream)?);
        // Only what the file declares is routable: a client naming another model of this
        // provider gets UNKNOWN_MODEL instead of a new candidate.
        builder = builder.models(name.as_str(), section.models.iter().map(String::as_str));
        let keys = keys(loaded, section, vars, &mut warnings)?;
        if keys.is_empty() {
            warnings.push(format!("provider {name} has no keys: its targets cannot serve"));
        }
        let key_ids: Vec<KeyId> = keys.iter().map(|credential| credential.id().clone()).collect();
        for credential in &keys {
            fingerprints.insert(
                (ProviderId::from(name.as_str()), credential.id().clone()),
                credential.fingerprint().to_string(),
            );
        }
        if let Some(zone) = reset_zone(loaded, section)? {
            time_zones.insert(ProviderId::from(name.as_str()), zone);
        }
        for credential in keys {
            builder = builder.credential(name.as_str(), credential);
        }
        if let Some(group) = &section.group {
            quota.groups.push(QuotaGroup {
                name: group.clone(),
                provider: ProviderId::from(name.as_str()),
                keys: key_ids,
            });
        }
        if let Some(provider_quota) = provider_quota(loaded, section)? {
            quota.providers.push(provider_quota);
        }
        if let Some(budget) = &section.budget_per_day {
            budgets.per_provider.insert(ProviderId::from(name.as_str()), dollars(loaded, budget)?);
        }
        if let Some(days) = &section.rotate_after_days {
            let days = crate::keylife::rotate_after(*days.get_ref())
                .map_err(|message| loaded.invalid(days.span(), "rotate_after_days", message))?;
            rotate_after.insert(ProviderId::from(name.as_str()), days);
        }
        for model in &section.models {
            let own = section.per_model.get(model);
            let weight = library::weight(loaded, section, model)?;
            let price = own.and_then(|own| own.price.as_ref()).or(section.price.as_ref());
            let facts = ModelFacts {
                price: price.map(|price| Price {
                    input_per_mtok: price.input_per_mtok,
                    output_per_mtok: price.output_per_mtok,
                    per_request: price.cost_per_request,
                }),
                context_window: own.and_then(|own| own.context_window).or(section.context_window),
                vision: own.and_then(|own| own.vision).or(section.vision),
                weight,
            };
            if facts.price.is_some()
                || facts.context_window.is_some()
                || facts.vision.is_some()
                || facts.weight.is_some()
            {
                builder = builder.model(format!("{name}/{model}"), facts);
            }
        }
        for model in section.per_model.keys() {
            if !section.models.contains(model) {
                let span = section.name.span();
                return Err(loaded.invalid(
                    span,
                    "per_model",
                    format!("provider {name}: per_model names {model:?}, which is not in models"),
                ));
            }
        }
    }

    for route in &file.routes {
        let strategy = match &route.strategy {
            None => StrategyKind::Adaptive,
            Some(strategy) => StrategyKind::from_name(strategy.get_ref()).ok_or_else(|| {
                loaded.invalid(
                    strategy.span(),
                    "strategy",
                    "unknown strategy; expected one of adaptive, priority, round-robin, weighted, least-loaded, fastest, cost-optimal",

                )
            })?,
        };
        for target in route.targets.get_ref() {
            let provider = target.split_once('/').map(|(provider, _)| provider);
            if !provider.is_some_and(|provider| names.iter().any(|name| name == provider)) {
                return Err(loaded.invalid(
                    route.targets.span(),
                    "targets",
                    format!(
                        "target {target:?} of route {} names no configured provider; expected provider/model with provider one of: {}",
                        route.name.get_ref(),
                        names.join(", ")
                    ),
                ));
            }
        }
        let mut config = RouteConfig::new(
            route.name.get_ref().clone(),
            strategy,
            route.targets.get_ref().clone(),
        );
        config.max_attempts = route.max_attempts;
        config.timeout = route
            .timeout_secs
            .as_ref()
            .map(|secs| seconds(loaded, secs, "timeout_secs"))
            .transpose()?;
        config.content_filter_fallback = route.content_filter_fallback;
        config.max_wait = route
            .max_wait_secs
            .as_ref()
            .map(|secs| seconds(loaded, secs, "max_wait_secs"))
            .transpose()?;
        config.free_first = route.free_first;
        config.spread = route.spread;
        config.cache = route.cache.unwrap_or(false);
        config.prefer_provider = library::prefer_provider(loaded, route)?;
        if let Some(prefer) = &route.prefer {
            config.prefer = Prefer::from_name(prefer.get_ref()).ok_or_else(|| {
                loaded.invalid(prefer.span(), "prefer", "expected \"latency\" or \"cost\"")
            })?;
        }
        if let Some(budget) = &route.budget_per_day {
            budgets.per_route.insert(route.name.get_ref().clone(), dollars(loaded, budget)?);
        }
        builder = builder.route_config(config);
    }

    // One gateway keeps its counts in memory (saved to `path` when given); several share
    // them through Redis.
    let (ledger, persistence): (Arc<dyn QuotaLedger>, Option<WriteBehind>) =
        match &file.state.redis_url {
            Some(redis_url) => {
                let url = loaded.expand(redis_url, "redis_url", vars)?;
                // An in-flight slot's lease outlives the longest stream, so a slow stream still
                // counts against max_concurrent while a dead process's slots come free.
                let mut options = RedisOptions {
                    inflight_lease: upstream.stream_deadline + Duration::from_secs(60),
                    ..RedisOptions::default()
                };
                if let Some(prefix) = &file.state.redis_prefix {
                    options.prefix.clone_from(prefix);
                }
                let ledger = RedisLedger::new(&url, quota, Arc::clone(&clock), options).map_err(
                    |error| loaded.invalid(redis_url.span(), "redis_url", error.to_string()),
                )?;
                (Arc::new(ledger), None)
            }
            None => {
                let ledger = Arc::new(MemoryLedger::new(Arc::clone(&clock), quota));
                let persistence = match &file.state.path {
                    None => None,
                    Some(path) => Some(persist(loaded, path, vars, &ledger)?),
                };
                (ledger, persistence)
            }
        };
    let state_file = match &file.state.path {
        Some(path) => Some(
            loaded.path.parent().unwrap_or(Path::new(".")).join(loaded.expand(path, "path", vars)?),
        ),
        None => None,
    };
    if !budgets.per_route.is_empty() || !budgets.per_provider.is_empty() {
        // Spend survives restarts in the state file, written behind the requests.
        let store: Arc<dyn SpendStore> = match (&file.state.path, &state_file) {
            (Some(path), Some(state_file)) => Arc::new(
                SqliteSpendStore::open(state_file)
                    .map_err(|error| loaded.invalid(path.span(), "path", error.to_string()))?,
            ),
            _ => Arc::new(MemorySpendStore::default()),
        };
        builder = builder.budgets(budgets, store);
    }
    // Learned scores live in the state file too, so a restart does not forget which keys work.
    let mut scores = None;
    if let Some(path) = &file.state.path {
        let state_file =
            loaded.path.parent().unwrap_or(Path::new(".")).join(loaded.expand(path, "path", vars)?);
        let (scorer, saver) =
            super::scores::restore(&state_file, Arc::clone(&clock), &mut warnings)
                .map_err(|message| loaded.invalid(path.span(), "path", message))?;
        builder = builder.scorer(scorer);
        scores = Some(saver);
    }
    let router = builder.quota(ledger).build().map_err(|error| {
        let message = error.to_string();
        let route = file
            .routes
            .iter()
            .find(|route| message.contains(&format!("route {} ", route.name.get_ref())))
            .or(file.routes.first());
        let span = route.map_or(0..0, |route| route.name.span());
        loaded.invalid(span, "routes", message)
    })?;

    let server = &file.server;
    let mut gateway = GatewayConfig { rotate_after, ..GatewayConfig::default() };
    for spanned in &server.client_tokens {
        let token = loaded.expand(spanned, "client_tokens", vars)?;
        // Closed by default: a token that expands to nothing is a mistake (an unset
        // variable), never a reason to let every client in.
        if token.trim().is_empty() {
            return Err(loaded.invalid(
                spanned.span(),
                "client_tokens",
                "a client token is empty or blank; set its variable, or remove the entry to run without tokens (localhost only)",
            ));
        }
        gateway.client_tokens.push(token);
    }
    if let Some(limit) = server.body_limit_bytes {
        gateway.body_limit_bytes = limit;
    }
    gateway.request_timeout = server
        .request_timeout_secs
        .as_ref()
        .map(|secs| seconds(loaded, secs, "request_timeout_secs"))
        .transpose()?;
    if let Some(secs) = &server.header_read_timeout_secs {
        gateway.header_read_timeout = seconds(loaded, secs, "header_read_timeout_secs")?;
    }
    if let Some(secs) = &server.idle_timeout_secs {
        gateway.idle_timeout = seconds(loaded, secs, "idle_timeout_secs")?;
    }
    if let Some(secs) = &server.body_read_timeout_secs {
        gateway.body_read_timeout = seconds(loaded, secs, "body_read_timeout_secs")?;
    }
    if let Some(max) = &server.max_connections {
        gateway.max_connections = count(loaded, max, "max_connections", 1, MAX_CONNECTIONS)?;
    }
    for host in &server.allowed_hosts {
        let name = host.get_ref().trim();
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        if !valid {
            return Err(loaded.invalid(
                host.span(),
                "allowed_hosts",
                "expected a host name, or name:port (no scheme, path or spaces)",
            ));
        }
        gateway.allowed_hosts.push(name.to_owned());
    }
    gateway.admin_token = match &server.admin_token {
        Some(token) => {
            let token = loaded.expand(token, "admin_token", vars)?;
            if token.trim().is_empty() {
                warnings.push("admin_token is empty: the admin API stays closed".into());
                None
            } else {
                Some(token)
            }
        }
        None => None,
    };
    gateway.clients = clients(loaded, vars, &names, &gateway.client_tokens)?;
    gateway.time_zones = time_zones;
    gateway.fingerprints = fingerprints;
    let alerts = match &file.alerts {
        None => None,
        Some(section) => {
            let url = loaded.expand(&section.webhook_url, "webhook_url", vars)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(loaded.invalid(
                    section.webhook_url.span(),
                    "webhook_url",
                    "expected an http:// or https:// URL",
                ));
            }
            Some(alert_thresholds(loaded, section, AlertConfig::new(url))?)
        }
    };
    let listen =
        server.listen.as_ref().map(|listen| loaded.expand(listen, "listen", vars)).transpose()?;
    if gateway.idle_timeout < upstream.stream_idle_timeout {
        // The connection counts a stream's silence as idle: it would be cut first.
        warnings.push(format!(
            "[server] idle_timeout_secs ({}s) is shorter than [upstream] stream_idle_timeout_secs ({}s): a stream that pauses that long loses its connection first",
            gateway.idle_timeout.as_secs_f64(),
            upstream.stream_idle_timeout.as_secs_f64()
        ));
    }
    // Saves a second, like the quota counts: a crash loses at most a second of spend.
    let spend = router.spend_write_behind(Duration::from_secs(1)).map_err(|error| {
        let span = file.state.path.as_ref().map_or(0..0, toml::Spanned::span);
        loaded.invalid(span, "path", error.to_string())
    })?;
    Ok(Built {
        router,
        gateway,
        listen,
        warnings,
        persistence,
        scores,
        alerts,
        upstream,
        spend,
        state_file,
        probes,
        keylife,
    })
}

/// The most connections `max_connections` may ask for (each holds a descriptor).
const MAX_CONNECTIONS: u64 = 1 << 20;

/// Bounds on what upstreams send back (`[upstream]`), for the adapters and the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpstreamLimits {
    /// The largest response body read from an upstream.
    pub(crate) max_body_bytes: usize,
    /// The longest line of a stream (SSE or NDJSON).
    pub(crate) max_line_bytes: usize,
    /// How long a stream may go without a byte.
    pub(crate) stream_idle_timeout: Duration,
    /// How long a whole stream may last.
    pub(crate) stream_deadline: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 << 20,
            max_line_bytes: 1 << 20,
            stream_idle_timeout: Duration::from_secs(60),
            stream_deadline: Duration::from_secs(600),
        }
    }
}

/// The largest `max_body_bytes` (and `max_line_bytes`) accepted: 1 GiB.
const MAX_UPSTREAM_BYTES: u64 = 1 << 30;

/// `[upstream]` of `loaded`, checked (the defaults where it is silent).
///
/// # Errors
/// [`ConfigError::Invalid`] for a value out of range.
pub(crate) fn upstream_limits(loaded: &Loaded) -> Result<UpstreamLimits, ConfigError> {
    let section = &loaded.file.upstream;
    let mut limits = UpstreamLimits::default();
    if let Some(bytes) = &section.max_body_bytes {
        limits.max_body_bytes = count(loaded, bytes, "max_body_bytes", 1024, MAX_UPSTREAM_BYTES)?;
    }
    if let Some(bytes) = &section.max_line_bytes {
        limits.max_line_bytes = count(loaded, bytes, "max_line_bytes", 1024, MAX_UPSTREAM_BYTES)?;
    }
    if let Some(secs) = &section.stream_idle_timeout_secs {
        limits.stream_idle_timeout = seconds(loaded, secs, "stream_idle_timeout_secs")?;
    }
    if let Some(secs) = &section.stream_deadline_secs {
        limits.stream_deadline = seconds(loaded, secs, "stream_deadline_secs")?;
    }
    if limits.max_line_bytes > limits.max_body_bytes
        && let Some(bytes) = &section.max_line_bytes
    {
        return Err(loaded.invalid(
            bytes.span(),
            "max_line_bytes",
            "expected at most max_body_bytes (a line is part of a body)",
        ));
    }
    Ok(limits)
}

/// A whole number within `min..=max`, as a `usize`.
pub(super) fn count(
    loaded: &Loaded,
    value: &toml::Spanned<u64>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let n = *value.get_ref();
    if !(min..=max).contains(&n) {
        return Err(loaded.invalid(
            value.span(),
            field,
            format!("expected a whole number from {min} to {max}"),
        ));
    }
    usize::try_from(n)
        .map_err(|_| loaded.invalid(value.span(), field, "too large for this machine".to_owned()))
}

/// The `[[clients]]`, checked: names and tokens unique, routes configured, limits sane.
fn clients(
    loaded: &Loaded,
    vars: &HashMap<String, String>,
    providers: &[String],
    bare_tokens: &[String],
) -> Result<Vec<Arc<ClientConfig>>, ConfigError> {
    let file = &loaded.file;
    let route_names: Vec<&String> = file.routes.iter().map(|route| route.name.get_ref()).collect();
    let mut clients: Vec<Arc<ClientConfig>> = Vec::new();
    for section in &file.clients {
        let name = section.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(loaded.invalid(section.name.span(), "name", "a client needs a name"));
        }
        if clients.iter().any(|client| client.name == name) {
            return Err(loaded.invalid(
                section.name.span(),
                "name",
                format!("client {name} is defined twice"),
            ));
        }
        let token = loaded.expand(&section.token, "token", vars)?;
        if token.trim().is_empty() {
            return Err(loaded.invalid(
                section.token.span(),
                "token",
                format!("client {name} has an empty or blank token; set its variable"),
            ));
        }
        // Which client sent a request must be unambiguous (the message names no token).
        if clients.iter().any(|client| client.token == token) || bare_tokens.contains(&token) {
            return Err(loaded.invalid(
                section.token.span(),
                "token",
                format!("client {name} has the same token as another client or client_tokens"),
            ));
        }
        let routes = match &section.routes {
            None => None,
            Some(routes) => {
                for route in routes.get_ref() {
                    let is_route = route_names.contains(&route);
                    let is_target = route
                        .split_once('/')
                        .is_some_and(|(provider, _)| providers.iter().any(|p| p == provider));
                    if !is_route && !is_target {
                        return Err(loaded.invalid(
                            routes.span(),
                            "routes",
                            format!(
                                "client {name} names route {route:?}, which is not configured; expected one of: {}",
                                route_names.iter().map(|name| name.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                Some(routes.get_ref().clone())
            }
        };
        let requests_per_minute = match &section.requests_per_minute {
            Some(limit) if *limit.get_ref() == 0 => {
                return Err(loaded.invalid(
                    limit.span(),
                    "requests_per_minute",
                    "expected at least 1 (leave it out for no limit)",
                ));
            }
            Some(limit) => Some(*limit.get_ref()),
            None => None,
        };
        let daily_budget = section
            .daily_budget
            .as_ref()
            .map(|budget| {
                let amount = *budget.get_ref();
                if amount.is_finite() && amount >= 0.0 {
                    Ok(amount)
                } else {
                    Err(loaded.invalid(
                        budget.span(),
                        "daily_budget",
                        "expected dollars, 0 or more",
                    ))
                }
            })
            .transpose()?;
        clients.push(Arc::new(ClientConfig {
            name,
            token,
            routes,
            requests_per_minute,
            daily_budget,
        }));
    }
    Ok(clients)
}

/// The zone a provider's daily limits reset in: `reset = "00:00 <zone>"` when given, else its
/// `tier`'s (Gemini's free tier: America/Los_Angeles), else its kind's: a Gemini provider's
/// day ends at midnight in Los Angeles, as Google documents. `None`: a rolling day.
fn reset_zone(loaded: &Loaded, section: &ProviderSection) -> Result<Option<Tz>, ConfigError> {
    if let Some(zone) = given_reset_zone(loaded, section)? {
        return Ok(Some(zone));
    }
    if let Some(preset) = library::preset(loaded, section)? {
        return Ok(match preset.day {
            DayBoundary::Midnight(zone) => Some(zone),
            DayBoundary::Rolling => None,
        });
    }
    Ok((section.kind.get_ref() == "gemini").then_some(chrono_tz::America::Los_Angeles))
}

/// The zone `reset = "00:00 <zone>"` names, if given.
fn given_reset_zone(loaded: &Loaded, section: &ProviderSection) -> Result<Option<Tz>, ConfigError> {
    let Some(reset) = &section.reset else { return Ok(None) };
    let text = reset.get_ref().trim();
    let zone = text.strip_prefix("00:00").map(str::trim).ok_or_else(|| {
        loaded.invalid(
            reset.span(),
            "reset",
            "expected \"00:00 <time zone>\", like \"00:00 America/Los_Angeles\"",
        )
    })?;
    let zone = if zone.is_empty() { "UTC" } else { zone };
    zone.parse::<Tz>().map(Some).map_err(|_| {
        loaded.invalid(
            reset.span(),
            "reset",
            "unknown time zone; expected an IANA name like America/Los_Angeles",
        )
    })
}

/// The vault's passphrase variable, as `switchyard keys` reads it.
const PASSPHRASE_VAR: &str = "SWITCHYARD_VAULT_PASSPHRASE";

pub(crate) fn open_vault(
    loaded: &Loaded,
    vault: &super::VaultSection,
    vars: &HashMap<String, String>,
) -> Result<Vault, ConfigError> {
    let invalid = |message: String| loaded.invalid(vault.path.span(), "vault.path", message);
    let path = loaded.expand(&vault.path, "vault.path", vars)?;
    let path = loaded.path.parent().unwrap_or(Path::new(".")).join(path);
    let passphrase = vars.get(PASSPHRASE_VAR).ok_or_else(|| {
        invalid(format!("{PASSPHRASE_VAR} is not set: the vault cannot be opened"))
    })?;
    let passphrase =
        Passphrase::try_new(passphrase.as_bytes()).map_err(|error| invalid(error.to_string()))?;
    Vault::open(&path, passphrase, VaultConfig::default())
        .map_err(|error| invalid(error.to_string()))
}

fn dollars(loaded: &Loaded, value: &toml::Spanned<f64>) -> Result<f64, ConfigError> {
    let amount = *value.get_ref();
    if amount.is_finite() && amount >= 0.0 {
        Ok(amount)
    } else {
        Err(loaded.invalid(value.span(), "budget_per_day", "expected dollars, 0 or more"))
    }
}

/// The longest duration any `*_secs` field may give: a day. Deadlines are added to instants
/// and dates on every request; a huge one would overflow that arithmetic.
const MAX_SECONDS: f64 = 86_400.0;

pub(super) fn seconds(
    loaded: &Loaded,
    secs: &toml::Spanned<f64>,
    field: &str,
) -> Result<Duration, ConfigError> {
    let given = *secs.get_ref();
    if given > MAX_SECONDS {
        return Err(loaded.invalid(
            secs.span(),
            field,
            format!("expected at most {MAX_SECONDS} seconds (a day)"),
        ));
    }
    Duration::try_from_secs_f64(given)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| loaded.invalid(secs.span(), field, "expected a positive number of seconds"))
}

/// The adapter for a provider's `kind`.
///
/// # Errors
/// [`ConfigError::Invalid`] for an unknown kind or preset, or settings an adapter refuses.
pub(crate) fn adapter(
    loaded: &Loaded,
    section: &ProviderSection,
    vars: &HashMap<String, String>,
    clock: &Arc<dyn Clock>,
    limits: &UpstreamLimits,
) -> Result<Arc<dyn Provider>, ConfigError> {
    let name = section.name.get_ref().as_str();
    let base_url =
        section.base_url.as_ref().map(|url| loaded.expand(url, "base_url", vars)).transpose()?;
    let timeout = section
        .timeout_secs
        .as_ref()
        .map(|secs| seconds(loaded, secs, "timeout_secs"))
        .transpose()?;
    let failed = |error: String| loaded.invalid(section.kind.span(), "kind", error);
    if section.preset.is_some() && section.kind.get_ref() != "openai" {
        let span = section.preset.as_ref().map_or(0..0, toml::Spanned::span);
        return Err(loaded.invalid(span, "preset", "a preset applies to kind = \"openai\" only"));
    }
    let provider: Arc<dyn Provider> = match section.kind.get_ref().as_str() {
        "openai" => {
            let preset = match &section.preset {
                None if base_url.is_some() => Preset::Compatible,
                None => Preset::OpenAi,
                Some(preset) => match preset.get_ref().as_str() {
                    "openai" => Preset::OpenAi,
                    "groq" => Preset::Groq,
                    "mistral" => Preset::Mistral,
                    "openrouter" => Preset::OpenRouter,
                    "compatible" => Preset::Compatible,
                    _ => {
                        return Err(loaded.invalid(
                            preset.span(),
                            "preset",
                            "unknown preset; expected one of openai, groq, mistral, openrouter, compatible",
                        ));
                    }
                },
            };
            let mut config = OpenAiConfig::new(name, preset);
            if let Some(url) = base_url {
                config = config.at(url);
            } else if preset == Preset::Compatible {
                return Err(loaded.invalid(
                    section.name.span(),
                    "base_url",
                    "a compatible provider needs base_url",
                ));
            }
            config.max_body_bytes = limits.max_body_bytes;
            config.max_line_bytes = limits.max_line_bytes;
            if let Some(timeout) = timeout {
                config.request_timeout = timeout;
            }
            Arc::new(
                OpenAiProvider::try_new(config, Arc::clone(clock))
                    .map_err(|error| failed(error.to_string()))?,
            )
        }
        "anthropic" => {
            let mut config = AnthropicConfig::new(name);
            if let Some(url) = base_url {
                config.base_url = url;
            }
            config.max_body_bytes = limits.max_body_bytes;
            config.max_line_bytes = limits.max_line_bytes;
            if let Some(timeout) = timeout {
                config.timeout = timeout;
            }
            Arc::new(
                Anthropic::try_new(config, Arc::clone(clock))
                    .map_err(|error| failed(error.to_string()))?,
            )
        }
        "gemini" => {
            let mut config = GeminiConfig::new(name);
            if let Some(url) = base_url {
                config.base_url = url;
            }
            config.max_body_bytes = limits.max_body_bytes;
            config.max_line_bytes = limits.max_line_bytes;
            if let Some(timeout) = timeout {
                config.timeout = timeout;
            }
            Arc::new(
                Gemini::try_new(config, Arc::clone(clock))
                    .map_err(|error| failed(error.to_string()))?,
            )
        }
        "ollama" => {
            let mut config = OllamaConfig::new(name);
            if let Some(url) = base_url {
                config.base_url = url;
            }
            config.max_body_bytes = limits.max_body_bytes;
            config.max_line_bytes = limits.max_line_bytes;
            if let Some(timeout) = timeout {
                config.timeout = timeout;
            }
            Arc::new(
                Ollama::try_new(config, Arc::clone(clock))
                    .map_err(|error| failed(error.to_string()))?,
            )
        }
        _ => {
            return Err(failed(
                "unknown kind; expected one of openai, anthropic, gemini, ollama".to_owned(),
            ));
        }
    };
    Ok(provider)
}

/// A provider's keys, named by the variable of a lone `${VAR}` or `<provider>-<n>`, with
/// `keys_env`'s matches added; an empty or repeated key is dropped with a note in `warnings`.
///
/// # Errors
/// [`ConfigError`] for an unset variable or a `keys_env` pattern without `*`.
pub(crate) fn keys(
    loaded: &Loaded,
    section: &ProviderSection,
    vars: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Credential>, ConfigError> {
    let name = section.name.get_ref();
    let mut found: Vec<(String, String)> = Vec::new();
    for (index, entry) in section.keys.iter().enumerate() {
        let secret = loaded.expand(entry, "keys", vars)?;
        let id = sole_variable(entry.get_ref())
            .map_or_else(|| format!("{name}-{}", index + 1), str::to_owned);
        if secret.is_empty() {
            warnings.push(format!("provider {name}: key {id} is empty and was dropped"));
            continue;
        }
        found.push((id, secret));
    }
    if let Some(pattern) = &section.keys_env {
        let (prefix, exact) = match pattern.get_ref().strip_suffix('*') {
            Some(prefix) => (prefix, false),
            None => (pattern.get_ref().as_str(), true),
        };
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(loaded.invalid(
                pattern.span(),
                "keys_env",
                "expected a variable name, or a prefix ending in `*`, like GROQ_API_KEY*",
            ));
        }
        let mut matching: Vec<(&String, &String)> = vars
            .iter()
            .filter(|(var, _)| if exact { *var == prefix } else { var.starts_with(prefix) })
            .collect();
        // `_2` before `_10`: keys are tried and shown in the order they were numbered.
        matching.sort_by(|(a, _), (b, _)| library::natural_cmp(a, b));
        for (var, value) in matching {
            // `GEMINI_KEYS=k1,k2,k3` is three keys, named `GEMINI_KEYS-1` ... (a variable name
            // holds no `-`, so these never clash with another variable's key).
            let parts: Vec<&str> = value.split(',').map(str::trim).collect();
            if parts.len() == 1 {
                if value.trim().is_empty() {
                    warnings.push(format!("provider {name}: key {var} is empty and was dropped"));
                    continue;
                }
                found.push((var.clone(), value.trim().to_owned()));
                continue;
            }
            for (idx, secret) in parts.iter().enumerate() {
                let id = format!("{var}-{}", idx + 1);
                if secret.is_empty() {
                    warnings.push(format!("provider {name}: key {id} is empty and was dropped"));
                    continue;
                }
                found.push((id, (*secret).to_owned()));
            }
        }
    }
    // The same secret under two names is one key: counting it twice would double its quota.
    let mut credentials: Vec<Credential> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    for (id, secret) in found {
        if secrets.contains(&secret) || credentials.iter().any(|c| c.id().as_str() == id) {
            warnings.push(format!("provider {name}: key {id} is listed twice; kept once"));
            continue;
        }
        credentials.push(Credential::new(id.as_str(), secret.clone()));
        secrets.push(secret);
    }
    Ok(credentials)
}

pub(super) fn provider_quota(
    loaded: &Loaded,
    section: &ProviderSection,
) -> Result<Option<ProviderQuota>, ConfigError> {
    let day_zone = reset_zone(loaded, section)?;
    let day_tz = day_zone.unwrap_or(Tz::UTC);
    let mut models = Vec::new();
    // Per-model limits first: the ledger applies the first rule that matches a model.
    for (model, facts) in &section.per_model {
        if let Some(limits) = &facts.limits {
            models.push(ModelQuota::model(model.as_str(), limit_list(loaded, limits, day_tz)?));
        }
    }
    // Then the tier's, with the file's `limits` over them field by field.
    if let Some(preset) = library::preset(loaded, section)? {
        let given = section.limits.as_ref().map(toml::Spanned::get_ref);
        let reset = given_reset_zone(loaded, section)?;
        for mut rule in preset.models {
            library::adjust(&mut rule.limits, given, reset.or(day_zone));
            models.push(rule);
        }
    }
    if let Some(limits) = &section.limits {
        models.push(ModelQuota::every_model(limit_list(loaded, limits, day_tz)?));
    }
    // Without limits the day still matters: a 429 for the day (Gemini's) holds the key until
    // the day ends in this zone. Without a zone the ledger's own default applies.
    if models.is_empty() && day_zone.is_none() {
        return Ok(None);
    }
    Ok(Some(ProviderQuota {
        provider: ProviderId::from(section.name.get_ref().as_str()),
        day: day_zone.map_or(DayBoundary::Rolling, DayBoundary::Midnight),
        models,
    }))
}

fn limit_list(
    loaded: &Loaded,
    limits: &toml::Spanned<super::LimitsSection>,
    day_tz: Tz,
) -> Result<Vec<Limit>, ConfigError> {
    let given = limits.get_ref();
    let mut list = Vec::new();
    if let Some(n) = given.requests_per_minute {
        list.push(Limit::per_minute(n));
    }
    if let Some(n) = given.tokens_per_minute {
        list.push(Limit::tokens_per(n, Duration::from_secs(60)));
    }
    if let Some(n) = given.requests_per_day {
        list.push(Limit::requests_per_day(n, day_tz));
    }
    if let Some(n) = given.tokens_per_day {
        list.push(Limit::tokens_per_day(n, day_tz));
    }
    if list.is_empty() {
        return Err(loaded.invalid(
            limits.span(),
            "limits",
            "expected at least one of requests_per_minute, requests_per_day, tokens_per_minute, tokens_per_day",
        ));
    }
    Ok(list)
}

fn persist(
    loaded: &Loaded,
    path: &toml::Spanned<String>,
    vars: &HashMap<String, String>,
    ledger: &Arc<MemoryLedger>,
) -> Result<WriteBehind, ConfigError> {
    let expanded = loaded.expand(path, "path", vars)?;
    // A relative path is relative to the configuration file, not to where the gateway runs.
    let file = loaded.path.parent().unwrap_or(Path::new(".")).join(&expanded);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|error| {
            loaded.invalid(path.span(), "path", format!("cannot create {}: {error}", dir.display()))
        })?;
    }
    let mut store = switchyard_store::SqliteStore::open(&file)
        .map_err(|error| loaded.invalid(path.span(), "path", error.to_string()))?;
    let snapshot =
        store.load().map_err(|error| loaded.invalid(path.span(), "path", error.to_string()))?;
    ledger.restore(&snapshot);
    // Saves a second: a crash loses at most a second of counts.
    WriteBehind::start(Arc::clone(ledger), store, Duration::from_secs(1))
        .map_err(|error| loaded.invalid(path.span(), "path", error.to_string()))
}
