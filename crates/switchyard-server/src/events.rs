//! [`EventHub`]: the router's [`EventSink`] in the gateway. Every attempt and request event
//! becomes an analytics row (handed to the store's non-blocking writer), with the client that
//! asked attributed; each key's recent outcomes are kept for the low-success alert; and a
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

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;

use switchyard::{Candidate, EventSink, KeyId, ProviderId, RouterEvent};
use switchyard_core::{Clock, ErrorKind};
use switchyard_store::analytics::{AnalyticsEvent, AnalyticsWriter, EventKind};

/// Attempts remembered per key for the success-rate alert.
const RECENT_OUTCOMES: usize = 20;

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
        })
    }

    fn on_request(&self, request: &switchyard::RequestEvent) -> Option<AnalyticsEvent> {
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
            status: None,
            latency_ms: request.latency.as_secs_f64() * 1000.0,
            prompt_tokens: u64::from(usage.prompt_tokens),
            completion_tokens: u64::from(usage.completion_tokens),
            cost: request.cost,
        })
    }
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
