//! What the router did for one request: the candidates it considered, why it skipped the ones
//! it skipped, and the attempts it made. Compact enough to return with every answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchyard_core::{Candidate, ChatResponse, ErrorKind, Fingerprint};

/// Why a candidate was not called.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Skip {
    /// The quota ledger refused it (cooling, exhausted, invalid, billing stopped, a limit).
    Quota {
        /// The ledger's reason, as text (`cooling down`, `limit 3/60s reached`).
        detail: String,
        /// The ledger's reason, as a stable name.
        kind: &'static str,
        /// When it may run again, if the ledger knows.
        until: Option<DateTime<Utc>>,
    },
    /// Its circuit is open.
    CircuitOpen {
        /// Time until probes are let through.
        #[serde(serialize_with = "millis")]
        remaining: Duration,
    },
    /// Its circuit recently closed and lets only a share of calls through.
    Ramping {
        /// The share let through now.
        share: f64,
    },
    /// An earlier attempt of this request ruled it out (its key, model or provider failed).
    RuledOut {
        /// The failure that ruled it out.
        by: ErrorKind,
    },
    /// An operator disabled its key.
    Disabled,
    /// The request needs something the model lacks (a larger context window).
    Unsuitable {
        /// What is missing.
        detail: String,
    },
}

impl Skip {
    /// A stable name for why: the ledger's reason for a quota refusal (`cooling`,
    /// `exhausted`, `limit`, ...), else the variant's (`circuit_open`, `ramping`, `ruled_out`,
    /// `disabled`, `unsuitable`), as the `reason` tag of its JSON names it.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::Quota { kind, .. } => kind,
            Skip::CircuitOpen { .. } => "circuit_open",
            Skip::Ramping { .. } => "ramping",
            Skip::RuledOut { .. } => "ruled_out",
            Skip::Disabled => "disabled",
            Skip::Unsuitable { .. } => "unsuitable",
        }
    }
}

pub(crate) fn millis<S: serde::Serializer>(
    value: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(value.as_millis())
}

/// One candidate as the router saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Considered {
    /// The candidate.
    pub candidate: Candidate,
    /// Its learned score (deterministic, without exploration), when it was ranked.
    pub score: Option<f64>,
    /// Why it was skipped, if it was.
    pub skipped: Option<Skip>,
}

/// One call of one candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    /// Which.
    pub candidate: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// `None` on success, else how it failed.
    pub error: Option<ErrorKind>,
    /// The HTTP status of a failed attempt, when there was one.
    pub status: Option<u16>,
    /// How long it took.
    #[serde(serialize_with = "millis")]
    pub latency: Duration,
    /// The upstream's own request id, when it sent one.
    pub upstream_request_id: Option<String>,
}

/// The decision trace of one request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trace {
    /// The route asked for.
    pub route: String,
    /// The strategy that ranked.
    pub strategy: String,
    /// Every candidate of the route, in the order first ranked (skipped ones last).
    pub considered: Vec<Considered>,
    /// The attempts, in order.
    pub attempts: Vec<Attempt>,
    /// Time spent waiting for a candidate to free (bounded wait), zero when none.
    #[serde(serialize_with = "millis")]
    pub waited: Duration,
}

impl Trace {
    /// Whether a failure of `kind` is `candidate`'s first rate limit in this request (called
    /// before its attempt is recorded). Scans the attempts on a 429 only.
    pub(crate) fn first_limit(&self, candidate: &Candidate, kind: ErrorKind) -> bool {
        let limited = |kind: ErrorKind| {
            matches!(kind, ErrorKind::RateLimited { .. } | ErrorKind::QuotaExhausted { .. })
        };
        limited(kind)
            && !self.attempts.iter().any(|attempt| {
                &attempt.candidate == candidate && attempt.error.is_some_and(limited)
            })
    }

    pub(crate) fn skip(&mut self, candidate: &Candidate, skip: Skip) {
        match self.considered.iter_mut().find(|entry| &entry.candidate == candidate) {
            Some(entry) => entry.skipped = Some(skip),
            None => self.considered.push(Considered {
                candidate: candidate.clone(),
                score: None,
                skipped: Some(skip),
            }),
        }
    }
}

/// A served answer with what served it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// The request's id (given by the caller, or made by the router).
    pub request_id: String,
    /// The answer.
    pub response: ChatResponse,
    /// The candidate that served it.
    pub served_by: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// How many attempts the request took (1 when the first candidate answered).
    pub n_attempts: u32,
    /// Time spent in the router itself, excluding the upstream calls and backoff sleeps.
    #[serde(serialize_with = "millis")]
    pub overhead: Duration,
    /// What the router did.
    pub trace: Trace,
    /// Whether the answer came from the response cache (no upstream call, no quota spent).
    pub cached: bool,
    /// What the answer cost in dollars, from its usage and its model's price; `None` when
    /// the price is unknown, zero for a free model or a cached answer.
    pub cost: Option<f64>,
}
