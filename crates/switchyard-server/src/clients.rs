//! Client tokens with scopes: which client sent a request (by its bearer token, compared in
//! constant time against every configured token), which routes it may use, and its own
//! limits: requests in the last minute (sliding, on the gateway's [`Clock`]) and dollars spent
//! today (UTC days, from what the router says each answer cost).
//!
//! Meters sit in a sharded map (one lock per shard, held while one meter counts), so clients
//! on different shards never wait for each other and no request takes a global lock. Meters are kept by client name across reloads, so a reload does not hand a
//! client a fresh minute or a fresh budget. Tokens never leave this module: errors and logs
//! name the client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use dashmap::DashMap;
use subtle::ConstantTimeEq;

use crate::{ClientConfig, GatewayConfig};

/// Who sent a request, once its token matched.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identity {
    /// The client's name; `None` for a bare `client_tokens` token or an open gateway.
    pub(crate) client: Option<Arc<ClientConfig>>,
}

impl Identity {
    /// The client's name, if it has one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.client.as_ref().map(|client| client.name.as_str())
    }
}

/// Why a client may not make a request now.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// The route is not among the client's.
    RouteNotAllowed,
    /// Its requests in the last minute reached its limit; the oldest leaves the window then.
    RateLimited { retry_after: Duration, limit: u32 },
    /// Its spend today reached its budget; the budget starts again at the next UTC midnight.
    BudgetExceeded { retry_after: Duration, budget: f64, spent: f64 },
}

/// The token a request carries, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> &[u8] {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes()
}

/// Whether the gateway asks clients for a token at all.
pub(crate) fn required(config: &GatewayConfig) -> bool {
    !config.client_tokens.is_empty() || !config.clients.is_empty()
}

/// The identity `given` proves, or `None` when it matches no token. Every token is compared,
/// each in constant time, so timing tells nothing about which one came close.
pub(crate) fn identify(config: &GatewayConfig, given: &[u8]) -> Option<Identity> {
    let mut bare = subtle::Choice::from(0);
    for token in &config.client_tokens {
        bare |= token.as_bytes().ct_eq(given);
    }
    let mut found: Option<&Arc<ClientConfig>> = None;
    for client in &config.clients {
        let matched = client.token.as_bytes().ct_eq(given);
        if bool::from(matched) && found.is_none() {
            found = Some(client);
        }
    }
    match found {
        Some(client) => Some(Identity { client: Some(Arc::clone(client)) }),
        None if bool::from(bare) => Some(Identity::default()),
        None => None,
    }
}

/// Whether `client` may use `route` (a route's name or a `provider/model` target).
pub(crate) fn allows(client: &ClientConfig, route: &str) -> bool {
    client.routes.as_ref().is_none_or(|routes| routes.iter().any(|allowed| allowed == route))
}

#[derive(Default)]
struct Meter {
    /// When each request of the last minute was admitted, oldest first.
    minute: VecDeque<Instant>,
    /// The UTC day and the dollars spent on it.
    day: Option<(NaiveDate, f64)>,
}

/// Every client's meter, by name: configured names only (a client is identified by its
/// token before it is metered), so the map is as large as the configuration.
#[derive(Default)]
pub(crate) struct Meters {
    meters: DashMap<String, Meter>,
}

const MINUTE: Duration = Duration::from_secs(60);

fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + TimeDelta::days(1)).and_time(NaiveTime::MIN).and_utc()
}

impl Meters {
    /// Runs `count` on `name`'s meter under its shard's lock (nothing waits while it is held);
    /// the name is copied only for a client's first request.
    fn with_meter<T>(&self, name: &str, count: impl FnOnce(&mut Meter) -> T) -> T {
        if let Some(mut meter) = self.meters.get_mut(name) {
            return count(&mut meter);
        }
        count(&mut self.meters.entry(name.to_owned()).or_default())
    }

    /// Admits one request of `client` on `route` at `now` / `utc`, counting it, or says why
    /// not (counting nothing).
    pub(crate) fn admit(
        &self,
        client: &ClientConfig,
        route: &str,
        now: Instant,
        utc: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if !allows(client, route) {
            return Err(Refusal::RouteNotAllowed);
        }
        if client.requests_per_minute.is_none() && client.daily_budget.is_none() {
            return Ok(());
        }
        self.with_meter(&client.name, |meter| count(meter, client, now, utc))
    }

    /// Adds what an answer cost to `client`'s day.
    pub(crate) fn spend(&self, client: &ClientConfig, dollars: f64, utc: DateTime<Utc>) {
        if client.daily_budget.is_none() || !dollars.is_finite() || dollars <= 0.0 {
            return;
        }
        self.with_meter(&client.name, |meter| {
            let today = utc.date_naive();
            match &mut meter.day {
                Some((day, spent)) if *day == today => *spent += dollars,
                day => *day = Some((today, dollars)),
            }
        });
    }
}

/// Counts one request on `meter`, or says why not (counting nothing).
fn count(
    meter: &mut Meter,
    client: &ClientConfig,
    now: Instant,
    utc: DateTime<Utc>,
) -> Result<(), Refusal> {
    if let Some(budget) = client.daily_budget {
        let today = utc.date_naive();
        let spent = match meter.day {
            Some((day, spent)) if day == today => spent,
            _ => 0.0,
        };
        if spent >= budget {
            let retry_after = (next_midnight(utc) - utc).to_std().unwrap_or_default();
            return Err(Refusal::BudgetExceeded { retry_after, budget, spent });
        }
    }
    if let Some(limit) = client.requests_per_minute {
        while meter.minute.front().is_some_and(|at| now.saturating_duration_since(*at) >= MINUTE) {
            meter.minute.pop_front();
        }
        if meter.minute.len() >= limit as usize {
            let oldest = meter.minute.front().copied().unwrap_or(now);
            let retry_after = (oldest + MINUTE).saturating_duration_since(now);
            return Err(Refusal::RateLimited { retry_after, limit });
        }
        meter.minute.push_back(now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{Clock, ManualClock};

    fn client(rpm: Option<u32>, budget: Option<f64>, routes: Option<&[&str]>) -> ClientConfig {
        ClientConfig {
            name: "ci".into(),
            token: "tok-ci-XYZ".into(),
            routes: routes.map(|routes| routes.iter().map(|r| (*r).to_owned()).collect()),
            requests_per_minute: rpm,
            daily_budget: budget,
        }
    }

    #[test]
    fn the_minute_slides_and_says_when_it_frees() {
        let meters = Meters::default();
        let client = client(Some(2), None, None);
        let start = ManualClock::default().now();
        let utc = DateTime::<Utc>::UNIX_EPOCH;
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(meters.admit(&client, "r", at(0), utc), Ok(()));
        assert_eq!(meters.admit(&client, "r", at(10), utc), Ok(()));
        assert_eq!(
            meters.admit(&client, "r", at(30), utc),
            Err(Refusal::RateLimited { retry_after: Duration::from_secs(30), limit: 2 })
        );
        assert_eq!(meters.admit(&client, "r", at(60), utc), Ok(()), "the first left the window");
    }

    #[test]
    fn a_budget_holds_until_the_next_utc_midnight() {
        let meters = Meters::default();
        let client = client(None, Some(0.01), None);
        let now = ManualClock::default().now();
        let utc = DateTime::parse_from_rfc3339("2026-11-23T23:00:00Z").expect("date").to_utc();
        assert_eq!(meters.admit(&client, "r", now, utc), Ok(()));
        meters.spend(&client, 0.01, utc);
        assert_eq!(
            meters.admit(&client, "r", now, utc),
            Err(Refusal::BudgetExceeded {
                retry_after: Duration::from_secs(3600),
                budget: 0.01,
                spent: 0.01
            })
        );
        let tomorrow = utc + TimeDelta::hours(1);
        assert_eq!(meters.admit(&client, "r", now, tomorrow), Ok(()));
    }

    #[test]
    fn routes_are_checked_first_and_tokens_identify_clients() {
        let meters = Meters::default();
        let only_fast = client(Some(1), None, Some(&["fast"]));
        let now = ManualClock::default().now();
        let utc = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(meters.admit(&only_fast, "default", now, utc), Err(Refusal::RouteNotAllowed));
        assert_eq!(meters.admit(&only_fast, "fast", now, utc), Ok(()), "a refusal counted nothing");
        let config = GatewayConfig {
            client_tokens: vec!["bare".into()],
            clients: vec![Arc::new(only_fast)],
            ..GatewayConfig::default()
        };
        assert_eq!(
            identify(&config, b"tok-ci-XYZ").and_then(|id| id.name().map(str::to_owned)).as_deref(),
            Some("ci")
        );
        assert!(identify(&config, b"bare").is_some_and(|id| id.name().is_none()));
        assert!(identify(&config, b"nope").is_none());
        let shown = format!("{config:?} {:?}", config.clients[0]);
        assert!(shown.contains("\"ci\""), "{shown}");
        assert!(
            !shown.contains("bare") && !shown.contains("tok-ci-XYZ"),
            "a token in Debug: {shown}"
        );
    }
}
