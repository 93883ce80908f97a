//! Streamed answers. A stream that fails before its first chunk is retried on the next
//! candidate like any request (the cascade waits for the first chunk before it commits);
//! one that breaks after it ends with a typed [`StreamError`] that says how much was
//! delivered, and counts against its candidate. So does one that goes quiet for
//! [`RouterConfig::stream_idle_timeout`](crate::RouterConfig::stream_idle_timeout) or runs
//! past [`RouterConfig::stream_deadline`](crate::RouterConfig::stream_deadline), both timed
//! on the router's clock.
//!
//! Money settles whatever happens: at the end by the usage reported, and a stream dropped
//! before its end (the client hung up) settles what it generated (its usage if one was seen,
//! the admission estimate otherwise).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use switchyard_core::{
    Candidate, ChatChunk, ChatRequest, ChunkStream, Clock, ErrorKind, Fingerprint, ProviderError,
    Usage,
};
use switchyard_score::Outcome;

use crate::attempt::{Routed, Served};
use crate::budget::SpendHold;
use crate::cascade;
use crate::circuit::CircuitBreaker;
use crate::config::RequestOptions;
use crate::error::RouterError;
use crate::finish::{Ending, RequestMeta, finish, settle_spend, skips_only};
use crate::guards::{AttemptGuard, PermitGuard};
use crate::router::Router;
use crate::state::{Inner, Slot};
use crate::trace::Trace;
use crate::wait::LoadGuard;

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
    /// The upstream sent no chunk for the router's `stream_idle_timeout`.
    #[error(
        "stream from {candidate} sent nothing for {:.3}s after {delivered_chunks} chunks ({delivered_chars} characters)", .idle.as_secs_f64()
    )]
    IdleTimeout {
        /// The candidate that was streaming.
        candidate: Candidate,
        /// The idle timeout.
        idle: Duration,
        /// Chunks delivered before it.
        delivered_chunks: usize,
        /// Characters of text delivered before it.
        delivered_chars: usize,
    },
    /// The stream ran past the router's `stream_deadline`.
    #[error(
        "stream from {candidate} ran past its {:.3}s deadline after {delivered_chunks} chunks ({delivered_chars} characters)", .deadline.as_secs_f64()
    )]
    DeadlineExceeded {
        /// The candidate that was streaming.
        candidate: Candidate,
        /// The deadline, from the request's start.
        deadline: Duration,
        /// Chunks delivered before it.
        delivered_chunks: usize,
        /// Characters of text delivered before it.
        delivered_chars: usize,
    },
}

/// Hears once what a stream cost, however it ended: see [`RoutedStream::on_settled`].
type Settled = Box<dyn FnOnce(Option<f64>) + Send>;

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
    on_settled: Option<Settled>,
}

struct Live {
    chunks: ChunkStream,
    permit: PermitGuard,
    /// The estimated cost held against the budgets until the stream settles.
    spend: Option<SpendHold>,
    _attempt: AttemptGuard,
    /// Counts the stream against the router's overload cap until it ends.
    _load: Option<LoadGuard>,
    slot: Arc<Slot>,
    inner: Arc<Inner>,
    /// Who asked what, for the request's event.
    meta: RequestMeta,
    /// The candidates skipped before it, for the request's event.
    skips: Trace,
    usage: Option<Usage>,
    n_chunks: usize,
    n_chars: usize,
    n_attempts: u32,
    clock: Arc<dyn Clock>,
    /// When the last chunk arrived.
    last_chunk: Instant,
    /// The idle timeout.
    idle: Duration,
    /// When the whole stream must have ended, and the deadline it comes from.
    ends_at: Instant,
    deadline: Duration,
    /// A sleep on the clock until the earliest instant a timeout may be due. Armed once per
    /// quiet spell, not per chunk: when it fires early (chunks came since) it is re-armed.
    timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// How a stream ended on the router's side.
enum Expired {
    Idle,
    Deadline,
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
        let inner = self.inner();
        let routed = cascade::run(inner, route, request, &options, |slot| async move {
            let mut stream = slot.provider().chat_stream(slot.call(request)).await?;
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
                    slot.candidate().provider.clone(),
                    "the stream ended before its first chunk",
                )
                .with_key(slot.candidate().key.clone())
                .with_model(slot.candidate().model.clone())),
            }
        })
        .await?;
        let Routed {
            value: (first, chunks), slot, permit, spend, attempt, trace, meta, load, ..
        } = routed;
        let n_attempts = u32::try_from(trace.attempts.len()).unwrap_or(u32::MAX);
        let clock = Arc::clone(inner.clock());
        let config = inner.config();
        let deadline = config.stream_deadline;
        let (request_id, started) = (meta.request_id.clone(), meta.started);
        let mut live = Live {
            chunks,
            permit,
            spend,
            _attempt: attempt,
            _load: load,
            slot: Arc::clone(&slot),
            inner: Arc::clone(inner),
            meta,
            skips: skips_only(inner, &trace),
            usage: None,
            n_chunks: 0,
            n_chars: 0,
            n_attempts,
            last_chunk: clock.now(),
            idle: config.stream_idle_timeout,
            ends_at: started.checked_add(deadline).unwrap_or(started),
            deadline,
            timer: None,
            clock,
        };
        live.count(&first);
        Ok(RoutedStream {
            request_id,
            served_by: slot.candidate().clone(),
            fingerprint: slot.fingerprint(),
            trace,
            first: Some(first),
            live: Some(live),
            cost: None,
            on_settled: None,
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

    /// Calls `settled` once with what the stream cost (as [`cost`](Self::cost)) when it
    /// settles: at its end, when it breaks or times out, or when it is dropped before its
    /// end (the client went away). At once when it has already ended. The gateway charges a
    /// client's own budget here, so hanging up is no way around it.
    pub fn on_settled(&mut self, settled: impl FnOnce(Option<f64>) + Send + 'static) {
        if self.live.is_some() {
            self.on_settled = Some(Box::new(settled));
        } else {
            settled(self.cost);
        }
    }

    /// The stream is over with `cost`: remember it and tell whoever listens.
    fn settled(&mut self, cost: Option<f64>) {
        self.cost = cost;
        if let Some(settled) = self.on_settled.take() {
            settled(cost);
        }
    }
}

impl Live {
    /// What the stream cost so far by its model's price: by the usage reported, the
    /// admission estimate while none was.
    fn spent(&self) -> Option<f64> {
        let usage = self.usage();
        self.slot.cost(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens))
    }

    fn usage(&self) -> Usage {
        self.usage.unwrap_or_else(|| self.permit.estimated_usage())
    }

    fn count(&mut self, chunk: &ChatChunk) {
        self.n_chunks += 1;
        self.n_chars += chunk.text.chars().count();
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    /// Whether a timeout is due; `Pending` with a wake-up armed on the clock when not yet.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            let now = self.clock.now();
            if now >= self.ends_at {
                return Poll::Ready(Expired::Deadline);
            }
            let idle_at = self.last_chunk.checked_add(self.idle).unwrap_or(self.ends_at);
            if now >= idle_at {
                return Poll::Ready(Expired::Idle);
            }
            let timer = self.timer.get_or_insert_with(|| {
                let clock = Arc::clone(&self.clock);
                let due = idle_at.min(self.ends_at);
                Box::pin(async move { clock.sleep_until(due).await })
            });
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Due, or early because chunks came since it was armed: check again.
                Poll::Ready(()) => self.timer = None,
            }
        }
    }

    /// Settles the stream's money with what it cost.
    fn settle_spend(&mut self, cost: Option<f64>) {
        let hold = self.spend.take();
        settle_spend(&self.inner, hold, &self.meta.route, &self.slot, cost);
    }

    /// The stream ended on the caller's side: at its end, or dropped before it (the client
    /// went away). Settles what it generated by the usage reported (the estimate when none
    /// was) and ends the request. A drop is not the candidate's fault: its health and score
    /// are left alone, and no request failed.
    fn end(mut self, dropped: bool) -> Option<f64> {
        let usage = self.usage();
        let cost = self.spent();
        self.settle_spend(cost);
        let (candidate, n_attempts) = (self.slot.candidate(), self.n_attempts);
        let ending = if dropped {
            Ending::Cut { candidate, n_attempts, usage, code: "STREAM_DROPPED", counted: false }
        } else {
            Ending::Served { candidate, n_attempts, usage }
        };
        finish(&self.inner, &self.meta, ending, cost, Some(&self.skips));
        let permit = self.permit;
        spawn(async move { permit.settle(&usage).await });
        cost
    }

    /// The stream broke mid-way (or timed out): what was sent may have been counted, so the
    /// permit is settled as spent; the break counts against the candidate.
    fn break_off(mut self, error: ProviderError) -> (ProviderError, Option<f64>) {
        let inner = Arc::clone(&self.inner);
        let now = inner.clock().now();
        let candidate = self.slot.candidate().clone();
        let latency = now.saturating_duration_since(self.meta.started);
        inner.scorer().record(&candidate, Outcome::Failure { kind: error.kind, latency });
        if CircuitBreaker::counts(error.kind) {
            self.slot.circuit().record_failure(error.kind, now);
        }
        inner.counters().attempt(&candidate, Some(error.kind));
        let cost = self.spent();
        self.settle_spend(cost);
        let usage = self.usage();
        let ending = Ending::Cut {
            candidate: &candidate,
            n_attempts: self.n_attempts,
            usage,
            code: "STREAM_INTERRUPTED",
            counted: true,
        };
        finish(&inner, &self.meta, ending, cost, Some(&self.skips));
        tracing::warn!(
            request_id = %self.meta.request_id,
            candidate = %candidate,
            fingerprint = %self.slot.fingerprint(),
            delivered_chunks = self.n_chunks,
            error = %error,
            "stream broke mid-way"
        );
        let ledger = Arc::clone(inner.ledger());
        let recorded = error.clone();
        let permit = self.permit;
        spawn(async move {
            permit.settle(&usage).await;
            let _ = ledger.record_error(&candidate, &recorded).await;
        });
        (error, cost)
    }

    /// The router ended the stream: no chunk for too long, or past its deadline.
    fn expire(self, why: Expired) -> (StreamError, Option<f64>) {
        let (candidate, delivered_chunks, delivered_chars) =
            (self.slot.candidate().clone(), self.n_chunks, self.n_chars);
        let (idle, deadline) = (self.idle, self.deadline);
        let message = match why {
            Expired::Idle => format!("no chunk for {:.3}s", idle.as_secs_f64()),
            Expired::Deadline => format!("past the {:.3}s stream deadline", deadline.as_secs_f64()),
        };
        let error = ProviderError::new(ErrorKind::Timeout, candidate.provider.clone(), message)
            .with_key(candidate.key.clone())
            .with_model(candidate.model.clone());
        let (_, cost) = self.break_off(error);
        let error = match why {
            Expired::Idle => {
                StreamError::IdleTimeout { candidate, idle, delivered_chunks, delivered_chars }
            }
            Expired::Deadline => StreamError::DeadlineExceeded {
                candidate,
                deadline,
                delivered_chunks,
                delivered_chars,
            },
        };
        (error, cost)
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
            Poll::Pending => {
                let Poll::Ready(why) = live.poll_expired(cx) else { return Poll::Pending };
                let live = this.live.take().expect("invariant: checked above");
                let (error, cost) = live.expire(why);
                this.settled(cost);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let now = live.clock.now();
                if now >= live.ends_at {
                    // An upstream that never stops is cut at the deadline all the same.
                    let live = this.live.take().expect("invariant: checked above");
                    let (error, cost) = live.expire(Expired::Deadline);
                    this.settled(cost);
                    return Poll::Ready(Some(Err(error)));
                }
                live.last_chunk = now;
                live.count(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                let live = this.live.take().expect("invariant: checked above");
                let candidate = live.slot.candidate().clone();
                let (delivered_chunks, delivered_chars) = (live.n_chunks, live.n_chars);
                let (source, cost) = live.break_off(error);
                this.settled(cost);
                Poll::Ready(Some(Err(StreamError::Interrupted {
                    candidate,
                    delivered_chunks,
                    delivered_chars,
                    source,
                })))
            }
            Poll::Ready(None) => {
                let live = this.live.take().expect("invariant: checked above");
                let cost = live.end(false);
                this.settled(cost);
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for RoutedStream {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            let cost = live.end(true);
            self.settled(cost);
        }
    }
}
