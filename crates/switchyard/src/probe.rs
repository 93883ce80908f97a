//! Health probes: an optional background task that calls every key with a one-token
//! completion at an interval and feeds the outcome to the ledger and the scorer, so a key
//! revoked upstream is known (and out of rotation) before a user request hits it.
//!
//! A one-token completion, not a model listing: listing models succeeds for a key with no
//! credit left. Probes go through admission like any call, so they never push a key past a
//! declared limit, and a key already out (cooling, spent, invalid) is not probed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_core::{Candidate, ChatRequest, ErrorKind, Fingerprint, ProviderId};
use switchyard_quota::{Estimate, QuotaError};
use switchyard_score::Outcome;

use crate::config::MAX_TIMEOUT;
use crate::router::Router;
use crate::state::Slot;

/// How the probes run.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Time between two rounds, on the router's clock (default 5 minutes).
    pub interval: Duration,
    /// The prompt of the one-token completion (default `"ping"`).
    pub prompt: String,
    /// How long one probe may take before it counts as a timeout (default 30 s).
    pub timeout: Duration,
    /// The providers whose keys are probed; empty (the default): every provider. Several
    /// probe tasks with their own intervals split the providers between them this way.
    pub providers: Vec<ProviderId>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            prompt: "ping".to_owned(),
            timeout: Duration::from_secs(30),
            providers: Vec::new(),
        }
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    /// The key answered.
    Healthy {
        /// How long the answer took.
        latency: Duration,
    },
    /// The key failed; the ledger and scorer were told.
    Failed {
        /// How.
        kind: ErrorKind,
    },
    /// The key was not probed: the ledger has it out already (cooling, spent, invalid).
    Skipped {
        /// The ledger's reason.
        reason: String,
    },
}

/// One key's probe.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// The candidate probed (the key with the first of its models).
    pub candidate: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// What the probe found.
    pub outcome: ProbeOutcome,
}

/// The running probe task; dropping it stops the probes.
pub struct ProbeHandle {
    task: tokio::task::JoinHandle<()>,
    rounds: Arc<AtomicU64>,
}

impl ProbeHandle {
    /// How many rounds have finished.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Stops the probes.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Router {
    /// Probes every key (of `config.providers`, when it names some) once, now: one key of each
    /// provider at a time, with the first of the models it serves.
    pub async fn probe_once(&self, config: &ProbeConfig) -> Vec<ProbeResult> {
        let request = ChatRequest::from_user(config.prompt.clone()).with_max_tokens(1);
        let mut results = Vec::new();
        for slot in self.probe_slots() {
            if !config.providers.is_empty()
                && !config.providers.contains(&slot.candidate().provider)
            {
                continue;
            }
            results.push(self.probe(&slot, &request, config.timeout).await);
        }
        results
    }

    /// Starts probing every key at `config.interval`, the first round now. Needs a Tokio
    /// runtime.
    pub fn spawn_probes(&self, config: ProbeConfig) -> ProbeHandle {
        let router = self.clone();
        let rounds = Arc::new(AtomicU64::new(0));
        let finished = Arc::clone(&rounds);
        let task = tokio::spawn(async move {
            loop {
                let results = router.probe_once(&config).await;
                let n_failed = results
                    .iter()
                    .filter(|result| matches!(result.outcome, ProbeOutcome::Failed { .. }))
                    .count();
                tracing::debug!(n_keys = results.len(), n_failed, "probe round done");
                finished.fetch_add(1, Ordering::Release);
                // From configuration: cut so the clock's arithmetic cannot overflow.
                router.inner().clock().sleep(config.interval.min(switchyard_core::MAX_HINT)).await;
            }
        });
        ProbeHandle { task, rounds }
    }

    /// One slot per key: the key with the first of its models, in a stable order.
    fn probe_slots(&self) -> Vec<Arc<Slot>> {
        let mut slots = self.inner().slots();
        slots.sort_by(|a, b| a.candidate().cmp(b.candidate()));
        slots.dedup_by(|later, first| {
            later.candidate().provider == first.candidate().provider
                && later.candidate().key == first.candidate().key
        });
        slots
    }

    async fn probe(&self, slot: &Slot, request: &ChatRequest, timeout: Duration) -> ProbeResult {
        let inner = self.inner();
        let (clock, ledger, scorer) = (inner.clock(), inner.ledger(), inner.scorer());
        let result = |outcome| ProbeResult {
            candidate: slot.candidate().clone(),
            fingerprint: slot.fingerprint(),
            outcome,
        };
        let estimate = Estimate::of(request, 1);
        let permit = match ledger.admit(slot.candidate(), estimate).await {
            Ok(permit) => permit,
            Err(QuotaError::Refused { reason, .. }) => {
                return result(ProbeOutcome::Skipped { reason: reason.to_string() });
            }
            Err(error) => return result(ProbeOutcome::Skipped { reason: error.to_string() }),
        };
        let started = clock.now();
        let answer = tokio::select! {
            answer = slot.provider().chat(slot.call(request)) => Some(answer),
            () = clock.sleep(timeout.min(MAX_TIMEOUT)) => None,
        };
        let latency = clock.now().saturating_duration_since(started);
        match answer {
            Some(Ok(reply)) => {
                if let Err(error) = ledger.settle(permit, &reply.response.usage).await {
                    tracing::warn!(error = %error, "settling a probe failed");
                }
                if !reply.rate_limits.is_empty() {
                    let _ = ledger.observe(slot.candidate(), &reply.rate_limits).await;
                }
                let tokens = u64::from(reply.response.usage.total_tokens);
                scorer.record(slot.candidate(), Outcome::Success { latency, tokens });
                result(ProbeOutcome::Healthy { latency })
            }
            Some(Err(error)) => {
                if let Err(ledger_error) = ledger.release(permit).await {
                    tracing::warn!(error = %ledger_error, "releasing a probe's permit failed");
                }
                if let Err(ledger_error) = ledger.record_error(slot.candidate(), &error).await {
                    tracing::warn!(error = %ledger_error, "recording a probe's error failed");
                }
                scorer.record(slot.candidate(), Outcome::Failure { kind: error.kind, latency });
                tracing::warn!(candidate = %slot.candidate(), fingerprint = %slot.fingerprint(), error = %error, "probe failed");
                result(ProbeOutcome::Failed { kind: error.kind })
            }
            None => {
                // Unknown whether the upstream counted it: settled as spent, like a request.
                let usage = switchyard_core::Usage::new(
                    u32::try_from(estimate.prompt_tokens).unwrap_or(u32::MAX),
                    1,
                );
                let _ = ledger.settle(permit, &usage).await;
                let kind = ErrorKind::Timeout;
                scorer.record(slot.candidate(), Outcome::Failure { kind, latency });
                result(ProbeOutcome::Failed { kind })
            }
        }
    }
}
