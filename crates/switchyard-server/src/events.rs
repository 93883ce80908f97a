//! [`EventHub`]: the router's [`EventSink`] in the gateway. Every attempt and request event
//! becomes an analytics row (handed to the store's non-blocking writer), with the client that
//! asked attributed, a request's tags and the HTTP status its client got; each key's recent
//! outcomes are kept for the low-success alert, each provider's recent latencies for the
//! latency alert, and each candidate's attempts, latency and cost for `/admin/stats`; and a
//! failed attempt (or a success on a provider the alert task watches) asks the alert task to
//! look at that provider again.
//!
//! Client attribution: the gateway names the client in the request's `RequestOptions`, and
//! the router's events carry it (and a request's last attempted candidate, for one that
//! failed), so the hub keeps no state per request; a request's cost is the router's
//! (computed once, streams included).
//!
//! Everything here runs on the request's task: the per-key map is sharded (a call locks one
//! shard, briefly), so attempts on different keys never wait for each other; rows are
//! queued; nothing waits on the disk or the network.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use serde_json::{Map, Value, json};

use switchyard::{Candidate, EventSink, KeyId, ProviderId, RouterEvent};
use switchyard_core::{Clock, ErrorKind};
use switchyard_store::analytics::{AnalyticsEvent, AnalyticsWriter, EventKind};

/// Attempts remembered per key for the success-rate alert.
pub(crate) const RECENT_OUTCOMES: usize = 20;

/// Successful attempts' latencies remembered per provider for the latency alert.
const RECENT_LATENCIES: usize = 100;

/// What a candidate did since the start.
#[derive(Clone, Copy, Default)]
struct CandidateSums {
    attempts: u64,
    successes: u64,
    latency_ms: f64,
    /// Requests it served (or was tried last for) with a known cost, and their cost.
    costed: u64,
    cost: f64,
    /// Requests it served with no known cost (an unpriced model).
    uncosted: u64,
}

impl CandidateSums {
    fn add(&mut self, other: &Self) {
        self.attempts += other.attempts;
        self.successes += other.successes;
        self.latency_ms += other.latency_ms;
        self.costed += other.costed;
        self.cost += other.cost;
        self.uncosted += other.uncosted;
    }

    fn view(&self) -> Value {
        #[expect(clippy::cast_precision_loss, reason = "an average of counts below 2^52")]
        let avg_latency_ms = (self.attempts > 0).then(|| self.latency_ms / self.attempts as f64);
        json!({
            "attempts": self.attempts,
            "successes": self.successes,
            "avg_latency_ms": avg_latency_ms,
            "cost_usd": self.cost,
            "avg_cost_usd": (self.costed > 0).then(|| {
                #[expect(clippy::cast_precision_loss, reason = "an average of counts below 2^52")]
                let n = self.costed as f64;
                self.cost / n
            }),
            "uncosted_requests": self.uncosted,
        })
    }
}

#[derive(Default)]
struct KeyRecent {
    fingerprint: Option<String>,
    /// `true` for a success, newest last.
    outcomes: VecDeque<bool>,
    /// The last attempt's time: saved in batches by the lifecycle keeper (`keylife`).
    last_used: Option<chrono::DateTime<chrono::Utc>>,
}

/// The gateway's event sink. Build it before the router (it is the router's sink), share it
/// with the [`Gateway`](crate::Gateway) through [`Services`](crate::Services).
pub struct EventHub {
    clock: Arc<dyn Clock>,
    analytics: Option<AnalyticsWriter>,
    /// Configured keys that made an attempt.
    keys: DashMap<(ProviderId, KeyId), KeyRecent>,
    /// Attempts, their latency and what the requests served cost, per candidate since the
    /// start: the averages of `/admin/stats`. Candidates are the configured ones.
    sums: DashMap<Candidate, CandidateSums>,
    /// Configured providers' latest successful attempt latencies, newest last.
    latencies: DashMap<ProviderId, VecDeque<std::time::Duration>>,
    /// Providers the alert task should look at, and the ones it keeps watching.
    checks: Mutex<Checks>,
    alerts_on: AtomicBool,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Checks {
    pending: BTreeSet<ProviderId>,
    watched: BTreeSet<ProviderId>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").field("analytics", &self.analytics.is_some()).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold plain data that a panic mid-update cannot leave inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventHub {
    /// A hub writing analytics to `analytics` when given, reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>, analytics: Option<AnalyticsWriter>) -> Self {
        Self {
            clock,
            analytics,
            keys: DashMap::new(),
            latencies: DashMap::new(),
            sums: DashMap::new(),
            checks: Mutex::new(Checks::default()),
            alerts_on: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The analytics writer, when analytics are on.
    pub fn analytics(&self) -> Option<&AnalyticsWriter> {
        self.analytics.as_ref()
    }

    /// Successes among the key's recent attempts: `(attempts, successes)`.
    pub(crate) fn recent_outcomes(
        &self,
        provider: &ProviderId,
        key: &str,
    ) -> Option<(usize, usize)> {
        let recent = self.keys.get(&(provider.clone(), KeyId::from(key)))?;
        let successes = recent.outcomes.iter().filter(|ok| **ok).count();
        Some((recent.outcomes.len(), successes))
    }

    /// The 95th percentile (nearest rank) of the provider's recent successful attempt
    /// latencies, and how many there are: `(samples, p95)`.
    pub(crate) fn latency_p95(
        &self,
        provider: &ProviderId,
    ) -> Option<(usize, std::time::Duration)> {
        let mut sorted: Vec<std::time::Duration> =
            self.latencies.get(provider)?.iter().copied().collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * 95).div_ceil(100).checked_sub(1)?;
        Some((sorted.len(), sorted[rank]))
    }

    /// Average latency (over attempts) and cost (over the requests served) per provider, per
    /// key (`provider/key`) and per model (`provider/model`), since the start.
    pub(crate) fn latency_cost(&self) -> Value {
        let mut providers: BTreeMap<String, CandidateSums> = BTreeMap::new();
        let mut keys: BTreeMap<String, CandidateSums> = BTreeMap::new();
        let mut models: BTreeMap<String, CandidateSums> = BTreeMap::new();
        for entry in &self.sums {
            let (candidate, sums) = (entry.key(), entry.value());
            let provider = candidate.provider.to_string();
            keys.entry(format!("{provider}/{}", candidate.key)).or_default().add(sums);
            models.entry(format!("{provider}/{}", candidate.model)).or_default().add(sums);
            providers.entry(provider).or_default().add(sums);
        }
        let view = |map: BTreeMap<String, CandidateSums>| -> Map<String, Value> {
            map.into_iter().map(|(name, sums)| (name, sums.view())).collect()
        };
        json!({"providers": view(providers), "keys": view(keys), "models": view(models)})
    }

    /// Each key's last attempt, for the lifecycle keeper's batched save.
    pub(crate) fn last_uses(&self) -> Vec<(ProviderId, KeyId, chrono::DateTime<chrono::Utc>)> {
        self.keys
            .iter()
            .filter_map(|entry| {
                let (provider, key) = entry.key();
                entry.value().last_used.map(|at| (provider.clone(), key.clone(), at))
            })
            .collect()
    }

    /// The fingerprint an attempt showed for this candidate's key.
    pub(crate) fn fingerprint(&self, candidate: &Candidate) -> Option<String> {
        self.keys
            .get(&(candidate.provider.clone(), candidate.key.clone()))
            .and_then(|recent| recent.fingerprint.clone())
    }

    /// Asks the alert task to look at `provider` soon.
    pub(crate) fn request_check(&self, provider: &ProviderId) {
        if !self.alerts_on.load(Ordering::Relaxed) {
            return;
        }
        lock(&self.checks).pending.insert(provider.clone());
        self.wake.notify_one();
    }

    /// Turns check requests on (the alert task runs).
    pub(crate) fn enable_alerts(&self) {
        self.alerts_on.store(true, Ordering::Relaxed);
    }

    /// The providers asked about since the last call.
    pub(crate) fn take_checks(&self) -> BTreeSet<ProviderId> {
        std::mem::take(&mut lock(&self.checks).pending)
    }

    /// Sets the providers whose successes should also trigger a check (those with an alert
    /// standing).
    pub(crate) fn watch(&self, providers: BTreeSet<ProviderId>) {
        lock(&self.checks).watched = providers;
    }

    /// Resolves when a check was requested (or was before this call and not yet taken).
    pub(crate) async fn checks_requested(&self) {
        self.wake.notified().await;
    }

    fn on_attempt(&self, attempt: &switchyard::AttemptEvent) -> Option<AnalyticsEvent> {
        let candidate = &attempt.candidate;
        {
            let mut recent =
                self.keys.entry((candidate.provider.clone(), candidate.key.clone())).or_default();
            if recent.fingerprint.is_none() {
                recent.fingerprint = Some(attempt.fingerprint.to_string());
            }
            if recent.outcomes.len() == RECENT_OUTCOMES {
                recent.outcomes.pop_front();
            }
            recent.outcomes.push_back(attempt.error.is_none());
            recent.last_used = Some(self.clock.utc());
        }
        {
            let mut sums = self.sums.entry(candidate.clone()).or_default();
            sums.attempts += 1;
            sums.successes += u64::from(attempt.error.is_none());
            sums.latency_ms += attempt.latency.as_secs_f64() * 1000.0;
        }
        if attempt.error.is_none() {
            // Attempts go to configured providers only: the map stays as small as the config.
            let mut latencies = self.latencies.entry(candidate.provider.clone()).or_default();
            if latencies.len() == RECENT_LATENCIES {
                latencies.pop_front();
            }
            latencies.push_back(attempt.latency);
        }
        let check = attempt.error.is_some()
            || (self.alerts_on.load(Ordering::Relaxed)
                && lock(&self.checks).watched.contains(&candidate.provider));
        if check {
            self.request_check(&candidate.provider);
        }
        self.analytics.as_ref()?;
        let usage = attempt.usage.unwrap_or_default();
        Some(AnalyticsEvent {
            at: self.clock.utc(),
            kind: EventKind::Attempt,
            request_id: attempt.request_id.clone(),
            client: attempt.client.as_deref().map(str::to_owned),
            route: attempt.route.clone(),
            provider: Some(candidate.provider.to_string()),
            key: Some(candidate.key.to_string()),
            model: Some(candidate.model.to_string()),
            success: attempt.error.is_none(),
            error_class: attempt.error.map(|kind| kind.as_str().to_owned()),
            quota_error: attempt.error.is_some_and(is_quota),
            status: attempt.status,
            latency_ms: attempt.latency.as_secs_f64() * 1000.0,
            prompt_tokens: u64::from(usage.prompt_tokens),
            completion_tokens: u64::from(usage.completion_tokens),
            cost: attempt.cost,
            tags: Vec::new(),
        })
    }

    fn on_request(&self, request: &switchyard::RequestEvent) -> Option<AnalyticsEvent> {
        if let Some(served_by) = &request.served_by {
            let mut sums = self.sums.entry(served_by.clone()).or_default();
            match request.cost.filter(|cost| cost.is_finite()) {
                Some(cost) => {
                    sums.costed += 1;
                    sums.cost += cost;
                }
                None => sums.uncosted += 1,
            }
        }
        self.analytics.as_ref()?;
        let candidate = request.served_by.as_ref().or(request.attempted.as_ref());
        let usage = request.usage.unwrap_or_default();
        Some(AnalyticsEvent {
            at: self.clock.utc(),
            kind: EventKind::Request,
            request_id: request.request_id.clone(),
            client: request.client.as_deref().map(str::to_owned),
            route: request.route.clone(),
            provider: candidate.map(|c| c.provider.to_string()),
            key: candidate.map(|c| c.key.to_string()),
            model: candidate.map(|c| c.model.to_string()),
            success: request.error.is_none(),
            error_class: request.error.map(str::to_owned),
            quota_error: matches!(request.error, Some("QUOTA_EXCEEDED" | "PARTIAL_QUOTA")),
            status: client_status(request),
            latency_ms: request.latency.as_secs_f64() * 1000.0,
            prompt_tokens: u64::from(usage.prompt_tokens),
            completion_tokens: u64::from(usage.completion_tokens),
            cost: request.cost,
            tags: request.tags.clone(),
        })
    }
}

/// The HTTP status the client got for a routed request: 200 once an answer began (a stream cut
/// later was sent as 200), else the status the gateway answers the router's error with (as
/// [`ServerError::status`](crate::error::ServerError::status) does; the event carries the
/// error's code only). `None` for a code this table does not know.
fn client_status(request: &switchyard::RequestEvent) -> Option<u16> {
    if request.served_by.is_some() {
        return Some(200);
    }
    let status = match request.error? {
        "QUOTA_EXCEEDED" | "PARTIAL_QUOTA" | "BUDGET_EXCEEDED" => 429,
        "INVALID_KEYS" | "QUOTA_BACKEND" | "OVERLOADED" => 503,
        "ALL_PROVIDERS_FAILED" => 502,
        "BAD_REQUEST" | "CONTENT_FILTERED" => 400,
        "DEADLINE_EXCEEDED" => 504,
        "UNKNOWN_MODEL" => 404,
        _ => return None,
    };
    Some(status)
}

/// Whether a failure is a spent rate limit or quota.
fn is_quota(kind: ErrorKind) -> bool {
    match kind {
        ErrorKind::RateLimited { .. } | ErrorKind::QuotaExhausted { .. } => true,
        ErrorKind::BillingStopped
        | ErrorKind::InvalidKey
        | ErrorKind::PermissionDenied
        | ErrorKind::ModelNotFound
        | ErrorKind::ContextTooLong
        | ErrorKind::RequestTooLarge
        | ErrorKind::ContentFiltered
        | ErrorKind::BadRequest
        | ErrorKind::Overloaded
        | ErrorKind::ServerError
        | ErrorKind::Timeout
        | ErrorKind::Network
        | ErrorKind::MalformedResponse => false,
    }
}

impl EventSink for EventHub {
    fn record(&self, event: &RouterEvent) {
        let row = match event {
            RouterEvent::Attempt(attempt) => self.on_attempt(attempt),
            RouterEvent::Request(request) => self.on_request(request),
        };
        if let (Some(row), Some(writer)) = (row, &self.analytics) {
            // A full queue drops the row and counts it (shown in /metrics); the request goes on.
            writer.record(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use switchyard::{RequestEvent, RouterError};

    use super::client_status;
    use crate::error::ServerError;

    fn request(error: Option<&'static str>) -> RequestEvent {
        RequestEvent {
            request_id: "r1".into(),
            route: "default".into(),
            client: None,
            tags: Vec::new(),
            served_by: None,
            attempted: None,
            n_attempts: 1,
            latency: Duration::from_millis(5),
            usage: None,
            cost: None,
            error,
            skipped: Vec::new(),
        }
    }

    #[test]
    fn the_recorded_status_is_the_one_the_gateway_answers_with() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let sources = [
            RouterError::UnknownModel { name: "x".into(), valid: Vec::new(), n_valid: 0 },
            RouterError::InvalidKeys { route: "r".into(), n_keys: 1, trace: Box::default() },
            RouterError::AllProvidersFailed { route: "r".into(), trace: Box::default() },
            RouterError::DeadlineExceeded {
                route: "r".into(),
                after: Duration::from_secs(1),
                trace: Box::default(),
            },
            RouterError::QuotaExceeded {
                route: "r".into(),
                n_keys: 2,
                earliest_reset: None,
                trace: Box::default(),
            },
        ];
        for source in sources {
            let code = source.code();
            let answered = ServerError::Router { source, now }.status().as_u16();
            assert_eq!(client_status(&request(Some(code))), Some(answered), "{code}");
        }
        assert_eq!(client_status(&request(Some("SOMETHING_NEW"))), None);
    }
}
