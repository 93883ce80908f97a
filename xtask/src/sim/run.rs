//! One scenario run: mock upstreams enforcing the scenario's limits on loopback, the real
//! router in front of them (in process, or the release gateway over HTTP: `gateway.rs`), the
//! demand sent in real time, and what came of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use switchyard::{
    ModelFacts, Prefer, Price, RequestOptions, RouteConfig, Router, RouterConfig, StrategyKind,
};
use switchyard_core::{ChatRequest, Clock, Credential, Provider, SystemClock};
use switchyard_mock::{
    Failure, Fault, FaultRule, Flavor, HintStyle, KeyScript, Latency, MockBuilder, MockUpstream,
    OpenAiWire, Outcome, WindowQuota,
};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{
    DayBoundary, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig, QuotaGroup,
};
use tokio::sync::Semaphore;

use super::Arrival;
use super::gateway::Gateway;
use super::scenario::{
    FaultSpec, Hints, LimitSpec, LimitUnit, ProviderSpec, Scenario, Via, WindowKind,
};

/// What one client request came to.
#[derive(Clone, Debug)]
pub(crate) struct ClientResult {
    pub(crate) latency: Duration,
    /// The provider that served it, or the error code.
    pub(crate) outcome: Result<(String, f64), Failed>,
}

#[derive(Clone, Debug)]
pub(crate) struct Failed {
    pub(crate) code: String,
    /// How far ahead the error's retry time was, when it gave one.
    pub(crate) retry_in: Option<f64>,
}

/// Everything measured in one run.
pub(crate) struct Measured {
    pub(crate) results: Vec<ClientResult>,
    pub(crate) upstream_calls: u64,
    pub(crate) upstream_429s: u64,
    pub(crate) calls_in_cooldown: u64,
    pub(crate) wall_secs: f64,
    pub(crate) longest_window_secs: f64,
    /// Upstream answers other than success, by provider and kind.
    pub(crate) refusals: BTreeMap<String, u64>,
    /// Upstream 429s by quota unit (a key, or a group declared to the router) and limit.
    pub(crate) by_unit_limit: BTreeMap<String, u64>,
    /// Quota units times their limits: the 429s a router that learns each limit from one
    /// refusal may spend.
    pub(crate) n_unit_limits: u64,
    /// How long after the mocks started (when their fixed windows, faults and revocations
    /// count from) the first arrival was due: the oracle shifts its schedule by it.
    pub(crate) lead_secs: f64,
}

pub(crate) fn secret(key_id: &str) -> String {
    format!("sk-sim-{key_id}-0123456789")
}

fn window(limit: &LimitSpec) -> WindowQuota {
    let base = match limit.kind {
        WindowKind::Sliding => WindowQuota::requests_sliding(limit.amount, limit.length()),
        WindowKind::Fixed => WindowQuota::requests_fixed(
            limit.amount,
            limit.length(),
            Duration::from_secs_f64(limit.offset_secs),
        ),
    };
    let base = if limit.unit == LimitUnit::Tokens { base.in_tokens() } else { base };
    if limit.day { base.as_day() } else { base }
}

impl Hints {
    /// The mock's words and headers for these hints.
    fn mock(self) -> (MockBuilder, HintStyle) {
        let (flavor, style) = match self {
            Self::Openai => (Flavor::OpenAi, HintStyle::AsFormat),
            Self::Groq => (Flavor::Groq, HintStyle::AsFormat),
            Self::GeminiOpenai => (Flavor::GeminiOpenAi, HintStyle::AsFormat),
            Self::None => (Flavor::OpenRouter, HintStyle::NoHeaders),
        };
        (MockUpstream::builder(OpenAiWire::new(flavor)), style)
    }

    /// The adapter preset a user would configure for such a provider.
    pub(crate) fn preset(self) -> Preset {
        match self {
            Self::Openai => Preset::OpenAi,
            Self::Groq => Preset::Groq,
            Self::GeminiOpenai => Preset::Compatible,
            Self::None => Preset::OpenRouter,
        }
    }
}

/// The mock upstream of one provider: its keys (with their own windows, or in a group that
/// holds them), latency, hints and scheduled faults.
async fn mock(provider: &ProviderSpec, seed: u64) -> Result<MockUpstream> {
    let (min, max) = (provider.latency_ms[0], provider.latency_ms[1]);
    let (builder, style) = provider.hints.mock();
    let mut builder = builder
        .models([provider.model.clone()])
        .latency(Latency::Uniform {
            min: Duration::from_millis(min),
            max: Duration::from_millis(max),
        })
        .log_limit(1_000_000)
        .seed(seed);
    let units = provider.units();
    for (unit_idx, keys) in units.iter().enumerate() {
        let group = (keys.len() > 1 || provider.groups.iter().any(|g| g == keys))
            .then(|| format!("{}-g{}", provider.name, unit_idx + 1));
        for &n in keys {
            let id = provider.key_id(n);
            let mut key = KeyScript::valid(id.clone(), secret(&id)).hints(style);
            if let Some(at) = provider.revoked_at(n) {
                key = key.revoked_at(Duration::from_secs_f64(at));
            }
            match &group {
                Some(group) => key = key.in_group(group.clone()),
                None => {
                    for limit in &provider.limits {
                        key = key.window(window(limit));
                    }
                }
            }
            builder = builder.key(key);
        }
        if let Some(group) = &group {
            for limit in &provider.limits {
                builder = builder.group_window(group.clone(), window(limit));
            }
        }
    }
    for fault in &provider.faults {
        let rule = match *fault {
            FaultSpec::Revoke { .. } => continue,
            FaultSpec::Slow { from_secs, until_secs, extra_ms } => FaultRule::always(Fault::Slow(
                Duration::from_millis(extra_ms),
            ))
            .between(Duration::from_secs_f64(from_secs), Duration::from_secs_f64(until_secs)),
            FaultSpec::ServerErrors { from_secs, until_secs, probability } => FaultRule::always(
                Fault::server_error(),
            )
            .with_probability(probability)
            .between(Duration::from_secs_f64(from_secs), Duration::from_secs_f64(until_secs)),
        };
        builder = builder.fault(rule);
    }
    builder.start().await.with_context(|| format!("starting the mock of {}", provider.name))
}

fn quota_config(scenario: &Scenario) -> QuotaConfig {
    let mut config = QuotaConfig::default();
    for provider in &scenario.providers {
        if scenario.router.declare_limits && !provider.limits.is_empty() {
            // A fixed window is declared as a sliding one of the same length: whatever a
            // sliding window admits, every fixed window of that length admits too, wherever
            // its boundaries fall.
            let limits = provider
                .limits
                .iter()
                .map(|limit| match limit.unit {
                    LimitUnit::Requests => Limit::requests_per(limit.amount, limit.length()),
                    LimitUnit::Tokens => Limit::tokens_per(limit.amount, limit.length()),
                })
                .collect();
            config.providers.push(ProviderQuota {
                provider: provider.name.as_str().into(),
                day: DayBoundary::Rolling,
                models: vec![ModelQuota::every_model(limits)],
            });
        }
        if scenario.router.declare_groups {
            for (unit_idx, keys) in provider.units().iter().enumerate() {
                if provider.groups.iter().any(|group| group == keys) {
                    config.groups.push(QuotaGroup {
                        name: format!("{}-g{}", provider.name, unit_idx + 1),
                        provider: provider.name.as_str().into(),
                        keys: keys.iter().map(|&n| provider.key_id(n).into()).collect(),
                    });
                }
            }
        }
    }
    config
}

fn router(scenario: &Scenario, mocks: &[MockUpstream]) -> Result<Router> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ledger = MemoryLedger::new(Arc::clone(&clock), quota_config(scenario));
    let spec = &scenario.router;
    let deadline = Duration::from_secs_f64(scenario.demand.deadline_secs);
    let mut builder =
        Router::builder().clock(Arc::clone(&clock)).quota(Arc::new(ledger)).config(RouterConfig {
            seed: Some(scenario.seed),
            timeout: deadline,
            max_wait: Duration::from_secs_f64(spec.max_wait_secs),
            default_max_tokens: scenario.demand.max_tokens,
            wait_queue: 100_000,
            ..RouterConfig::default()
        });
    let mut targets = Vec::new();
    for (provider, mock) in scenario.providers.iter().zip(mocks) {
        let mut config =
            OpenAiConfig::new(provider.name.as_str(), provider.hints.preset()).at(mock.base_url());
        config.request_timeout = deadline;
        config.pool_max_idle_per_host = 256;
        let adapter: Arc<dyn Provider> = Arc::new(
            OpenAiProvider::try_new(config, Arc::clone(&clock)).context("building an adapter")?,
        );
        builder = builder.provider(adapter);
        for n in 1..=provider.keys {
            let id = provider.key_id(n);
            builder = builder
                .credential(provider.name.as_str(), Credential::new(id.clone(), secret(&id)));
        }
        let target = format!("{}/{}", provider.name, provider.model);
        if spec.tell_prices {
            let price = Price {
                input_per_mtok: provider.price.input_per_mtok,
                output_per_mtok: provider.price.output_per_mtok,
                per_request: provider.price.per_request,
            };
            builder =
                builder.model(&target, ModelFacts { price: Some(price), ..ModelFacts::default() });
        }
        targets.push(target);
    }
    let strategy = StrategyKind::from_name(&spec.strategy)
        .with_context(|| format!("unknown strategy {:?}", spec.strategy))?;
    let mut route = RouteConfig::new("sim", strategy, targets);
    route.prefer = Prefer::from_name(&spec.prefer).context("prefer is cost or latency")?;
    builder.route_config(route).build().context("building the router")
}

/// A prompt of `words` words, different for each request.
pub(crate) fn prompt(idx: usize, words: u32) -> String {
    let mut text = format!("r{idx}");
    for word in 1..words {
        text.push_str(if word % 2 == 0 { " lorem" } else { " ipsum" });
    }
    text
}

/// Where the gateway's files go in gateway mode.
pub(crate) struct GatewayFiles {
    /// The release `switchyard` binary.
    pub(crate) binary: std::path::PathBuf,
    /// Where the generated `switchyard.toml` and the gateway's log are written.
    pub(crate) dir: std::path::PathBuf,
}

/// Runs `scenario`'s demand through the router (`via`) against its mocks, in real time.
pub(crate) async fn run(
    scenario: &Scenario,
    arrivals: &[Arrival],
    via: Via,
    files: &GatewayFiles,
    label: &str,
) -> Result<Measured> {
    let clock = SystemClock;
    let mocks_started = clock.now();
    let mut mocks = Vec::new();
    for (idx, provider) in scenario.providers.iter().enumerate() {
        mocks.push(mock(provider, scenario.seed ^ (idx as u64 + 1).wrapping_mul(0x9E37)).await?);
    }
    let (results, started) = match via {
        Via::Router => in_process(scenario, arrivals, &mocks).await?,
        Via::Gateway => {
            let gateway = Gateway::start(scenario, &mocks, files, label).await?;
            let results = gateway.drive(scenario, arrivals).await;
            gateway.stop().await?;
            results?
        }
    };
    let wall_secs = clock.now().saturating_duration_since(started).as_secs_f64();
    let lead_secs = started.saturating_duration_since(mocks_started).as_secs_f64();
    Ok(measure(scenario, &mocks, results, wall_secs, lead_secs))
}

/// The demand through the router in this process; also when the first arrival was due.
async fn in_process(
    scenario: &Scenario,
    arrivals: &[Arrival],
    mocks: &[MockUpstream],
) -> Result<(Vec<ClientResult>, Instant)> {
    let router = router(scenario, mocks)?;
    let clock = SystemClock;
    let started = clock.now();
    let gate = Arc::new(Semaphore::new(scenario.demand.concurrency));
    let max_tokens = scenario.demand.max_tokens;
    let tasks: Vec<_> = arrivals
        .iter()
        .enumerate()
        .map(|(idx, arrival)| {
            let router = router.clone();
            let gate = Arc::clone(&gate);
            let at = started + Duration::from_secs_f64(arrival.at_secs);
            let request =
                ChatRequest::from_user(prompt(idx, arrival.words)).with_max_tokens(max_tokens);
            tokio::spawn(async move {
                let clock = SystemClock;
                clock.sleep_until(at).await;
                let permit =
                    gate.acquire_owned().await.expect("invariant: the gate is never closed");
                let result = router.chat_with("sim", &request, RequestOptions::default()).await;
                drop(permit);
                let latency = clock.now().saturating_duration_since(at);
                let outcome = match result {
                    Ok(answer) => {
                        Ok((answer.served_by.provider.to_string(), answer.cost.unwrap_or(0.0)))
                    }
                    Err(error) => Err(Failed {
                        code: error.code().to_owned(),
                        retry_in: error
                            .retry_at()
                            .map(|at| (at - clock.utc()).num_milliseconds() as f64 / 1000.0),
                    }),
                };
                ClientResult { latency, outcome }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.context("a client task panicked")?);
    }
    Ok((results, started))
}

/// What the mocks saw of a run, next to what its clients got.
fn measure(
    scenario: &Scenario,
    mocks: &[MockUpstream],
    results: Vec<ClientResult>,
    wall_secs: f64,
    lead_secs: f64,
) -> Measured {
    let (mut upstream_calls, mut upstream_429s, mut calls_in_cooldown) = (0, 0, 0);
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_unit_limit: BTreeMap<String, u64> = BTreeMap::new();
    let mut n_unit_limits = 0;
    for (provider, mock) in scenario.providers.iter().zip(mocks) {
        let units = provider.units();
        let declared_group = |n: u32| scenario.router.declare_groups && provider.grouped(n);
        let unit_of = |key: &str| -> String {
            let n = (1..=provider.keys).find(|&n| provider.key_id(n) == key);
            match n {
                Some(n) if declared_group(n) => {
                    let idx = units.iter().position(|unit| unit.contains(&n)).unwrap_or(0);
                    format!("{}-g{}", provider.name, idx + 1)
                }
                _ => key.to_owned(),
            }
        };
        let n_units = units
            .iter()
            .map(|unit| if unit.len() > 1 && declared_group(unit[0]) { 1 } else { unit.len() })
            .sum::<usize>();
        n_unit_limits += (n_units * provider.limits.len()) as u64;
        let totals = mock.totals();
        upstream_calls += totals.requests;
        upstream_429s += totals.rate_limited;
        calls_in_cooldown += calls_in_known_cooldown(mock);
        for request in mock.log() {
            let label = match &request.outcome {
                Outcome::Served { .. } => continue,
                Outcome::Refused(Failure::RateLimited { limit, used, window, unit, .. }) => {
                    let key = request.key.as_ref().map_or("?", |key| key.as_str());
                    let name = format!("{} {window:?} {unit:?} {limit}", unit_of(key));
                    *by_unit_limit.entry(name).or_insert(0) += 1;
                    format!("429 {window:?} limit {limit} used {used}")
                }
                Outcome::Refused(failure) => failure.label().to_owned(),
                Outcome::Fault(fault) => fault.label().to_owned(),
                other => format!("{other:?}"),
            };
            *refusals.entry(format!("{}: {label}", provider.name)).or_insert(0) += 1;
        }
    }
    let longest_window_secs = scenario
        .providers
        .iter()
        .flat_map(|provider| provider.limits.iter().map(|limit| limit.per_secs))
        .fold(0.0, f64::max);
    Measured {
        results,
        upstream_calls,
        upstream_429s,
        calls_in_cooldown,
        wall_secs,
        longest_window_secs,
        refusals,
        by_unit_limit,
        n_unit_limits,
        lead_secs,
    }
}

/// Calls a mock received for a key while a 429 it had answered that key still said to wait.
fn calls_in_known_cooldown(mock: &MockUpstream) -> u64 {
    let mut until: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
    let mut n = 0;
    for request in mock.log() {
        let Some(key) = request.key.as_ref().map(ToString::to_string) else { continue };
        if until.get(&key).is_some_and(|until| request.at < *until) {
            n += 1;
        }
        if let Outcome::Refused(Failure::RateLimited { retry_after, .. }) = &request.outcome {
            let wait = chrono::Duration::from_std(*retry_after).unwrap_or_default();
            until.insert(key, request.at + wait);
        }
    }
    n
}
