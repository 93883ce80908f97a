//! `GET /metrics`: the gateway's counters in the Prometheus text format, kept with
//! `prometheus-client`. Counters are updated as requests finish; the per-key quota gauges
//! are read from the router's statistics at each scrape, so they are never stale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchyard::{Router, RouterStats, Trace};
use switchyard_core::{Candidate, Usage};

/// The content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// Label values are shared `Arc<str>`s taken from the [`Labels`] of the configuration (or
// `&'static str`s): building a label set for a request clones pointers, never a string.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    provider: Arc<str>,
    /// `ok`, or the typed error code.
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    route: Arc<str>,
    provider: Arc<str>,
    /// `ok`, or the failure's class (`rate_limited`, `server_error`, ...).
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    route: Arc<str>,
    provider: Arc<str>,
    /// `prompt` or `completion`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    route: Arc<str>,
    provider: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    route: Arc<str>,
    provider: Arc<str>,
    model: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    route: Arc<str>,
    provider: Arc<str>,
    model: Arc<str>,
    /// `plain` or `stream`.
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverheadLabels {
    route: Arc<str>,
    /// `plain` or `stream`.
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    provider: String,
    key: String,
    model: Arc<str>,
    /// `available`, `cooling_down`, `exhausted`, `invalid`, `billing_stopped`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    provider: String,
    key: String,
    model: Arc<str>,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: String,
    /// `admitted`, or the refusal's code (`CLIENT_RATE_LIMITED`, ...).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The analytics writer's counters, read at scrape.
pub(crate) struct AnalyticsCounts {
    pub(crate) written: u64,
    pub(crate) dropped: u64,
    pub(crate) write_errors: u64,
}

/// The alert sender's counters, read at scrape.
pub(crate) struct AlertCounts {
    pub(crate) checks: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
}

/// Counters kept by the gateway's services, read at scrape.
pub(crate) struct Extra {
    pub(crate) analytics: Option<AnalyticsCounts>,
    pub(crate) alerts: Option<AlertCounts>,
}

/// The label value of a name no configuration declares.
pub(crate) const OTHER: &str = "other";

/// The most names kept as label values; a configuration has far fewer.
const MAX_LABELS: usize = 10_000;

/// The names a label may carry: routes, providers and `provider/model` targets the
/// configuration declares, each held once as an `Arc<str>`. Taken from a router before it
/// serves, so no client-chosen name is among them; any other name becomes [`OTHER`], and the
/// number of series stays bounded whatever clients send.
#[derive(Debug)]
pub(crate) struct Labels {
    /// Routes, and `provider/model` targets (a client may name one as its route).
    routes: BTreeSet<Arc<str>>,
    /// Each provider's declared models.
    models: BTreeMap<Arc<str>, BTreeSet<Arc<str>>>,
    other: Arc<str>,
    none: Arc<str>,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            routes: BTreeSet::new(),
            models: BTreeMap::new(),
            other: Arc::from(OTHER),
            none: Arc::from("none"),
        }
    }
}

/// Where an answer's metrics go: its route, provider and model as label values.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    route: Arc<str>,
    provider: Arc<str>,
    model: Arc<str>,
}

impl Labels {
    pub(crate) fn of(router: &Router) -> Self {
        let mut labels = Self::default();
        let mut n_labels = 0usize;
        let mut add_target = |labels: &mut Self, provider: &str, model: &str| {
            if n_labels >= MAX_LABELS {
                return;
            }
            n_labels += 1;
            labels.routes.insert(Arc::from(format!("{provider}/{model}")));
            let provider = match labels.models.get_key_value(provider) {
                Some((name, _)) => Arc::clone(name),
                None => Arc::from(provider),
            };
            labels.models.entry(provider).or_default().insert(Arc::from(model));
        };
        for route in router.route_names() {
            for candidate in router.candidates(&route).unwrap_or_default() {
                add_target(&mut labels, candidate.provider.as_str(), candidate.model.as_str());
            }
            labels.routes.insert(Arc::from(route));
        }
        for provider in router.providers() {
            // Every configured provider is a label value, models known or not.
            if !labels.models.contains_key(provider.as_str()) {
                labels.models.insert(Arc::from(provider.as_str()), BTreeSet::new());
            }
            for model in router.models_of(&provider) {
                add_target(&mut labels, provider.as_str(), model.as_str());
            }
        }
        while labels.routes.len() > MAX_LABELS {
            labels.routes.pop_last();
        }
        labels
    }

    /// `name` when it is declared, else [`OTHER`].
    pub(crate) fn route(&self, name: &str) -> Arc<str> {
        Arc::clone(self.routes.get(name).unwrap_or(&self.other))
    }

    /// A declared provider's name, else [`OTHER`].
    fn provider(&self, provider: &str) -> Arc<str> {
        Arc::clone(self.models.get_key_value(provider).map_or(&self.other, |(name, _)| name))
    }

    /// A model of `provider` when it is declared, else [`OTHER`].
    fn model(&self, provider: &str, model: &str) -> Arc<str> {
        let declared = self.models.get(provider).and_then(|models| models.get(model));
        Arc::clone(declared.unwrap_or(&self.other))
    }

    /// The label values of an answer on `route` served by `served_by`.
    pub(crate) fn target(&self, route: &Arc<str>, served_by: &Candidate) -> Target {
        Target {
            route: Arc::clone(route),
            provider: self.provider(served_by.provider.as_str()),
            model: self.model(served_by.provider.as_str(), served_by.model.as_str()),
        }
    }
}

/// Everything `/metrics` shows.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    fallbacks: Family<RouteLabels, Counter>,
    cache_hits: Family<RouteLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    duration: Family<DurationLabels, Histogram>,
    first_token: Family<TargetLabels, Histogram>,
    overhead: Family<OverheadLabels, Histogram>,
    key_state: Family<KeyLabels, Gauge>,
    remaining: Family<LimitLabels, Gauge>,
    clients: Family<ClientLabels, Counter>,
    analytics_events: Family<OutcomeLabels, Gauge>,
    alerts: Family<OutcomeLabels, Gauge>,
    alert_checks: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route, serving provider and outcome (ok or the typed error code)",
            requests.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "attempts",
            "Upstream attempts, by route, provider and class (ok or how it failed)",
            attempts.clone(),
        );
        let fallbacks = Family::<RouteLabels, Counter>::default();
        registry.register(
            "fallbacks",
            "Requests served after more than one attempt",
            fallbacks.clone(),
        );
        let cache_hits = Family::<RouteLabels, Counter>::default();
        registry.register("cache_hits", "Requests answered from the cache", cache_hits.clone());
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens counted by the upstreams", tokens.clone());
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_dollars",
            "What answers cost, by the configured prices (plain calls; streams carry no cost)",
            cost.clone(),
        );
        // 5 ms to about 80 s: a cached answer to a long generation.
        let seconds = || Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let duration = Family::<DurationLabels, Histogram>::new_with_constructor(seconds);
        registry.register(
            "request_duration_seconds",
            "Time from routing a request to its whole answer: the body of a plain call, the end of a stream",
            duration.clone(),
        );
        let first_token = Family::<TargetLabels, Histogram>::new_with_constructor(seconds);
        registry.register(
            "time_to_first_token_seconds",
            "Streams: time from routing a request to its first chunk",
            first_token.clone(),
        );
        // 50 us to about 0.8 s: the gateway's own work is small unless something is wrong.
        let overhead = Family::<OverheadLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
        });
        registry.register(
            "overhead_seconds",
            "The gateway's own time in a request: its duration (to the first chunk for streams) less the upstream calls, waits and backoffs",
            overhead.clone(),
        );
        let key_state = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_state",
            "1 for each key and model in the labelled state, read at scrape",
            key_state.clone(),
        );
        let remaining = Family::<LimitLabels, Gauge>::default();
        registry.register(
            "key_remaining",
            "What is left of each key's limit in its current window, read at scrape",
            remaining.clone(),
        );
        let clients = Family::<ClientLabels, Counter>::default();
        registry.register(
            "client_requests",
            "Requests of named clients, admitted or refused with their code",
            clients.clone(),
        );
        let analytics_events = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "analytics_events",
            "Analytics events since start: written, dropped (queue full) and write_errors (batches retried)",
            analytics_events.clone(),
        );
        let alerts = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "alerts",
            "Alert webhooks since start: sent, failed (every retry refused) and dropped (queue full)",
            alerts.clone(),
        );
        let alert_checks = Gauge::default();
        registry.register(
            "alert_checks",
            "Rounds of the alert watcher since start (each looks at every provider)",
            alert_checks.clone(),
        );
        Self {
            registry,
            alert_checks,
            clients,
            analytics_events,
            alerts,
            requests,
            attempts,
            fallbacks,
            cache_hits,
            tokens,
            cost,
            duration,
            first_token,
            overhead,
            key_state,
            remaining,
        }
    }

    /// A plain request that got its answer: `elapsed` from routing to the answer, of which
    /// `overhead` was the gateway's own (not upstream, not waiting).
    pub(crate) fn answered(
        &self,
        labels: &Labels,
        target: &Target,
        trace: &Trace,
        cached: bool,
        elapsed: Duration,
        overhead: Duration,
    ) {
        self.served(labels, target, trace, cached);
        self.duration
            .get_or_create(&duration_labels(target, "plain"))
            .observe(elapsed.as_secs_f64());
        self.overhead
            .get_or_create(&OverheadLabels { route: Arc::clone(&target.route), mode: "plain" })
            .observe(overhead.as_secs_f64());
    }

    /// A stream that got its first chunk `elapsed` after routing began. Its overhead is that
    /// time less the attempts' upstream time and the waits the trace shows.
    pub(crate) fn first_token(
        &self,
        labels: &Labels,
        target: &Target,
        trace: &Trace,
        elapsed: Duration,
    ) {
        self.served(labels, target, trace, false);
        self.first_token
            .get_or_create(&TargetLabels {
                route: Arc::clone(&target.route),
                provider: Arc::clone(&target.provider),
                model: Arc::clone(&target.model),
            })
            .observe(elapsed.as_secs_f64());
        let upstream: Duration =
            trace.attempts.iter().map(|attempt| attempt.latency).sum::<Duration>() + trace.waited;
        self.overhead
            .get_or_create(&OverheadLabels { route: Arc::clone(&target.route), mode: "stream" })
            .observe(elapsed.saturating_sub(upstream).as_secs_f64());
    }

    /// A stream that ended (whole, broken or dropped by its client) `elapsed` after routing.
    pub(crate) fn stream_ended(&self, target: &Target, elapsed: Duration) {
        self.duration
            .get_or_create(&duration_labels(target, "stream"))
            .observe(elapsed.as_secs_f64());
    }

    fn served(&self, labels: &Labels, target: &Target, trace: &Trace, cached: bool) {
        self.attempts_of(labels, &target.route, trace);
        self.requests
            .get_or_create(&RequestLabels {
                route: Arc::clone(&target.route),
                provider: Arc::clone(&target.provider),
                code: "ok",
            })
            .inc();
        if trace.attempts.len() > 1 {
            self.fallbacks.get_or_create(&RouteLabels { route: Arc::clone(&target.route) }).inc();
        }
        if cached {
            self.cache_hits.get_or_create(&RouteLabels { route: Arc::clone(&target.route) }).inc();
        }
    }

    /// A request that got an error.
    pub(crate) fn failed(
        &self,
        labels: &Labels,
        route: &Arc<str>,
        code: &'static str,
        trace: Option<&Trace>,
    ) {
        if let Some(trace) = trace {
            self.attempts_of(labels, route, trace);
        }
        self.requests
            .get_or_create(&RequestLabels {
                route: Arc::clone(route),
                provider: Arc::clone(&labels.none),
                code,
            })
            .inc();
    }

    /// What an answer cost.
    pub(crate) fn cost(&self, target: &Target, dollars: f64) {
        self.cost
            .get_or_create(&CostLabels {
                route: Arc::clone(&target.route),
                provider: Arc::clone(&target.provider),
            })
            .inc_by(dollars);
    }

    /// Tokens of an answer, once known (at the end of a stream).
    pub(crate) fn tokens(&self, target: &Target, usage: Usage) {
        for (kind, count) in
            [("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens)]
        {
            self.tokens
                .get_or_create(&TokenLabels {
                    route: Arc::clone(&target.route),
                    provider: Arc::clone(&target.provider),
                    kind,
                })
                .inc_by(u64::from(count));
        }
    }

    fn attempts_of(&self, labels: &Labels, route: &Arc<str>, trace: &Trace) {
        for attempt in &trace.attempts {
            self.attempts
                .get_or_create(&AttemptLabels {
                    route: Arc::clone(route),
                    provider: labels.provider(attempt.candidate.provider.as_str()),
                    class: attempt.error.map_or("ok", |kind| kind.as_str()),
                })
                .inc();
        }
    }

    /// A named client's request, admitted or refused.
    pub(crate) fn client(&self, client: &str, outcome: &str) {
        self.clients
            .get_or_create(&ClientLabels { client: client.to_owned(), outcome: outcome.to_owned() })
            .inc();
    }

    /// The exposition, with the per-key gauges refreshed from `stats` and the services'
    /// counters from `extra`.
    pub(crate) fn render(&self, stats: &RouterStats, extra: &Extra, labels: &Labels) -> String {
        let set = |family: &Family<OutcomeLabels, Gauge>, outcome: &str, value: u64| {
            family
                .get_or_create(&OutcomeLabels { outcome: outcome.to_owned() })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        if let Some(counts) = &extra.analytics {
            set(&self.analytics_events, "written", counts.written);
            set(&self.analytics_events, "dropped", counts.dropped);
            set(&self.analytics_events, "write_errors", counts.write_errors);
        }
        if let Some(counts) = &extra.alerts {
            set(&self.alerts, "sent", counts.sent);
            set(&self.alerts, "failed", counts.failed);
            set(&self.alerts, "dropped", counts.dropped);
            self.alert_checks.set(i64::try_from(counts.checks).unwrap_or(i64::MAX));
        }
        self.key_state.clear();
        self.remaining.clear();
        for provider in &stats.quota {
            for key in &provider.keys {
                let provider_name = provider.provider.to_string();
                let key_id = key.key.to_string();
                let model = labels.model(&provider_name, key.model.as_str());
                self.key_state
                    .get_or_create(&KeyLabels {
                        provider: provider_name.clone(),
                        key: key_id.clone(),
                        model: Arc::clone(&model),
                        state: key.status.state.as_str().to_owned(),
                    })
                    .set(1);
                for limit in &key.limits {
                    self.remaining
                        .get_or_create(&LimitLabels {
                            provider: provider_name.clone(),
                            key: key_id.clone(),
                            model: Arc::clone(&model),
                            limit: limit.limit_name.clone(),
                        })
                        .set(i64::try_from(limit.remaining).unwrap_or(i64::MAX));
                }
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("invariant: writing to a String cannot fail");
        text
    }
}

fn duration_labels(target: &Target, mode: &'static str) -> DurationLabels {
    DurationLabels {
        route: Arc::clone(&target.route),
        provider: Arc::clone(&target.provider),
        model: Arc::clone(&target.model),
        mode,
    }
}
