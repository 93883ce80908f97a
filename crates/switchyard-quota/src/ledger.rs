//! The [`QuotaLedger`] boundary the router calls around every attempt, and the [`Permit`]
//! that carries a reservation from admission to settlement.

use std::sync::Arc;

use async_trait::async_trait;
use switchyard_core::{Candidate, KeyId, ProviderError, ProviderId, RateLimitSnapshot, Usage};

use crate::error::QuotaError;
use crate::estimate::Estimate;
use crate::memory::{Lane, MemoryLedger};
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

    /// Records the error that ended an attempt: cooldowns, exhaustion, invalid keys.
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

    /// The synchronous in-memory ledger behind this one, if that is all it is. Every async
    /// call boxes its future (one allocation each); a hot path holding `dyn QuotaLedger` can
    /// call [`MemoryLedger::try_admit`] and [`MemoryLedger::settle_now`] on this instead.
    fn in_memory(&self) -> Option<&MemoryLedger> {
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

/// A reservation made at admission; settle or release it exactly once.
#[derive(Debug)]
#[must_use = "settle or release a permit, or its reservation holds until its windows pass"]
pub struct Permit {
    estimate: Estimate,
    taken_at: u64,
    origin: Origin,
}

#[derive(Debug)]
enum Origin {
    Local(Arc<Lane>),
    /// The candidate and the shared ledger's lease on its in-flight slot.
    Shared(Candidate, u64),
}

impl Permit {
    pub(crate) fn local(lane: Arc<Lane>, estimate: Estimate, taken_at: u64) -> Self {
        Self { estimate, taken_at, origin: Origin::Local(lane) }
    }

    /// A permit issued by a ledger outside this crate (Redis), which reads it back with
    /// [`Permit::shared_parts`]. `taken_at` is on that ledger's own timeline.
    pub fn shared(candidate: Candidate, estimate: Estimate, taken_at: u64) -> Self {
        Self::shared_leased(candidate, estimate, taken_at, 0)
    }

    /// [`Permit::shared`] holding `lease`, the issuing ledger's id for the attempt's in-flight
    /// slot, read back with [`Permit::lease`] to free that slot when the permit ends.
    pub fn shared_leased(
        candidate: Candidate,
        estimate: Estimate,
        taken_at: u64,
        lease: u64,
    ) -> Self {
        Self { estimate, taken_at, origin: Origin::Shared(candidate, lease) }
    }

    /// For a permit made by [`Permit::shared_leased`]: its lease id (0 from
    /// [`Permit::shared`]).
    pub fn lease(&self) -> Option<u64> {
        match &self.origin {
            Origin::Shared(_, lease) => Some(*lease),
            Origin::Local(_) => None,
        }
    }

    /// The candidate admitted.
    pub fn candidate(&self) -> &Candidate {
        match &self.origin {
            Origin::Local(lane) => &lane.candidate,
            Origin::Shared(candidate, _) => candidate,
        }
    }

    /// The estimate reserved.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    pub(crate) fn taken_at(&self) -> u64 {
        self.taken_at
    }

    /// For a permit made by [`Permit::shared`]: the candidate, estimate and `taken_at`.
    pub fn shared_parts(&self) -> Option<(&Candidate, Estimate, u64)> {
        match &self.origin {
            Origin::Shared(candidate, _) => Some((candidate, self.estimate, self.taken_at)),
            Origin::Local(_) => None,
        }
    }

    pub(crate) fn into_local(self) -> Result<(Arc<Lane>, Estimate, u64), Self> {
        match self.origin {
            Origin::Local(lane) => Ok((lane, self.estimate, self.taken_at)),
            Origin::Shared(..) => Err(self),
        }
    }
}
