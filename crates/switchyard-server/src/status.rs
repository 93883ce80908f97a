//! What `GET /admin/status` shows, computed from the router (its candidates, circuits and
//! scores), its quota ledger (states, limits, resets) and the operator's disabled keys. The
//! alert task reads the same view, so an alert and the status page never disagree.
//!
//! Reset times are written in the provider's own zone (`2026-11-24T00:00:00-08:00` for a
//! Gemini key), with the same instant in UTC beside them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use switchyard::{Candidate, CircuitState, KeyId, LearnedRecord, ProviderId, Router};
use switchyard_core::LimitScope;

pub(crate) use crate::api::{
    AlertView, KeyView, LearnedView, LimitView, ModelView, ProviderView, RouteView, StatusView,
};
use crate::events::EventHub;

/// A key's success rate below this over its recent attempts raises an alert.
pub(crate) const LOW_SUCCESS_RATE: f64 = 0.8;
/// Attempts a key needs before its success rate is judged.
pub(crate) const LOW_SUCCESS_MIN_ATTEMPTS: usize = 10;

/// A state's rank: the worse, the higher. A key shows its worst model's state.
fn rank(state: &str) -> u8 {
    match state {
        "disabled" => 5,
        "invalid" => 4,
        "billing_stopped" => 3,
        "exhausted" => 2,
        "cooling" => 1,
        _ => 0,
    }
}

/// An instant in the provider's zone (with its offset) and in UTC.
pub(crate) fn zoned(at: DateTime<Utc>, zone: Tz) -> (String, String) {
    (
        at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::AutoSi, true),
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

fn split(at: Option<DateTime<Utc>>, zone: Tz) -> (Option<String>, Option<String>) {
    match at {
        Some(at) => {
            let (local, utc) = zoned(at, zone);
            (Some(local), Some(utc))
        }
        None => (None, None),
    }
}

/// What the status needs to know besides the router.
pub(crate) struct Context<'a> {
    pub(crate) zones: &'a BTreeMap<ProviderId, Tz>,
    pub(crate) fingerprints: &'a BTreeMap<(ProviderId, KeyId), String>,
    pub(crate) events: Option<&'a EventHub>,
    pub(crate) now: DateTime<Utc>,
    /// `key_low_success` below this share of at least this many recent attempts: the
    /// `[alerts]` thresholds when set, else [`LOW_SUCCESS_RATE`] and
    /// [`LOW_SUCCESS_MIN_ATTEMPTS`].
    pub(crate) low_success: (f64, usize),
}

/// Every candidate of every route, each once, sorted.
fn all_candidates(router: &Router) -> Vec<Candidate> {
    let mut all: BTreeSet<Candidate> = BTreeSet::new();
    for route in router.route_names() {
        all.extend(router.candidates(&route).unwrap_or_default());
    }
    all.into_iter().collect()
}

/// One limit as the ledger reported it.
#[derive(Clone)]
struct LimitRow {
    name: String,
    unit: String,
    used: u64,
    limit: u64,
    remaining: u64,
    resets_at: Option<DateTime<Utc>>,
    learned: Option<LearnedView>,
}

/// A learned limit's evidence as the status shows it.
fn learned_view(record: &LearnedRecord) -> LearnedView {
    LearnedView {
        scope: match record.scope {
            LimitScope::Day => "day",
            LimitScope::Month => "month",
            LimitScope::Minute | LimitScope::Unknown => "minute",
        }
        .to_owned(),
        window: record.kind.as_str().to_owned(),
        window_ms: record.window_ms,
        learned_at: record.learned_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        from_accepted: record.from_accepted,
        hint: record.hint.clone(),
        source: record.source.clone(),
        corrections: record.corrections,
    }
}

/// One candidate's state as the ledger and the operator see it.
struct CandidateState {
    state: &'static str,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
    limits: Vec<LimitRow>,
}

/// The state of `candidate`, from the provider's ledger summary when it has the candidate
/// (a lane exists once a candidate was admitted), else from the ledger's key status.
async fn candidate_state(
    router: &Router,
    candidate: &Candidate,
    summary: Option<&[(String, String, CandidateState, bool)]>,
) -> CandidateState {
    if router.is_disabled(&candidate.provider, &candidate.key) {
        return CandidateState {
            state: "disabled",
            reason: Some("disabled by an operator".to_owned()),
            until: None,
            limits: limits_of(summary, candidate),
        };
    }
    if let Some(rows) = summary
        && let Some((_, _, state, _)) = rows.iter().find(|(key, model, _, _)| {
            key == candidate.key.as_str() && model == candidate.model.as_str()
        })
    {
        return CandidateState {
            state: state.state,
            reason: state.reason.clone(),
            until: state.until,
            limits: state.limits.clone(),
        };
    }
    match router.ledger().status(candidate).await {
        Ok(status) => CandidateState {
            state: state_name(status.state.as_str()),
            reason: status.reason,
            until: status.state.until(),
            limits: Vec::new(),
        },
        Err(error) => CandidateState {
            state: "available",
            reason: Some(format!("quota ledger unavailable: {error}")),
            until: None,
            limits: Vec::new(),
        },
    }
}

fn limits_of(
    summary: Option<&[(String, String, CandidateState, bool)]>,
    candidate: &Candidate,
) -> Vec<LimitRow> {
    summary
        .and_then(|rows| {
            rows.iter().find(|(key, model, _, _)| {
                key == candidate.key.as_str() && model == candidate.model.as_str()
            })
        })
        .map(|(_, _, state, _)| state.limits.clone())
        .unwrap_or_default()
}

/// The ledger's state names, in the status page's words.
fn state_name(ledger: &str) -> &'static str {
    match ledger {
        "cooling_down" => "cooling",
        "exhausted" => "exhausted",
        "invalid" => "invalid",
        "billing_stopped" => "billing_stopped",
        _ => "available",
    }
}

/// Reads a provider's ledger summary into plain rows: (key, model, state, available).
async fn summary_rows(
    router: &Router,
    provider: &ProviderId,
) -> Option<Vec<(String, String, CandidateState, bool)>> {
    let summary = match router.ledger().summary(provider).await {
        Ok(summary) => summary,
        Err(error) => {
            tracing::warn!(%provider, %error, "quota summary unavailable for the status");
            return None;
        }
    };
    let rows = summary
        .keys
        .iter()
        .map(|key| {
            let limits: Vec<_> = key
                .limits
                .iter()
                .map(|limit| LimitRow {
                    name: limit.limit_name.clone(),
                    unit: limit.unit.to_string(),
                    used: limit.used,
                    limit: limit.limit,
                    remaining: limit.remaining,
                    resets_at: limit.resets_at,
                    learned: limit.learned.as_ref().map(learned_view),
                })
                .collect();
            let mut state = state_name(key.status.state.as_str());
            let mut reason = key.status.reason.clone();
            let mut until = key.status.state.until();
            if state == "available" && !key.available {
                // The ledger holds nothing against the key, but a limit of its own is spent:
                // it is out until that window resets. A spent day is an exhaustion; a spent
                // minute (a sliding or refilling window) a cooldown.
                let spent = limits
                    .iter()
                    .filter(|limit| limit.remaining == 0)
                    .max_by_key(|limit| limit.name.contains("/day-"));
                state = if spent.is_some_and(|limit| limit.name.contains("/day-")) {
                    "exhausted"
                } else {
                    "cooling"
                };
                until = key.available_at;
                reason = Some(match spent {
                    Some(limit) => {
                        format!("limit {} spent ({}/{})", limit.name, limit.used, limit.limit)
                    }
                    None => "no capacity left in its limits".to_owned(),
                });
            }
            (
                key.key.to_string(),
                key.model.to_string(),
                CandidateState { state, reason, until, limits },
                key.available,
            )
        })
        .collect();
    Some(rows)
}

/// The status of every provider, key and route now.
pub(crate) async fn status(router: &Router, context: &Context<'_>) -> StatusView {
    let candidates = all_candidates(router);
    let scores = router.scorer().score(&candidates);
    let score_of: BTreeMap<&Candidate, f64> =
        candidates.iter().zip(scores.iter().copied()).collect();
    let mut providers = Vec::new();
    let mut alerts = Vec::new();
    let mut usable: BTreeSet<Candidate> = BTreeSet::new();
    let mut provider_ids: Vec<ProviderId> =
        candidates.iter().map(|candidate| candidate.provider.clone()).collect();
    provider_ids.dedup();
    for provider in provider_ids {
        let zone = context.zones.get(&provider).copied().unwrap_or(Tz::UTC);
        let rows = summary_rows(router, &provider).await;
        let mut keys: Vec<KeyView> = Vec::new();
        for candidate in candidates.iter().filter(|candidate| candidate.provider == provider) {
            let state = candidate_state(router, candidate, rows.as_deref()).await;
            let circuit = router.circuit_state(candidate);
            let circuit_name = match circuit {
                None | Some(CircuitState::Closed) => "closed",
                Some(CircuitState::Open { .. }) => "open",
                Some(CircuitState::HalfOpen) => "half_open",
            };
            if state.state == "available" && circuit_name != "open" {
                usable.insert(candidate.clone());
            }
            let (until, until_utc) = split(state.until, zone);
            let limits = state
                .limits
                .iter()
                .map(|row| {
                    let (resets_at, resets_at_utc) = split(row.resets_at, zone);
                    LimitView {
                        name: row.name.clone(),
                        unit: row.unit.clone(),
                        used: row.used,
                        limit: row.limit,
                        remaining: row.remaining,
                        resets_at,
                        resets_at_utc,
                        learned: row.learned.clone(),
                    }
                })
                .collect();
            let model = ModelView {
                model: candidate.model.to_string(),
                state: state.state.to_owned(),
                reason: state.reason.clone(),
                until,
                until_utc,
                circuit: circuit_name.to_owned(),
                score: score_of.get(candidate).copied().filter(|score| score.is_finite()),
                limits,
            };
            let key_id = candidate.key.to_string();
            match keys.iter_mut().find(|key| key.id == key_id) {
                Some(key) => {
                    merge_model(key, &model);
                    key.models.push(model);
                }
                None => {
                    let fingerprint = context
                        .fingerprints
                        .get(&(provider.clone(), candidate.key.clone()))
                        .cloned()
                        .or_else(|| context.events.and_then(|events| events.fingerprint(candidate)))
                        .unwrap_or_default();
                    keys.push(KeyView {
                        id: key_id,
                        fingerprint,
                        state: model.state.clone(),
                        reason: model.reason.clone(),
                        until: model.until.clone(),
                        until_utc: model.until_utc.clone(),
                        models: vec![model],
                    });
                }
            }
        }
        let status = provider_status(&keys);
        if is_down(status) {
            alerts.push(AlertView {
                kind: "provider_down".to_owned(),
                provider: Some(provider.to_string()),
                key: None,
                route: None,
                message: down_message(&provider, &keys),
            });
        }
        if let Some(events) = context.events {
            for key in &keys {
                if let Some((n, successes)) = events.recent_outcomes(&provider, &key.id)
                    && n >= context.low_success.1
                    && (successes as f64) < context.low_success.0 * n as f64
                {
                    alerts.push(AlertView {
                        kind: "key_low_success".to_owned(),
                        provider: Some(provider.to_string()),
                        key: Some(key.id.clone()),
                        route: None,
                        message: format!(
                            "key {} of {provider} succeeded in {successes} of its last {n} attempts",
                            key.id
                        ),
                    });
                }
            }
        }
        providers.push(ProviderView {
            name: provider.to_string(),
            status: status.to_owned(),
            time_zone: zone.name().to_owned(),
            keys,
        });
    }
    let mut routes = Vec::new();
    for name in router.route_names() {
        let route_candidates = router.candidates(&name).unwrap_or_default();
        let available = route_candidates.iter().filter(|c| usable.contains(*c)).count();
        let can_serve = available > 0;
        if !can_serve {
            alerts.push(AlertView {
                kind: "no_route".to_owned(),
                provider: None,
                key: None,
                route: Some(name.clone()),
                message: format!(
                    "route {name} cannot serve: none of its {} candidates is available",
                    route_candidates.len()
                ),
            });
        }
        routes.push(RouteView { name, can_serve, candidates: route_candidates.len(), available });
    }
    let health = if routes.iter().any(|route| !route.can_serve) {
        "down"
    } else if alerts.is_empty() && providers.iter().all(|provider| provider.status == "AVAILABLE") {
        "healthy"
    } else {
        "degraded"
    };
    StatusView {
        generated_at: context.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        health: health.to_owned(),
        routes,
        providers,
        alerts,
    }
}

/// Folds one more model into its key: the worst state wins; when the key is out, it comes
/// back at the earliest time one of its out models does.
fn merge_model(key: &mut KeyView, model: &ModelView) {
    if rank(&model.state) > rank(&key.state) {
        key.state.clone_from(&model.state);
        key.reason.clone_from(&model.reason);
        key.until.clone_from(&model.until);
        key.until_utc.clone_from(&model.until_utc);
    } else if rank(&model.state) > 0
        && let (Some(mine), Some(theirs)) = (&key.until_utc, &model.until_utc)
        && theirs < mine
    {
        // RFC 3339 in UTC with the same precision orders as text.
        key.until.clone_from(&model.until);
        key.until_utc.clone_from(&model.until_utc);
    }
}

/// A provider's status from its keys' states.
pub(crate) fn provider_status(keys: &[KeyView]) -> &'static str {
    let n_keys = keys.len();
    let count = |state: &str| keys.iter().filter(|key| key.state == state).count();
    let (n_available, n_invalid, n_disabled) =
        (count("available"), count("invalid"), count("disabled"));
    if n_keys == 0 || n_available == n_keys {
        "AVAILABLE"
    } else if n_disabled == n_keys {
        "DISABLED"
    } else if n_invalid > 0 && n_invalid + n_disabled == n_keys {
        "INVALID_KEYS"
    } else if n_available == 0 {
        "QUOTA_EXCEEDED"
    } else if n_invalid > 0 {
        "PARTIAL_INVALID"
    } else {
        "PARTIAL_QUOTA"
    }
}

/// Whether no key of a provider with this status can serve.
pub(crate) fn is_down(status: &str) -> bool {
    matches!(status, "QUOTA_EXCEEDED" | "INVALID_KEYS" | "DISABLED")
}

pub(crate) fn down_message(provider: &ProviderId, keys: &[KeyView]) -> String {
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for key in keys {
        *by_state.entry(&key.state).or_default() += 1;
    }
    let parts: Vec<String> = by_state.iter().map(|(state, n)| format!("{n} {state}")).collect();
    format!("all {} keys of {provider} are down ({})", keys.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: &str) -> KeyView {
        KeyView {
            id: "k".into(),
            fingerprint: String::new(),
            state: state.to_owned(),
            reason: None,
            until: None,
            until_utc: None,
            models: Vec::new(),
        }
    }

    #[test]
    fn provider_status_follows_its_keys() {
        let status = |states: &[&'static str]| {
            provider_status(&states.iter().map(|state| key(state)).collect::<Vec<_>>())
        };
        assert_eq!(status(&["available", "available"]), "AVAILABLE");
        assert_eq!(status(&["available", "exhausted"]), "PARTIAL_QUOTA");
        assert_eq!(status(&["available", "invalid"]), "PARTIAL_INVALID");
        assert_eq!(status(&["cooling", "exhausted"]), "QUOTA_EXCEEDED");
        assert_eq!(status(&["invalid", "invalid"]), "INVALID_KEYS");
        assert_eq!(status(&["invalid", "disabled"]), "INVALID_KEYS");
        assert_eq!(status(&["disabled", "disabled"]), "DISABLED");
        assert!(is_down(status(&["exhausted", "invalid"])));
        assert!(!is_down(status(&["available", "invalid"])));
    }

    #[test]
    fn a_reset_is_written_in_the_provider_zone_with_its_offset() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z").expect("date").to_utc();
        let (local, utc) = zoned(at, chrono_tz::America::Los_Angeles);
        assert_eq!(local, "2026-11-24T00:00:00-08:00");
        assert_eq!(utc, "2026-11-24T08:00:00Z");
    }

    #[test]
    fn a_key_shows_its_worst_model() {
        let mut key = key("available");
        let model = ModelView {
            model: "m".into(),
            state: "exhausted".into(),
            reason: Some("spent".into()),
            until: Some("2026-11-24T00:00:00-08:00".into()),
            until_utc: Some("2026-11-24T08:00:00Z".into()),
            circuit: "closed".into(),
            score: None,
            limits: Vec::new(),
        };
        merge_model(&mut key, &model);
        assert_eq!(key.state, "exhausted");
        assert_eq!(key.until_utc.as_deref(), Some("2026-11-24T08:00:00Z"));
        let invalid = ModelView { state: "invalid".into(), until: None, until_utc: None, ..model };
        merge_model(&mut key, &invalid);
        assert_eq!(key.state, "invalid");
        assert_eq!(key.until_utc, None);
    }
}
