//! What a built router holds: its parts ([`Inner`]), the candidates it knows with what it
//! keeps about each ([`Slot`]), and its routes ([`Route`]). Fields are private: the cascade,
//! the builder and the admin and stats views go through the methods here, so what each one
//! reads is named in one place.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use switchyard_core::{
    Call, Candidate, ChatRequest, Clock, Credential, EmbedCall, EmbedRequest, Fingerprint, KeyId,
    ModelId, Provider, ProviderId,
};
use switchyard_quota::{Estimate, QuotaLedger};
use switchyard_score::Scorer;

use crate::budget::Budgets;
use crate::cache::ResponseCache;
use crate::circuit::{CircuitBreaker, CircuitConfig};
use crate::config::{MAX_TIMEOUT, ModelFacts, Prefer, RouteConfig, RouterConfig};
use crate::disabled::DisabledKeys;
use crate::error::RouterError;
use crate::events::{EventSink, RouterEvent, trace_event};
use crate::pinned::PinnedKeys;
use crate::recent::RecentRequests;
use crate::stats::StatsCounters;
use crate::strategy::{SplitMix64, Strategy, StrategyKind};
use crate::target::Target;
use crate::wait::{LoadGauge, WaitQueue};

/// A key id for a provider that needs none (a local Ollama).
const KEYLESS: &str = "keyless";

/// One candidate with what the router keeps about it. Shared by every route that names it.
pub(crate) struct Slot {
    candidate: Candidate,
    provider: Arc<dyn Provider>,
    /// Cloned once, when the slot is made; each attempt borrows it.
    credential: Option<Credential>,
    fingerprint: Fingerprint,
    circuit: CircuitBreaker,
    in_flight: AtomicU32,
    /// Recent latency in microseconds (EWMA, alpha 0.3); 0 until the first answer.
    latency_us: AtomicU64,
    facts: ModelFacts,
}

impl Slot {
    pub(crate) fn candidate(&self) -> &Candidate {
        &self.candidate
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) fn circuit(&self) -> &CircuitBreaker {
        &self.circuit
    }

    pub(crate) fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    pub(crate) fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// One call of `request` on this candidate: its model, its key, borrowed.
    pub(crate) fn call<'a>(&'a self, request: &'a ChatRequest) -> Call<'a> {
        Call::new(request, &self.candidate.model, self.credential.as_ref())
    }

    /// One embedding call of `request` on this candidate: its model, its key, borrowed.
    pub(crate) fn embed_call<'a>(&'a self, request: &'a EmbedRequest) -> EmbedCall<'a> {
        EmbedCall::new(request, &self.candidate.model, self.credential.as_ref())
    }

    /// Whether a call costs money: a known price above zero. Unpriced models count as free.
    pub(crate) fn is_paid(&self) -> bool {
        self.facts.price.is_some_and(|price| {
            price.per_request > 0.0 || price.input_per_mtok > 0.0 || price.output_per_mtok > 0.0
        })
    }

    /// What `prompt_tokens` in and `completion_tokens` out cost here; `None` without a price.
    pub(crate) fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.facts.price.map(|price| price.cost(prompt_tokens, completion_tokens))
    }

    /// What a request of `estimate` would cost here, for ranking and budgets.
    pub(crate) fn estimated_cost(&self, estimate: Estimate) -> Option<f64> {
        self.cost(estimate.prompt_tokens, estimate.output_tokens)
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// An attempt starts; [`left`](Self::left) when it ends.
    pub(crate) fn entered(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn left(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub(crate) fn observe_latency(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        // A lost update under contention only drops one sample of an average.
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old * 7 + sample * 3) / 10 };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }
}

/// A route as the router runs it: its slots in configured order and its policy, resolved
/// against the router's defaults.
pub(crate) struct Route {
    name: String,
    /// The slots' candidates, in the same order, for strategies and the scorer.
    candidates: Vec<Candidate>,
    strategy_name: &'static str,
    strategy: Arc<dyn Strategy>,
    slots: Vec<Arc<Slot>>,
    content_filter_fallback: bool,
    max_attempts: u32,
    timeout: Duration,
    max_wait: Duration,
    cache: bool,
    prefer_provider: Option<ProviderId>,
    free_first: bool,
    spread: bool,
    prefer: Prefer,
    /// Whether any candidate has a price above zero: without one, free-first orders nothing.
    any_paid: bool,
}

impl Route {
    /// A configured route over `slots`.
    pub(crate) fn configured(
        route: &RouteConfig,
        slots: Vec<Arc<Slot>>,
        defaults: &RouterConfig,
    ) -> Self {
        // The priority strategy is an order the operator wrote down: tiers stay off unless
        // asked for.
        let explicit_order = matches!(route.strategy, StrategyKind::Priority);
        Self {
            name: route.name.clone(),
            candidates: slots.iter().map(|slot| slot.candidate.clone()).collect(),
            strategy_name: route.strategy.name(),
            strategy: route.strategy.build(),
            any_paid: slots.iter().any(|slot| slot.is_paid()),
            slots,
            content_filter_fallback: route.content_filter_fallback,
            max_attempts: route.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            timeout: route.timeout.unwrap_or(defaults.timeout).min(MAX_TIMEOUT),
            max_wait: route.max_wait.unwrap_or(defaults.max_wait),
            cache: route.cache,
            prefer_provider: route.prefer_provider.clone(),
            free_first: route.free_first.unwrap_or(!explicit_order),
            spread: route.spread.unwrap_or(!explicit_order),
            prefer: route.prefer,
        }
    }

    /// A `provider/model` named directly: its keys in order, the router's defaults.
    fn direct(target: &Target, slots: Vec<Arc<Slot>>, defaults: &RouterConfig) -> Self {
        Self {
            name: target.to_string(),
            candidates: slots.iter().map(|slot| slot.candidate.clone()).collect(),
            strategy_name: StrategyKind::Priority.name(),
            strategy: StrategyKind::Priority.build(),
            slots,
            content_filter_fallback: false,
            max_attempts: defaults.max_attempts.max(1),
            timeout: defaults.timeout,
            max_wait: defaults.max_wait,
            cache: false,
            prefer_provider: None,
            free_first: false,
            spread: false,
            prefer: Prefer::Latency,
            any_paid: false,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    pub(crate) fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    pub(crate) fn strategy(&self) -> &dyn Strategy {
        self.strategy.as_ref()
    }

    pub(crate) fn strategy_name(&self) -> &'static str {
        self.strategy_name
    }

    pub(crate) fn content_filter_fallback(&self) -> bool {
        self.content_filter_fallback
    }

    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn max_wait(&self) -> Duration {
        self.max_wait
    }

    pub(crate) fn caches(&self) -> bool {
        self.cache
    }

    pub(crate) fn prefer_provider(&self) -> Option<&ProviderId> {
        self.prefer_provider.as_ref()
    }

    /// Whether free candidates go before paid ones: asked for, and a paid one to put last.
    pub(crate) fn free_first(&self) -> bool {
        self.free_first && self.any_paid
    }

    /// Whether free candidates are spread by headroom (free-first asked for, paid or not).
    pub(crate) fn spreads(&self) -> bool {
        self.spread && self.free_first
    }

    pub(crate) fn prefer(&self) -> Prefer {
        self.prefer
    }
}

/// What a router is made of, handed over by the builder. Plain data.
pub(crate) struct Parts {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ledger: Arc<dyn QuotaLedger>,
    pub(crate) scorer: Arc<dyn Scorer>,
    pub(crate) providers: HashMap<ProviderId, Arc<dyn Provider>>,
    pub(crate) credentials: HashMap<ProviderId, Vec<Credential>>,
    /// Keyed by canonical `provider/model`.
    pub(crate) facts: HashMap<String, ModelFacts>,
    pub(crate) declared: HashSet<Target>,
    pub(crate) sinks: Vec<Arc<dyn EventSink>>,
    pub(crate) seed: u64,
    pub(crate) budgets: Option<Arc<Budgets>>,
    pub(crate) config: RouterConfig,
}

/// Everything a router holds; every clone of a `Router` shares one.
pub(crate) struct Inner {
    clock: Arc<dyn Clock>,
    ledger: Arc<dyn QuotaLedger>,
    scorer: Arc<dyn Scorer>,
    providers: HashMap<ProviderId, Arc<dyn Provider>>,
    credentials: HashMap<ProviderId, Vec<Credential>>,
    /// Keyed by canonical `provider/model`.
    facts: HashMap<String, ModelFacts>,
    /// The `provider/model`s a client may name directly, canonical: declared models and
    /// route targets. Fixed at build: a client never adds to it.
    declared: HashSet<Target>,
    /// Route names, then declared targets, sorted: what an `UNKNOWN_MODEL` error lists.
    valid: Vec<String>,
    slots: DashMap<Candidate, Arc<Slot>>,
    routes: HashMap<String, Arc<Route>>,
    sinks: Vec<Arc<dyn EventSink>>,
    config: RouterConfig,
    seed: u64,
    counter: AtomicU64,
    counters: StatsCounters,
    recent: RecentRequests,
    waiting: Arc<WaitQueue>,
    load: LoadGauge,
    cache: Option<ResponseCache>,
    budgets: Option<Arc<Budgets>>,
    disabled: DisabledKeys,
    pins: PinnedKeys,
}

impl Inner {
    /// A router of `parts` with no routes yet: the builder adds them.
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            clock,
            ledger,
            scorer,
            providers,
            credentials,
            facts,
            declared,
            sinks,
            seed,
            budgets,
            config,
        } = parts;
        Self {
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
            sinks,
            seed,
            counter: AtomicU64::new(0),
            counters: StatsCounters::default(),
            recent: RecentRequests::new(config.recent_requests),
            waiting: Arc::new(WaitQueue::new(config.wait_queue)),
            load: LoadGauge::default(),
            cache: config.cache.map(ResponseCache::new),
            budgets,
            disabled: DisabledKeys::default(),
            pins: PinnedKeys::default(),
            config,
        }
    }

    /// Adds a built route; its targets become names a client may use directly.
    pub(crate) fn add_route(&mut self, route: Route) {
        for slot in &route.slots {
            self.declared.insert(Target {
                provider: slot.candidate.provider.clone(),
                model: slot.candidate.model.clone(),
            });
        }
        self.routes.insert(route.name.clone(), Arc::new(route));
    }

    /// Fixes the list of names an `UNKNOWN_MODEL` error offers: routes, then targets.
    pub(crate) fn seal(&mut self) {
        let mut valid: Vec<String> = self.routes.keys().cloned().collect();
        valid.sort();
        let mut targets: Vec<String> = self
            .declared
            .iter()
            .map(ToString::to_string)
            .filter(|target| !self.routes.contains_key(target))
            .collect();
        targets.sort();
        targets.dedup();
        valid.extend(targets);
        self.valid = valid;
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn ledger(&self) -> &Arc<dyn QuotaLedger> {
        &self.ledger
    }

    pub(crate) fn scorer(&self) -> &Arc<dyn Scorer> {
        &self.scorer
    }

    pub(crate) fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub(crate) fn counters(&self) -> &StatsCounters {
        &self.counters
    }

    pub(crate) fn recent(&self) -> &RecentRequests {
        &self.recent
    }

    pub(crate) fn waiting(&self) -> &Arc<WaitQueue> {
        &self.waiting
    }

    pub(crate) fn load(&self) -> &LoadGauge {
        &self.load
    }

    pub(crate) fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref()
    }

    pub(crate) fn budgets(&self) -> Option<&Arc<Budgets>> {
        self.budgets.as_ref()
    }

    pub(crate) fn disabled(&self) -> &DisabledKeys {
        &self.disabled
    }

    pub(crate) fn pins(&self) -> &PinnedKeys {
        &self.pins
    }

    pub(crate) fn has_route(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// The configured route of this name (not a `provider/model` named directly).
    pub(crate) fn resolve_configured(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// The configured routes, in no order.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// Every candidate the router knows, in no order.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.iter().map(|entry| Arc::clone(entry.value())).collect()
    }

    pub(crate) fn slot(&self, candidate: &Candidate) -> Option<Arc<Slot>> {
        self.slots.get(candidate).map(|entry| Arc::clone(entry.value()))
    }

    pub(crate) fn providers(&self) -> impl Iterator<Item = &ProviderId> {
        self.providers.keys()
    }

    pub(crate) fn provider(&self, id: &ProviderId) -> Option<&Arc<dyn Provider>> {
        self.providers.get(id)
    }

    /// The `provider/model`s a client may name directly.
    pub(crate) fn declared(&self) -> impl Iterator<Item = &Target> {
        self.declared.iter()
    }

    /// The facts configured for a canonical `provider/model`.
    pub(crate) fn facts_of(&self, target: &str) -> Option<&ModelFacts> {
        self.facts.get(target)
    }

    /// The route a client names: a configured one, or `provider/model` when the
    /// configuration declares it (a one-target route over the provider's keys, in order).
    /// Anything else is refused before any state is touched, so a client cannot grow the
    /// router by naming things.
    pub(crate) fn resolve(&self, name: &str) -> Result<Arc<Route>, RouterError> {
        if let Some(route) = self.routes.get(name) {
            return Ok(Arc::clone(route));
        }
        let unknown = || RouterError::unknown_model(name, &self.valid);
        let target: Target = name.parse().map_err(|_| unknown())?;
        let provider = self.providers.get(&target.provider).ok_or_else(unknown)?;
        let target = target.canonical(provider.protocol());
        if !self.declared.contains(&target) {
            return Err(unknown());
        }
        let slots = self.expand(&target).ok_or_else(unknown)?;
        Ok(Arc::new(Route::direct(&target, slots, &self.config)))
    }

    /// The candidates of one target: one per key of its provider (one keyless candidate for
    /// a provider with no keys). `None` for an unknown provider.
    pub(crate) fn expand(&self, target: &Target) -> Option<Vec<Arc<Slot>>> {
        let provider = self.providers.get(&target.provider)?;
        let facts = self.facts.get(&target.to_string()).copied().unwrap_or_default();
        let keys: Vec<Option<&Credential>> = match self.credentials.get(&target.provider) {
            Some(keys) if !keys.is_empty() => keys.iter().map(Some).collect(),
            _ => vec![None],
        };
        let circuit: CircuitConfig = self.config.circuit;
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
                        circuit: CircuitBreaker::new(circuit),
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

    /// A fresh random source for one request.
    pub(crate) fn rng(&self) -> SplitMix64 {
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

    pub(crate) fn emit(&self, event: RouterEvent) {
        trace_event(&event);
        for sink in &self.sinks {
            sink.record(&event);
        }
    }

    /// The model ids of `provider` a client may name, sorted, each once.
    pub(crate) fn models_of(&self, provider: &ProviderId) -> Vec<ModelId> {
        let mut models: Vec<ModelId> = self
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
