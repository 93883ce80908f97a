//! `router.stats()`: counters kept on the hot path with atomics, and the views computed on
//! demand (best candidate per route, quota summaries, available providers).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde::Serialize;
use switchyard_core::{Candidate, ErrorKind, ProviderId, Usage};
use switchyard_quota::{ProviderSummary, QuotaLedger};
use switchyard_score::{Scorer, best_index};

/// Counters updated by every request and attempt.
#[derive(Default)]
pub(crate) struct StatsCounters {
    requests: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    fallbacks: AtomicU64,
    attempts: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached: AtomicU64,
    calls_per_provider: DashMap<ProviderId, AtomicU64>,
    errors_by_class: DashMap<&'static str, AtomicU64>,
    request_errors: DashMap<&'static str, AtomicU64>,
}

impl StatsCounters {
    pub(crate) fn attempt(&self, candidate: &Candidate, error: Option<ErrorKind>) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        bump(&self.calls_per_provider, &candidate.provider);
        if let Some(kind) = error {
            bump(&self.errors_by_class, &kind.as_str());
        }
    }

    pub(crate) fn request_served(&self, n_attempts: u32, usage: Usage) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        if n_attempts > 1 {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        self.prompt_tokens.fetch_add(u64::from(usage.prompt_tokens), Ordering::Relaxed);
        self.completion_tokens.fetch_add(u64::from(usage.completion_tokens), Ordering::Relaxed);
    }

    /// A request answered from the response cache: served, with no attempt and no tokens.
    pub(crate) fn request_cached(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.cached.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_failed(&self, code: &'static str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.failed.fetch_add(1, Ordering::Relaxed);
        bump(&self.request_errors, &code);
    }
}

fn bump<K: std::hash::Hash + Eq + Clone>(map: &DashMap<K, AtomicU64>, key: &K) {
    if let Some(counter) = map.get(key) {
        counter.fetch_add(1, Ordering::Relaxed);
        return;
    }
    map.entry(key.clone()).or_default().fetch_add(1, Ordering::Relaxed);
}

fn snapshot<K: Clone + Ord + ToString + std::hash::Hash + Eq>(
    map: &DashMap<K, AtomicU64>,
) -> BTreeMap<String, u64> {
    map.iter()
        .map(|entry| (entry.key().to_string(), entry.value().load(Ordering::Relaxed)))
        .collect()
}

/// The requests of this router's life.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionSummary {
    /// Requests ended.
    pub requests: u64,
    /// Requests served.
    pub successes: u64,
    /// Requests that got an error.
    pub failures: u64,
    /// Tokens of served answers, prompt and completion.
    pub tokens: u64,
    /// successes / requests, 0 when there were none.
    pub success_rate: f64,
}

/// The router's statistics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouterStats {
    /// Attempts made (upstream calls).
    pub total_calls: u64,
    /// Attempts per provider.
    pub calls_per_provider: BTreeMap<String, u64>,
    /// Requests served by another candidate than the first one tried.
    pub fallbacks: u64,
    /// Failed attempts by class.
    pub errors_by_class: BTreeMap<String, u64>,
    /// Failed requests by error code.
    pub request_errors: BTreeMap<String, u64>,
    /// The best candidate of each route by its learned score (without exploration).
    pub best_per_route: BTreeMap<String, Option<Candidate>>,
    /// Providers with at least one key available now.
    pub available_providers: Vec<ProviderId>,
    /// Every provider's quota summary.
    pub quota: Vec<ProviderSummary>,
    /// The session so far.
    pub session: SessionSummary,
    /// Requests answered from the response cache.
    pub cache_hits: u64,
}

/// The statistics of a router with these counters and `routes` (name, candidates), its best
/// candidates by `scorer` and its quota by `ledger`.
pub(crate) async fn collect<'a>(
    counters: &StatsCounters,
    routes: impl Iterator<Item = (&'a str, &'a [Candidate])>,
    scorer: &dyn Scorer,
    ledger: &dyn QuotaLedger,
) -> RouterStats {
    let requests = counters.requests.load(Ordering::Relaxed);
    let successes = counters.served.load(Ordering::Relaxed);
    let mut best_per_route = BTreeMap::new();
    let mut providers: Vec<ProviderId> = Vec::new();
    for (name, candidates) in routes {
        let best = best_index(&scorer.score(candidates)).map(|idx| candidates[idx].clone());
        best_per_route.insert(name.to_owned(), best);
        providers.extend(candidates.iter().map(|candidate| candidate.provider.clone()));
    }
    providers.sort();
    providers.dedup();
    let mut quota = Vec::new();
    let mut available_providers = Vec::new();
    for provider in providers {
        match ledger.summary(&provider).await {
            Ok(summary) => {
                let any_available =
                    summary.keys.is_empty() || summary.keys.iter().any(|key| key.available);
                if any_available {
                    available_providers.push(provider.clone());
                }
                quota.push(summary);
            }
            Err(error) => {
                tracing::warn!(provider = %provider, error = %error, "quota summary unavailable")
            }
        }
    }
    RouterStats {
        total_calls: counters.attempts.load(Ordering::Relaxed),
        calls_per_provider: snapshot(&counters.calls_per_provider),
        fallbacks: counters.fallbacks.load(Ordering::Relaxed),
        errors_by_class: snapshot(&counters.errors_by_class),
        request_errors: snapshot(&counters.request_errors),
        best_per_route,
        available_providers,
        quota,
        session: SessionSummary {
            requests,
            successes,
            failures: counters.failed.load(Ordering::Relaxed),
            tokens: counters.prompt_tokens.load(Ordering::Relaxed)
                + counters.completion_tokens.load(Ordering::Relaxed),
            success_rate: if requests == 0 { 0.0 } else { successes as f64 / requests as f64 },
        },
        cache_hits: counters.cached.load(Ordering::Relaxed),
    }
}
