//! Alert webhooks: a JSON `POST` to `[alerts] webhook_url` when every key of a provider is
//! down, when the provider comes back, when a key turns invalid, when a key's day is spent
//! (`key_exhausted`), when a key's recent success rate falls below a threshold
//! (`key_low_success`), and when a provider's p95 latency rises above one (`latency_high`) —
//! once per change of condition, never once per request. Each alert has a `severity`:
//! `critical` (a provider down), `warning` (a key or latency condition) or `info` (a
//! recovery).
//!
//! Two background tasks, neither on a request's path. The watcher computes the status view
//! (the same one `GET /admin/status` shows) when the [`EventHub`](crate::EventHub) asks
//! (after a failed attempt, or a success on a provider with an alert standing), when a key
//! of a watched provider is due back, and every `recheck` anyway (a provider recovers by the
//! clock, with no attempt to tell). It compares each provider with what it saw last and
//! queues an alert per change. The sender posts queued alerts one by one, retrying a failed
//! post with doubling delays on the gateway's [`Clock`]. The queue is bounded: when full the
//! oldest alert is dropped and counted, so a dead webhook never grows memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use switchyard::ProviderId;

use crate::events::RECENT_OUTCOMES;
use crate::status::{self, ProviderView};
use crate::{EventHub, Gateway};

/// Where alerts go and how hard to try. Plain data; its `Debug` shows the webhook's host
/// only, since webhook URLs often carry a token in their path.
#[derive(Clone)]
pub struct AlertConfig {
    /// The URL that receives each alert as a JSON `POST`.
    pub webhook_url: String,
    /// Alerts held for sending at most; past it the oldest is dropped (and counted).
    pub queue: usize,
    /// Posts of one alert at most (the first and its retries).
    pub max_attempts: u32,
    /// The delay before the first retry; each next one doubles.
    pub backoff: Duration,
    /// How often every provider is looked at even when nothing asked.
    pub recheck: Duration,
    /// How long one post may take.
    pub timeout: Duration,
    /// A key whose share of successes among its recent attempts is below this (0 to 1) raises
    /// `key_low_success`.
    pub low_success_rate: f64,
    /// The recent attempts a key needs before its success rate counts (at most the 20 kept).
    pub low_success_min_attempts: usize,
    /// A provider whose p95 latency of recent successful attempts is above this raises
    /// `latency_high`; `None` turns the alert off.
    pub latency_p95: Option<Duration>,
    /// The recent successful attempts a provider needs before its p95 counts (of 100 kept).
    pub latency_min_samples: usize,
}

impl std::fmt::Debug for AlertConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self
            .webhook_url
            .split_once("://")
            .map_or("?", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or("?"));
        // `user:password@host` keeps only the host.
        let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
        f.debug_struct("AlertConfig")
            .field("webhook_host", &host)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("recheck", &self.recheck)
            .field("timeout", &self.timeout)
            .field("low_success_rate", &self.low_success_rate)
            .field("low_success_min_attempts", &self.low_success_min_attempts)
            .field("latency_p95", &self.latency_p95)
            .field("latency_min_samples", &self.latency_min_samples)
            .finish()
    }
}

impl AlertConfig {
    /// Alerts to `webhook_url` with the defaults: a queue of 64, 5 posts 1 s apart and
    /// doubling, a recheck every 30 s, 10 s per post; `key_low_success` below 80 % of at least
    /// 10 recent attempts (as `/admin/status` judges it), `latency_high` above a p95 of 30 s
    /// over at least 20 successes.
    pub fn new(webhook_url: impl Into<String>) -> Self {
        Self {
            webhook_url: webhook_url.into(),
            queue: 64,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            recheck: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            low_success_rate: 0.8,
            low_success_min_attempts: 10,
            latency_p95: Some(Duration::from_secs(30)),
            latency_min_samples: 20,
        }
    }
}

/// Alerts waiting to be sent, and what became of those that were.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Value>>,
    ready: tokio::sync::Notify,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Rounds of the watcher (each looks at every provider).
    pub(crate) checks: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A queue of JSON values: a panic mid-push cannot corrupt it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    pub(crate) fn push(&self, alert: Value, bound: usize) {
        let mut queue = lock(&self.queue);
        while queue.len() >= bound.max(1) {
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(alert);
        drop(queue);
        self.ready.notify_one();
    }

    async fn pop(&self) -> Value {
        loop {
            if let Some(alert) = lock(&self.queue).pop_front() {
                return alert;
            }
            self.ready.notified().await;
        }
    }
}

/// What the watcher saw of a provider last time.
#[derive(Default, PartialEq)]
struct Seen {
    down: bool,
    invalid: BTreeSet<String>,
    /// Keys whose day is spent, with when they are back (as `/admin/status` says it).
    exhausted: BTreeMap<String, Option<String>>,
    /// Keys below the success threshold: `(attempts, successes)`.
    low_success: BTreeMap<String, (usize, usize)>,
    /// The p95 latency in milliseconds and its samples, when above the threshold.
    slow: Option<(u128, usize)>,
}

impl Seen {
    fn of(provider: &ProviderView, events: Option<&EventHub>, config: &AlertConfig) -> Self {
        let id = ProviderId::from(provider.name.as_str());
        let exhausted = provider
            .keys
            .iter()
            .filter(|key| key.state == "exhausted")
            .map(|key| (key.id.clone(), key.until.clone()))
            .collect();
        let min_attempts = config.low_success_min_attempts.clamp(1, RECENT_OUTCOMES);
        let low_success = events
            .map(|events| {
                provider
                    .keys
                    .iter()
                    .filter_map(|key| {
                        let (n, successes) = events.recent_outcomes(&id, &key.id)?;
                        #[expect(clippy::cast_precision_loss, reason = "at most 20 attempts")]
                        let low = n >= min_attempts
                            && (successes as f64) < config.low_success_rate * n as f64;
                        low.then(|| (key.id.clone(), (n, successes)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let slow = config.latency_p95.zip(events).and_then(|(max, events)| {
            let (n, p95) = events.latency_p95(&id)?;
            (n >= config.latency_min_samples.max(1) && p95 > max).then_some((p95.as_millis(), n))
        });
        Self {
            down: status::is_down(&provider.status),
            invalid: provider
                .keys
                .iter()
                .filter(|key| key.state == "invalid")
                .map(|key| key.id.clone())
                .collect(),
            exhausted,
            low_success,
            slow,
        }
    }
}

/// Starts the watcher and the sender; they run as long as the runtime does.
pub(crate) fn spawn(gateway: &Gateway, config: AlertConfig, outbox: &Arc<Outbox>) {
    if let Some(events) = &gateway.shared.events {
        events.enable_alerts();
    }
    let client = reqwest::Client::builder().timeout(config.timeout).build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "alert webhooks are off: no HTTP client");
            return;
        }
    };
    tokio::spawn(watch(gateway.clone(), config.clone(), Arc::clone(outbox)));
    tokio::spawn(send(gateway.clone(), config, client, Arc::clone(outbox)));
}

async fn watch(gateway: Gateway, config: AlertConfig, outbox: Arc<Outbox>) {
    let mut seen: BTreeMap<ProviderId, Seen> = BTreeMap::new();
    loop {
        let view = gateway.status_view().await;
        let now = gateway.shared.clock.utc();
        let mut watched = BTreeSet::new();
        let mut next_due: Option<DateTime<Utc>> = None;
        for provider in &view.providers {
            let id = ProviderId::from(provider.name.as_str());
            let current = Seen::of(provider, gateway.shared.events.as_deref(), &config);
            let before = seen.remove(&id).unwrap_or_default();
            for alert in changes(provider, &before, &current, now, &config) {
                tracing::warn!(provider = %id, kind = %alert["kind"], "alert raised");
                outbox.push(alert, config.queue);
            }
            if current.down || !current.invalid.is_empty() {
                watched.insert(id.clone());
            }
            if current.down {
                for key in &provider.keys {
                    let due = key.until_utc.as_deref().and_then(|until| {
                        DateTime::parse_from_rfc3339(until).ok().map(|at| at.to_utc())
                    });
                    next_due = match (next_due, due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            seen.insert(id, current);
        }
        outbox.checks.fetch_add(1, Ordering::Relaxed);
        let events = gateway.shared.events.clone();
        if let Some(events) = &events {
            events.watch(watched);
            // Checks asked for while this one ran are covered by the next round.
            events.take_checks();
        }
        let clock = Arc::clone(&gateway.shared.clock);
        let mut wait = config.recheck;
        if let Some(due) = next_due {
            // A hair after the reset, so the ledger sees the key back.
            let until_due = (due - now).to_std().unwrap_or_default() + Duration::from_millis(1);
            wait = wait.min(until_due);
        }
        let deadline = clock.now() + wait;
        match &events {
            Some(events) => {
                tokio::select! {
                    () = events.checks_requested() => {}
                    () = clock.sleep_until(deadline) => {}
                }
            }
            None => clock.sleep_until(deadline).await,
        }
    }
}

/// The alerts a change from `before` to `current` raises.
fn changes(
    provider: &ProviderView,
    before: &Seen,
    current: &Seen,
    now: DateTime<Utc>,
    config: &AlertConfig,
) -> Vec<Value> {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let keys: Vec<Value> = provider
        .keys
        .iter()
        .map(|key| {
            json!({"id": key.id, "fingerprint": key.fingerprint, "state": key.state,
                   "reason": key.reason, "until": key.until})
        })
        .collect();
    let mut alerts = Vec::new();
    if current.down && !before.down {
        let message =
            status::down_message(&ProviderId::from(provider.name.as_str()), &provider.keys);
        alerts.push(json!({
            "kind": "provider_down", "severity": "critical", "provider": provider.name,
            "key": null,
            "status": provider.status, "at": at, "keys": keys, "message": message,
        }));
    } else if !current.down && before.down {
        alerts.push(json!({
            "kind": "provider_recovered", "severity": "info", "provider": provider.name,
            "key": null,
            "status": provider.status, "at": at, "keys": keys,
            "message": format!("{} can serve again ({})", provider.name, provider.status),
        }));
    }
    for key in current.invalid.difference(&before.invalid) {
        let reason = provider.keys.iter().find(|k| &k.id == key).and_then(|k| k.reason.clone());
        alerts.push(json!({
            "kind": "key_invalid", "severity": "warning", "provider": provider.name, "key": key,
            "status": provider.status, "at": at, "reason": reason,
            "message": format!("key {key} of {} is invalid", provider.name),
        }));
    }
    for (key, until) in &current.exhausted {
        if before.exhausted.contains_key(key) {
            continue;
        }
        let reason = provider.keys.iter().find(|k| &k.id == key).and_then(|k| k.reason.clone());
        let back = until.as_deref().map_or_else(String::new, |until| format!(" until {until}"));
        alerts.push(json!({
            "kind": "key_exhausted", "severity": "warning", "provider": provider.name,
            "key": key, "status": provider.status, "at": at, "until": until, "reason": reason,
            "message": format!("key {key} of {} has spent its day{back}", provider.name),
        }));
    }
    for (key, (n, successes)) in &current.low_success {
        if before.low_success.contains_key(key) {
            continue;
        }
        alerts.push(json!({
            "kind": "key_low_success", "severity": "warning", "provider": provider.name,
            "key": key, "status": provider.status, "at": at,
            "attempts": n, "successes": successes, "threshold": config.low_success_rate,
            "message": format!(
                "key {key} of {} succeeded in {successes} of its last {n} attempts",
                provider.name
            ),
        }));
    }
    if let (Some((p95_ms, n)), None) = (current.slow, before.slow) {
        let threshold_ms = config.latency_p95.map(|max| max.as_millis());
        alerts.push(json!({
            "kind": "latency_high", "severity": "warning", "provider": provider.name,
            "key": null, "status": provider.status, "at": at,
            "p95_ms": p95_ms, "samples": n, "threshold_ms": threshold_ms,
            "message": format!(
                "{}'s p95 latency over its last {n} successes is {p95_ms} ms",
                provider.name
            ),
        }));
    }
    alerts
}

async fn send(gateway: Gateway, config: AlertConfig, client: reqwest::Client, outbox: Arc<Outbox>) {
    let clock = Arc::clone(&gateway.shared.clock);
    loop {
        let alert = outbox.pop().await;
        let mut delay = config.backoff;
        let mut delivered = false;
        for attempt in 1..=config.max_attempts.max(1) {
            match client.post(&config.webhook_url).json(&alert).send().await {
                Ok(response) if response.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(response) => {
                    tracing::warn!(
                        status = response.status().as_u16(),
                        attempt,
                        "alert webhook refused the alert"
                    );
                }
                Err(error) => {
                    // A webhook URL often carries its own secret (a Slack hook's path): the
                    // error is logged without it.
                    let error = error.without_url();
                    tracing::warn!(error = %error, attempt, "alert webhook unreachable");
                }
            }
            if attempt < config.max_attempts {
                clock.sleep_until(clock.now() + delay).await;
                delay = delay.saturating_mul(2);
            }
        }
        let counter = if delivered { &outbox.sent } else { &outbox.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::KeyView;

    #[test]
    fn debug_shows_the_webhooks_host_never_its_path_or_credentials() {
        for (url, host) in [
            ("https://hooks.slack.com/services/T0/B0/s3cr3tpath", "hooks.slack.com"),
            (
                "http://ops:s3cr3tpass@alerts.internal:9000/hook?token=s3cr3t",
                "alerts.internal:9000",
            ),
        ] {
            let shown = format!("{:?}", AlertConfig::new(url));
            assert!(shown.contains(host), "{shown}");
            assert!(!shown.contains("s3cr3t"), "a secret in Debug: {shown}");
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let outbox = Outbox::default();
        for n in 0..5 {
            outbox.push(json!({ "n": n }), 3);
        }
        assert_eq!(outbox.dropped.load(Ordering::Relaxed), 2);
        let kept: Vec<Value> = lock(&outbox.queue).iter().map(|alert| alert["n"].clone()).collect();
        assert_eq!(kept, [json!(2), json!(3), json!(4)]);
    }

    fn provider(states: &[(&str, &'static str)]) -> ProviderView {
        let keys: Vec<KeyView> = states
            .iter()
            .map(|(id, state)| KeyView {
                id: (*id).to_owned(),
                fingerprint: "00000000".into(),
                state: (*state).to_owned(),
                reason: None,
                until: None,
                until_utc: None,
                models: Vec::new(),
            })
            .collect();
        ProviderView {
            name: "groq".into(),
            status: status::provider_status(&keys).to_owned(),
            time_zone: "UTC".into(),
            keys,
        }
    }

    fn seen(view: &ProviderView) -> Seen {
        Seen::of(view, None, &AlertConfig::new("http://127.0.0.1:9/hook"))
    }

    #[test]
    fn alerts_follow_changes_of_condition_only() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let kinds = |before: &ProviderView, after: &ProviderView| -> Vec<String> {
            changes(after, &seen(before), &seen(after), now, &AlertConfig::new("http://x/"))
                .iter()
                .map(|alert| alert["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let healthy = provider(&[("a", "available"), ("b", "available")]);
        let one_out = provider(&[("a", "cooling"), ("b", "available")]);
        let down = provider(&[("a", "cooling"), ("b", "exhausted")]);
        let down_invalid = provider(&[("a", "invalid"), ("b", "exhausted")]);
        assert_eq!(kinds(&healthy, &one_out), Vec::<String>::new());
        assert_eq!(kinds(&one_out, &down), ["provider_down", "key_exhausted"]);
        assert_eq!(kinds(&down, &down), Vec::<String>::new(), "no change, no alert");
        assert_eq!(kinds(&down, &down_invalid), ["key_invalid"]);
        assert_eq!(kinds(&down_invalid, &one_out), ["provider_recovered"]);
        assert_eq!(
            kinds(&healthy, &down_invalid),
            ["provider_down", "key_invalid", "key_exhausted"]
        );
    }

    #[test]
    fn key_and_latency_conditions_alert_once_each_with_a_severity() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let config = AlertConfig::new("http://x/");
        let view = provider(&[("a", "available"), ("b", "available")]);
        let calm = Seen::default();
        let troubled = Seen {
            exhausted: [("a".to_owned(), Some("2026-12-07T08:00:00Z".to_owned()))].into(),
            low_success: [("b".to_owned(), (12, 3))].into(),
            slow: Some((41_000, 25)),
            ..Seen::default()
        };
        let alerts = changes(&view, &calm, &troubled, now, &config);
        let got: Vec<(&str, &str)> = alerts
            .iter()
            .map(|alert| {
                (alert["kind"].as_str().unwrap_or(""), alert["severity"].as_str().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("key_exhausted", "warning"),
                ("key_low_success", "warning"),
                ("latency_high", "warning")
            ]
        );
        assert_eq!(alerts[0]["until"], "2026-12-07T08:00:00Z");
        assert_eq!(alerts[0]["key"], "a");
        assert_eq!(alerts[1]["message"], "key b of groq succeeded in 3 of its last 12 attempts");
        assert_eq!(alerts[2]["p95_ms"], 41_000);
        assert_eq!(alerts[2]["threshold_ms"], 30_000);
        assert!(changes(&view, &troubled, &troubled, now, &config).is_empty(), "no change");
        assert!(changes(&view, &troubled, &calm, now, &config).is_empty(), "cleared quietly");
    }
}
