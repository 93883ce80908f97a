//! `GET /metrics`: the gateway's counters in the Prometheus text format, kept with
//! `prometheus-client`. Counters are updated as requests finish; the per-key quota gauges
//! are read from the router's statistics at each scrape, so they are never stale.

use std::collections::BTreeSet;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    provider: String,
    /// `ok`, or the typed error code.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    route: String,
    provider: String,
    /// `ok`, or the failure's class (`rate_limited`, `server_error`, ...).
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    route: String,
    provider: String,
    /// `prompt` or `completion`.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    route: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    provider: String,
    key: String,
    model: String,
    /// `available`, `cooling_down`, `exhausted`, `invalid`, `billing_stopped`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    provider: String,
    key: String,
    model: String,
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

/// The names a label may carry: routes and `provider/model` targets the configuration
/// declares. Taken from a router before it serves, so no client-chosen name is among them;
/// any other name becomes [`OTHER`], and the number of series stays bounded whatever
/// clients send.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    names: BTreeSet<String>,
}

impl Labels {
    pub(crate) fn of(router: &Router) -> Self {
        let mut names = BTreeSet::new();
        for route in router.route_names() {
            for candidate in router.candidates(&route).unwrap_or_default() {
                names.insert(format!("{}/{}", candidate.provider, candidate.model));
            }
            names.insert(route);
        }
        for provider in router.providers() {
            for model in router.models_of(&provider) {
                names.insert(format!("{provider}/{model}"));
            }
        }
        while names.len() > MAX_LABELS {
            names.pop_last();
        }
        Self { names }
    }

    /// `name` when it is declared, else [`OTHER`].
    pub(crate) fn route(&self, name: &str) -> String {
        if self.names.contains(name) { name.to_owned() } else { OTHER.to_owned() }
    }

    /// A model of `provider` when it is declared, else [`OTHER`].
    fn model(&self, provider: &str, model: &str) -> String {
        if self.names.contains(&format!("{provider}/{model}")) {
            model.to_owned()
        } else {
            OTHER.to_owned()
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
    latency: Family<RouteLabels, Histogram>,
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
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 15))
        });
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer (to the first chunk for streams)",
            latency.clone(),
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
            latency,
            key_state,
            remaining,
        }
    }

    /// A request that got an answer (or a first chunk).
    pub(crate) fn served(
        &self,
        route: &str,
        served_by: &Candidate,
        trace: &Trace,
        cached: bool,
        elapsed: Duration,
    ) {
        let provider = served_by.provider.to_string();
        self.attempts_of(route, trace);
        self.requests
            .get_or_create(&RequestLabels { route: route.to_owned(), provider, code: "ok".into() })
            .inc();
        if trace.attempts.len() > 1 {
            self.fallbacks.get_or_create(&RouteLabels { route: route.to_owned() }).inc();
        }
        if cached {
            self.cache_hits.get_or_create(&RouteLabels { route: route.to_owned() }).inc();
        }
        self.latency
            .get_or_create(&RouteLabels { route: route.to_owned() })
            .observe(elapsed.as_secs_f64());
    }

    /// A request that got an error.
    pub(crate) fn failed(&self, route: &str, code: &str, trace: Option<&Trace>) {
        if let Some(trace) = trace {
            self.attempts_of(route, trace);
        }
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                provider: "none".into(),
                code: code.to_owned(),
            })
            .inc();
    }

    /// What an answer cost.
    pub(crate) fn cost(&self, route: &str, served_by: &Candidate, dollars: f64) {
        self.cost
            .get_or_create(&CostLabels {
                route: route.to_owned(),
                provider: served_by.provider.to_string(),
            })
            .inc_by(dollars);
    }

    /// Tokens of an answer, once known (at the end of a stream).
    pub(crate) fn tokens(&self, route: &str, served_by: &Candidate, usage: Usage) {
        for (kind, count) in
            [("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens)]
        {
            self.tokens
                .get_or_create(&TokenLabels {
                    route: route.to_owned(),
                    provider: served_by.provider.to_string(),
                    kind: kind.into(),
                })
                .inc_by(u64::from(count));
        }
    }

    fn attempts_of(&self, route: &str, trace: &Trace) {
        for attempt in &trace.attempts {
            self.attempts
                .get_or_create(&AttemptLabels {
                    route: route.to_owned(),
                    provider: attempt.candidate.provider.to_string(),
                    class: attempt.error.map_or("ok", |kind| kind.as_str()).to_owned(),
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
                        model: model.clone(),
                        state: key.status.state.as_str().to_owned(),
                    })
                    .set(1);
                for limit in &key.limits {
                    self.remaining
                        .get_or_create(&LimitLabels {
                            provider: provider_name.clone(),
                            key: key_id.clone(),
                            model: model.clone(),
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
