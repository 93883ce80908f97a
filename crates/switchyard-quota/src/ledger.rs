//! The [`QuotaLedger`] boundary the router calls around every attempt.

use async_trait::async_trait;
use switchyard_core::{Candidate, KeyId, ProviderError, ProviderId, RateLimitSnapshot, Usage};

use crate::error::QuotaError;
use crate::estimate::Estimate;
use crate::permit::Permit;
use crate::state::KeyStatus;
use crate::summary::ProviderSummary;

/// Per-key quota bookkeeping around each attempt.
///
/// NOTE: every admitted permit must end in exactly one [`QuotaLedger::settle`] (the call
/// happened: its real usage) or [`QuotaLedger::release`] (it did not, or failed before the
/// provider counted it); a dropped permit keeps its reservation until its windows pass.
#[async_trait]
pub trait QuotaLedger: Send + Sync + 'static {
    /// Reserves `estimate` for `candidate` now, or says why not and until when.
    ///
    /// # Errors
    /// [`QuotaError::Refused`] when the candidate may not run now; [`QuotaError::Backend`]
    /// when a shared ledger cannot reach its backend and fails closed.
    async fn admit(&self, candidate: &Candidate, estimate: Estimate) -> Result<Permit, QuotaError>;

    /// Settles a permit with the provider's reported usage, ending the attempt.
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn settle(&self, permit: Permit, usage: &Usage) -> Result<(), QuotaError>;

    /// Gives a permit's whole reservation back: the attempt did not count.
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn release(&self, permit: Permit) -> Result<(), QuotaError>;

    /// Learns from a response's rate-limit headers; the provider's numbers override the
    /// local count.
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn observe(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError>;

    /// Learns from the headers of the attempt `permit` admitted. Knowing the attempt lets a
    /// ledger tell a stale reading (one that predates later admissions) from news; by default
    /// it is [`QuotaLedger::observe`].
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn observe_attempt(
        &self,
        permit: &Permit,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError> {
        self.observe(permit.candidate(), snapshot).await
    }

    /// Records the error that ended an attempt: cooldowns, exhaustion, invalid keys. The
    /// error's own rate-limit readings (`error.rate_limits`) are the ledger's to read here;
    /// the router does not also pass them to [`observe`](Self::observe).
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn record_error(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
    ) -> Result<(), QuotaError>;

    /// The candidate's key state now.
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn status(&self, candidate: &Candidate) -> Result<KeyStatus, QuotaError>;

    /// Makes an invalid or billing-stopped key usable again (it was fixed or replaced).
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn reenable(&self, provider: &ProviderId, key: &KeyId) -> Result<(), QuotaError>;

    /// Usage, limits and states of every candidate of `provider` the ledger knows.
    ///
    /// # Errors
    /// [`QuotaError::Backend`] when a shared ledger cannot reach its backend.
    async fn summary(&self, provider: &ProviderId) -> Result<ProviderSummary, QuotaError>;

    /// How much of `candidate`'s tightest known limit is left, as a fraction: 1.0 untouched,
    /// 0.0 spent; `None` when nothing is known of its limits. The `spread` option ranks free
    /// candidates by it.
    ///
    /// Synchronous and cheap, because it is asked for every candidate of every request: an
    /// answer from what the ledger already holds locally, never a wait on a backend. A shared
    /// ledger answers from what its own recent calls returned, so the figure may lag other
    /// processes' spending. Holds (cooldowns, exhaustion) are admission's business, not this.
    fn headroom(&self, candidate: &Candidate) -> Option<f64> {
        let _ = candidate;
        None
    }

    /// Ends a failed attempt: releases its permit and records its error.
    ///
    /// # Errors
    /// As [`QuotaLedger::release`] and [`QuotaLedger::record_error`].
    async fn fail(&self, permit: Permit, error: &ProviderError) -> Result<(), QuotaError> {
        let candidate = permit.candidate().clone();
        self.release(permit).await?;
        self.record_error(&candidate, error).await
    }
}

fn _object_safe(_: &dyn QuotaLedger) {} // the facade stores `Arc<dyn QuotaLedger>`
