//! What an attempt holds while it runs, released however it ends: its quota permit
//! ([`PermitGuard`]) and its place among the slot's calls in flight ([`AttemptGuard`]). A
//! caller that goes away mid-call drops them, and the drop does the right thing.

use std::sync::Arc;

use switchyard_core::{Candidate, ProviderError, Usage};
use switchyard_quota::{Estimate, Permit, QuotaLedger};

use crate::state::Slot;

/// Holds a permit until it is settled or released. Dropped while still holding one — the
/// caller went away mid-call — it settles it with the estimate: an attempt whose outcome is
/// unknown counts as spent, so a retry can never overspend a key.
pub(crate) struct PermitGuard {
    ledger: Arc<dyn QuotaLedger>,
    permit: Option<Permit>,
    estimate: Estimate,
}

impl PermitGuard {
    pub(crate) fn new(ledger: Arc<dyn QuotaLedger>, permit: Permit, estimate: Estimate) -> Self {
        Self { ledger, permit: Some(permit), estimate }
    }

    /// The permit, while it is held.
    pub(crate) fn held(&self) -> Option<&Permit> {
        self.permit.as_ref()
    }

    pub(crate) fn estimated_usage(&self) -> Usage {
        estimate_usage(self.estimate)
    }

    pub(crate) async fn settle(mut self, usage: &Usage) {
        if let Some(permit) = self.permit.take()
            && let Err(error) = self.ledger.settle(permit, usage).await
        {
            tracing::warn!(error = %error, "settling a permit failed");
        }
    }

    /// Ends a failed attempt: the permit released and the error recorded in one call, so the
    /// ledger knows when the attempt was admitted.
    pub(crate) async fn fail(mut self, candidate: &Candidate, error: &ProviderError) {
        let recorded = match self.permit.take() {
            Some(permit) => self.ledger.fail(permit, error).await,
            None => self.ledger.record_error(candidate, error).await,
        };
        if let Err(error) = recorded {
            tracing::warn!(error = %error, candidate = %candidate, "recording an error in the ledger failed");
        }
    }
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else { return };
        let usage = estimate_usage(self.estimate);
        let ledger = Arc::clone(&self.ledger);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = ledger.settle(permit, &usage).await {
                        tracing::warn!(error = %error, "settling an abandoned permit failed");
                    }
                });
            }
            // No runtime left (shutdown): the reservation holds until its windows pass,
            // which errs on the side of never overspending.
            Err(_) => drop(permit),
        }
    }
}

fn estimate_usage(estimate: Estimate) -> Usage {
    Usage::new(
        u32::try_from(estimate.prompt_tokens).unwrap_or(u32::MAX),
        u32::try_from(estimate.output_tokens).unwrap_or(u32::MAX),
    )
}

/// Counts an attempt in flight on its slot and, for a half-open circuit's probe, gives the
/// probe slot back if the attempt ends without a verdict.
pub(crate) struct AttemptGuard {
    slot: Arc<Slot>,
    probe: bool,
}

impl AttemptGuard {
    pub(crate) fn new(slot: Arc<Slot>, probe: bool) -> Self {
        slot.entered();
        Self { slot, probe }
    }

    /// The circuit has its verdict; nothing to give back.
    pub(crate) fn judged(&mut self) {
        self.probe = false;
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.slot.left();
        if self.probe {
            self.slot.circuit().release_probe();
        }
    }
}
