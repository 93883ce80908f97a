//! Streamed answers. A stream that fails before its first chunk is retried on the next
//! candidate like any request (the cascade waits for the first chunk before it commits);
//! one that breaks after it ends with a typed [`StreamError`] that says how much was
//! delivered, and counts against its candidate.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use switchyard_core::{
    Call, Candidate, ChatChunk, ChatRequest, ChunkStream, ErrorKind, Fingerprint, ProviderError,
    Usage,
};
use switchyard_score::Outcome;

use crate::circuit::CircuitBreaker;
use crate::error::RouterError;
use crate::router::{AttemptGuard, PermitGuard, RequestOptions, Routed, Router, Served, Slot};
use crate::trace::Trace;

/// A stream broke after its first chunk reached the caller.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The upstream failed mid-stream.
    #[error(
        "stream from {candidate} broke after {delivered_chunks} chunks ({delivered_chars} characters): {source}"
    )]
    Interrupted {
        /// The candidate that was streaming.
        candidate: Candidate,
        /// Chunks delivered before the break.
        delivered_chunks: usize,
        /// Characters of text delivered before the break.
        delivered_chars: usize,
        /// The upstream's failure.
        #[source]
        source: ProviderError,
    },
}

/// A streamed answer with what serves it.
pub struct RoutedStream {
    /// The request's id.
    pub request_id: String,
    /// The candidate streaming.
    pub served_by: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// What the router did up to the first chunk.
    pub trace: Trace,
    first: Option<ChatChunk>,
    live: Option<Live>,
    /// What the stream cost, once it ended (cleanly or broken), when its model has a price.
    cost: Option<f64>,
}

struct Live {
    chunks: ChunkStream,
    permit: PermitGuard,
    _attempt: AttemptGuard,
    /// Counts the stream against the router's overload cap until it ends.
    _load: Option<crate::wait::LoadGuard>,
    slot: Arc<Slot>,
    router: Router,
    route: Arc<crate::router::Route>,
    started: Instant,
    usage: Option<Usage>,
    n_chunks: usize,
    n_chars: usize,
    n_attempts: u32,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream")
            .field("request_id", &self.request_id)
            .field("served_by", &self.served_by)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Streams the answer to `request` through `route`.
    ///
    /// # Errors
    /// [`RouterError`] when no candidate produced a first chunk.
    pub async fn chat_stream(
        &self,
        route: &str,
        request: &ChatRequest,
        options: RequestOptions,
    ) -> Result<RoutedStream, RouterError> {
        let routed = self
            .cascade(route, request, &options, |slot| async move {
                let call = Call::new(request, &slot.candidate.model, slot.credential.as_ref());
                let mut stream = slot.provider.chat_stream(call).await?;
                match stream.chunks.next().await {
                    Some(Ok(first)) => Ok(Served {
                        value: (first, stream.chunks),
                        rate_limits: stream.rate_limits,
                        upstream_request_id: stream.upstream_request_id,
                        usage: None,
                    }),
                    Some(Err(error)) => Err(error),
                    None => Err(ProviderError::new(
                        ErrorKind::MalformedResponse,
                        slot.candidate.provider.clone(),
                        "the stream ended before its first chunk",
                    )
                    .with_key(slot.candidate.key.clone())
                    .with_model(slot.candidate.model.clone())),
                }
            })
            .await?;
        let Routed {
            value: (first, chunks),
            slot,
            permit,
            attempt,
            trace,
            request_id,
            started,
            route,
            load,
            ..
        } = routed;
        let n_attempts = u32::try_from(trace.attempts.len()).unwrap_or(u32::MAX);
        let mut live = Live {
            chunks,
            permit,
            _attempt: attempt,
            _load: load,
            slot: Arc::clone(&slot),
            router: self.clone(),
            route,
            started,
            usage: None,
            n_chunks: 0,
            n_chars: 0,
            n_attempts,
        };
        live.count(&first);
        Ok(RoutedStream {
            request_id,
            served_by: slot.candidate.clone(),
            fingerprint: slot.fingerprint,
            trace,
            first: Some(first),
            live: Some(live),
            cost: None,
        })
    }
}

impl RoutedStream {
    /// What the stream cost by its model's price, from the usage the provider reported (the
    /// estimate when it sent none). `None` while the stream runs and for a model with no
    /// price.
    pub fn cost(&self) -> Option<f64> {
        self.cost
    }
}

impl Live {
    /// What the stream cost so far by its model's price.
    fn spent(&self) -> Option<f64> {
        let usage = self.usage.unwrap_or_else(|| self.permit.estimated_usage());
        self.slot.facts.price.map(|price| {
            price.cost(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens))
        })
    }

    fn count(&mut self, chunk: &ChatChunk) {
        self.n_chunks += 1;
        self.n_chars += chunk.text.chars().count();
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    /// Adds what the stream cost to today's spend (a broken stream was billed up to where it
    /// broke, as far as the usage says).
    fn record_spend(&self, usage: &Usage) {
        let inner = self.router.inner();
        if let (Some(budgets), Some(price)) = (&inner.budgets, self.slot.facts.price) {
            let cost =
                price.cost(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens));
            budgets.record(
                &self.route.name,
                &self.slot.candidate.provider,
                cost,
                inner.clock.utc(),
            );
        }
    }

    /// The stream ended cleanly: settle with the reported usage (the estimate when the
    /// provider sent none), and log the request.
    fn finish(self, request_id: &str) {
        let usage = self.usage.unwrap_or_else(|| self.permit.estimated_usage());
        self.record_spend(&usage);
        self.router.finish_request(
            &self.route,
            request_id,
            self.started,
            Ok((&self.slot.candidate, self.n_attempts, usage)),
        );
        let permit = self.permit;
        spawn(async move { permit.settle(&usage).await });
    }

    /// The stream broke mid-way: what was sent may have been counted, so the permit is
    /// settled as spent; the break counts against the candidate.
    fn break_off(self, request_id: &str, error: ProviderError) -> StreamError {
        let inner = self.router.inner();
        let now = inner.clock.now();
        inner.scorer.record(
            &self.slot.candidate,
            Outcome::Failure {
                kind: error.kind,
                latency: now.saturating_duration_since(self.started),
            },
        );
        if CircuitBreaker::counts(error.kind) {
            self.slot.circuit.record_failure(error.kind, now);
        }
        inner.stats.attempt(&self.slot.candidate, Some(error.kind));
        self.router.finish_request(
            &self.route,
            request_id,
            self.started,
            Err(("STREAM_INTERRUPTED", self.n_attempts)),
        );
        tracing::warn!(
            request_id = %request_id,
            candidate = %self.slot.candidate,
            fingerprint = %self.slot.fingerprint,
            delivered_chunks = self.n_chunks,
            error = %error,
            "stream broke mid-way"
        );
        let usage = self.usage.unwrap_or_else(|| self.permit.estimated_usage());
        self.record_spend(&usage);
        let ledger = Arc::clone(&inner.ledger);
        let candidate = self.slot.candidate.clone();
        let recorded = error.clone();
        let permit = self.permit;
        spawn(async move {
            permit.settle(&usage).await;
            let _ = ledger.record_error(&candidate, &recorded).await;
        });
        StreamError::Interrupted {
            candidate: self.slot.candidate.clone(),
            delivered_chunks: self.n_chunks,
            delivered_chars: self.n_chars,
            source: error,
        }
    }
}

fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

impl Stream for RoutedStream {
    type Item = Result<ChatChunk, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        let Some(live) = this.live.as_mut() else { return Poll::Ready(None) };
        match live.chunks.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                live.count(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                let live = this.live.take().expect("invariant: checked above");
                this.cost = live.spent();
                Poll::Ready(Some(Err(live.break_off(&this.request_id, error))))
            }
            Poll::Ready(None) => {
                let live = this.live.take().expect("invariant: checked above");
                this.cost = live.spent();
                live.finish(&this.request_id);
                Poll::Ready(None)
            }
        }
    }
}
