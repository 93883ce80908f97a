//! The one error type of this crate.

use switchyard_core::Candidate;

/// What can go wrong when configuring a scorer, feeding it, or restoring its statistics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// A weight is negative or not finite, or all are zero.
    #[error(
        "invalid score weights (reliability {reliability}, speed {speed}, quality {quality}, recency {recency}): each must be finite and non-negative, and one above zero"
    )]
    InvalidWeights {
        /// As given.
        reliability: f64,
        /// As given.
        speed: f64,
        /// As given.
        quality: f64,
        /// As given.
        recency: f64,
    },
    /// A configuration field is out of range.
    #[error("invalid score configuration: {field} {reason}")]
    InvalidConfig {
        /// The field, as named in `ScoreConfig`.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// A quality judgement outside 0..=1.
    #[error("quality {value} for {candidate} is outside 0..=1")]
    QualityOutOfRange {
        /// The candidate judged.
        candidate: Candidate,
        /// The judgement given.
        value: f64,
    },
    /// A snapshot's field holds a value that cannot be restored. Nothing was imported.
    #[error("cannot import statistics of {candidate}: {field} {reason}")]
    InvalidSnapshot {
        /// The candidate whose statistics are wrong.
        candidate: Candidate,
        /// The field, as named in the JSON.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A snapshot written by a newer version of this crate.
    #[error("statistics snapshot version {0} is newer than this build reads (1)")]
    UnsupportedVersion(u32),
    /// A snapshot is not JSON of the expected shape.
    #[error("statistics are not valid JSON of the expected shape")]
    Json(#[source] serde_json::Error),
    /// A statistics file cannot be read or written.
    #[error("cannot {action} statistics file {}", .path.display())]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A [`StatsStore`](crate::StatsStore) failed to save or load.
    #[error("statistics store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}
