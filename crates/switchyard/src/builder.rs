//! [`RouterBuilder`]: assembles a [`Router`] from providers, keys, routes and the shared
//! parts (clock, ledger, scorer, budgets), and checks the configuration whole before the
//! router serves: every route's targets resolve, every model a budget covers has a price.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchyard_core::{Clock, Credential, Fingerprint, ModelId, Provider, ProviderId, SystemClock};
use switchyard_quota::{MemoryLedger, QuotaConfig, QuotaLedger};
use switchyard_score::{AdaptiveScorer, Scorer};
use switchyard_vault::KeySource;

use crate::budget::{BudgetConfig, Budgets, SpendStore};
use crate::config::{MAX_TIMEOUT, ModelFacts, RouteConfig, RouterConfig};
use crate::error::BuildError;
use crate::events::EventSink;
use crate::router::Router;
use crate::state::{Inner, Parts, Route};
use crate::strategy::StrategyKind;
use crate::target::Target;

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
        let credentials = collect_keys(self.credentials, &self.key_sources)?;
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
        let books = self.carry.as_ref().and_then(Router::budget_books);
        let budgets = self.budgets.map(|(config, store)| {
            Arc::new(Budgets::new(config, store, Arc::clone(&clock), books))
        });
        let mut inner = Inner::new(Parts {
            clock,
            ledger,
            scorer,
            providers,
            credentials,
            facts,
            declared,
            sinks: self.sinks,
            seed,
            budgets,
            config: self.config,
        });
        for route in &self.routes {
            if inner.has_route(&route.name) {
                return Err(BuildError::DuplicateRoute(route.name.clone()));
            }
            let slots = expand_route(&inner, route)?;
            let built = Route::configured(route, slots, inner.config());
            inner.add_route(built);
        }
        check_prices(&inner)?;
        inner.seal();
        let router = Router::from_inner(Arc::new(inner));
        if let Some(previous) = &self.carry {
            router.restore_admin_state(&previous.admin_state());
        }
        Ok(router)
    }
}

impl Router {
    /// Starts a builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }
}

/// Every key of every provider, once: the same secret from two sources is one key (it has
/// one quota).
fn collect_keys(
    credentials: Vec<(ProviderId, Credential)>,
    sources: &[Box<dyn KeySource>],
) -> Result<HashMap<ProviderId, Vec<Credential>>, BuildError> {
    let mut keys: HashMap<ProviderId, Vec<Credential>> = HashMap::new();
    let mut seen: HashSet<(ProviderId, Fingerprint)> = HashSet::new();
    let mut add = |provider: ProviderId, credential: Credential| {
        if seen.insert((provider.clone(), credential.fingerprint())) {
            keys.entry(provider).or_default().push(credential);
        }
    };
    for (provider, credential) in credentials {
        add(provider, credential);
    }
    for source in sources {
        let found = source.keys().map_err(|error| BuildError::Keys {
            source_name: source.describe(),
            message: error.to_string(),
        })?;
        for key in found {
            add(key.provider, key.credential);
        }
    }
    Ok(keys)
}

/// The slots of a configured route: its targets' candidates, in order.
fn expand_route(
    inner: &Inner,
    route: &RouteConfig,
) -> Result<Vec<Arc<crate::state::Slot>>, BuildError> {
    if route.targets.is_empty() {
        return Err(BuildError::EmptyRoute(route.name.clone()));
    }
    let mut slots = Vec::new();
    for text in &route.targets {
        let target: Target = text
            .parse()
            .map_err(|source| BuildError::Target { route: route.name.clone(), source })?;
        let target = match inner.provider(&target.provider) {
            Some(provider) => target.canonical(provider.protocol()),
            None => target,
        };
        let Some(expanded) = inner.expand(&target) else {
            return Err(BuildError::UnknownProvider {
                route: route.name.clone(),
                target: text.clone(),
                provider: target.provider.to_string(),
            });
        };
        slots.extend(expanded);
    }
    Ok(slots)
}

/// Refuses a model without a price that a route's or its provider's budget covers: its
/// calls could not be counted, so the budget could be walked around through it.
fn check_prices(inner: &Inner) -> Result<(), BuildError> {
    let Some(budgets) = inner.budgets() else { return Ok(()) };
    let config = budgets.config();
    let mut routes: Vec<&Arc<Route>> = inner.routes().collect();
    routes.sort_by(|a, b| a.name().cmp(b.name()));
    for route in routes {
        for slot in route.slots() {
            if slot.facts().price.is_some() {
                continue;
            }
            let provider = &slot.candidate().provider;
            let budget = if config.per_route.contains_key(route.name()) {
                format!("route {}", route.name())
            } else if config.per_provider.contains_key(provider) {
                format!("provider {provider}")
            } else {
                continue;
            };
            let target = format!("{provider}/{}", slot.candidate().model);
            return Err(BuildError::Unpriced { target, budget });
        }
    }
    let mut declared: Vec<String> = inner
        .declared()
        .filter(|target| config.per_provider.contains_key(&target.provider))
        .map(ToString::to_string)
        .filter(|target| inner.facts_of(target).is_none_or(|facts| facts.price.is_none()))
        .collect();
    declared.sort();
    if let Some(target) = declared.into_iter().next() {
        let provider = target.split_once('/').map_or("", |(provider, _)| provider);
        let budget = format!("provider {provider}");
        return Err(BuildError::Unpriced { target, budget });
    }
    Ok(())
}
