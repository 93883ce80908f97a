//! The admin API under `/admin/`, as `notes/admin-api.md` specifies it: the status of every
//! key, the router's stats, the scorer's statistics (and an import of `switchyard keys test`
//! results), quality feedback, a key's reset / disable / enable, a reload, and the analytics
//! reports. Every route needs `Authorization: Bearer <admin token>`, compared in constant
//! time; with no admin token configured every route answers 404 `ADMIN_DISABLED`.
//!
//! Handlers translate HTTP into router calls and nothing more: the decisions (what a reset
//! clears, what a disabled key means) are the router's.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use switchyard::{Candidate, FeedbackError, KeyId, ProviderId};

use crate::{Gateway, ServerError, api, clients};

/// The admin routes, behind the admin token.
pub(crate) fn routes(gateway: &Gateway) -> axum::Router<Gateway> {
    axum::Router::new()
        .route("/admin/status", get(status))
        .route("/admin/stats", get(stats))
        .route("/admin/scores", get(scores))
        .route("/admin/scores/import", post(import_scores))
        .route("/admin/feedback", post(feedback))
        .route("/admin/keys/reset", post(reset_keys))
        .route("/admin/keys/{id}/{action}", post(key_action))
        .route("/admin/keys/{provider}/{id}/{action}", post(provider_key_action))
        .route("/admin/keys/{id}/pin", post(pin_named_key).delete(unpin_named_key))
        .route("/admin/keys/{provider}/{id}/pin", post(pin_key).delete(unpin_key))
        .route("/admin/reload", post(reload))
        .route("/admin/audit", get(audit_view))
        .route("/admin/analytics/usage", get(usage))
        .route("/admin/analytics/hourly", get(hourly))
        .route("/admin/analytics/errors", get(errors))
        .route("/admin/{*rest}", any(unknown))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), authorize))
}

async fn authorize(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let config = gateway.shared.config.load_full();
    let Some(token) = &config.admin_token else {
        return ServerError::AdminDisabled.into_response();
    };
    let given = clients::bearer(request.headers());
    if bool::from(token.as_bytes().ct_eq(given)) {
        next.run(request).await
    } else {
        ServerError::AdminUnauthorized.into_response()
    }
}

async fn unknown(Path(rest): Path<String>) -> ServerError {
    ServerError::UnknownAdminRoute(format!("/admin/{rest}"))
}

async fn status(State(gateway): State<Gateway>) -> Json<Value> {
    let view = gateway.status_view().await;
    let mut json = serde_json::to_value(view).expect("invariant: the status view serializes");
    // The pins in force, beside the keys: a list, so the status view's types stay as they are.
    let pins: Vec<Value> = gateway
        .router()
        .pins()
        .iter()
        .map(|pin| {
            json!({ "provider": pin.provider, "key": pin.key, "remaining_secs": pin.remaining.as_secs() })
        })
        .collect();
    json["pins"] = Value::Array(pins);
    Json(json)
}

async fn stats(State(gateway): State<Gateway>) -> Json<Value> {
    let stats = gateway.router().stats().await;
    let mut json = serde_json::to_value(stats).expect("invariant: router stats serialize");
    if let Some(events) = &gateway.shared.events {
        json["latency_cost"] = events.latency_cost();
    }
    Json(json)
}

async fn scores(State(gateway): State<Gateway>) -> Json<Value> {
    let router = gateway.router();
    let snapshot = router.scorer().export();
    let entries: Vec<(Candidate, Value)> = snapshot
        .entries()
        .map(|(candidate, stats)| {
            let stats = serde_json::to_value(stats).expect("invariant: model stats serialize");
            (candidate, stats)
        })
        .collect();
    let candidates: Vec<Candidate> =
        entries.iter().map(|(candidate, _)| candidate.clone()).collect();
    let scores = router.scorer().score(&candidates);
    let rows: Vec<Value> = entries
        .iter()
        .zip(scores)
        .map(|((candidate, stats), score)| {
            let successes = stats["successCount"].as_u64().unwrap_or(0);
            let failures = stats["failCount"].as_u64().unwrap_or(0);
            json!({
                "provider": candidate.provider, "key": candidate.key, "model": candidate.model,
                "score": score.is_finite().then_some(score),
                "requests": successes + failures, "successes": successes, "failures": failures,
                // The scorer keeps a mean and a moving average of latency, not quantiles.
                "p50_latency_ms": null,
                "avg_latency_ms": stats["avgResponseTime"],
                "status": stats["status"],
                "quality": stats["qualityScore"],
            })
        })
        .collect();
    Json(json!({ "candidates": rows }))
}

/// One row of `switchyard keys test --json`.
#[derive(Deserialize)]
struct TestRow {
    provider: String,
    key: String,
    model: String,
    ok: bool,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    error_class: Option<String>,
}

/// The `switchyard keys test --json` file.
#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    generated_at: Option<DateTime<Utc>>,
    results: Vec<TestRow>,
}

fn body<T>(parsed: Result<Json<T>, JsonRejection>) -> Result<T, ServerError> {
    parsed.map(|Json(value)| value).map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => ServerError::UnsupportedMediaType,
        rejection => {
            ServerError::InvalidInput(format!("invalid request body: {}", rejection.body_text()))
        }
    })
}

/// Imports `keys test` results as scorer statistics.
///
/// The scorer's boundary takes statistics as a snapshot (its `import`), so each tested
/// candidate's counts are merged into its exported statistics and imported again: successes
/// and failures add up, and the mean latency of successes blends in the tested latencies.
/// The merged candidates lose their decayed state (the plain counts stand in for it, as for
/// any snapshot without `state`); the others are untouched.
async fn import_scores(
    State(gateway): State<Gateway>,
    parsed: Result<Json<TestFile>, JsonRejection>,
) -> Result<Json<Value>, ServerError> {
    let file = body(parsed)?;
    let router = gateway.router();
    let known: std::collections::BTreeSet<Candidate> = router
        .route_names()
        .iter()
        .flat_map(|route| router.candidates(route).unwrap_or_default())
        .collect();
    let at = file.generated_at.unwrap_or_else(|| gateway.shared.clock.utc());
    let export = serde_json::to_value(router.scorer().export())
        .expect("invariant: a stats snapshot serializes");
    let mut merged: BTreeMap<Candidate, Value> = BTreeMap::new();
    let (mut imported, mut unknown) = (0_u64, 0_u64);
    for row in &file.results {
        if let Some(latency) = row.latency_ms
            && !(latency.is_finite() && latency >= 0.0)
        {
            return Err(ServerError::InvalidInput(format!(
                "results: latency_ms {latency} of {}/{}/{} is not a duration",
                row.provider, row.key, row.model
            )));
        }
        let candidate = Candidate::new(row.provider.as_str(), row.key.as_str(), row.model.as_str());
        if !known.contains(&candidate) {
            unknown += 1;
            continue;
        }
        imported += 1;
        let stats = merged.entry(candidate.clone()).or_insert_with(|| {
            let mut stats =
                export["providers"][row.provider.as_str()]["keys"][row.key.as_str()]["models"]
                    [row.model.as_str()]
                .clone();
            if !stats.is_object() {
                stats = json!({});
            }
            if let Some(object) = stats.as_object_mut() {
                object.remove("state");
                object.remove("status");
                object.remove("lastErrorKind");
            }
            stats
        });
        let successes = stats["successCount"].as_u64().unwrap_or(0);
        if row.ok {
            if let Some(latency) = row.latency_ms {
                let mean = stats["avgResponseTime"].as_f64();
                let blended = match mean {
                    Some(mean) => (mean * successes as f64 + latency) / (successes + 1) as f64,
                    None => latency,
                };
                stats["avgResponseTime"] = json!(blended);
            }
            stats["successCount"] = json!(successes + 1);
            stats["lastSuccess"] = json!(at);
        } else {
            let failures = stats["failCount"].as_u64().unwrap_or(0);
            stats["failCount"] = json!(failures + 1);
            stats["lastError"] = json!(at);
            tracing::debug!(candidate = %candidate, class = row.error_class.as_deref(), "imported a failed test");
        }
    }
    let mut providers = serde_json::Map::new();
    for (candidate, stats) in merged {
        let provider =
            providers.entry(candidate.provider.to_string()).or_insert_with(|| json!({"keys": {}}));
        let keys = &mut provider["keys"];
        if keys.get(candidate.key.as_str()).is_none() {
            keys[candidate.key.as_str()] = json!({"models": {}});
        }
        keys[candidate.key.as_str()]["models"][candidate.model.as_str()] = stats;
    }
    let snapshot = serde_json::from_value(json!({ "version": 1, "providers": providers }))
        .map_err(|error| ServerError::InvalidInput(format!("results: {error}")))?;
    router
        .scorer()
        .import(&snapshot)
        .map_err(|error| ServerError::InvalidInput(format!("results: {error}")))?;
    Ok(Json(json!({ "imported": imported, "unknown": unknown })))
}

/// `POST /admin/feedback`: `{"request_id", "quality"}`, or `{"provider", "model", "key"?,
/// "quality"}` as the intelligent key manager's code calls it (without `key`, every key of
/// the provider serving that model gets the feedback).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    key: Option<String>,
    quality: f64,
}

/// A client's name, quoted back short.
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The candidates a `{provider, model, key?}` feedback names, resolved against the router:
/// a name nothing configures is refused with a typed 404 naming it.
fn feedback_targets(
    router: &switchyard::Router,
    provider: &str,
    model: &str,
    key: Option<&str>,
) -> Result<Vec<Candidate>, ServerError> {
    let keys: Vec<KeyId> = router
        .keys()
        .into_iter()
        .filter(|(p, _)| p.as_str() == provider)
        .map(|(_, key)| key)
        .collect();
    if keys.is_empty() {
        return Err(ServerError::Admin(switchyard::AdminError::UnknownProvider(ProviderId::from(
            shown(provider).as_str(),
        ))));
    }
    let provider_id = ProviderId::from(provider);
    let routed = router
        .route_names()
        .iter()
        .flat_map(|route| router.candidates(route).unwrap_or_default())
        .any(|c| c.provider == provider_id && c.model.as_str() == model);
    let declared = router.models_of(&provider_id).iter().any(|m| m.as_str() == model);
    if !routed && !declared {
        return Err(ServerError::UnknownModel { provider: shown(provider), model: shown(model) });
    }
    let keys = match key {
        None => keys,
        Some(name) => vec![keys.into_iter().find(|k| k.as_str() == name).ok_or_else(|| {
            ServerError::UnknownKey(format!("{}/{}", shown(provider), shown(name)))
        })?],
    };
    Ok(keys.into_iter().map(|key| Candidate::new(provider, key.as_str(), model)).collect())
}

async fn feedback(
    State(gateway): State<Gateway>,
    parsed: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<Value>, ServerError> {
    let body = body(parsed)?;
    if !(0.0..=1.0).contains(&body.quality) {
        return Err(ServerError::InvalidQuality(body.quality));
    }
    let router = gateway.router();
    match (&body.request_id, &body.provider, &body.model) {
        (Some(request_id), None, None) if body.key.is_none() => {
            match router.feedback(request_id, body.quality) {
                Ok(candidate) => Ok(Json(json!({
                    "provider": candidate.provider, "key": candidate.key, "model": candidate.model,
                }))),
                Err(FeedbackError::UnknownRequest(id)) => Err(ServerError::UnknownRequest(id)),
                Err(FeedbackError::OutOfRange(quality)) => {
                    Err(ServerError::InvalidQuality(quality))
                }
            }
        }
        (None, Some(provider), Some(model)) => {
            let targets = feedback_targets(&router, provider, model, body.key.as_deref())?;
            for candidate in &targets {
                router
                    .scorer()
                    .record_quality(candidate, body.quality)
                    .map_err(|_| ServerError::InvalidQuality(body.quality))?;
            }
            let applied: Vec<Value> = targets
                .iter()
                .map(|c| json!({ "provider": c.provider, "key": c.key, "model": c.model }))
                .collect();
            Ok(Json(json!({ "applied": applied })))
        }
        _ => Err(ServerError::InvalidInput(
            "expected {\"request_id\", \"quality\"} or {\"provider\", \"model\", \"key\"?, \"quality\"}"
                .to_owned(),
        )),
    }
}

/// Finds the key an operator named: `groq-1`, or `groq/groq-1` when ids repeat.
fn resolve(gateway: &Gateway, name: &str) -> Result<(ProviderId, KeyId), ServerError> {
    let keys = gateway.router().keys();
    if let Some((provider, key)) = name.split_once('/') {
        return keys
            .into_iter()
            .find(|(p, k)| p.as_str() == provider && k.as_str() == key)
            .ok_or_else(|| ServerError::UnknownKey(name.to_owned()));
    }
    let matching: Vec<(ProviderId, KeyId)> =
        keys.into_iter().filter(|(_, key)| key.as_str() == name).collect();
    match matching.as_slice() {
        [] => Err(ServerError::UnknownKey(name.to_owned())),
        [one] => Ok(one.clone()),
        many => Err(ServerError::AmbiguousKey {
            id: name.to_owned(),
            providers: many.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>().join(", "),
        }),
    }
}

async fn key_action(
    State(gateway): State<Gateway>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ServerError> {
    act(&gateway, &id, &action).await
}

async fn provider_key_action(
    State(gateway): State<Gateway>,
    Path((provider, id, action)): Path<(String, String, String)>,
) -> Result<Json<Value>, ServerError> {
    act(&gateway, &format!("{provider}/{id}"), &action).await
}

async fn act(gateway: &Gateway, name: &str, action: &str) -> Result<Json<Value>, ServerError> {
    let (provider, key) = resolve(gateway, name)?;
    let router = gateway.router();
    match action {
        "reset" => router.reset_key(&provider, &key).await.map_err(ServerError::Admin)?,
        "disable" => {
            router.disable_key(&provider, &key).map_err(ServerError::Admin)?;
        }
        "enable" => {
            router.enable_key(&provider, &key).map_err(ServerError::Admin)?;
        }
        other => {
            return Err(ServerError::InvalidInput(format!(
                "unknown key action {other:?}; expected reset, disable or enable"
            )));
        }
    }
    tracing::info!(%provider, %key, action, "admin key action");
    gateway.audit(action, Some((&provider, &key)), None);
    if let Some(events) = &gateway.shared.events {
        events.request_check(&provider);
    }
    let view = gateway.status_view().await;
    let state = view
        .providers
        .iter()
        .find(|p| p.name == provider.as_str())
        .and_then(|p| p.keys.iter().find(|k| k.id == key.as_str()))
        .map_or("available", |k| &k.state);
    Ok(Json(json!({ "provider": provider, "key": key, "state": state })))
}

/// The body of `POST /admin/keys/reset`: empty for every key, or one provider's.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(default)]
    provider: Option<String>,
}

/// Resets every key the ledger holds out, or one provider's; answers the keys reset by id
/// and fingerprint.
async fn reset_keys(
    State(gateway): State<Gateway>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ServerError> {
    let body: ResetBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResetBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| ServerError::InvalidInput(format!("invalid request body: {error}")))?
    };
    let router = gateway.router();
    // The provider is resolved against the routes' keys: a client's name creates nothing.
    let provider = match body.provider {
        None => None,
        Some(name) => Some(
            router
                .keys()
                .into_iter()
                .map(|(provider, _)| provider)
                .find(|provider| provider.as_str() == name)
                .ok_or_else(|| {
                    let shown: String = name.chars().take(64).collect();
                    ServerError::Admin(switchyard::AdminError::UnknownProvider(ProviderId::from(
                        shown.as_str(),
                    )))
                })?,
        ),
    };
    let reset = router.reset_keys(provider.as_ref()).await.map_err(ServerError::Admin)?;
    let config = gateway.shared.config.load_full();
    let rows: Vec<Value> = reset
        .iter()
        .map(|(provider, key)| {
            let fingerprint = config.fingerprints.get(&(provider.clone(), key.clone()));
            json!({ "provider": provider, "key": key, "fingerprint": fingerprint })
        })
        .collect();
    tracing::info!(
        provider = provider.as_ref().map(ProviderId::as_str),
        n_keys = rows.len(),
        "admin bulk key reset"
    );
    for (provider, key) in &reset {
        gateway.audit("reset", Some((provider, key)), Some("bulk".to_owned()));
    }
    if let Some(events) = &gateway.shared.events {
        for provider in
            reset.iter().map(|(provider, _)| provider).collect::<std::collections::BTreeSet<_>>()
        {
            events.request_check(provider);
        }
    }
    Ok(Json(json!({ "reset": rows })))
}

/// `POST /admin/keys/{id}/pin`: [`pin_key`] for a key named by its id alone (a 400
/// `AMBIGUOUS_KEY` naming the providers when several have that id).
async fn pin_named_key(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ServerError> {
    pin(&gateway, &id, &bytes)
}

/// `DELETE /admin/keys/{id}/pin`: [`unpin_key`] for a key named by its id alone.
async fn unpin_named_key(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServerError> {
    unpin(&gateway, &id)
}

/// `POST /admin/keys/{provider}/{id}/pin` with `{"for_secs": N}`: the key's candidates go
/// first on every route that holds them, for N seconds (at most a day).
async fn pin_key(
    State(gateway): State<Gateway>,
    Path((provider, id)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ServerError> {
    pin(&gateway, &format!("{provider}/{id}"), &bytes)
}

fn pin(gateway: &Gateway, name: &str, bytes: &[u8]) -> Result<Json<Value>, ServerError> {
    let (provider, key) = resolve(gateway, name)?;
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|error| ServerError::InvalidInput(format!("invalid request body: {error}")))?;
    let Some(fields) = body.as_object() else {
        return Err(ServerError::InvalidInput("expected {\"for_secs\": N}".to_owned()));
    };
    if let Some(unknown) = fields.keys().find(|name| name.as_str() != "for_secs") {
        let shown: String = unknown.chars().take(64).collect();
        return Err(ServerError::InvalidInput(format!(
            "unknown field {shown:?}; expected for_secs"
        )));
    }
    let for_secs = match fields.get("for_secs").and_then(Value::as_u64) {
        Some(secs) if secs > 0 => secs,
        _ => {
            return Err(ServerError::InvalidInput(format!(
                "for_secs must be a whole number of seconds from 1 to {}",
                switchyard::MAX_PIN.as_secs()
            )));
        }
    };
    let held = gateway
        .router()
        .pin_key(&provider, &key, std::time::Duration::from_secs(for_secs))
        .map_err(ServerError::Admin)?;
    tracing::info!(%provider, %key, secs = held.as_secs(), "admin key pin");
    gateway.audit("pin", Some((&provider, &key)), Some(format!("for {} s", held.as_secs())));
    Ok(Json(json!({ "provider": provider, "key": key, "pinned_for_secs": held.as_secs() })))
}

/// `DELETE /admin/keys/{provider}/{id}/pin`: ends a pin.
async fn unpin_key(
    State(gateway): State<Gateway>,
    Path((provider, id)): Path<(String, String)>,
) -> Result<Json<Value>, ServerError> {
    unpin(&gateway, &format!("{provider}/{id}"))
}

fn unpin(gateway: &Gateway, name: &str) -> Result<Json<Value>, ServerError> {
    let (provider, key) = resolve(gateway, name)?;
    let was_pinned = gateway.router().unpin_key(&provider, &key).map_err(ServerError::Admin)?;
    gateway.audit("unpin", Some((&provider, &key)), None);
    Ok(Json(json!({ "provider": provider, "key": key, "was_pinned": was_pinned })))
}

async fn reload(State(gateway): State<Gateway>) -> Result<Json<Value>, ServerError> {
    let Some(reloader) = gateway.shared.reloader.clone() else {
        return Err(ServerError::ReloadUnavailable);
    };
    // Reading files and opening stores blocks: off the async workers.
    let rebuilt = tokio::task::spawn_blocking(move || reloader.reload())
        .await
        .map_err(|error| ServerError::ReloadFailed(format!("the reload task failed: {error}")))?;
    let (router, config) = rebuilt.map_err(|message| {
        tracing::error!(error = %message, "configuration refused by an admin reload; the running one stays");
        ServerError::ReloadFailed(message)
    })?;
    let (n_routes, n_keys) = (router.route_names().len(), router.keys().len());
    gateway.reload(router, config);
    tracing::info!(routes = n_routes, keys = n_keys, "configuration reloaded by an admin");
    gateway.audit("reload", None, Some(format!("{n_routes} routes, {n_keys} keys")));
    Ok(Json(json!({ "reloaded": true, "routes": n_routes, "keys": n_keys })))
}

/// How far back the analytics reports look by default.
const DEFAULT_WINDOW_DAYS: i64 = 7;

/// Reads a time bound: RFC 3339, or a date (its midnight, UTC; for an `end`, the midnight
/// after it, so `end=2026-11-23` includes that day).
pub(crate) fn bound(name: &str, text: &str, is_end: bool) -> Result<DateTime<Utc>, ServerError> {
    // The text is the client's: quoted back short.
    let shown: String = text.chars().take(64).collect();
    let at = if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        at.to_utc()
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_time(NaiveTime::MIN).and_utc();
        if is_end {
            midnight
                .checked_add_signed(TimeDelta::days(1))
                .ok_or_else(|| out_of_range(name, &shown))?
        } else {
            midnight
        }
    } else {
        return Err(ServerError::InvalidInput(format!(
            "{name}={shown:?} is not a time: expected RFC 3339 (2026-11-23T14:00:00Z) or a date (2026-11-23)"
        )));
    };
    // Reports store milliseconds since 1970; dates far outside that only overflow arithmetic.
    if !(earliest()..=latest()).contains(&at) {
        return Err(out_of_range(name, &shown));
    }
    Ok(at)
}

/// The earliest time a report window may name.
fn earliest() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The latest time a report window may name: the end of year 9999.
fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(10_000, 1, 1)
        .expect("invariant: year 10000 is within chrono's range")
        .and_time(NaiveTime::MIN)
        .and_utc()
}

fn out_of_range(name: &str, shown: &str) -> ServerError {
    ServerError::InvalidInput(format!(
        "{name}={shown:?} is out of range: expected a time from 1970-01-01 to 9999-12-31"
    ))
}

pub(crate) fn query(
    parsed: Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ServerError> {
    let Query(params) =
        parsed.map_err(|rejection| ServerError::InvalidInput(rejection.body_text()))?;
    if let Some(unknown) = params.keys().find(|name| !allowed.contains(&name.as_str())) {
        return Err(ServerError::InvalidInput(format!(
            "unknown query parameter {unknown:?}; expected {}",
            allowed.join(", ")
        )));
    }
    Ok(params)
}

fn window(
    gateway: &Gateway,
    params: &HashMap<String, String>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ServerError> {
    let end = match params.get("end") {
        Some(text) => bound("end", text, true)?,
        // Up to now, and including what was stamped this very millisecond (`end` is excluded).
        None => gateway.shared.clock.utc() + TimeDelta::milliseconds(1),
    };
    let start = match params.get("start") {
        Some(text) => bound("start", text, false)?,
        None => end
            .checked_sub_signed(TimeDelta::days(DEFAULT_WINDOW_DAYS))
            .unwrap_or(end)
            .max(earliest()),
    };
    if start >= end {
        return Err(ServerError::InvalidInput(format!(
            "start {} is not before end {}",
            start.to_rfc3339(),
            end.to_rfc3339()
        )));
    }
    Ok((start, end))
}

/// Runs a report on the analytics connection, off the async workers, after committing what
/// the writer holds.
async fn report<T: Send + 'static, View: From<T>>(
    gateway: &Gateway,
    run: impl FnOnce(&switchyard_store::analytics::Analytics) -> Result<T, switchyard_store::StoreError>
    + Send
    + 'static,
) -> Result<Json<View>, ServerError> {
    let Some(analytics) = gateway.shared.analytics.clone() else {
        return Err(ServerError::AnalyticsDisabled);
    };
    let events = gateway.shared.events.clone();
    let result = tokio::task::spawn_blocking(move || {
        // A report shows every event recorded before it was asked for: what the writer holds
        // is committed first (one batch; reports are rare next to requests).
        if let Some(writer) = events.as_ref().and_then(|events| events.analytics())
            && let Err(error) = writer.flush()
        {
            tracing::warn!(%error, "analytics events not committed before a report");
        }
        let analytics = analytics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        run(&analytics)
    })
    .await
    .map_err(|error| ServerError::InvalidInput(format!("the report task failed: {error}")))?;
    let report = result.map_err(ServerError::Analytics)?;
    Ok(Json(View::from(report)))
}

async fn usage(
    State(gateway): State<Gateway>,
    parsed: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<api::UsageView>, ServerError> {
    let params = query(parsed, &["start", "end", "key", "tag"])?;
    let (start, end) = window(&gateway, &params)?;
    let key = params.get("key").cloned();
    let tag = params.get("tag").cloned();
    if let Some(tag) = &tag {
        // A tag as a request may carry one (see `inbound::options`): anything else matches
        // nothing, and is more likely a mistake.
        let max = crate::inbound::options::MAX_TAG_BYTES;
        if tag.is_empty() || tag.len() > max || tag.contains(',') {
            let shown: String = tag.chars().take(64).collect();
            return Err(ServerError::InvalidInput(format!(
                "tag {shown:?}: a tag is 1 to {max} bytes without a comma"
            )));
        }
    }
    report(&gateway, move |analytics| {
        analytics.usage_tagged(start, end, key.as_deref(), tag.as_deref())
    })
    .await
}

async fn hourly(
    State(gateway): State<Gateway>,
    parsed: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<api::HourlyView>, ServerError> {
    let params = query(parsed, &["date"])?;
    let date = match params.get("date") {
        Some(text) => {
            let shown: String = text.chars().take(64).collect();
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ServerError::InvalidInput(format!(
                    "date={shown:?} is not a date: expected YYYY-MM-DD"
                ))
            })?;
            if !(earliest()..latest()).contains(&date.and_time(NaiveTime::MIN).and_utc()) {
                return Err(out_of_range("date", &shown));
            }
            date
        }
        None => gateway.shared.clock.utc().date_naive(),
    };
    report(&gateway, move |analytics| analytics.hourly(date)).await
}

async fn errors(
    State(gateway): State<Gateway>,
    parsed: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<api::ErrorsView>, ServerError> {
    let params = query(parsed, &["start", "end"])?;
    let (start, end) = window(&gateway, &params)?;
    report(&gateway, move |analytics| analytics.errors(start, end)).await
}

/// `GET /admin/audit?limit=N&since=T`: the newest `limit` entries (at most 1000) at or after
/// `since` (RFC 3339 or a date), oldest first.
async fn audit_view(
    State(gateway): State<Gateway>,
    parsed: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ServerError> {
    use crate::keylife::{DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};
    let params = query(parsed, &["limit", "since"])?;
    let limit = match params.get("limit") {
        None => DEFAULT_AUDIT_LIMIT,
        Some(text) => text.parse::<usize>().map_err(|_| {
            let shown: String = text.chars().take(64).collect();
            ServerError::InvalidInput(format!(
                "limit={shown:?} is not a count: expected 1 to {MAX_AUDIT_LIMIT}"
            ))
        })?,
    }
    .clamp(1, MAX_AUDIT_LIMIT);
    let since = params.get("since").map(|text| bound("since", text, false)).transpose()?;
    crate::keylife::audit(gateway, since, limit).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_rfc3339_and_dates() {
        let at = bound("start", "2026-11-23T14:00:00-08:00", false).expect("rfc 3339");
        assert_eq!(at.to_rfc3339(), "2026-11-23T22:00:00+00:00");
        let start = bound("start", "2026-11-23", false).expect("date");
        assert_eq!(start.to_rfc3339(), "2026-11-23T00:00:00+00:00");
        let end = bound("end", "2026-11-23", true).expect("date");
        assert_eq!(end.to_rfc3339(), "2026-11-24T00:00:00+00:00", "an end date includes its day");
        let error = bound("start", "yesterday", false).expect_err("not a time");
        assert_eq!(error.code(), "INVALID_INPUT");
        assert!(error.to_string().contains("start=\"yesterday\""), "{error}");
    }

    /// The ends of chrono's range answer a typed 400 instead of overflowing date arithmetic.
    #[test]
    fn bounds_at_the_ends_of_time_are_refused() {
        for (name, text, is_end) in [
            ("end", "+262142-12-31", true),
            ("end", "262142-12-31", true),
            ("start", "-262143-01-01", false),
            ("start", "1969-12-31", false),
            ("end", "9999-12-31T23:59:59Z", true),
            ("end", "+10000-01-01", true),
        ] {
            match bound(name, text, is_end) {
                Ok(at) => assert!(at <= latest() && at >= earliest(), "{text}: {at}"),
                Err(error) => assert_eq!(error.code(), "INVALID_INPUT", "{text}: {error}"),
            }
        }
        let at = bound("end", "9999-12-31", true).expect("the last day of 9999 is in range");
        assert_eq!(at, latest());
        let error = bound("start", "1960-01-01", false).expect_err("before 1970");
        assert!(error.to_string().contains("out of range"), "{error}");
    }
}
