//! Scoring and learning: which provider, key and model works best right now.
//!
//! A [`Scorer`] learns from every attempt's [`Outcome`] (success with its latency and tokens,
//! or failure with its [`ErrorKind`](switchyard_core::ErrorKind)) and from callers' quality
//! judgements, and scores candidates as
//! `reliability·w_r + speed·w_s + quality·w_q + recency·w_c`. [`Scorer::score`] is
//! deterministic; [`Scorer::rank`] and [`Scorer::sample`] add Thompson-sampling exploration
//! on top, so new and neglected candidates get tried. [`AdaptiveScorer`] is the in-memory
//! implementation; [`StatsStore`] keeps its statistics across restarts. `docs/scoring.md`
//! gives the formula, the prior, the failure weights and the reasons for each.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use switchyard_core::{Candidate, ErrorKind, ManualClock};
//! use switchyard_score::{AdaptiveScorer, Outcome, ScoreConfig, Scorer, StatsSnapshot};
//!
//! let clock = ManualClock::default();
//! let config = ScoreConfig { seed: Some(42), ..ScoreConfig::default() };
//! let scorer: Arc<dyn Scorer> =
//!     Arc::new(AdaptiveScorer::try_new(Arc::new(clock.clone()), config)?);
//! let fast = Candidate::new("groq", "groq-1", "llama-3.3-70b-versatile");
//! let flaky = Candidate::new("gemini", "g1", "gemini-2.0-flash");
//! for _ in 0..20 {
//!     let latency = Duration::from_millis(400);
//!     scorer.record(&fast, Outcome::Success { latency, tokens: 900 });
//!     let latency = Duration::from_secs(2);
//!     scorer.record(&flaky, Outcome::Failure { kind: ErrorKind::ServerError, latency });
//!     clock.advance(Duration::from_secs(1));
//! }
//! scorer.record_quality(&fast, 0.9)?;
//!
//! let candidates = [flaky.clone(), fast.clone()];
//! let scores = scorer.score(&candidates); // deterministic
//! assert!(scores[1] > scores[0]);
//! assert_eq!(scorer.sample(&candidates), Some(1)); // with exploration
//!
//! // Learning survives a restart through the JSON export (or a `StatsStore`).
//! let json = scorer.export().to_json();
//! let restored = AdaptiveScorer::new(Arc::new(clock.clone()));
//! restored.import(&StatsSnapshot::from_json(&json)?)?;
//! assert_eq!(restored.score(&candidates), scores);
//! # Ok::<(), switchyard_score::ScoreError>(())
//! ```
//!
//! This crate never sees a secret (a candidate names its key by id), makes no network call
//! and decides no admission: the quota ledger does. It never reads the system time: evidence
//! decays on the [`Clock`](switchyard_core::Clock) it was given.

mod config;
mod draw;
mod engine;
mod error;
mod scorer;
mod snapshot;
mod stats;
mod store;

pub use config::{FailureWeights, Prior, ScoreConfig, Weights};
pub use engine::AdaptiveScorer;
pub use error::ScoreError;
pub use scorer::{Breakdown, Outcome, Scorer, best_index, order_by_score};
pub use snapshot::{
    ExactState, KeyStats, ModelStats, ProviderStats, SNAPSHOT_VERSION, StatsSnapshot, Status,
};
pub use store::{JsonFileStore, StatsStore};
