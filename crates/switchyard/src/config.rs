//! What a router is configured with: router-wide settings ([`RouterConfig`]), routes
//! ([`RouteConfig`]), what is known of each model ([`ModelFacts`], [`Price`]) and the options
//! of one call ([`RequestOptions`]). Plain data with public fields and defaults; the builder
//! turns it into a running router.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::ProviderId;

use crate::backoff::Backoff;
use crate::cache::CacheConfig;
use crate::circuit::CircuitConfig;
use crate::strategy::StrategyKind;

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
    /// The most attempts one request makes (default 5). A candidate's first 429 in a request
    /// is not counted: a spent key is not a failed call (it is out until its reset, and often
    /// teaches the ledger a limit nobody declared), so a request that meets several spent keys
    /// still reaches the fallback. A request's calls stay bounded: `max_attempts` plus one per
    /// candidate of its route.
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
    /// How many recent request ids are remembered for quality feedback (default 10,000; at
    /// most 1,048,576: room for them is reserved when the router is built).
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
