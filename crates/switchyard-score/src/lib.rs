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
//! This crate never sees a secret (a candidate names its key by id), makes no network call
//! and decides no admission: the quota ledger does. It never reads the system time: evidence
//! decays on the [`Clock`](switchyard_core::Clock) it was given.

mod config;
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
