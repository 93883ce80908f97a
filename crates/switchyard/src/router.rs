//! The [`Router`]: expand a route into candidates, drop those that may not run now, rank the
//! rest, call the best, and fall back in the cascade each failure's class decides.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use switchyard_core::{
    Call, Candidate, ChatReply, ChatRequest, Classify, Clock, Credential, ErrorKind, Fingerprint,
    KeyId, ModelId, NextStep, Provider, ProviderError, ProviderId, RateLimitSnapshot, SystemClock,
    Usage, clamp_hint,
};
use switchyard_quota::{
    Estimate, MemoryLedger, Permit, QuotaConfig, QuotaError, QuotaLedger, Refusal,
};
use switchyard_score::{AdaptiveScorer, Outcome, Scorer};
use switchyard_vault::KeySource;

use crate::admin::DisabledKeys;
use crate::backoff::Backoff;
use crate::budget::{BudgetConfig, Budgets, SpendDay, SpendHold, SpendStore, SpendWriteBehind};
use crate::cache::{CacheConfig, CacheKey, ResponseCache};
use crate::circuit::{CircuitBreaker, CircuitConfig, CircuitState, Gate};
use crate::error::{BuildError, RouterError};
use crate::events::{AttemptEvent, EventSink, RequestEvent, RouterEvent, trace_event};
use crate::stats::{RouterStats, StatsCounters};
use crate::strategy::{CandidateView, RankContext, SplitMix64, Strategy, StrategyKind};
use crate::target::Target;
use crate::trace::{Answer, Attempt, Considered, Skip, Trace};
use crate::wait::{LoadGauge, LoadGuard, Ticket, WaitQueue};

/// A model's price, for cost-optimal ranking and events.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Price {
    /// Dollars per million input tokens.
    pub input_per_mtok: f64,
    /// Dollars per million output tokens.
    pub output_per_mtok: f64,
    /// Dollars per request, on top.
    pub per_request: f64,
}

impl Price {
    /// A model that costs nothing.
    pub const FREE: Self = Self { input_per_mtok: 0.0, output_per_mtok: 0.0, per_request: 0.0 };

    /// The cost of `prompt_tokens` in and `completion_tokens` out.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.per_request
            + self.input_per_mtok * prompt_tokens as f64 / 1e6
            + self.output_per_mtok * completion_tokens as f64 / 1e6
    }
}

/// Settings of the whole router.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// The most attempts one request makes (default 5).
    pub max_attempts: u32,
    /// A request's deadline unless its route or the call says otherwise (default 60 s).
    pub timeout: Duration,
    /// How many times a candidate is retried after an error that says "try the same again"
    /// (a 500) before the cascade moves on (default 1).
    pub retries_same: u32,
    /// The retry schedule.
    pub backoff: Backoff,
    /// Every candidate's circuit breaker.
    pub circuit: CircuitConfig,
    /// The output tokens assumed for a request that sets no `max_tokens`, for admission.
    pub default_max_tokens: u32,
    /// Seeds the router's random choices (exploration rolls, jitter); `None` seeds from the
    /// clock.
    pub seed: Option<u64>,
    /// How many recent request ids are remembered for quality feedback.
    pub recent_requests: usize,
    /// How long a request whose every candidate is momentarily out (cooling, a window spent)
    /// may wait for the first to free, within its deadline, instead of failing at once
    /// (default zero: fail at once). A route or a call may override it.
    pub max_wait: Duration,
    /// How many requests may wait for capacity at once; beyond it a request gets its quota
    /// error with the first reset at once (default 1024).
    pub wait_queue: usize,
    /// The most requests in flight on this router; beyond it `OVERLOADED` at once (default
    /// no cap).
    pub max_in_flight: Option<u32>,
    /// The response cache, when there is one (default none). Routes and calls opt in.
    pub cache: Option<CacheConfig>,
    /// A stream that sends no chunk for this long ends with [`StreamError::IdleTimeout`]
    /// (default 60 s; at most [`MAX_TIMEOUT`]).
    ///
    /// [`StreamError::IdleTimeout`]: crate::StreamError::IdleTimeout
    pub stream_idle_timeout: Duration,
    /// A stream still running this long after its request started ends with
    /// [`StreamError::DeadlineExceeded`] (default 10 min; at most [`MAX_TIMEOUT`]).
    ///
    /// [`StreamError::DeadlineExceeded`]: crate::StreamError::DeadlineExceeded
    pub stream_deadline: Duration,
}

/// The longest deadline the router keeps: request timeouts (router, route, call) and stream
/// timeouts above it are cut to it, so a configured `timeout_secs = 1e12` cannot overflow the
/// clock's arithmetic. One day: no chat call is meant to run longer.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            timeout: Duration::from_secs(60),
            retries_same: 1,
            backoff: Backoff::default(),
            circuit: CircuitConfig::default(),
            default_max_tokens: 1024,
            seed: None,
            recent_requests: 10_000,
            max_wait: Duration::ZERO,
            wait_queue: 1024,
            max_in_flight: None,
            cache: None,
            stream_idle_timeout: Duration::from_secs(60),
            stream_deadline: Duration::from_secs(600),
        }
    }
}

/// One route: a name clients ask for, expanded to its targets' candidates.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// The name.
    pub name: String,
    /// How its candidates are ranked.
    pub strategy: StrategyKind,
    /// Its targets, `provider/model`, in priority order.
    pub targets: Vec<String>,
    /// Whether a content-filtered answer may move to another provider (default no).
    pub content_filter_fallback: bool,
    /// Overrides [`RouterConfig::max_attempts`].
    pub max_attempts: Option<u32>,
    /// Overrides [`RouterConfig::timeout`].
    pub timeout: Option<Duration>,
    /// Overrides [`RouterConfig::max_wait`].
    pub max_wait: Option<Duration>,
    /// Whether answers on this route are cached (needs [`RouterConfig::cache`]; default no).
    pub cache: bool,
    /// A provider tried before the others whatever the strategy ranks (the strategy still
    /// orders each part).
    pub prefer_provider: Option<ProviderId>,
    /// Whether free candidates (no price, or a price of zero) are tried before paid ones,
    /// whatever the strategy ranks. The strategy still orders each tier; a preferred provider
    /// comes before both. `None` (the default): yes, except under [`StrategyKind::Priority`],
    /// whose configured order is the route saying otherwise.
    pub free_first: Option<bool>,
    /// Whether free candidates are tried most-headroom first (limits declared, or stated by
    /// headers; a candidate whose limits are unknown counts as untouched), so their windows
    /// drain evenly and none is left idle while another runs dry. Keys of one quota group
    /// share one headroom. Applies with free-first only. `None` (the default): yes, except
    /// under [`StrategyKind::Priority`].
    pub spread: Option<bool>,
    /// What to give up when every free candidate is momentarily spent but a paid one could
    /// serve now (default [`Prefer::Latency`]: pay now).
    pub prefer: Prefer,
}

/// What a route gives up when its free candidates are momentarily spent and a paid one
/// could serve at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefer {
    /// Pay now: call the paid candidate.
    #[default]
    Latency,
    /// Wait for the first free candidate to free, when it frees within the request's deadline
    /// (leaving room for the call itself); pay only when none will.
    Cost,
}

impl Prefer {
    /// The preference as configuration writes it: `latency` or `cost`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Cost => "cost",
        }
    }

    /// Reads a configured preference.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "latency" => Some(Self::Latency),
            "cost" => Some(Self::Cost),
            _ => None,
        }
    }
}

impl RouteConfig {
    /// A route with default policy.
    pub fn new<T: Into<String>>(
        name: impl Into<String>,
        strategy: StrategyKind,
        targets: impl IntoIterator<Item = T>,
    ) -> Self {
        Self {
            name: name.into(),
            strategy,
            targets: targets.into_iter().map(Into::into).collect(),
            content_filter_fallback: false,
            max_attempts: None,
            timeout: None,
            max_wait: None,
            cache: false,
            prefer_provider: None,
            free_first: None,
            spread: None,
            prefer: Prefer::Latency,
        }
    }
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    /// The request's id (the gateway passes `x-request-id`); made up when `None`.
    pub request_id: Option<String>,
    /// The client that asked (the gateway passes its client's name). The router does nothing
    /// with it but hand it to every event of the request, so a sink attributes them without a
    /// map of its own.
    pub client: Option<Arc<str>>,
    /// Overrides the route's deadline.
    pub timeout: Option<Duration>,
    /// Whether the answer's trace lists every candidate of the route with its learned score
    /// (the gateway's `x-switchyard-trace: 1`). Without it the trace holds the attempts and
    /// the candidates skipped on the way, which costs nothing extra.
    pub trace: bool,
    /// Overrides the route's [`RouteConfig::max_wait`] for this call (a batch waits up to its
    /// deadline).
    pub max_wait: Option<Duration>,
    /// Overrides the route's [`RouteConfig::cache`] for this call: `Some(false)` never reads
    /// nor stores a cached answer, `Some(true)` does even on a route that does not.
    pub cache: Option<bool>,
}

/// Per-model facts the router uses, keyed by `provider/model`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelFacts {
    /// The price, when known.
    pub price: Option<Price>,
    /// The context window in tokens, when known (for moving a too-long prompt to a larger
    /// window).
    pub context_window: Option<u32>,
    /// The weight for the weighted strategy (default 1).
    pub weight: Option<u32>,
    /// Whether the model takes images: a request with an image never goes to a model marked
    /// `Some(false)`; `None` (unknown) is tried.
    pub vision: Option<bool>,
}

/// One candidate with what the router keeps about it. Shared by every route that names it.
pub(crate) struct Slot {
    pub(crate) candidate: Candidate,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) credential: Option<Credential>,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) circuit: CircuitBreaker,
    pub(crate) in_flight: AtomicU32,
    /// Recent latency in microseconds (EWMA, alpha 0.3); 0 until the first answer.
    pub(crate) latency_us: AtomicU64,
    pub(crate) facts: ModelFacts,
}

impl Slot {
    /// Whether a call costs money: a known price above zero. Unpriced models count as free.
    pub(crate) fn is_paid(&self) -> bool {
        self.facts.price.is_some_and(|price| {
            price.per_request > 0.0 || price.input_per_mtok > 0.0 || price.output_per_mtok > 0.0
        })
    }

    fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    fn observe_latency(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        // A lost update under contention only drops one sample of an average.
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old * 7 + sample * 3) / 10 };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }
}

pub(crate) struct Route {
    pub(crate) name: String,
    /// The slots' candidates, in the same order, for strategies and the scorer.
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) strategy_name: &'static str,
    pub(crate) strategy: Arc<dyn Strategy>,
    pub(crate) slots: Vec<Arc<Slot>>,
    pub(crate) content_filter_fallback: bool,
    pub(crate) max_attempts: u32,
    pub(crate) timeout: Duration,
    pub(crate) max_wait: Duration,
    pub(crate) cache: bool,
    pub(crate) prefer_provider: Option<ProviderId>,
    pub(crate) free_first: bool,
    pub(crate) spread: bool,
    pub(crate) prefer: Prefer,
    /// Whether any candidate has a price above zero: without one, free-first orders nothing.
    pub(crate) any_paid: bool,
}

/// Builds a [`Router`]. Only providers and routes are required: the clock defaults to the
/// system clock, the quota ledger to an in-memory one with no declared limits (it still
/// learns from headers and 429s), the scorer to [`AdaptiveScorer`].
#[derive(Default)]
pub struct RouterBuilder {
    clock: Option<Arc<dyn Clock>>,
    providers: Vec<Arc<dyn Provider>>,
    credentials: Vec<(ProviderId, Credential)>,
    key_sources: Vec<Box<dyn KeySource>>,
    ledger: Option<Arc<dyn QuotaLedger>>,
    scorer: Option<Arc<dyn Scorer>>,
    routes: Vec<RouteConfig>,
    facts: HashMap<String, ModelFacts>,
    declared: Vec<(ProviderId, ModelId)>,
    sinks: Vec<Arc<dyn EventSink>>,
    config: RouterConfig,
    budgets: Option<(BudgetConfig, Arc<dyn SpendStore>)>,
    carry: Option<Router>,
}

impl RouterBuilder {
    /// The clock everything runs on.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds a provider.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// Adds one key of a provider.
    #[must_use]
    pub fn credential(mut self, provider: impl Into<ProviderId>, credential: Credential) -> Self {
        self.credentials.push((provider.into(), credential));
        self
    }

    /// Adds every key a source offers (the vault, the environment).
    #[must_use]
    pub fn keys(mut self, source: impl KeySource + 'static) -> Self {
        self.key_sources.push(Box::new(source));
        self
    }

    /// The quota ledger (in memory, Redis, ...).
    #[must_use]
    pub fn quota(mut self, ledger: Arc<dyn QuotaLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The scorer.
    #[must_use]
    pub fn scorer(mut self, scorer: Arc<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Adds a route of `targets` (`provider/model`) ranked by `strategy`.
    #[must_use]
    pub fn route<T: Into<String>>(
        self,
        name: impl Into<String>,
        strategy: StrategyKind,
        targets: impl IntoIterator<Item = T>,
    ) -> Self {
        self.route_config(RouteConfig::new(name, strategy, targets))
    }

    /// Adds a route with its whole policy.
    #[must_use]
    pub fn route_config(mut self, route: RouteConfig) -> Self {
        self.routes.push(route);
        self
    }

    /// Facts about one `provider/model`: price, context window, weight. Declares the model
    /// too (see [`models`](Self::models)).
    #[must_use]
    pub fn model(mut self, target: impl Into<String>, facts: ModelFacts) -> Self {
        self.facts.insert(target.into(), facts);
        self
    }

    /// Declares models `provider` serves, so a client may name them directly as
    /// `provider/model`. Only declared models and route targets are routable: any other name
    /// is refused with `UNKNOWN_MODEL`, and nothing is kept for it.
    #[must_use]
    pub fn models<M: Into<ModelId>>(
        mut self,
        provider: impl Into<ProviderId>,
        models: impl IntoIterator<Item = M>,
    ) -> Self {
        let provider = provider.into();
        self.declared.extend(models.into_iter().map(|model| (provider.clone(), model.into())));
        self
    }

    /// Receives every attempt and request event.
    #[must_use]
    pub fn event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Tracks spend per route and provider per day and enforces `config`'s budgets, keeping
    /// the spend in `store` across restarts.
    #[must_use]
    pub fn budgets(mut self, config: BudgetConfig, store: Arc<dyn SpendStore>) -> Self {
        self.budgets = Some((config, store));
        self
    }

    /// Carries over what must outlive `previous` when this router replaces it (a reload):
    /// today's spend and the reservations of its calls still in flight (the two routers
    /// keep one set of books, so neither saves over the other's spend), and the keys an
    /// operator disabled (those the new configuration still has).
    #[must_use]
    pub fn carry_over(mut self, previous: &Router) -> Self {
        self.carry = Some(previous.clone());
        self
    }

    /// Router-wide settings.
    #[must_use]
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the router.
    ///
    /// # Errors
    /// A route that names an unknown provider, an unreadable target, an empty or duplicated
    /// route, a key source that cannot be read, or a model without a price that a budget
    /// covers ([`BuildError::Unpriced`]).
    pub fn build(mut self) -> Result<Router, BuildError> {
        self.config.timeout = self.config.timeout.min(MAX_TIMEOUT);
        self.config.stream_idle_timeout = self.config.stream_idle_timeout.min(MAX_TIMEOUT);
        self.config.stream_deadline = self.config.stream_deadline.min(MAX_TIMEOUT);
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ledger = self.ledger.unwrap_or_else(|| {
            Arc::new(MemoryLedger::new(Arc::clone(&clock), QuotaConfig::default()))
        });
        let scorer =
            self.scorer.unwrap_or_else(|| Arc::new(AdaptiveScorer::new(Arc::clone(&clock))));
        let providers: HashMap<ProviderId, Arc<dyn Provider>> =
            self.providers.into_iter().map(|provider| (provider.id().clone(), provider)).collect();

        let mut credentials: HashMap<ProviderId, Vec<Credential>> = HashMap::new();
        let mut seen: Vec<(ProviderId, Fingerprint)> = Vec::new();
        let mut add = |provider: ProviderId, credential: Credential| {
            let fingerprint = credential.fingerprint();
            // The same secret from two sources is one key: it has one quota.
            if seen.iter().any(|(p, f)| *p == provider && *f == fingerprint) {
                return;
            }
            seen.push((provider.clone(), fingerprint));
            credentials.entry(provider).or_default().push(credential);
        };
        for (provider, credential) in self.credentials {
            add(provider, credential);
        }
        for source in &self.key_sources {
            let keys = source.keys().map_err(|error| BuildError::Keys {
                source_name: source.describe(),
                message: error.to_string(),
            })?;
            for key in keys {
                add(key.provider, key.credential);
            }
        }

        let seed = self.config.seed.unwrap_or_else(|| {
            let now = clock.utc();
            now.timestamp_nanos_opt().map_or(0x5eed, |nanos| nanos as u64)
        });
        // Every name in one spelling: facts and declarations are keyed by canonical targets.
        let mut facts: HashMap<String, ModelFacts> = HashMap::new();
        let mut declared: HashSet<Target> = HashSet::new();
        for (text, model_facts) in self.facts {
            let Ok(target) = text.parse::<Target>() else { continue };
            let Some(provider) = providers.get(&target.provider) else { continue };
            let target = target.canonical(provider.protocol());
            facts.insert(target.to_string(), model_facts);
            declared.insert(target);
        }
        for (provider_id, model) in self.declared {
            let Some(provider) = providers.get(&provider_id) else { continue };
            let target = Target { provider: provider_id, model }.canonical(provider.protocol());
            declared.insert(target);
        }
        let books = self
            .carry
            .as_ref()
            .and_then(|previous| previous.inner.budgets.as_ref())
            .map(|budgets| budgets.books());
        let budgets = self.budgets.map(|(config, store)| {
            Arc::new(Budgets::new(config, store, Arc::clone(&clock), books))
        });
        let mut inner = Inner {
            clock,
            ledger,
            scorer,
            providers,
            credentials,
            facts,
            declared,
            valid: Vec::new(),
            slots: DashMap::new(),
            routes: HashMap::new(),
            sinks: self.sinks,
            seed,
            counter: AtomicU64::new(0),
            stats: StatsCounters::default(),
            recent: RecentRequests::default(),
            waiting: Arc::new(WaitQueue::new(self.config.wait_queue)),
            load: LoadGauge::default(),
            cache: self.config.cache.map(ResponseCache::new),
            budgets,
            config: self.config,
            disabled: DisabledKeys::default(),
        };
        let mut routes = HashMap::new();
        for route in self.routes {
            if routes.contains_key(&route.name) {
                return Err(BuildError::DuplicateRoute(route.name));
            }
            let built = inner.build_route(&route)?;
            for slot in &built.slots {
                inner.declared.insert(Target {
                    provider: slot.candidate.provider.clone(),
                    model: slot.candidate.model.clone(),
                });
            }
            routes.insert(route.name.clone(), Arc::new(built));
        }
        inner.routes = routes;
        inner.check_prices()?;
        let mut valid: Vec<String> = inner.routes.keys().cloned().collect();
        valid.sort();
        let targets: BTreeSet<String> = inner.declared.iter().map(ToString::to_string).collect();
        valid.extend(targets.into_iter().filter(|target| !inner.routes.contains_key(target)));
        inner.valid = valid;
        let router = Router { inner: Arc::new(inner) };
        if let Some(previous) = &self.carry {
            router.restore_admin_state(&previous.admin_state());
        }
        Ok(router)
    }
}

/// Routes chat requests across providers and keys. Cheap to clone; clones share all state.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ledger: Arc<dyn QuotaLedger>,
    pub(crate) scorer: Arc<dyn Scorer>,
    providers: HashMap<ProviderId, Arc<dyn Provider>>,
    credentials: HashMap<ProviderId, Vec<Credential>>,
    /// Keyed by canonical `provider/model`.
    facts: HashMap<String, ModelFacts>,
    /// The `provider/model`s a client may name directly, canonical: declared models and
    /// route targets. Fixed at build: a client never adds to it.
    declared: HashSet<Target>,
    /// Route names, then declared targets, sorted: what an `UNKNOWN_MODEL` error lists.
    valid: Vec<String>,
    pub(crate) slots: DashMap<Candidate, Arc<Slot>>,
    pub(crate) routes: HashMap<String, Arc<Route>>,
    sinks: Vec<Arc<dyn EventSink>>,
    pub(crate) config: RouterConfig,
    seed: u64,
    counter: AtomicU64,
    pub(crate) stats: StatsCounters,
    recent: RecentRequests,
    pub(crate) waiting: Arc<WaitQueue>,
    pub(crate) load: LoadGauge,
    cache: Option<ResponseCache>,
    pub(crate) budgets: Option<Arc<Budgets>>,
    pub(crate) disabled: DisabledKeys,
}

/// A key id for a provider that needs none (a local Ollama).
const KEYLESS: &str = "keyless";

impl Inner {
    fn build_route(&self, route: &RouteConfig) -> Result<Route, BuildError> {
        if route.targets.is_empty() {
            return Err(BuildError::EmptyRoute(route.name.clone()));
        }
        let mut slots = Vec::new();
        for text in &route.targets {
            let target: Target = text
                .parse()
                .map_err(|source| BuildError::Target { route: route.name.clone(), source })?;
            let target = match self.providers.get(&target.provider) {
                Some(provider) => target.canonical(provider.protocol()),
                None => target,
            };
            let Some(expanded) = self.expand(&target) else {
                return Err(BuildError::UnknownProvider {
                    route: route.name.clone(),
                    target: text.clone(),
                    provider: target.provider.to_string(),
                });
            };
            slots.extend(expanded);
        }
        // The priority strategy is an order the operator wrote down: tiers stay off unless
        // asked for.
        let explicit_order = matches!(route.strategy, StrategyKind::Priority);
        let any_paid = slots.iter().any(|slot| slot.is_paid());
        Ok(Route {
            name: route.name.clone(),
            candidates: slots.iter().map(|slot| slot.candidate.clone()).collect(),
            strategy_name: route.strategy.name(),
            strategy: route.strategy.build(),
            slots,
            content_filter_fallback: route.content_filter_fallback,
            max_attempts: route.max_attempts.unwrap_or(self.config.max_attempts).max(1),
            timeout: route.timeout.unwrap_or(self.config.timeout).min(MAX_TIMEOUT),
            max_wait: route.max_wait.unwrap_or(self.config.max_wait),
            cache: route.cache,
            prefer_provider: route.prefer_provider.clone(),
            free_first: route.free_first.unwrap_or(!explicit_order),
            spread: route.spread.unwrap_or(!explicit_order),
            prefer: route.prefer,
            any_paid,
        })
    }

    /// Refuses a model without a price that a route's or its provider's budget covers: its
    /// calls could not be counted, so the budget could be walked around through it.
    fn check_prices(&self) -> Result<(), BuildError> {
        let Some(budgets) = &self.budgets else { return Ok(()) };
        let config = budgets.config();
        let mut routes: Vec<&Arc<Route>> = self.routes.values().collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        for route in routes {
            for slot in &route.slots {
                if slot.facts.price.is_some() {
                    continue;
                }
                let provider = &slot.candidate.provider;
                let budget = if config.per_route.contains_key(&route.name) {
                    format!("route {}", route.name)
                } else if config.per_provider.contains_key(provider) {
                    format!("provider {provider}")
                } else {
                    continue;
                };
                let target = format!("{provider}/{}", slot.candidate.model);
                return Err(BuildError::Unpriced { target, budget });
            }
        }
        let mut declared: Vec<String> = self
            .declared
            .iter()
            .filter(|target| config.per_provider.contains_key(&target.provider))
            .map(ToString::to_string)
            .filter(|target| self.facts.get(target).is_none_or(|facts| facts.price.is_none()))
            .collect();
        declared.sort();
        if let Some(target) = declared.into_iter().next() {
            let provider = target.split_once('/').map_or("", |(provider, _)| provider);
            let budget = format!("provider {provider}");
            return Err(BuildError::Unpriced { target, budget });
        }
        Ok(())
    }

    /// The candidates of one target: one per key of its provider (one keyless candidate for
    /// a provider with no keys).
    fn expand(&self, target: &Target) -> Option<Vec<Arc<Slot>>> {
        let provider = self.providers.get(&target.provider)?;
        let facts = self.facts.get(&target.to_string()).copied().unwrap_or_default();
        let keys: Vec<Option<&Credential>> = match self.credentials.get(&target.provider) {
            Some(keys) if !keys.is_empty() => keys.iter().map(Some).collect(),
            _ => vec![None],
        };
        let slots = keys
            .into_iter()
            .map(|credential| {
                let key = credential.map_or_else(|| KeyId::new(KEYLESS), |c| c.id().clone());
                let candidate = Candidate {
                    provider: target.provider.clone(),
                    key,
                    model: target.model.clone(),
                };
                let slot = self.slots.entry(candidate.clone()).or_insert_with(|| {
                    Arc::new(Slot {
                        fingerprint: credential
                            .map_or_else(|| Fingerprint::of(KEYLESS), Credential::fingerprint),
                        candidate,
                        provider: Arc::clone(provider),
                        credential: credential.cloned(),
                        circuit: CircuitBreaker::new(self.config.circuit),
                        in_flight: AtomicU32::new(0),
                        latency_us: AtomicU64::new(0),
                        facts,
                    })
                });
                Arc::clone(&slot)
            })
            .collect();
        Some(slots)
    }

    fn rng(&self) -> SplitMix64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64(self.seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64();
        rng
    }

    /// Whether anyone listens for events: building one costs allocations, so the hot path
    /// skips it when nobody does.
    pub(crate) fn wants_events(&self) -> bool {
        !self.sinks.is_empty()
            || tracing::enabled!(target: "switchyard::attempt", tracing::Level::INFO)
    }

    fn emit(&self, event: RouterEvent) {
        trace_event(&event);
        for sink in &self.sinks {
            sink.record(&event);
        }
    }
}

/// What one successful attempt hands back to the cascade.
pub(crate) struct Served<T> {
    pub(crate) value: T,
    pub(crate) rate_limits: RateLimitSnapshot,
    pub(crate) upstream_request_id: Option<String>,
    /// Usage known when the attempt ended (plain calls); a stream learns it later.
    pub(crate) usage: Option<Usage>,
}

/// The outcome of a cascade: the value, the slot that served it and its permit, still to
/// be settled by the caller.
pub(crate) struct Routed<T> {
    pub(crate) value: T,
    pub(crate) slot: Arc<Slot>,
    pub(crate) permit: PermitGuard,
    /// The call's estimated cost, held against the budgets until settled.
    pub(crate) spend: Option<SpendHold>,
    pub(crate) attempt: AttemptGuard,
    pub(crate) trace: Trace,
    pub(crate) request_id: String,
    /// The client that asked ([`RequestOptions::client`]), for the request's events.
    pub(crate) client: Option<Arc<str>>,
    pub(crate) started: Instant,
    pub(crate) upstream_time: Duration,
    pub(crate) route: Arc<Route>,
    /// Counts the request against the overload cap while it lives.
    pub(crate) load: Option<LoadGuard>,
}

/// Holds a permit until it is settled or released. Dropped while still holding one — the
/// caller went away mid-call — it settles it with the estimate: an attempt whose outcome is
/// unknown counts as spent, so a retry can never overspend a key.
pub(crate) struct PermitGuard {
    ledger: Arc<dyn QuotaLedger>,
    permit: Option<Permit>,
    estimate: Estimate,
}

impl PermitGuard {
    fn new(ledger: Arc<dyn QuotaLedger>, permit: Permit, estimate: Estimate) -> Self {
        Self { ledger, permit: Some(permit), estimate }
    }

    /// The permit, while it is held.
    pub(crate) fn held(&self) -> Option<&Permit> {
        self.permit.as_ref()
    }

    pub(crate) fn estimated_usage(&self) -> Usage {
        estimate_usage(self.estimate)
    }

    pub(crate) async fn settle(mut self, usage: &Usage) {
        if let Some(permit) = self.permit.take()
            && let Err(error) = self.ledger.settle(permit, usage).await
        {
            tracing::warn!(error = %error, "settling a permit failed");
        }
    }

    pub(crate) async fn release(mut self) {
        if let Some(permit) = self.permit.take()
            && let Err(error) = self.ledger.release(permit).await
        {
            tracing::warn!(error = %error, "releasing a permit failed");
        }
    }
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else { return };
        let usage = estimate_usage(self.estimate);
        let ledger = Arc::clone(&self.ledger);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = ledger.settle(permit, &usage).await {
                        tracing::warn!(error = %error, "settling an abandoned permit failed");
                    }
                });
            }
            // No runtime left (shutdown): the reservation holds until its windows pass,
            // which errs on the side of never overspending.
            Err(_) => drop(permit),
        }
    }
}

fn estimate_usage(estimate: Estimate) -> Usage {
    Usage::new(
        u32::try_from(estimate.prompt_tokens).unwrap_or(u32::MAX),
        u32::try_from(estimate.output_tokens).unwrap_or(u32::MAX),
    )
}

/// Counts an attempt in flight on its slot and, for a half-open circuit's probe, gives the
/// probe slot back if the attempt ends without a verdict.
pub(crate) struct AttemptGuard {
    slot: Arc<Slot>,
    probe: bool,
}

impl AttemptGuard {
    fn new(slot: Arc<Slot>, probe: bool) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { slot, probe }
    }

    /// The circuit has its verdict; nothing to give back.
    pub(crate) fn judged(&mut self) {
        self.probe = false;
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            self.slot.circuit.release_probe();
        }
    }
}

/// How a request failed: its code, its attempts, the candidate of its last attempt.
type Failure<'a> = (&'static str, u32, Option<&'a Candidate>);

/// How one candidate ended up for this request, for the final error.
#[derive(Clone, Debug)]
enum Verdict {
    /// Its key is out of quota for a window (until, if known).
    Spent(Option<chrono::DateTime<chrono::Utc>>),
    /// Its key has quota but could not take this request now.
    Busy(Option<chrono::DateTime<chrono::Utc>>),
    /// Its key is invalid or cannot pay.
    Invalid,
    /// It failed, or its provider or circuit is unhealthy.
    Failed,
    /// Its estimated cost does not fit a budget today.
    OverBudget,
}

impl Router {
    /// Starts a builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// Answers `request` through `route` (a route's name, or `provider/model` directly).
    ///
    /// # Errors
    /// [`RouterError`]: why nothing could serve, typed.
    pub async fn chat(&self, route: &str, request: &ChatRequest) -> Result<Answer, RouterError> {
        self.chat_with(route, request, RequestOptions::default()).await
    }

    /// As [`chat`](Self::chat), with per-call options.
    ///
    /// # Errors
    /// [`RouterError`]: why nothing could serve, typed.
    pub async fn chat_with(
        &self,
        route: &str,
        request: &ChatRequest,
        options: RequestOptions,
    ) -> Result<Answer, RouterError> {
        let cache_key = self.cache_key(route, request, &options);
        if let (Some(cache), Some(key)) = (&self.inner.cache, &cache_key)
            && let Some(entry) = cache.get(key, self.inner.clock.now())
        {
            return Ok(self.cached_answer(route, &options, &entry));
        }
        let routed = self
            .cascade(route, request, &options, |slot| async move {
                let call = Call::new(request, &slot.candidate.model, slot.credential.as_ref());
                let ChatReply { response, rate_limits, upstream_request_id } =
                    slot.provider.chat(call).await?;
                let usage = Some(response.usage);
                Ok(Served { value: response, rate_limits, upstream_request_id, usage })
            })
            .await?;
        let Routed {
            value: response,
            slot,
            permit,
            spend,
            attempt,
            trace,
            request_id,
            client,
            started,
            upstream_time,
            route,
            load,
        } = routed;
        permit.settle(&response.usage).await;
        drop(attempt);
        let cost = slot.facts.price.map(|price| {
            price.cost(
                u64::from(response.usage.prompt_tokens),
                u64::from(response.usage.completion_tokens),
            )
        });
        self.settle_spend(spend, &route, &slot, cost);
        let answer = Answer {
            request_id,
            served_by: slot.candidate.clone(),
            fingerprint: slot.fingerprint,
            n_attempts: u32::try_from(trace.attempts.len()).unwrap_or(u32::MAX),
            overhead: self
                .inner
                .clock
                .now()
                .saturating_duration_since(started)
                .saturating_sub(upstream_time),
            response,
            trace,
            cached: false,
            cost,
        };
        if let (Some(cache), Some(key)) = (&self.inner.cache, cache_key) {
            cache.insert(
                key,
                &answer.response,
                &answer.served_by,
                answer.fingerprint,
                self.inner.clock.now(),
            );
        }
        self.finish_request(
            &route,
            &answer.request_id,
            client.as_ref(),
            started,
            Ok((&answer.served_by, answer.n_attempts, answer.response.usage)),
            cost,
        );
        drop(load);
        Ok(answer)
    }

    /// Settles a served call's money: its hold when it reserved one, a plain record when not.
    pub(crate) fn settle_spend(
        &self,
        hold: Option<SpendHold>,
        route: &Route,
        slot: &Slot,
        cost: Option<f64>,
    ) {
        match (hold, &self.inner.budgets) {
            (Some(hold), _) => hold.settle(cost.unwrap_or(0.0)),
            (None, Some(budgets)) => {
                if let Some(cost) = cost {
                    budgets.record(&route.name, &slot.candidate.provider, cost);
                }
            }
            (None, None) => {}
        }
    }

    /// The cache key of a call that reads and stores cached answers; `None` when it does not.
    fn cache_key(
        &self,
        route: &str,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Option<CacheKey> {
        self.inner.cache.as_ref()?;
        let wanted = options
            .cache
            .unwrap_or_else(|| self.inner.routes.get(route).is_some_and(|route| route.cache));
        if wanted { ResponseCache::key(route, request) } else { None }
    }

    /// A cached answer, served again: no upstream call, no quota, no attempt.
    fn cached_answer(
        &self,
        route: &str,
        options: &RequestOptions,
        entry: &crate::cache::Entry,
    ) -> Answer {
        let request_id = options
            .request_id
            .clone()
            .unwrap_or_else(|| format!("req_{:016x}", self.inner.rng().next_u64()));
        self.inner.stats.request_cached();
        Answer {
            request_id,
            response: entry.response.clone(),
            served_by: entry.served_by.clone(),
            fingerprint: entry.fingerprint,
            n_attempts: 0,
            overhead: Duration::ZERO,
            trace: Trace { route: route.to_owned(), ..Trace::default() },
            cached: true,
            cost: Some(0.0),
        }
    }

    /// Records quality feedback (0..=1) for the candidate that served a recent request.
    ///
    /// # Errors
    /// [`FeedbackError::UnknownRequest`] when the id is unknown or too old;
    /// [`FeedbackError::OutOfRange`] when `quality` is outside 0..=1.
    pub fn feedback(&self, request_id: &str, quality: f64) -> Result<Candidate, FeedbackError> {
        let candidate = self.inner.recent.get(request_id).ok_or_else(|| {
            // The id is the client's: repeated in part only.
            FeedbackError::UnknownRequest(request_id.chars().take(MAX_REQUEST_ID_LEN).collect())
        })?;
        self.inner
            .scorer
            .record_quality(&candidate, quality)
            .map_err(|_| FeedbackError::OutOfRange(quality))?;
        Ok(candidate)
    }

    /// The router's statistics now.
    pub async fn stats(&self) -> RouterStats {
        crate::stats::collect(&self.inner).await
    }

    /// The circuit state of a candidate the router knows.
    pub fn circuit_state(&self, candidate: &Candidate) -> Option<CircuitState> {
        let now = self.inner.clock.now();
        self.inner.slots.get(candidate).map(|slot| slot.circuit.state(now))
    }

    /// The quota ledger the router admits through.
    pub fn ledger(&self) -> &Arc<dyn QuotaLedger> {
        &self.inner.ledger
    }

    /// The scorer the router learns with.
    pub fn scorer(&self) -> &Arc<dyn Scorer> {
        &self.inner.scorer
    }

    /// The candidates of a route, in configured order.
    pub fn candidates(&self, route: &str) -> Option<Vec<Candidate>> {
        self.inner
            .routes
            .get(route)
            .map(|route| route.slots.iter().map(|slot| slot.candidate.clone()).collect())
    }

    /// Requests waiting now for a candidate to free (the bounded wait).
    pub fn waiting(&self) -> usize {
        self.inner.waiting.len()
    }

    /// Today's spend per route and provider, when budgets are configured.
    pub fn spend(&self) -> Option<SpendDay> {
        self.inner.budgets.as_ref().map(|budgets| budgets.today(self.inner.clock.utc()))
    }

    /// Starts saving this router's spend to its store from a background thread, at most
    /// every `interval` (the CLI uses one second), on [`SpendWriteBehind::flush`] and once
    /// more when the writer is dropped. `None` without budgets. Without a writer, spend is
    /// saved only when the router's last clone is dropped.
    ///
    /// # Errors
    /// [`SpendError`](crate::SpendError) when the thread cannot be started.
    pub fn spend_write_behind(
        &self,
        interval: Duration,
    ) -> Result<Option<SpendWriteBehind>, crate::SpendError> {
        self.inner
            .budgets
            .as_ref()
            .map(|budgets| SpendWriteBehind::start(budgets, interval))
            .transpose()
    }

    /// Saves today's spend now if it changed, blocking on the store (call it off the
    /// request path, at shutdown or before a reload).
    ///
    /// # Errors
    /// [`SpendError`](crate::SpendError) when the store cannot be written.
    pub fn flush_spend(&self) -> Result<(), crate::SpendError> {
        self.inner.budgets.as_ref().map_or(Ok(()), |budgets| budgets.flush())
    }

    /// Requests of the wait queue asleep until a candidate frees, leaving out those retrying
    /// admission this moment.
    pub fn sleeping(&self) -> usize {
        self.inner.waiting.asleep(self.inner.clock.now())
    }

    /// Answers many requests through `route`, at most `max_concurrent` at a time, and returns
    /// each one's outcome in the order given. Each request may wait for capacity up to its
    /// deadline (the bounded wait), so with declared limits a batch paces itself to the
    /// quotas instead of collecting 429s.
    pub async fn batch(
        &self,
        route: &str,
        requests: impl IntoIterator<Item = ChatRequest>,
        max_concurrent: usize,
    ) -> Vec<Result<Answer, RouterError>> {
        use futures_util::StreamExt as _;
        let options = RequestOptions { max_wait: Some(Duration::MAX), ..RequestOptions::default() };
        // Unordered, so an early request that waits does not hold later finished ones in
        // the concurrency budget; the results are put back in order at the end.
        let mut results: Vec<(usize, Result<Answer, RouterError>)> =
            futures_util::stream::iter(requests.into_iter().enumerate())
                .map(|(idx, request)| {
                    let options = options.clone();
                    async move { (idx, self.chat_with(route, &request, options).await) }
                })
                .buffer_unordered(max_concurrent.max(1))
                .collect()
                .await;
        results.sort_unstable_by_key(|(idx, _)| *idx);
        results.into_iter().map(|(_, result)| result).collect()
    }

    /// Requests in flight now; counted only when [`RouterConfig::max_in_flight`] is set.
    pub fn in_flight(&self) -> u32 {
        self.inner.load.in_flight()
    }

    /// The names of the configured routes.
    pub fn route_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.routes.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    fn resolve(&self, name: &str) -> Result<Arc<Route>, RouterError> {
        if let Some(route) = self.inner.routes.get(name) {
            return Ok(Arc::clone(route));
        }
        // `provider/model` directly, when the configuration declares it: a one-target route
        // over the provider's keys, in order. Anything else is refused before any state is
        // touched, so a client cannot grow the router by naming things.
        let unknown = || RouterError::unknown_model(name, &self.inner.valid);
        let target: Target = name.parse().map_err(|_| unknown())?;
        let provider = self.inner.providers.get(&target.provider).ok_or_else(unknown)?;
        let target = target.canonical(provider.protocol());
        if !self.inner.declared.contains(&target) {
            return Err(unknown());
        }
        let slots = self.inner.expand(&target).ok_or_else(unknown)?;
        Ok(Arc::new(Route {
            name: target.to_string(),
            candidates: slots.iter().map(|slot| slot.candidate.clone()).collect(),
            strategy_name: StrategyKind::Priority.name(),
            strategy: StrategyKind::Priority.build(),
            slots,
            content_filter_fallback: false,
            max_attempts: self.inner.config.max_attempts.max(1),
            timeout: self.inner.config.timeout,
            max_wait: self.inner.config.max_wait,
            cache: false,
            prefer_provider: None,
            free_first: false,
            spread: false,
            prefer: Prefer::Latency,
            any_paid: false,
        }))
    }

    /// A request ended: served (`Ok`: what served it, attempts, usage) or failed (`Err`: its
    /// code, attempts, the candidate of its last attempt).
    pub(crate) fn finish_request(
        &self,
        route: &Route,
        request_id: &str,
        client: Option<&Arc<str>>,
        started: Instant,
        outcome: Result<(&Candidate, u32, Usage), Failure<'_>>,
        cost: Option<f64>,
    ) {
        let inner = &self.inner;
        match outcome {
            Ok((candidate, n_attempts, usage)) => {
                inner.stats.request_served(n_attempts, usage);
                inner.recent.insert(request_id, candidate.clone(), inner.config.recent_requests);
            }
            Err((code, ..)) => inner.stats.request_failed(code),
        }
        if !inner.wants_events() {
            return;
        }
        let latency = inner.clock.now().saturating_duration_since(started);
        let (served_by, attempted, n_attempts, usage, error) = match outcome {
            Ok((candidate, n_attempts, usage)) => {
                (Some(candidate.clone()), Some(candidate.clone()), n_attempts, Some(usage), None)
            }
            Err((code, n_attempts, attempted)) => {
                (None, attempted.cloned(), n_attempts, None, Some(code))
            }
        };
        inner.emit(RouterEvent::Request(RequestEvent {
            request_id: request_id.to_owned(),
            route: route.name.clone(),
            client: client.cloned(),
            served_by,
            attempted,
            n_attempts,
            latency,
            usage,
            cost,
            error,
        }));
    }

    /// A stream that reached its caller ended before its end: broken or timed out upstream
    /// (`counted`: a failed request in the stats), or dropped by its caller (not counted: no
    /// one failed). The event names what served it, its usage so far and its cost, so
    /// analytics see the money a cut stream spent.
    #[expect(clippy::too_many_arguments, reason = "one call site per way a stream ends")]
    pub(crate) fn stream_cut(
        &self,
        route: &Route,
        request_id: &str,
        client: Option<&Arc<str>>,
        started: Instant,
        candidate: &Candidate,
        n_attempts: u32,
        usage: Usage,
        code: &'static str,
        cost: Option<f64>,
        counted: bool,
    ) {
        let inner = &self.inner;
        if counted {
            inner.stats.request_failed(code);
        }
        if !inner.wants_events() {
            return;
        }
        inner.emit(RouterEvent::Request(RequestEvent {
            request_id: request_id.to_owned(),
            route: route.name.clone(),
            client: client.cloned(),
            served_by: Some(candidate.clone()),
            attempted: Some(candidate.clone()),
            n_attempts,
            latency: inner.clock.now().saturating_duration_since(started),
            usage: Some(usage),
            cost,
            error: Some(code),
        }));
    }

    /// The cascade, shared by plain and streamed calls: `call` makes one attempt of a slot.
    pub(crate) async fn cascade<T, F, Fut>(
        &self,
        route_name: &str,
        request: &ChatRequest,
        options: &RequestOptions,
        call: F,
    ) -> Result<Routed<T>, RouterError>
    where
        F: Fn(Arc<Slot>) -> Fut,
        Fut: Future<Output = Result<Served<T>, ProviderError>>,
    {
        let inner = &self.inner;
        let clock = &inner.clock;
        let started = clock.now();
        let load = inner.load.enter(inner.config.max_in_flight).map_err(|in_flight| {
            inner.stats.request_failed("OVERLOADED");
            RouterError::Overloaded { in_flight, limit: inner.config.max_in_flight.unwrap_or(0) }
        })?;
        let route = self.resolve(route_name)?;
        let mut rng = inner.rng();
        let request_id =
            options.request_id.clone().unwrap_or_else(|| format!("req_{:016x}", rng.next_u64()));
        let timeout = options.timeout.unwrap_or(route.timeout).min(MAX_TIMEOUT);
        let deadline = started.checked_add(timeout).unwrap_or(started);
        let estimate = Estimate::of(request, inner.config.default_max_tokens);
        let n_slots = route.slots.len();
        let mut trace = Trace {
            route: route.name.clone(),
            strategy: route.strategy_name.to_owned(),
            ..Trace::default()
        };
        let mut verdicts: Vec<Option<Verdict>> = vec![None; n_slots];
        let mut retries: Vec<u32> = vec![0; n_slots];
        let mut upstream_time = Duration::ZERO;
        let mut first_ranking = true;
        let max_wait = options.max_wait.unwrap_or(route.max_wait);
        let mut ticket: Option<Ticket> = None;
        let mut may_wait_for_free = route.prefer == Prefer::Cost;
        let mut shunned: Vec<ProviderId> = Vec::new();
        rule_out_unsuitable(&route, request, &mut verdicts, &mut trace);
        rule_out_disabled(&inner.disabled, &route, &mut verdicts, &mut trace);

        // `held`: the trace, for an error that does not carry it.
        let fail = |error: RouterError, held: Option<&Trace>, route: &Route, request_id: &str| {
            let attempts = error.trace().or(held).map_or(&[][..], |trace| &trace.attempts[..]);
            let n_attempts = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
            let attempted = attempts.last().map(|attempt| &attempt.candidate);
            self.finish_request(
                route,
                request_id,
                options.client.as_ref(),
                started,
                Err((error.code(), n_attempts, attempted)),
                None,
            );
            error
        };
        if let Some(budgets) = &inner.budgets {
            let utc = clock.utc();
            if rule_out_over_budget(budgets, &route, estimate, &mut verdicts, &mut trace, utc) {
                let (spent, budget) = budgets.route_status(&route.name, utc);
                let error = RouterError::BudgetExceeded {
                    route: route.name.clone(),
                    spent,
                    budget,
                    resets_at: budgets.resets_at(utc),
                    trace: Box::new(trace),
                };
                return Err(fail(error, None, &route, &request_id));
            }
        }

        loop {
            if trace.attempts.len() >= route.max_attempts as usize {
                break;
            }
            let now = clock.now();
            if now >= deadline {
                let error = RouterError::DeadlineExceeded {
                    route: route.name.clone(),
                    after: timeout,
                    trace: Box::new(trace),
                };
                return Err(fail(error, None, &route, &request_id));
            }
            // Candidates still in play. An open circuit is found when the walk reaches it, so
            // the common case ranks the route's own candidate list without copying it.
            let open: Vec<usize> = (0..n_slots).filter(|&idx| verdicts[idx].is_none()).collect();
            if open.is_empty() {
                // Everything is out. Wait for the first to free if it frees in time and the
                // queue has room; otherwise answer now with the first reset.
                if max_wait.is_zero() {
                    break;
                }
                let wait_limit =
                    started.checked_add(max_wait).map_or(deadline, |limit| deadline.min(limit));
                let Some(wake) = wake_at(&verdicts, now, clock.utc()) else { break };
                if wake > wait_limit {
                    break;
                }
                if ticket.is_none() {
                    ticket = inner.waiting.enter();
                }
                let Some(waiting) = ticket.as_ref() else { break };
                waiting.pause(wake);
                trace.waited += wake.saturating_duration_since(now);
                clock.sleep_until(wake).await;
                tokio::select! {
                    () = waiting.turn(clock.as_ref()) => {}
                    () = clock.sleep_until(deadline) => {}
                }
                upstream_time += clock.now().saturating_duration_since(now);
                for verdict in &mut verdicts {
                    if matches!(verdict, Some(Verdict::Spent(_) | Verdict::Busy(_))) {
                        *verdict = None;
                    }
                }
                continue;
            }
            let filtered: Vec<Candidate>;
            let candidates: &[Candidate] = if open.len() == n_slots {
                &route.candidates
            } else {
                filtered = open.iter().map(|&idx| route.candidates[idx].clone()).collect();
                &filtered
            };
            let views: Vec<CandidateView<'_>> = open
                .iter()
                .zip(candidates)
                .map(|(&idx, candidate)| {
                    let slot = &route.slots[idx];
                    CandidateView {
                        candidate,
                        position: idx,
                        in_flight: slot.in_flight.load(Ordering::Relaxed),
                        latency: slot.latency(),
                        weight: slot.facts.weight.unwrap_or(1),
                        estimated_cost: slot.facts.price.map(|price| {
                            price.cost(estimate.prompt_tokens, estimate.output_tokens)
                        }),
                    }
                })
                .collect();
            let context = RankContext {
                request,
                scorer: inner.scorer.as_ref(),
                candidates,
                roll: rng.next_u64(),
            };
            let mut order = route.strategy.rank(&views, &context);
            tier(&route, &open, &shunned, &mut order, inner.ledger.in_memory());
            if std::mem::take(&mut first_ranking) && options.trace {
                let scores = inner.scorer.score(candidates);
                let mut considered: Vec<Considered> = order
                    .iter()
                    .filter_map(|&rank_idx| {
                        Some(Considered {
                            candidate: candidates.get(rank_idx)?.clone(),
                            score: scores.get(rank_idx).copied(),
                            skipped: None,
                        })
                    })
                    .collect();
                considered.append(&mut trace.considered);
                trace.considered = considered;
            }

            // Walk the ranking; the first candidate its circuit and the ledger admit is called.
            let mut chosen: Option<(usize, Permit, bool, Option<SpendHold>)> = None;
            let mut hold_for_free: Option<Instant> = None;
            let mut seen = vec![false; views.len()];
            for &rank_idx in &order {
                if rank_idx >= views.len() || std::mem::replace(&mut seen[rank_idx], true) {
                    continue;
                }
                let idx = open[rank_idx];
                let slot = &route.slots[idx];
                if may_wait_for_free
                    && slot.is_paid()
                    && let Some(wake) = free_wake(&route, &verdicts, now, clock.utc(), deadline)
                {
                    // Every free candidate ranked above is spent for now, and one frees in
                    // time: wait for it rather than pay.
                    hold_for_free = Some(wake);
                    break;
                }
                let gate = slot.circuit.gate(now, rng.next_unit());
                let probe = match gate {
                    Gate::Pass => false,
                    Gate::Probe => true,
                    Gate::Open { until } => {
                        verdicts[idx] = Some(Verdict::Failed);
                        trace.skip(
                            &slot.candidate,
                            Skip::CircuitOpen { remaining: until.saturating_duration_since(now) },
                        );
                        continue;
                    }
                    Gate::Ramping { share } => {
                        verdicts[idx] = Some(Verdict::Failed);
                        trace.skip(&slot.candidate, Skip::Ramping { share });
                        continue;
                    }
                };
                // The estimated cost is held against the budgets before the call, in the same
                // step as the check, so concurrent calls cannot overshoot together.
                let hold = match &inner.budgets {
                    None => None,
                    Some(budgets) => {
                        let estimated_cost = slot.facts.price.map(|price| {
                            price.cost(estimate.prompt_tokens, estimate.output_tokens)
                        });
                        let provider = &slot.candidate.provider;
                        match budgets.try_reserve(
                            &route.name,
                            provider,
                            estimated_cost,
                            clock.utc(),
                        ) {
                            Ok(hold) => hold,
                            Err(over) => {
                                if probe {
                                    slot.circuit.release_probe();
                                }
                                verdicts[idx] = Some(Verdict::OverBudget);
                                let detail = over.detail(&route.name, provider);
                                trace.skip(&slot.candidate, Skip::Unsuitable { detail });
                                continue;
                            }
                        }
                    }
                };
                match inner.ledger.admit(&slot.candidate, estimate).await {
                    Ok(permit) => {
                        chosen = Some((idx, permit, probe, hold));
                        break;
                    }
                    Err(QuotaError::Refused { reason, until, retry_after, .. }) => {
                        if let Some(hold) = hold {
                            hold.release();
                        }
                        if probe {
                            slot.circuit.release_probe();
                        }
                        let utc = clock.utc();
                        let until = until
                            .map(|until| clamp_at(until, utc))
                            .or_else(|| retry_after.map(|after| after_hint(utc, after)));
                        verdicts[idx] = Some(refusal_verdict(&reason, until));
                        trace.skip(
                            &slot.candidate,
                            Skip::Quota {
                                detail: reason.to_string(),
                                kind: refusal_name(&reason),
                                until,
                            },
                        );
                    }
                    Err(error) => {
                        if let Some(hold) = hold {
                            hold.release();
                        }
                        if probe {
                            slot.circuit.release_probe();
                        }
                        return Err(fail(
                            RouterError::QuotaBackend(error),
                            Some(&trace),
                            &route,
                            &request_id,
                        ));
                    }
                }
            }
            if chosen.is_none()
                && let Some(wake) = hold_for_free
            {
                if ticket.is_none() {
                    ticket = inner.waiting.enter();
                }
                if let Some(waiting) = ticket.as_ref() {
                    waiting.pause(wake);
                    trace.waited += wake.saturating_duration_since(now);
                    clock.sleep_until(wake).await;
                    tokio::select! {
                        () = waiting.turn(clock.as_ref()) => {}
                        () = clock.sleep_until(deadline) => {}
                    }
                    upstream_time += clock.now().saturating_duration_since(now);
                    for verdict in &mut verdicts {
                        if matches!(verdict, Some(Verdict::Spent(_) | Verdict::Busy(_))) {
                            *verdict = None;
                        }
                    }
                    continue;
                }
                // The wait queue is full: pay rather than fail.
                may_wait_for_free = false;
                continue;
            }
            // Slots the strategy left out are not tried this round.
            let Some((idx, permit, probe, hold)) = chosen else {
                if order.is_empty() {
                    for &idx in &open {
                        verdicts[idx].get_or_insert(Verdict::Failed);
                    }
                }
                // When every one is now out, the next round waits or ends.
                continue;
            };
            // Admitted: the place in the queue goes to the next waiter.
            drop(ticket.take());

            let slot = Arc::clone(&route.slots[idx]);
            let permit = PermitGuard::new(Arc::clone(&inner.ledger), permit, estimate);
            let mut attempt_guard = AttemptGuard::new(Arc::clone(&slot), probe);
            let attempt_started = clock.now();
            let result = tokio::select! {
                result = call(Arc::clone(&slot)) => Some(result),
                () = clock.sleep_until(deadline) => None,
            };
            let latency = clock.now().saturating_duration_since(attempt_started);
            upstream_time += latency;
            let n_attempt = u32::try_from(trace.attempts.len() + 1).unwrap_or(u32::MAX);
            let Some(result) = result else {
                // The deadline passed mid-call: the call is dropped (cancelled upstream), its
                // permit and money settled as spent by their guards, and the caller told.
                drop(permit);
                drop(hold);
                drop(attempt_guard);
                trace.attempts.push(Attempt {
                    candidate: slot.candidate.clone(),
                    fingerprint: slot.fingerprint,
                    error: Some(ErrorKind::Timeout),
                    status: None,
                    latency,
                    upstream_request_id: None,
                });
                let error = RouterError::DeadlineExceeded {
                    route: route.name.clone(),
                    after: timeout,
                    trace: Box::new(trace),
                };
                return Err(fail(error, None, &route, &request_id));
            };
            match result {
                Ok(served) => {
                    // With the attempt's permit the ledger can tell a reading overtaken by
                    // later admissions from news.
                    if !served.rate_limits.is_empty()
                        && let Err(error) = match permit.held() {
                            Some(held) => {
                                inner.ledger.observe_attempt(held, &served.rate_limits).await
                            }
                            None => {
                                inner.ledger.observe(&slot.candidate, &served.rate_limits).await
                            }
                        }
                    {
                        tracing::warn!(error = %error, candidate = %slot.candidate, "recording rate-limit headers failed");
                    }
                    let tokens = served.usage.map_or(0, |usage| u64::from(usage.total_tokens));
                    inner.scorer.record(&slot.candidate, Outcome::Success { latency, tokens });
                    slot.circuit.record_success(clock.now());
                    attempt_guard.judged();
                    slot.observe_latency(latency);
                    inner.stats.attempt(&slot.candidate, None);
                    trace.attempts.push(Attempt {
                        candidate: slot.candidate.clone(),
                        fingerprint: slot.fingerprint,
                        error: None,
                        status: None,
                        latency,
                        upstream_request_id: served.upstream_request_id.clone(),
                    });
                    if inner.wants_events() {
                        inner.emit(RouterEvent::Attempt(AttemptEvent {
                            request_id: request_id.clone(),
                            route: route.name.clone(),
                            client: options.client.clone(),
                            candidate: slot.candidate.clone(),
                            fingerprint: slot.fingerprint,
                            attempt: n_attempt,
                            latency,
                            usage: served.usage,
                            cost: served.usage.and_then(|usage| {
                                slot.facts.price.map(|price| {
                                    price.cost(
                                        u64::from(usage.prompt_tokens),
                                        u64::from(usage.completion_tokens),
                                    )
                                })
                            }),
                            error: None,
                            status: None,
                            upstream_request_id: served.upstream_request_id,
                        }));
                    }
                    return Ok(Routed {
                        value: served.value,
                        slot,
                        permit,
                        spend: hold,
                        attempt: attempt_guard,
                        trace,
                        request_id,
                        client: options.client.clone(),
                        started,
                        upstream_time,
                        route,
                        load,
                    });
                }
                Err(error) => {
                    let kind = error.kind;
                    // Did the provider count the call? An error it answered did not; a call
                    // that timed out, broke or answered garbage may have: it counts as spent.
                    if matches!(
                        kind,
                        ErrorKind::Timeout | ErrorKind::Network | ErrorKind::MalformedResponse
                    ) {
                        let usage = permit.estimated_usage();
                        permit.settle(&usage).await;
                        drop(hold);
                    } else {
                        permit.release().await;
                        if let Some(hold) = hold {
                            hold.release();
                        }
                    }
                    if !error.rate_limits.is_empty() {
                        let _ = inner.ledger.observe(&slot.candidate, &error.rate_limits).await;
                    }
                    if let Err(ledger_error) =
                        inner.ledger.record_error(&slot.candidate, &error).await
                    {
                        tracing::warn!(error = %ledger_error, candidate = %slot.candidate, "recording an error in the ledger failed");
                    }
                    inner.scorer.record(&slot.candidate, Outcome::Failure { kind, latency });
                    if CircuitBreaker::counts(kind) {
                        slot.circuit.record_failure(kind, clock.now());
                        attempt_guard.judged();
                    }
                    drop(attempt_guard);
                    inner.stats.attempt(&slot.candidate, Some(kind));
                    trace.attempts.push(Attempt {
                        candidate: slot.candidate.clone(),
                        fingerprint: slot.fingerprint,
                        error: Some(kind),
                        status: error.status,
                        latency,
                        upstream_request_id: error.upstream_request_id.clone(),
                    });
                    if inner.wants_events() {
                        inner.emit(RouterEvent::Attempt(AttemptEvent {
                            request_id: request_id.clone(),
                            route: route.name.clone(),
                            client: options.client.clone(),
                            candidate: slot.candidate.clone(),
                            fingerprint: slot.fingerprint,
                            attempt: n_attempt,
                            latency,
                            usage: None,
                            cost: None,
                            error: Some(kind),
                            status: error.status,
                            upstream_request_id: error.upstream_request_id.clone(),
                        }));
                    }
                    tracing::warn!(
                        request_id = %request_id,
                        candidate = %slot.candidate,
                        fingerprint = %slot.fingerprint,
                        error = %error,
                        "attempt failed"
                    );

                    match error.next_step() {
                        NextStep::Stop => {
                            let error = RouterError::BadRequest {
                                source: Box::new(error),
                                trace: Box::new(trace),
                            };
                            return Err(fail(error, None, &route, &request_id));
                        }
                        NextStep::RetrySame => {
                            let delay = inner.config.backoff.delay(
                                retries[idx],
                                Classify::retry_after(&error),
                                rng.next_unit(),
                            );
                            let now = clock.now();
                            if retries[idx] < inner.config.retries_same
                                && Backoff::within_deadline(delay, now, deadline).is_some()
                            {
                                retries[idx] += 1;
                                clock.sleep(delay).await;
                                upstream_time += delay;
                                continue;
                            }
                            verdicts[idx] = Some(Verdict::Failed);
                            // The provider failed this request: its other keys go after the
                            // other providers' for the rest of it.
                            if !shunned.contains(&slot.candidate.provider) {
                                shunned.push(slot.candidate.provider.clone());
                            }
                        }
                        NextStep::NextKey => {
                            verdicts[idx] = Some(match kind {
                                ErrorKind::InvalidKey
                                | ErrorKind::BillingStopped
                                | ErrorKind::PermissionDenied => Verdict::Invalid,
                                _ => Verdict::Spent(spent_until(&error, clock.as_ref())),
                            });
                        }
                        NextStep::NextModel => {
                            let window = slot.facts.context_window;
                            for (other_idx, other) in route.slots.iter().enumerate() {
                                let same_model = other.candidate.provider
                                    == slot.candidate.provider
                                    && other.candidate.model == slot.candidate.model;
                                // A prompt too long for this window is too long for any window
                                // no larger.
                                let too_small = kind == ErrorKind::ContextTooLong
                                    && matches!((window, other.facts.context_window), (Some(w), Some(o)) if o <= w);
                                if (same_model || too_small) && verdicts[other_idx].is_none() {
                                    verdicts[other_idx] = Some(Verdict::Failed);
                                    if other_idx != idx {
                                        trace.skip(&other.candidate, Skip::RuledOut { by: kind });
                                    }
                                }
                            }
                        }
                        NextStep::NextProvider => {
                            if kind == ErrorKind::ContentFiltered && !route.content_filter_fallback
                            {
                                let error = RouterError::ContentFiltered {
                                    source: Box::new(error),
                                    trace: Box::new(trace),
                                };
                                return Err(fail(error, None, &route, &request_id));
                            }
                            for (other_idx, other) in route.slots.iter().enumerate() {
                                if other.candidate.provider == slot.candidate.provider
                                    && verdicts[other_idx].is_none()
                                {
                                    verdicts[other_idx] = Some(Verdict::Failed);
                                    if other_idx != idx {
                                        trace.skip(&other.candidate, Skip::RuledOut { by: kind });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        let budgets = inner.budgets.as_deref().map(|budgets| (budgets, clock.utc()));
        let error = final_error(&route, verdicts, trace, budgets);
        Err(fail(error, None, &route, &request_id))
    }
}

/// Puts a strategy's ranking in tiers: a preferred provider first; providers that already
/// failed this request (a server error that outlasted its retry) after every other, paid
/// ones included, since serving beats saving; free before paid; then, among free candidates, the most headroom first (a
/// candidate whose limits are not known yet counts as untouched, so it is tried and
/// learned). The sort is stable: the strategy's order holds within each tier and among
/// equals. Costs nothing when the route asks for none of it; otherwise one headroom read per
/// free candidate (nothing while the ledger knows no limit).
fn tier(
    route: &Route,
    open: &[usize],
    shunned: &[ProviderId],
    order: &mut [usize],
    ledger: Option<&MemoryLedger>,
) {
    // Spreading needs known limits; free-first needs a paid candidate to put last.
    let spread = if route.spread && route.free_first {
        ledger.filter(|ledger| ledger.knows_limits())
    } else {
        None
    };
    let free_first = route.free_first && route.any_paid;
    if route.prefer_provider.is_none() && !free_first && spread.is_none() && shunned.is_empty() {
        return;
    }
    if order.len() < 2 {
        return;
    }
    let key = |rank_idx: usize| -> (bool, bool, bool, f64) {
        let Some(slot) = open.get(rank_idx).map(|&idx| &route.slots[idx]) else {
            return (true, true, true, 0.0);
        };
        let elsewhere = route
            .prefer_provider
            .as_ref()
            .is_some_and(|preferred| &slot.candidate.provider != preferred);
        let paid = slot.is_paid();
        let failed = shunned.contains(&slot.candidate.provider);
        let headroom = match spread {
            Some(ledger) if !paid => ledger.headroom(&slot.candidate).unwrap_or(1.0),
            _ => 0.0,
        };
        (elsewhere, failed, paid && free_first, headroom)
    };
    if spread.is_none() {
        order.sort_by_key(|&rank_idx| {
            let (elsewhere, failed, paid, _) = key(rank_idx);
            (elsewhere, failed, paid)
        });
        return;
    }
    // Headroom is read once per candidate, not once per comparison.
    let mut keyed: Vec<((bool, bool, bool, f64), usize)> =
        order.iter().map(|&rank_idx| (key(rank_idx), rank_idx)).collect();
    keyed.sort_by(|(a, _), (b, _)| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)).then(b.3.total_cmp(&a.3)));
    for (slot, (_, rank_idx)) in order.iter_mut().zip(keyed) {
        *slot = rank_idx;
    }
}

/// When a free candidate refused for quota frees, if one does in time for a call that takes
/// about as long as its last ones: the wait a route that prefers cost makes instead of paying.
fn free_wake(
    route: &Route,
    verdicts: &[Option<Verdict>],
    now: Instant,
    utc: chrono::DateTime<chrono::Utc>,
    deadline: Instant,
) -> Option<Instant> {
    route
        .slots
        .iter()
        .zip(verdicts)
        .filter(|(slot, _)| !slot.is_paid())
        .filter_map(|(slot, verdict)| match verdict {
            Some(Verdict::Spent(Some(until)) | Verdict::Busy(Some(until))) => {
                let wake = instant_of(*until, now, utc);
                let call = slot.latency().unwrap_or(Duration::ZERO);
                wake.checked_add(call).is_some_and(|done| done < deadline).then_some(wake)
            }
            _ => None,
        })
        .min()
}

/// Rules out the candidates whose estimated cost no longer fits a budget; true when that
/// leaves none, and a budget is why.
fn rule_out_over_budget(
    budgets: &Budgets,
    route: &Route,
    estimate: Estimate,
    verdicts: &mut [Option<Verdict>],
    trace: &mut Trace,
    utc: chrono::DateTime<chrono::Utc>,
) -> bool {
    let mut n_over = 0;
    for (idx, slot) in route.slots.iter().enumerate() {
        if verdicts[idx].is_some() {
            continue;
        }
        let cost = slot
            .facts
            .price
            .map(|price| price.cost(estimate.prompt_tokens, estimate.output_tokens));
        let detail = match budgets.check(&route.name, &slot.candidate.provider, cost, utc) {
            Ok(()) => continue,
            Err(over) => over.detail(&route.name, &slot.candidate.provider),
        };
        n_over += 1;
        verdicts[idx] = Some(Verdict::OverBudget);
        trace.skip(&slot.candidate, Skip::Unsuitable { detail });
    }
    n_over > 0 && verdicts.iter().all(Option::is_some)
}

/// The tag that pins a request to one provider: `provider:groq`.
const PIN_TAG: &str = "provider:";

/// Rules the candidates this request cannot use out before ranking: a model that takes no
/// images for a request with one, another provider than a tag pins. Costs a scan of the
/// messages and tags, and nothing more when neither applies.
fn rule_out_unsuitable(
    route: &Route,
    request: &ChatRequest,
    verdicts: &mut [Option<Verdict>],
    trace: &mut Trace,
) {
    let pinned = request.tags.iter().find_map(|tag| tag.strip_prefix(PIN_TAG));
    let needs_vision = request.has_image();
    if pinned.is_none() && !needs_vision {
        return;
    }
    for (idx, slot) in route.slots.iter().enumerate() {
        let detail = if needs_vision && slot.facts.vision == Some(false) {
            "the model takes no images".to_owned()
        } else if let Some(provider) = pinned
            && slot.candidate.provider.as_str() != provider
        {
            format!("the request is pinned to provider {provider}")
        } else {
            continue;
        };
        verdicts[idx] = Some(Verdict::Failed);
        trace.skip(&slot.candidate, Skip::Unsuitable { detail });
    }
}

/// Leaves out the candidates whose key an operator disabled.
fn rule_out_disabled(
    disabled: &DisabledKeys,
    route: &Route,
    verdicts: &mut [Option<Verdict>],
    trace: &mut Trace,
) {
    for (idx, slot) in route.slots.iter().enumerate() {
        if verdicts[idx].is_none() && disabled.contains(&slot.candidate) {
            verdicts[idx] = Some(Verdict::Invalid);
            trace.skip(&slot.candidate, Skip::Disabled);
        }
    }
}

/// When the first candidate refused for quota frees, as an instant on the clock; `None` when
/// no refusal said when. At least a millisecond ahead, so a reset rounded down never spins.
fn wake_at(
    verdicts: &[Option<Verdict>],
    now: Instant,
    utc: chrono::DateTime<chrono::Utc>,
) -> Option<Instant> {
    let earliest = verdicts
        .iter()
        .filter_map(|verdict| match verdict {
            Some(Verdict::Spent(until) | Verdict::Busy(until)) => *until,
            Some(Verdict::Invalid | Verdict::Failed | Verdict::OverBudget) | None => None,
        })
        .min()?;
    Some(instant_of(earliest, now, utc))
}

/// When a candidate that just answered "spent" is usable again, as far as the error says.
/// Both come from the upstream: they are cut to [`switchyard_core::MAX_HINT`] ahead, whatever
/// an adapter let through.
fn spent_until(error: &ProviderError, clock: &dyn Clock) -> Option<chrono::DateTime<chrono::Utc>> {
    let utc = clock.utc();
    match error.resets_at {
        Some(resets_at) => Some(clamp_at(resets_at, utc)),
        None => Classify::retry_after(error).map(|after| after_hint(utc, after)),
    }
}

/// `utc + after`, with `after` cut to [`switchyard_core::MAX_HINT`]; never panics.
fn after_hint(
    utc: chrono::DateTime<chrono::Utc>,
    after: Duration,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(clamp_hint(after))
        .ok()
        .and_then(|after| utc.checked_add_signed(after))
        .unwrap_or(utc)
}

/// A reset time from outside, no further ahead of `utc` than [`switchyard_core::MAX_HINT`].
fn clamp_at(
    at: chrono::DateTime<chrono::Utc>,
    utc: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    at.min(after_hint(utc, switchyard_core::MAX_HINT))
}

/// The instant `until` falls on, given that `utc` is `now`: at least a millisecond ahead (so
/// a reset rounded down never spins), at most [`switchyard_core::MAX_HINT`]; never panics.
fn instant_of(
    until: chrono::DateTime<chrono::Utc>,
    now: Instant,
    utc: chrono::DateTime<chrono::Utc>,
) -> Instant {
    let ahead = clamp_hint((until - utc).to_std().unwrap_or(Duration::ZERO));
    now.checked_add(ahead.max(Duration::from_millis(1))).unwrap_or(now)
}

fn refusal_verdict(reason: &Refusal, until: Option<chrono::DateTime<chrono::Utc>>) -> Verdict {
    match reason {
        Refusal::CoolingDown
        | Refusal::Exhausted
        | Refusal::Limit { .. }
        | Refusal::ProviderRemaining { .. } => Verdict::Spent(until),
        Refusal::Concurrency { .. } | Refusal::TooLarge { .. } => Verdict::Busy(until),
        Refusal::Invalid | Refusal::BillingStopped => Verdict::Invalid,
    }
}

fn refusal_name(reason: &Refusal) -> &'static str {
    match reason {
        Refusal::CoolingDown => "cooling_down",
        Refusal::Exhausted => "exhausted",
        Refusal::Invalid => "invalid",
        Refusal::BillingStopped => "billing_stopped",
        Refusal::Limit { .. } => "limit",
        Refusal::ProviderRemaining { .. } => "provider_remaining",
        Refusal::Concurrency { .. } => "concurrency",
        Refusal::TooLarge { .. } => "too_large",
    }
}

/// The one error that says why nothing served. A quota error wins over `INVALID_KEYS` as
/// long as one key is merely out of quota; any unhealthy candidate makes it
/// `ALL_PROVIDERS_FAILED`, with every attempt in the trace.
fn final_error(
    route: &Route,
    verdicts: Vec<Option<Verdict>>,
    trace: Trace,
    budgets: Option<(&Budgets, chrono::DateTime<chrono::Utc>)>,
) -> RouterError {
    let n_keys = verdicts.len();
    let (mut n_spent, mut n_busy, mut n_invalid, mut n_failed, mut n_over) = (0, 0, 0, 0, 0);
    let mut earliest: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut note = |until: Option<chrono::DateTime<chrono::Utc>>| {
        if let Some(until) = until {
            earliest = Some(earliest.map_or(until, |e| e.min(until)));
        }
    };
    for verdict in &verdicts {
        match verdict {
            Some(Verdict::Spent(until)) => {
                n_spent += 1;
                note(*until);
            }
            Some(Verdict::Busy(until)) => {
                n_busy += 1;
                note(*until);
            }
            Some(Verdict::Invalid) => n_invalid += 1,
            Some(Verdict::OverBudget) => n_over += 1,
            // Not reached: the attempt bound ran out first.
            Some(Verdict::Failed) | None => n_failed += 1,
        }
    }
    let route_name = route.name.clone();
    // Over budget with nothing tried and nothing merely waiting for quota: the budget is why.
    if let Some((budgets, utc)) = budgets
        && n_over > 0
        && n_spent + n_busy == 0
        && trace.attempts.is_empty()
    {
        let (spent, budget) = budgets.route_status(&route.name, utc);
        return RouterError::BudgetExceeded {
            route: route_name,
            spent,
            budget,
            resets_at: budgets.resets_at(utc),
            trace: Box::new(trace),
        };
    }
    let n_failed = n_failed + n_over;
    let trace = Box::new(trace);
    if n_failed > 0 || n_keys == 0 {
        RouterError::AllProvidersFailed { route: route_name, trace }
    } else if n_busy > 0 {
        RouterError::PartialQuota { route: route_name, n_busy, n_keys, next_free: earliest, trace }
    } else if n_spent > 0 {
        RouterError::QuotaExceeded {
            route: route_name,
            n_keys: n_spent,
            earliest_reset: earliest,
            trace,
        }
    } else {
        debug_assert_eq!(n_invalid, n_keys);
        RouterError::InvalidKeys { route: route_name, n_keys, trace }
    }
}

/// A caller's quality feedback that cannot be recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    /// The request id is unknown or no longer remembered.
    #[error("no recent request {0:?}")]
    UnknownRequest(String),
    /// The quality is outside 0..=1.
    #[error("quality {0} is outside 0..=1")]
    OutOfRange(f64),
}

/// Recent request ids and what served them, bounded: the oldest are forgotten first.
#[derive(Default)]
struct RecentRequests {
    map: DashMap<String, Candidate>,
    order: Mutex<std::collections::VecDeque<String>>,
}

/// The longest request id remembered for feedback: ids come from clients (`x-request-id`),
/// and the map holds `recent_requests` of them.
const MAX_REQUEST_ID_LEN: usize = 200;

impl RecentRequests {
    fn insert(&self, request_id: &str, candidate: Candidate, capacity: usize) {
        if capacity == 0 || request_id.len() > MAX_REQUEST_ID_LEN {
            return;
        }
        self.map.insert(request_id.to_owned(), candidate);
        // Nothing awaits while this lock is held; it is taken after the answer, off the
        // routing decision.
        let mut order = self.order.lock();
        order.push_back(request_id.to_owned());
        while order.len() > capacity {
            if let Some(old) = order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, request_id: &str) -> Option<Candidate> {
        self.map.get(request_id).map(|entry| entry.clone())
    }
}

impl Router {
    /// The providers the router knows.
    pub fn providers(&self) -> Vec<ProviderId> {
        let mut ids: Vec<ProviderId> = self.inner.providers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The model ids of a provider a client may name: its models the configuration declares
    /// and route targets, in their canonical spelling. Fixed when the router is built.
    pub fn models_of(&self, provider: &ProviderId) -> Vec<ModelId> {
        let mut models: Vec<ModelId> = self
            .inner
            .declared
            .iter()
            .filter(|target| &target.provider == provider)
            .map(|target| target.model.clone())
            .collect();
        models.sort();
        models.dedup();
        models
    }
}
