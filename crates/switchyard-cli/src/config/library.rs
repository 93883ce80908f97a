//! The library's own knobs, as `switchyard.toml` writes them: `[router]` (retries, backoff,
//! circuit breaker, overload cap), `[cache]` (the response cache), `[probes]` (health probes,
//! with a per-provider interval), quota presets (`tier = "groq-free"`) and the natural order
//! of numbered key variables. Each value is checked here, with the file's line in the error.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use switchyard::{Backoff, CacheConfig, CircuitConfig, ProbeConfig, RouterConfig};
use switchyard_core::ProviderId;
use switchyard_quota::{Limit, ProviderQuota, Unit, Window, presets};
use toml::Spanned;

use super::build::{UpstreamLimits, count, seconds};
use super::{ConfigError, LimitsSection, Loaded, ProviderSection, RouteSection};

/// `[router]`: how the cascade retries, backs off, breaks circuits and caps its load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSection {
    /// Retries of one candidate after a "try the same again" error (default 1).
    pub(crate) retries_same: Option<Spanned<u64>>,
    /// The most requests in flight at once; beyond it `OVERLOADED` (default: no cap).
    pub(crate) max_in_flight: Option<Spanned<u64>>,
    /// How many requests may wait for a spent key at once (default 1024).
    pub(crate) wait_queue: Option<Spanned<u64>>,
    /// `[router.backoff]`.
    pub(crate) backoff: Option<BackoffSection>,
    /// `[router.circuit]`.
    pub(crate) circuit: Option<CircuitSection>,
}

/// `[router.backoff]`: the delay schedule between retries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackoffSection {
    /// The first delay, in seconds (default 0.25).
    pub(crate) base_secs: Option<Spanned<f64>>,
    /// The longest delay, in seconds (default 8).
    pub(crate) max_secs: Option<Spanned<f64>>,
    /// The share of a provider's stated delay added as jitter, 0 to 1 (default 0.1).
    pub(crate) jitter: Option<Spanned<f64>>,
}

/// `[router.circuit]`: every candidate's circuit breaker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CircuitSection {
    /// Consecutive failures that open a circuit (default 5).
    pub(crate) failure_threshold: Option<Spanned<u64>>,
    /// How long it stays open, in seconds (default 60).
    pub(crate) open_secs: Option<Spanned<f64>>,
    /// Trial calls a half-open circuit lets through (default 3).
    pub(crate) half_open_probes: Option<Spanned<u64>>,
    /// How long a closed circuit ramps back to its full share, in seconds (default 30).
    pub(crate) ramp_secs: Option<Spanned<f64>>,
    /// The share let through right after closing, above 0 and at most 1 (default 0.1).
    pub(crate) ramp_floor: Option<Spanned<f64>>,
}

/// `[cache]`: the response cache routes opt into with `cache = true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheSection {
    /// The most bytes of requests and answers kept (default 64 MiB).
    pub(crate) max_bytes: Option<Spanned<u64>>,
    /// How long an answer is served again, in seconds (default 600).
    pub(crate) ttl_secs: Option<Spanned<f64>>,
}

/// `[probes]`: a one-token completion to every key at an interval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbesSection {
    /// Whether every provider is probed (default: yes when the section is there).
    pub(crate) enabled: Option<bool>,
    /// Time between two rounds, in seconds (default 300, at least 10).
    pub(crate) interval_secs: Option<Spanned<f64>>,
    /// How long one probe may take, in seconds (default 30).
    pub(crate) timeout_secs: Option<Spanned<f64>>,
}

/// The shortest probe interval: each round spends a request of every key's quota.
const MIN_PROBE_SECS: f64 = 10.0;

/// The tiers `tier = "..."` accepts, each one of `switchyard_quota::presets`.
pub(crate) const TIERS: [&str; 4] =
    ["groq-free", "gemini-free", "openrouter-free", "openrouter-free-credits"];

/// The router's settings: `[router]`, `[cache]` and `[upstream]`'s stream bounds.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first value out of range.
pub(crate) fn router_config(
    loaded: &Loaded,
    upstream: &UpstreamLimits,
) -> Result<RouterConfig, ConfigError> {
    let file = &loaded.file;
    let mut config = RouterConfig {
        stream_idle_timeout: upstream.stream_idle_timeout,
        stream_deadline: upstream.stream_deadline,
        ..RouterConfig::default()
    };
    let section = file.router.as_ref();
    if let Some(retries) = section.and_then(|section| section.retries_same.as_ref()) {
        config.retries_same = u32::try_from(count(loaded, retries, "retries_same", 0, 10)?)
            .expect("invariant: at most 10");
    }
    if let Some(max) = section.and_then(|section| section.max_in_flight.as_ref()) {
        config.max_in_flight = Some(
            u32::try_from(count(loaded, max, "max_in_flight", 1, 1_000_000)?)
                .expect("invariant: at most a million"),
        );
    }
    if let Some(queue) = section.and_then(|section| section.wait_queue.as_ref()) {
        config.wait_queue = count(loaded, queue, "wait_queue", 0, 1_000_000)?;
    }
    if let Some(backoff) = section.and_then(|section| section.backoff.as_ref()) {
        config.backoff = backoff_config(loaded, backoff)?;
    }
    if let Some(circuit) = section.and_then(|section| section.circuit.as_ref()) {
        config.circuit = circuit_config(loaded, circuit)?;
    }
    let route_caches = file.routes.iter().any(|route| route.cache == Some(true));
    if let Some(cache) = &file.cache {
        let mut settings = CacheConfig::default();
        if let Some(bytes) = &cache.max_bytes {
            settings.max_bytes = count(loaded, bytes, "max_bytes", 1024, 1 << 36)? as u64;
        }
        if let Some(ttl) = &cache.ttl_secs {
            settings.ttl = seconds(loaded, ttl, "ttl_secs")?;
        }
        config.cache = Some(settings);
    } else if route_caches {
        config.cache = Some(CacheConfig::default());
    }
    Ok(config)
}

fn backoff_config(loaded: &Loaded, section: &BackoffSection) -> Result<Backoff, ConfigError> {
    let mut backoff = Backoff::default();
    if let Some(base) = &section.base_secs {
        backoff.base = seconds(loaded, base, "base_secs")?;
    }
    if let Some(max) = &section.max_secs {
        backoff.max = seconds(loaded, max, "max_secs")?;
    }
    if backoff.max < backoff.base {
        let span = section.max_secs.as_ref().or(section.base_secs.as_ref()).map(Spanned::span);
        let field = if section.max_secs.is_some() { "max_secs" } else { "base_secs" };
        return Err(loaded.invalid(
            span.unwrap_or(0..0),
            field,
            "expected max_secs at least base_secs",
        ));
    }
    if let Some(jitter) = &section.jitter {
        backoff.stated_jitter = share(loaded, jitter, "jitter", true)?;
    }
    Ok(backoff)
}

fn circuit_config(loaded: &Loaded, section: &CircuitSection) -> Result<CircuitConfig, ConfigError> {
    let mut circuit = CircuitConfig::default();
    if let Some(threshold) = &section.failure_threshold {
        circuit.failure_threshold =
            u32::try_from(count(loaded, threshold, "failure_threshold", 1, 1000)?)
                .expect("invariant: at most 1000");
    }
    if let Some(open) = &section.open_secs {
        circuit.open_for = seconds(loaded, open, "open_secs")?;
    }
    if let Some(probes) = &section.half_open_probes {
        circuit.half_open_probes =
            u32::try_from(count(loaded, probes, "half_open_probes", 1, 100)?)
                .expect("invariant: at most 100");
    }
    if let Some(ramp) = &section.ramp_secs {
        circuit.ramp_for = seconds(loaded, ramp, "ramp_secs")?;
    }
    if let Some(floor) = &section.ramp_floor {
        circuit.ramp_floor = share(loaded, floor, "ramp_floor", false)?;
    }
    Ok(circuit)
}

/// A share from 0 (when `zero_ok`; else above 0) to 1.
fn share(
    loaded: &Loaded,
    value: &Spanned<f64>,
    field: &str,
    zero_ok: bool,
) -> Result<f64, ConfigError> {
    let given = *value.get_ref();
    let low_ok = if zero_ok { given >= 0.0 } else { given > 0.0 };
    if given.is_finite() && low_ok && given <= 1.0 {
        Ok(given)
    } else {
        let range = if zero_ok { "from 0 to 1" } else { "above 0 and at most 1" };
        Err(loaded.invalid(value.span(), field, format!("expected a share {range}")))
    }
}

/// The probe tasks to run: one per distinct interval, each naming its providers. A provider
/// is probed when it says `probe = true` or gives `probe_interval_secs`, or when `[probes]` is
/// on and it does not say `probe = false`.
///
/// # Errors
/// [`ConfigError::Invalid`] for an interval under 10 seconds or a timeout out of range.
pub(crate) fn probes(loaded: &Loaded) -> Result<Vec<ProbeConfig>, ConfigError> {
    let file = &loaded.file;
    let section = file.probes.as_ref();
    let enabled = section.is_some_and(|section| section.enabled != Some(false));
    let mut defaults = ProbeConfig::default();
    if let Some(section) = section {
        if let Some(interval) = &section.interval_secs {
            defaults.interval = probe_interval(loaded, interval, "interval_secs")?;
        }
        if let Some(timeout) = &section.timeout_secs {
            defaults.timeout = seconds(loaded, timeout, "timeout_secs")?;
        }
    }
    let mut by_interval: BTreeMap<Duration, Vec<ProviderId>> = BTreeMap::new();
    for provider in &file.providers {
        let interval = provider
            .probe_interval_secs
            .as_ref()
            .map(|secs| probe_interval(loaded, secs, "probe_interval_secs"))
            .transpose()?;
        let probed = match provider.probe {
            Some(probe) => probe,
            None => enabled || interval.is_some(),
        };
        if probed {
            let interval = interval.unwrap_or(defaults.interval);
            let name = ProviderId::from(provider.name.get_ref().as_str());
            by_interval.entry(interval).or_default().push(name);
        }
    }
    Ok(by_interval
        .into_iter()
        .map(|(interval, providers)| ProbeConfig { interval, providers, ..defaults.clone() })
        .collect())
}

fn probe_interval(
    loaded: &Loaded,
    secs: &Spanned<f64>,
    field: &str,
) -> Result<Duration, ConfigError> {
    let interval = seconds(loaded, secs, field)?;
    if interval.as_secs_f64() < MIN_PROBE_SECS {
        return Err(loaded.invalid(
            secs.span(),
            field,
            format!(
                "expected at least {MIN_PROBE_SECS} seconds (each round spends a request of every key)"
            ),
        ));
    }
    Ok(interval)
}

/// The preset `tier` names, for provider `section`, when it names one.
///
/// # Errors
/// [`ConfigError::Invalid`] listing the known tiers.
pub(crate) fn preset(
    loaded: &Loaded,
    section: &ProviderSection,
) -> Result<Option<ProviderQuota>, ConfigError> {
    let Some(tier) = &section.tier else { return Ok(None) };
    let provider = section.name.get_ref().as_str();
    let quota = match tier.get_ref().as_str() {
        "groq-free" => presets::groq_free(provider),
        "gemini-free" => presets::gemini_free(provider),
        "openrouter-free" => presets::openrouter_free(provider, false),
        "openrouter-free-credits" => presets::openrouter_free(provider, true),
        // The value is not repeated: a secret pasted in the wrong field stays out of the log.
        _ => {
            return Err(loaded.invalid(
                tier.span(),
                "tier",
                format!("unknown tier; expected one of {}", TIERS.join(", ")),
            ));
        }
    };
    Ok(Some(quota))
}

/// A preset's limits with the file's over them, field by field: `requests_per_day = 500`
/// replaces the preset's daily request limit (its window kept) or adds one. With `reset`
/// given, the preset's calendar days end in that zone instead.
pub(crate) fn adjust(limits: &mut Vec<Limit>, given: Option<&LimitsSection>, reset: Option<Tz>) {
    if let Some(zone) = reset {
        for limit in limits.iter_mut() {
            if let Window::Day(_) = limit.window {
                limit.window = Window::Day(zone);
            }
        }
    }
    let Some(given) = given else { return };
    let day_tz = reset.unwrap_or(Tz::UTC);
    let fields = [
        (given.requests_per_minute, Unit::Requests, false),
        (given.tokens_per_minute, Unit::Tokens, false),
        (given.requests_per_day, Unit::Requests, true),
        (given.tokens_per_day, Unit::Tokens, true),
    ];
    for (amount, unit, daily) in fields {
        let Some(amount) = amount else { continue };
        match limits.iter_mut().find(|limit| limit.unit == unit && per_day(limit.window) == daily) {
            Some(limit) => limit.amount = amount,
            None => limits.push(match (unit, daily) {
                (Unit::Requests, false) => Limit::per_minute(amount),
                (Unit::Tokens, false) => Limit::tokens_per(amount, Duration::from_secs(60)),
                (Unit::Requests, true) => Limit::requests_per_day(amount, day_tz),
                (Unit::Tokens, true) => Limit::tokens_per_day(amount, day_tz),
            }),
        }
    }
}

/// Whether a window counts a day (as `requests_per_day` does) rather than a minute.
fn per_day(window: Window) -> bool {
    match window {
        Window::Day(_) => true,
        Window::Sliding(length) | Window::Refill(length) => length > Duration::from_secs(300),
    }
}

/// A model's weight for the weighted strategy: its own `weight`, else its provider's.
///
/// # Errors
/// [`ConfigError::Invalid`] for a weight outside 1 to 1000.
pub(crate) fn weight(
    loaded: &Loaded,
    section: &ProviderSection,
    model: &str,
) -> Result<Option<u32>, ConfigError> {
    let own = section.per_model.get(model).and_then(|own| own.weight.as_ref());
    own.or(section.weight.as_ref())
        .map(|weight| {
            count(loaded, weight, "weight", 1, 1000)
                .map(|n| u32::try_from(n).expect("invariant: at most 1000"))
        })
        .transpose()
}

/// A route's `prefer_provider`, which must be the provider of one of its targets.
///
/// # Errors
/// [`ConfigError::Invalid`] listing the route's providers.
pub(crate) fn prefer_provider(
    loaded: &Loaded,
    route: &RouteSection,
) -> Result<Option<ProviderId>, ConfigError> {
    let Some(preferred) = &route.prefer_provider else { return Ok(None) };
    let mut of_route: Vec<&str> = Vec::new();
    for target in route.targets.get_ref() {
        if let Some((provider, _)) = target.split_once('/')
            && !of_route.contains(&provider)
        {
            of_route.push(provider);
        }
    }
    if !of_route.contains(&preferred.get_ref().as_str()) {
        return Err(loaded.invalid(
            preferred.span(),
            "prefer_provider",
            format!("expected a provider of the route's targets: {}", of_route.join(", ")),
        ));
    }
    Ok(Some(ProviderId::from(preferred.get_ref().as_str())))
}

/// Orders names with their numbers as numbers: `KEY_2` before `KEY_10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let a_len = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let b_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (a_digits, b_digits) = (&a[..a_len], &b[..b_len]);
                let trim = |digits: &[u8]| -> usize {
                    digits.iter().take_while(|&&c| c == b'0').count().min(digits.len() - 1)
                };
                let (a_num, b_num) = (&a_digits[trim(a_digits)..], &b_digits[trim(b_digits)..]);
                // Longer without leading zeros is larger; equal lengths compare digit by digit.
                let order = a_num.len().cmp(&b_num.len()).then_with(|| a_num.cmp(b_num));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[a_len..], &b[b_len..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
