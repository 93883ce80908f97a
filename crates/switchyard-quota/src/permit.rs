//! The [`Permit`] that carries a reservation from admission to settlement. It is opaque: a
//! caller reads what was admitted (the candidate, the estimate) and hands it back to the
//! ledger that issued it; only a ledger looks inside.

use std::sync::Arc;

use switchyard_core::Candidate;

use crate::bucket::Lane;
use crate::estimate::Estimate;

/// A reservation made at admission; settle or release it exactly once, on the ledger that
/// issued it.
#[derive(Debug)]
#[must_use = "settle or release a permit, or its reservation holds until its windows pass"]
pub struct Permit {
    estimate: Estimate,
    taken_at: u64,
    /// Whether other attempts of the same bucket were in flight when this one was admitted.
    overlapped: bool,
    origin: Origin,
}

#[derive(Debug)]
enum Origin {
    /// The in-memory ledger's lane: settling needs no lookup.
    Local(Arc<Lane>),
    /// The candidate, the shared ledger's lease on its in-flight slot, and the admission's
    /// number among its bucket's admissions when that ledger counts them.
    Shared { candidate: Candidate, lease: u64, seq: Option<u64> },
}

impl Permit {
    pub(crate) fn local(
        lane: Arc<Lane>,
        estimate: Estimate,
        taken_at: u64,
        overlapped: bool,
    ) -> Self {
        Self { estimate, taken_at, overlapped, origin: Origin::Local(lane) }
    }

    /// A permit issued by a ledger outside this crate (Redis). `taken_at` is on that ledger's
    /// own timeline and `lease` is its id for the attempt's in-flight slot; it reads both back
    /// ([`Permit::taken_at`], [`Permit::lease`]) to end the attempt.
    pub fn shared(candidate: Candidate, estimate: Estimate, taken_at: u64, lease: u64) -> Self {
        let origin = Origin::Shared { candidate, lease, seq: None };
        Self { estimate, taken_at, overlapped: false, origin }
    }

    /// A shared permit's place among its bucket's admissions: `seq` numbers it (a later
    /// admission has a higher one), `overlapped` says whether others were in flight when it was
    /// admitted. The ledger reads both back to judge that attempt's headers
    /// ([`Permit::admission_seq`], [`Permit::overlapped`]).
    pub fn with_admission(mut self, seq: u64, overlapped: bool) -> Self {
        if let Origin::Shared { seq: slot, .. } = &mut self.origin {
            *slot = Some(seq);
            self.overlapped = overlapped;
        }
        self
    }

    /// The candidate admitted.
    pub fn candidate(&self) -> &Candidate {
        match &self.origin {
            Origin::Local(lane) => &lane.candidate,
            Origin::Shared { candidate, .. } => candidate,
        }
    }

    /// The estimate reserved.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// When it was admitted, on the issuing ledger's own timeline (its unit is that
    /// ledger's business: nanoseconds in memory, Unix milliseconds in Redis).
    pub fn taken_at(&self) -> u64 {
        self.taken_at
    }

    /// Whether other attempts of the same bucket were in flight at its admission: their calls
    /// may reach the provider after this one's, so this answer's headers may not count them.
    pub fn overlapped(&self) -> bool {
        self.overlapped
    }

    /// For a shared permit given one by [`Permit::with_admission`]: its number among its
    /// bucket's admissions.
    pub fn admission_seq(&self) -> Option<u64> {
        match &self.origin {
            Origin::Shared { seq, .. } => *seq,
            Origin::Local(_) => None,
        }
    }

    /// For a permit made by [`Permit::shared`]: its lease id; `None` for one made by the
    /// in-memory ledger.
    pub fn lease(&self) -> Option<u64> {
        match &self.origin {
            Origin::Shared { lease, .. } => Some(*lease),
            Origin::Local(_) => None,
        }
    }

    pub(crate) fn into_local(self) -> Result<(Arc<Lane>, Estimate, u64), Self> {
        match self.origin {
            Origin::Local(lane) => Ok((lane, self.estimate, self.taken_at)),
            Origin::Shared { .. } => Err(self),
        }
    }
}
