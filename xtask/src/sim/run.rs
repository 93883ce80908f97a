//! One scenario run: mock upstreams enforcing the scenario's limits on loopback, the real
//! router in process in front of them, the demand sent in real time, and what came of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchyard::{
    ModelFacts, Prefer, Price, RequestOptions, RouteConfig, Router, RouterConfig, StrategyKind,
};
use switchyard_core::{ChatRequest, Clock, Credential, Provider, SystemClock};
use switchyard_mock::{
    Failure, Fault, FaultRule, KeyScript, Latency, MockUpstream, Outcome, WindowQuota,
};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{
    DayBoundary, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig, QuotaGroup,
};
use tokio::sync::Semaphore;

use super::Arrival;
use super::oracle::Oracle;
use super::scenario::{FaultSpec, LimitSpec, LimitUnit, ProviderSpec, Scenario, WindowKind};

/// What one client request came to.
#[derive(Clone, Debug)]
pub(crate) struct ClientResult {
    pub(crate) latency: Duration,
    /// The provider that served it, or the error code.
    pub(crate) outcome: Result<(String, f64), Failed>,
}

#[derive(Clone, Debug)]
pub(crate) struct Failed {
    pub(crate) code: &'static str,
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
}

fn secret(key_id: &str) -> String {
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

/// The mock upstream of one provider: its keys (with their own windows, or in a group that
/// holds them), latency and scheduled faults.
async fn mock(provider: &ProviderSpec, seed: u64) -> Result<MockUpstream> {
    let (min, max) = (provider.latency_ms[0], provider.latency_ms[1]);
    let mut builder = MockUpstream::openai()
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
            let mut key = KeyScript::valid(id.clone(), secret(&id));
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
            OpenAiConfig::new(provider.name.as_str(), Preset::OpenAi).at(mock.base_url());
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
fn prompt(idx: usize, words: u32) -> String {
    let mut text = format!("r{idx}");
    for word in 1..words {
        text.push_str(if word % 2 == 0 { " lorem" } else { " ipsum" });
    }
    text
}

/// Runs `scenario`'s demand through the router against its mocks, in real time.
pub(crate) async fn run(scenario: &Scenario, arrivals: &[Arrival]) -> Result<Measured> {
    let mut mocks = Vec::new();
    for (idx, provider) in scenario.providers.iter().enumerate() {
        mocks.push(mock(provider, scenario.seed ^ (idx as u64 + 1).wrapping_mul(0x9E37)).await?);
    }
    let router = router(scenario, &mocks)?;
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
                        code: error.code(),
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
    let wall_secs = clock.now().saturating_duration_since(started).as_secs_f64();
    let (mut upstream_calls, mut upstream_429s, mut calls_in_cooldown) = (0, 0, 0);
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for (provider, mock) in scenario.providers.iter().zip(&mocks) {
        let totals = mock.totals();
        upstream_calls += totals.requests;
        upstream_429s += totals.rate_limited;
        calls_in_cooldown += calls_in_known_cooldown(mock);
        for request in mock.log() {
            let label = match &request.outcome {
                Outcome::Served { .. } => continue,
                Outcome::Refused(Failure::RateLimited { limit, used, window, .. }) => {
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
    Ok(Measured {
        results,
        upstream_calls,
        upstream_429s,
        calls_in_cooldown,
        wall_secs,
        longest_window_secs,
        refusals,
    })
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

/// A run's figures next to the oracle's.
pub(crate) struct Summary {
    name: String,
    sent: u64,
    served: u64,
    failures: BTreeMap<String, u64>,
    upstream_calls: u64,
    upstream_429s: u64,
    calls_in_cooldown: u64,
    free: u64,
    paid: u64,
    cost: f64,
    oracle: Oracle,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    wall_secs: f64,
    /// Failures that said when to retry, and whether every such time was within the longest
    /// window from the failure.
    retry_stated: u64,
    retry_sane: bool,
    by_provider: BTreeMap<String, u64>,
    refusals: BTreeMap<String, u64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Summary {
    pub(crate) fn new(scenario: &Scenario, measured: &Measured, oracle: &Oracle) -> Self {
        let free_providers: Vec<&str> = scenario
            .providers
            .iter()
            .filter(|provider| provider.price.is_free())
            .map(|provider| provider.name.as_str())
            .collect();
        let mut failures = BTreeMap::new();
        let (mut served, mut free, mut paid, mut cost) = (0, 0, 0, 0.0);
        let (mut retry_stated, mut retry_sane) = (0, true);
        let mut by_provider = BTreeMap::new();
        for result in &measured.results {
            match &result.outcome {
                Ok((provider, answer_cost)) => {
                    served += 1;
                    *by_provider.entry(provider.clone()).or_insert(0) += 1;
                    if free_providers.contains(&provider.as_str()) {
                        free += 1;
                    } else {
                        paid += 1;
                        cost += answer_cost;
                    }
                }
                Err(failed) => {
                    *failures.entry(failed.code.to_owned()).or_insert(0) += 1;
                    if let Some(retry_in) = failed.retry_in {
                        retry_stated += 1;
                        retry_sane &=
                            retry_in >= -0.05 && retry_in <= measured.longest_window_secs + 0.5;
                    }
                }
            }
        }
        let mut latencies: Vec<f64> =
            measured.results.iter().map(|r| r.latency.as_secs_f64() * 1000.0).collect();
        latencies.sort_by(f64::total_cmp);
        Self {
            name: scenario.name.clone(),
            sent: measured.results.len() as u64,
            served,
            failures,
            upstream_calls: measured.upstream_calls,
            upstream_429s: measured.upstream_429s,
            calls_in_cooldown: measured.calls_in_cooldown,
            free,
            paid,
            cost,
            oracle: oracle.clone(),
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
            wall_secs: measured.wall_secs,
            retry_stated,
            retry_sane,
            by_provider,
            refusals: measured.refusals.clone(),
        }
    }

    fn goodput(&self) -> f64 {
        self.served as f64 / self.sent.max(1) as f64
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "scenario": self.name,
            "sent": self.sent,
            "served": self.served,
            "goodput": self.goodput(),
            "failures": self.failures,
            "upstream_calls": self.upstream_calls,
            "upstream_429s": self.upstream_429s,
            "calls_in_known_cooldown": self.calls_in_cooldown,
            "free_served": self.free,
            "paid_served": self.paid,
            "paid_share": self.paid as f64 / self.served.max(1) as f64,
            "cost": self.cost,
            "oracle": {
                "served": self.oracle.served,
                "free_served": self.oracle.free,
                "paid_served": self.oracle.paid,
                "failed": self.oracle.failed,
                "cost": self.oracle.cost,
            },
            "free_vs_oracle": self.free as f64 / self.oracle.free.max(1) as f64,
            "cost_vs_oracle": if self.oracle.cost > 0.0 { self.cost / self.oracle.cost } else { 1.0 },
            "latency_ms": { "p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms },
            "failures_with_retry_time": self.retry_stated,
            "retry_times_within_longest_window": self.retry_sane,
            "wall_secs": self.wall_secs,
            "served_by_provider": self.by_provider,
            "oracle_free_by_provider": self.oracle.by_provider,
            "upstream_refusals": self.refusals,
        })
    }

    pub(crate) fn print_detail(&self) {
        let failures: Vec<String> =
            self.failures.iter().map(|(code, n)| format!("{code}={n}")).collect();
        println!(
            "  sent {} served {} ({:.2}%) failures [{}] upstream calls {} 429s {} in-cooldown {} \
             wall {:.1}s",
            self.sent,
            self.served,
            self.goodput() * 100.0,
            failures.join(" "),
            self.upstream_calls,
            self.upstream_429s,
            self.calls_in_cooldown,
            self.wall_secs,
        );
        println!(
            "  free {} (oracle {}, {:.2}%) paid {} cost ${:.4} (oracle ${:.4}) oracle served {} \
             failed {}; p50 {:.0} ms p99 {:.0} ms max {:.0} ms; retry times stated {} sane {}",
            self.free,
            self.oracle.free,
            self.free as f64 * 100.0 / self.oracle.free.max(1) as f64,
            self.paid,
            self.cost,
            self.oracle.cost,
            self.oracle.served,
            self.oracle.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.retry_stated,
            self.retry_sane,
        );
        println!(
            "  served by provider {:?} (oracle {:?})",
            self.by_provider, self.oracle.by_provider
        );
        if !self.refusals.is_empty() {
            println!("  upstream refusals {:?}", self.refusals);
        }
    }

    pub(crate) fn print_table(reports: &[Self]) {
        println!(
            "{:<28} {:>5} {:>8} {:>7} {:>5} {:>6} {:>13} {:>6} {:>17} {:>6} {:>6}",
            "scenario",
            "sent",
            "goodput",
            "failed",
            "429s",
            "in-cd",
            "free/oracle",
            "paid%",
            "cost/oracle $",
            "p50ms",
            "p99ms"
        );
        for report in reports {
            let failed = report.sent - report.served;
            println!(
                "{:<28} {:>5} {:>7.2}% {:>7} {:>5} {:>6} {:>13} {:>5.1}% {:>17} {:>6.0} {:>6.0}",
                report.name,
                report.sent,
                report.goodput() * 100.0,
                failed,
                report.upstream_429s,
                report.calls_in_cooldown,
                format!("{}/{}", report.free, report.oracle.free),
                report.paid as f64 * 100.0 / report.served.max(1) as f64,
                format!("{:.3}/{:.3}", report.cost, report.oracle.cost),
                report.p50_ms,
                report.p99_ms,
            );
        }
    }
}
