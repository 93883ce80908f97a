//! The [`Router`]: what a caller asks of a built router. A call goes through the response
//! cache, then the cascade ([`crate::cascade`]), then settles its money and ends in one event
//! ([`crate::finish`]). The rest are views of the router's state and the batch helper.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchyard_core::{Candidate, ChatReply, ChatRequest, ModelId, ProviderId};
use switchyard_quota::QuotaLedger;
use switchyard_score::Scorer;

use crate::attempt::Served;
use crate::budget::{Books, SpendDay, SpendWriteBehind};
use crate::cache::{CacheKey, Entry, ResponseCache};
use crate::cascade;
use crate::circuit::CircuitState;
use crate::config::RequestOptions;
use crate::error::RouterError;
use crate::recent::MAX_REQUEST_ID_LEN;
use crate::state::Inner;
use crate::stats::{self, RouterStats};
use crate::trace::{Answer, Trace};

/// Routes chat requests across providers and keys. Cheap to clone; clones share all state.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Router {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// This router's books of spend, for a router that replaces it to keep.
    pub(crate) fn budget_books(&self) -> Option<Arc<Mutex<Books>>> {
        self.inner.budgets().map(|budgets| budgets.books())
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
        let inner = self.inner.as_ref();
        let cache_key = self.cache_key(route, request, &options);
        if let (Some(cache), Some(key)) = (inner.cache(), &cache_key)
            && let Some(entry) = cache.get(key, inner.clock().now())
        {
            return Ok(self.cached_answer(route, &options, &entry));
        }
        let routed = cascade::run(inner, route, request, &options, |slot| async move {
            let ChatReply { response, rate_limits, upstream_request_id } =
                slot.provider().chat(slot.call(request)).await?;
            let usage = Some(response.usage);
            Ok(Served { value: response, rate_limits, upstream_request_id, usage })
        })
        .await?;
        let usage = routed.value.usage;
        let settled = routed.settle(inner, usage).await;
        let answer = Answer {
            request_id: settled.request_id,
            served_by: settled.served_by,
            fingerprint: settled.fingerprint,
            n_attempts: settled.n_attempts,
            overhead: settled.overhead,
            response: settled.value,
            trace: settled.trace,
            cached: false,
            cost: settled.cost,
        };
        if let (Some(cache), Some(key)) = (inner.cache(), cache_key) {
            let now = inner.clock().now();
            cache.insert(key, &answer.response, &answer.served_by, answer.fingerprint, now);
        }
        Ok(answer)
    }

    /// The cache key of a call that reads and stores cached answers; `None` when it does not.
    fn cache_key(
        &self,
        route: &str,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Option<CacheKey> {
        self.inner.cache()?;
        let wanted = options.cache.unwrap_or_else(|| {
            self.inner.resolve_configured(route).is_some_and(|route| route.caches())
        });
        if wanted { ResponseCache::key(route, request) } else { None }
    }

    /// A cached answer, served again: no upstream call, no quota, no attempt.
    fn cached_answer(&self, route: &str, options: &RequestOptions, entry: &Entry) -> Answer {
        let request_id = options
            .request_id
            .clone()
            .unwrap_or_else(|| format!("req_{:016x}", self.inner.rng().next_u64()));
        self.inner.counters().request_cached();
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
        let candidate = self.inner.recent().get(request_id).ok_or_else(|| {
            // The id is the client's: repeated in part only.
            FeedbackError::UnknownRequest(request_id.chars().take(MAX_REQUEST_ID_LEN).collect())
        })?;
        self.inner
            .scorer()
            .record_quality(&candidate, quality)
            .map_err(|_| FeedbackError::OutOfRange(quality))?;
        Ok(candidate)
    }

    /// The router's statistics now.
    pub async fn stats(&self) -> RouterStats {
        let inner = self.inner.as_ref();
        let routes = inner.routes().map(|route| (route.name(), route.candidates()));
        stats::collect(inner.counters(), routes, inner.scorer().as_ref(), inner.ledger().as_ref())
            .await
    }

    /// The circuit state of a candidate the router knows.
    pub fn circuit_state(&self, candidate: &Candidate) -> Option<CircuitState> {
        let now = self.inner.clock().now();
        self.inner.slot(candidate).map(|slot| slot.circuit().state(now))
    }

    /// The quota ledger the router admits through.
    pub fn ledger(&self) -> &Arc<dyn QuotaLedger> {
        self.inner.ledger()
    }

    /// The scorer the router learns with.
    pub fn scorer(&self) -> &Arc<dyn Scorer> {
        self.inner.scorer()
    }

    /// The candidates of a route, in configured order.
    pub fn candidates(&self, route: &str) -> Option<Vec<Candidate>> {
        self.inner.resolve_configured(route).map(|route| route.candidates().to_vec())
    }

    /// Requests waiting now for a candidate to free (the bounded wait).
    pub fn waiting(&self) -> usize {
        self.inner.waiting().len()
    }

    /// Today's spend per route and provider, when budgets are configured.
    pub fn spend(&self) -> Option<SpendDay> {
        self.inner.budgets().map(|budgets| budgets.today(self.inner.clock().utc()))
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
    ) -> Result<Option<SpendWriteBehind>, crate::budget::SpendError> {
        self.inner.budgets().map(|budgets| SpendWriteBehind::start(budgets, interval)).transpose()
    }

    /// Saves today's spend now if it changed, blocking on the store (call it off the
    /// request path, at shutdown or before a reload).
    ///
    /// # Errors
    /// [`SpendError`](crate::SpendError) when the store cannot be written.
    pub fn flush_spend(&self) -> Result<(), crate::budget::SpendError> {
        self.inner.budgets().map_or(Ok(()), |budgets| budgets.flush())
    }

    /// Requests of the wait queue asleep until a candidate frees, leaving out those retrying
    /// admission this moment.
    pub fn sleeping(&self) -> usize {
        self.inner.waiting().asleep(self.inner.clock().now())
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
    ///
    /// [`RouterConfig::max_in_flight`]: crate::RouterConfig::max_in_flight
    pub fn in_flight(&self) -> u32 {
        self.inner.load().in_flight()
    }

    /// The names of the configured routes.
    pub fn route_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.inner.routes().map(|route| route.name().to_owned()).collect();
        names.sort();
        names
    }

    /// The providers the router knows.
    pub fn providers(&self) -> Vec<ProviderId> {
        let mut ids: Vec<ProviderId> = self.inner.providers().cloned().collect();
        ids.sort();
        ids
    }

    /// The model ids of a provider a client may name: its models the configuration declares
    /// and route targets, in their canonical spelling. Fixed when the router is built.
    pub fn models_of(&self, provider: &ProviderId) -> Vec<ModelId> {
        self.inner.models_of(provider)
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
