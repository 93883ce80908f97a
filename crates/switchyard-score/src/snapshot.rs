//! The JSON form of a scorer's statistics: the shape people already keep
//! (providers → keys → models → `status`, `avgResponseTime`, `successCount`, `failCount`,
//! `totalTokensUsed`, `qualityScore`, `lastSuccess`, `lastError`), plus a `state` object with
//! what restores the scorer exactly: the decayed counts with the time they were decayed to,
//! and the latency EWMA with its time.
//!
//! A file without `state` (one kept by another tool) still imports: the plain counts stand in
//! for the decayed ones, as described in `docs/scoring.md`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_core::{Candidate, ErrorKind, KeyId, ModelId, ProviderId};

use crate::ScoreError;
use crate::stats::{LatencyEwma, Params, Stats, Ticks, View};

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

fn current_version() -> u32 {
    SNAPSHOT_VERSION
}

/// Every candidate's statistics, grouped providers → keys → models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// The format version, [`SNAPSHOT_VERSION`].
    #[serde(default = "current_version")]
    pub version: u32,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<DateTime<Utc>>,
    /// The statistics by provider.
    #[serde(default)]
    pub providers: BTreeMap<ProviderId, ProviderStats>,
}

/// One provider's keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderStats {
    /// The statistics by key id.
    #[serde(default)]
    pub keys: BTreeMap<KeyId, KeyStats>,
}

/// One key's models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    /// The statistics by model.
    #[serde(default)]
    pub models: BTreeMap<ModelId, ModelStats>,
}

/// A candidate's health in one word, from its reliability estimate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No outcome recorded yet.
    #[default]
    Untested,
    /// Reliability at least 0.9.
    Healthy,
    /// Reliability at least 0.5.
    Degraded,
    /// Reliability below 0.5.
    Failing,
}

impl Status {
    /// The word as written in JSON: `untested`, `healthy`, `degraded`, `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untested => "untested",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }

    /// The status a word names, or `None` for another word.
    pub fn from_word(word: &str) -> Option<Self> {
        [Self::Untested, Self::Healthy, Self::Degraded, Self::Failing]
            .into_iter()
            .find(|status| status.as_str() == word)
    }
}

/// One candidate's statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStats {
    /// Health in one word; derived on export, ignored on import (another tool's words such
    /// as `active` read as well as ours).
    #[serde(default, skip_deserializing)]
    pub status: Status,
    /// Mean latency of the successful calls, in milliseconds.
    #[serde(default)]
    pub avg_response_time: Option<f64>,
    /// Successful calls, all time.
    #[serde(default)]
    pub success_count: u64,
    /// Failed calls, all time.
    #[serde(default)]
    pub fail_count: u64,
    /// Tokens used by successful calls, all time.
    #[serde(default)]
    pub total_tokens_used: u64,
    /// The quality estimate in 0..=1 (judgements blended with the prior).
    #[serde(default)]
    pub quality_score: Option<f64>,
    /// When the last call succeeded.
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    /// When the last call failed.
    #[serde(default)]
    pub last_error: Option<DateTime<Utc>>,
    /// How the last call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_kind: Option<ErrorKind>,
    /// What restores the scorer exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ExactState>,
}

/// The decayed evidence and latency estimate of one candidate, as of `updatedAt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactState {
    /// The time the decayed values below are as of.
    pub updated_at: DateTime<Utc>,
    /// Decayed successes.
    pub successes: f64,
    /// Decayed failures, weighted by kind.
    pub failures: f64,
    /// Decayed sum of quality judgements.
    pub quality_sum: f64,
    /// Decayed number of quality judgements.
    pub quality_weight: f64,
    /// Decayed number of latency samples.
    pub latency_samples: f64,
    /// The latency EWMA in milliseconds.
    #[serde(default)]
    pub latency_ewma_ms: Option<f64>,
    /// When the latency estimate last moved.
    #[serde(default)]
    pub latency_updated_at: Option<DateTime<Utc>>,
    /// Sum of the successful calls' latencies, in milliseconds.
    pub total_latency_ms: f64,
    /// When the candidate was first seen; its prior recency fades from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
}

impl StatsSnapshot {
    /// The snapshot as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("invariant: maps with string keys and finite numbers serialize")
    }

    /// Reads a snapshot from JSON.
    ///
    /// # Errors
    /// [`ScoreError::Json`] when the text is not JSON of this shape;
    /// [`ScoreError::UnsupportedVersion`] when a newer build wrote it.
    pub fn from_json(json: &str) -> Result<Self, ScoreError> {
        let snapshot: Self = serde_json::from_str(json).map_err(ScoreError::Json)?;
        if snapshot.version > SNAPSHOT_VERSION {
            return Err(ScoreError::UnsupportedVersion(snapshot.version));
        }
        Ok(snapshot)
    }

    /// Every candidate with its statistics, in provider, key, model order.
    pub fn entries(&self) -> impl Iterator<Item = (Candidate, &ModelStats)> {
        self.providers.iter().flat_map(|(provider, keys)| {
            keys.keys.iter().flat_map(move |(key, models)| {
                models.models.iter().map(move |(model, stats)| {
                    (
                        Candidate {
                            provider: provider.clone(),
                            key: key.clone(),
                            model: model.clone(),
                        },
                        stats,
                    )
                })
            })
        })
    }

    /// How many candidates the snapshot holds.
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    /// Whether the snapshot holds no candidate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Groups `entries` into a snapshot taken at `exported_at`.
    pub fn from_entries<'a>(
        exported_at: DateTime<Utc>,
        entries: impl IntoIterator<Item = (&'a Candidate, ModelStats)>,
    ) -> Self {
        let mut snapshot = Self {
            version: SNAPSHOT_VERSION,
            exported_at: Some(exported_at),
            providers: BTreeMap::new(),
        };
        for (candidate, stats) in entries {
            snapshot
                .providers
                .entry(candidate.provider.clone())
                .or_default()
                .keys
                .entry(candidate.key.clone())
                .or_default()
                .models
                .insert(candidate.model.clone(), stats);
        }
        snapshot
    }
}

fn status(stats: &Stats, view: &View) -> Status {
    if stats.success_count == 0 && stats.fail_count == 0 {
        return Status::Untested;
    }
    match view.reliability() {
        reliability if reliability >= 0.9 => Status::Healthy,
        reliability if reliability >= 0.5 => Status::Degraded,
        _ => Status::Failing,
    }
}

/// One candidate's statistics in the JSON shape; `utc_of` turns a tick into wall-clock time.
pub(crate) fn export_stats(
    stats: &Stats,
    view: &View,
    utc_of: impl Fn(Ticks) -> DateTime<Utc>,
) -> ModelStats {
    ModelStats {
        status: status(stats, view),
        avg_response_time: (stats.success_count > 0)
            .then(|| stats.total_latency_ms / stats.success_count as f64),
        success_count: stats.success_count,
        fail_count: stats.fail_count,
        total_tokens_used: stats.tokens,
        quality_score: Some(view.quality),
        last_success: stats.last_success.map(&utc_of),
        last_error: stats.last_error.map(&utc_of),
        last_error_kind: stats.last_error_kind,
        state: Some(ExactState {
            updated_at: utc_of(stats.at),
            successes: stats.successes,
            failures: stats.failures,
            quality_sum: stats.quality_sum,
            quality_weight: stats.quality_weight,
            latency_samples: stats.latency_samples,
            latency_ewma_ms: stats.latency.map(|latency| latency.ms),
            latency_updated_at: stats.latency.map(|latency| utc_of(latency.at)),
            total_latency_ms: stats.total_latency_ms,
            first_seen: Some(utc_of(stats.first_seen)),
        }),
    }
}

/// Checks one candidate's imported statistics and rebuilds them; `to_ticks` turns wall-clock
/// time into ticks of the importing scorer.
pub(crate) fn import_stats(
    candidate: &Candidate,
    model: &ModelStats,
    now: Ticks,
    params: &Params,
    to_ticks: impl Fn(DateTime<Utc>) -> Ticks,
) -> Result<Stats, ScoreError> {
    let invalid = |field: &'static str, reason: &'static str| ScoreError::InvalidSnapshot {
        candidate: candidate.clone(),
        field,
        reason,
    };
    let count = |field: &'static str, value: f64| {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(invalid(field, "must be a finite number of at least 0"))
        }
    };
    if let Some(avg) = model.avg_response_time {
        count("avgResponseTime", avg)?;
    }
    if let Some(quality) = model.quality_score
        && !(0.0..=1.0).contains(&quality)
    {
        return Err(invalid("qualityScore", "must be within 0..=1"));
    }
    let mut stats = Stats::new(now);
    stats.success_count = model.success_count;
    stats.fail_count = model.fail_count;
    stats.tokens = model.total_tokens_used;
    stats.last_success = model.last_success.map(&to_ticks);
    stats.last_error = model.last_error.map(&to_ticks);
    stats.last_error_kind = model.last_error_kind;
    match &model.state {
        Some(state) => {
            stats.at = to_ticks(state.updated_at);
            stats.first_seen = state.first_seen.map_or(stats.at, &to_ticks);
            stats.successes = count("state.successes", state.successes)?;
            stats.failures = count("state.failures", state.failures)?;
            stats.quality_weight = count("state.qualityWeight", state.quality_weight)?;
            stats.quality_sum = count("state.qualitySum", state.quality_sum)?;
            if stats.quality_sum > stats.quality_weight * (1.0 + 1e-9) {
                return Err(invalid("state.qualitySum", "must not exceed state.qualityWeight"));
            }
            stats.latency_samples = count("state.latencySamples", state.latency_samples)?;
            stats.total_latency_ms = count("state.totalLatencyMs", state.total_latency_ms)?;
            stats.latency = match (state.latency_ewma_ms, state.latency_updated_at) {
                (Some(ms), Some(at)) => {
                    Some(LatencyEwma { ms: count("state.latencyEwmaMs", ms)?, at: to_ticks(at) })
                }
                (None, None) => None,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(invalid(
                        "state.latencyEwmaMs",
                        "and state.latencyUpdatedAt must be given together",
                    ));
                }
            };
        }
        None => {
            // Another tool's file: the plain counts are the best evidence there is, as of
            // the latest outcome, capped like any other evidence.
            let latest = stats.last_success.max(stats.last_error);
            stats.at = latest.unwrap_or(now);
            let earliest = match (stats.last_success, stats.last_error) {
                (Some(success), Some(error)) => Some(success.min(error)),
                (one, other) => one.or(other),
            };
            stats.first_seen = earliest.unwrap_or(now);
            let (mut successes, mut failures) =
                (model.success_count as f64, model.fail_count as f64);
            let total = successes + failures;
            if total > params.max_evidence {
                successes *= params.max_evidence / total;
                failures *= params.max_evidence / total;
            }
            stats.successes = successes;
            stats.failures = failures;
            if let Some(quality) = model.quality_score {
                stats.quality_sum = quality;
                stats.quality_weight = 1.0;
            }
            if let Some(avg) = model.avg_response_time
                && model.success_count > 0
            {
                stats.latency =
                    Some(LatencyEwma { ms: avg, at: stats.last_success.unwrap_or(stats.at) });
                stats.latency_samples = (model.success_count as f64).min(params.max_evidence);
                stats.total_latency_ms = avg * model.success_count as f64;
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_match_the_json() {
        for status in [Status::Untested, Status::Healthy, Status::Degraded, Status::Failing] {
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(Status::from_word(status.as_str()), Some(status));
        }
        assert_eq!(Status::from_word("active"), None);
    }
}
