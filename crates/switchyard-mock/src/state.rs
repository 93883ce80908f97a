//! The mock's mutable state: each key's quota windows and counters, the fault rules, and the
//! log of received requests. Windows read time only from the clock they are handed, so a
//! test that advances a `ManualClock` moves them with the code under test.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use switchyard_core::{KeyId, Usage};

use crate::script::{Fault, FaultRule, KeyScript, Quotas, WindowKind, WindowQuota};
use crate::wire::{Failure, Unit, Window, WindowReading};

const MINUTE: Duration = Duration::from_secs(60);

/// A sliding window (60 seconds unless scripted otherwise): each charge is kept until it is
/// one window old.
#[derive(Debug)]
struct MinuteWindow {
    limit: u64,
    length: Duration,
    charges: VecDeque<(Instant, u64)>,
    used: u64,
}

impl MinuteWindow {
    fn new(limit: u64) -> Self {
        Self::sliding(limit, MINUTE)
    }

    fn sliding(limit: u64, length: Duration) -> Self {
        Self { limit, length, charges: VecDeque::new(), used: 0 }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, cost)) = self.charges.front() {
            if now.saturating_duration_since(at) >= self.length {
                self.used -= cost;
                self.charges.pop_front();
            } else {
                break;
            }
        }
    }

    /// `Err(wait)` when `cost` does not fit now: `wait` is how long until it would.
    fn check(&self, now: Instant, cost: u64) -> Result<(), Duration> {
        if self.used + cost <= self.limit {
            return Ok(());
        }
        let mut freed = 0;
        for &(at, charge) in &self.charges {
            freed += charge;
            if self.used - freed + cost <= self.limit {
                return Err((at + self.length).saturating_duration_since(now));
            }
        }
        // Larger than the whole window: only the request-too-large check should get here.
        Err(self.length)
    }

    fn charge(&mut self, now: Instant, cost: u64) {
        if cost > 0 {
            self.charges.push_back((now, cost));
            self.used += cost;
        }
    }

    fn reading(&self, unit: Unit, now: Instant, utc: DateTime<Utc>) -> WindowReading {
        // OpenAI's reset headers say when the bucket is whole again: when the newest charge
        // leaves the window.
        let reset_after = self
            .charges
            .back()
            .map_or(Duration::ZERO, |&(at, _)| (at + self.length).saturating_duration_since(now));
        WindowReading {
            window: Window::Minute,
            unit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset_after,
            reset_at: utc + chrono::Duration::from_std(reset_after).unwrap_or_default(),
        }
    }
}

/// A fixed window: counts start again at each boundary, the mock's start plus an offset and
/// then every `length`.
#[derive(Debug)]
struct FixedWindow {
    limit: u64,
    length: Duration,
    started: Instant,
    /// How far the start is past the boundary before it, plus one length: window `n` ends at
    /// `started + (n + 1) * length - shift`.
    shift: Duration,
    /// The window counted now, by its number.
    current: u64,
    used: u64,
}

impl FixedWindow {
    fn new(limit: u64, length: Duration, offset: Duration, started: Instant) -> Self {
        let length = length.max(Duration::from_millis(1));
        let offset_mod = Duration::from_nanos((offset.as_nanos() % length.as_nanos()) as u64);
        let shift = length - offset_mod;
        Self { limit, length, started, shift, current: 0, used: 0 }
    }

    fn number(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.started) + self.shift;
        (since.as_nanos() / self.length.as_nanos()) as u64
    }

    fn roll(&mut self, now: Instant) {
        let number = self.number(now);
        if number != self.current {
            self.current = number;
            self.used = 0;
        }
    }

    fn until_next(&self, now: Instant) -> Duration {
        let ends_after = Duration::from_nanos(
            (u128::from(self.current + 1) * self.length.as_nanos()).min(u128::from(u64::MAX))
                as u64,
        )
        .saturating_sub(self.shift);
        (self.started + ends_after).saturating_duration_since(now)
    }

    fn check(&self, now: Instant, cost: u64) -> Result<(), Duration> {
        if self.used + cost <= self.limit { Ok(()) } else { Err(self.until_next(now)) }
    }
}

/// A scripted window of any length: sliding or fixed.
#[derive(Debug)]
enum SpanWindow {
    Sliding(MinuteWindow),
    Fixed(FixedWindow),
}

/// One scripted window with what it counts and how it is named.
#[derive(Debug)]
struct Span {
    quota: WindowQuota,
    window: SpanWindow,
}

impl Span {
    fn new(quota: WindowQuota, started: Instant) -> Self {
        let window = match quota.kind {
            WindowKind::Sliding => {
                SpanWindow::Sliding(MinuteWindow::sliding(quota.limit, quota.length))
            }
            WindowKind::Fixed { offset } => {
                SpanWindow::Fixed(FixedWindow::new(quota.limit, quota.length, offset, started))
            }
        };
        Self { quota, window }
    }

    fn cost(&self, tokens: u64) -> u64 {
        match self.quota.unit {
            Unit::Requests => 1,
            Unit::Tokens => tokens,
        }
    }

    fn settle(&mut self, now: Instant) {
        match &mut self.window {
            SpanWindow::Sliding(window) => window.expire(now),
            SpanWindow::Fixed(window) => window.roll(now),
        }
    }

    fn used(&self) -> u64 {
        match &self.window {
            SpanWindow::Sliding(window) => window.used,
            SpanWindow::Fixed(window) => window.used,
        }
    }

    fn check(&self, now: Instant, tokens: u64) -> Result<(), Failure> {
        let cost = self.cost(tokens);
        let verdict = match &self.window {
            SpanWindow::Sliding(window) => window.check(now, cost),
            SpanWindow::Fixed(window) => window.check(now, cost),
        };
        verdict.map_err(|retry_after| Failure::RateLimited {
            window: self.quota.scope,
            unit: self.quota.unit,
            limit: self.quota.limit,
            used: self.used(),
            requested: cost,
            retry_after,
        })
    }

    fn charge(&mut self, now: Instant, tokens: u64) {
        let cost = self.cost(tokens);
        match &mut self.window {
            SpanWindow::Sliding(window) => window.charge(now, cost),
            SpanWindow::Fixed(window) => window.used += cost,
        }
    }

    fn reading(&self, now: Instant, utc: DateTime<Utc>) -> WindowReading {
        let mut reading = match &self.window {
            SpanWindow::Sliding(window) => window.reading(self.quota.unit, now, utc),
            SpanWindow::Fixed(window) => {
                let reset_after = window.until_next(now);
                WindowReading {
                    window: Window::Minute,
                    unit: self.quota.unit,
                    limit: window.limit,
                    remaining: window.limit.saturating_sub(window.used),
                    reset_after,
                    reset_at: utc + chrono::Duration::from_std(reset_after).unwrap_or_default(),
                }
            }
        };
        reading.window = self.quota.scope;
        reading
    }
}

/// A calendar-day window in a time zone: it empties at local midnight.
#[derive(Debug)]
struct DayWindow {
    limit: u64,
    day: Option<NaiveDate>,
    used: u64,
}

impl DayWindow {
    fn new(limit: u64) -> Self {
        Self { limit, day: None, used: 0 }
    }

    fn roll(&mut self, today: NaiveDate) {
        if self.day != Some(today) {
            self.day = Some(today);
            self.used = 0;
        }
    }

    fn check(&self, cost: u64, until_midnight: Duration) -> Result<(), Duration> {
        if self.used + cost <= self.limit { Ok(()) } else { Err(until_midnight) }
    }

    fn reading(&self, unit: Unit, utc: DateTime<Utc>, until_midnight: Duration) -> WindowReading {
        WindowReading {
            window: Window::Day,
            unit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset_after: until_midnight,
            reset_at: utc + chrono::Duration::from_std(until_midnight).unwrap_or_default(),
        }
    }
}

/// The next local midnight after `utc` in `tz`, as a duration from `utc`. A midnight that a
/// daylight-saving jump skips is taken as the first instant of that day.
pub(crate) fn until_midnight(utc: DateTime<Utc>, tz: Tz) -> (NaiveDate, Duration) {
    let local = utc.with_timezone(&tz);
    let today = local.date_naive();
    let tomorrow = today.succ_opt().expect("invariant: dates far from the calendar's end");
    let midnight = tomorrow.and_hms_opt(0, 0, 0).expect("invariant: midnight exists");
    let next = tz
        .from_local_datetime(&midnight)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(midnight + chrono::Duration::hours(1))).earliest())
        .map_or(utc + chrono::Duration::days(1), |at| at.with_timezone(&Utc));
    (today, (next - utc).to_std().unwrap_or(Duration::ZERO))
}

/// How many calls a key (or the whole mock) saw and how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Calls received.
    pub requests: u64,
    /// Calls answered with success.
    pub served: u64,
    /// Calls refused for a spent quota (429).
    pub rate_limited: u64,
    /// Calls refused otherwise (invalid key, model, context, billing, bad request).
    pub refused: u64,
    /// Calls that met an injected fault.
    pub faulted: u64,
    /// Prompt tokens of served calls.
    pub prompt_tokens: u64,
    /// Completion tokens of served calls.
    pub completion_tokens: u64,
}

/// How a logged request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with success.
    Served {
        /// The usage reported.
        usage: Usage,
    },
    /// Refused by the script (a quota, the key, the model).
    Refused(Failure),
    /// An injected fault.
    Fault(Fault),
    /// The path is not one the format serves.
    NotFound,
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Its position in the log, from 0.
    pub seq: u64,
    /// When it arrived, by the mock's clock.
    pub at: DateTime<Utc>,
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers; any value that carried the key's secret shows `[key <id>]` instead.
    pub headers: HeaderMap,
    /// The scripted key it was made with, by id; `None` for no key or an unknown one.
    pub key: Option<KeyId>,
    /// The body, parsed as JSON when it was JSON.
    pub body: Option<Value>,
    /// The model asked for.
    pub model: Option<String>,
    /// Whether the answer was asked to stream.
    pub stream: bool,
    /// How it ended.
    pub outcome: Outcome,
}

/// One set of quota windows: a key's own, or a group's that several keys share.
#[derive(Debug)]
pub(crate) struct Windows {
    rpm: Option<MinuteWindow>,
    tpm: Option<MinuteWindow>,
    rpd: Option<DayWindow>,
    tpd: Option<DayWindow>,
    /// Scripted windows of any length.
    spans: Vec<Span>,
}

impl Windows {
    pub(crate) fn new(quotas: Quotas) -> Self {
        Self {
            rpm: quotas.requests_per_minute.map(MinuteWindow::new),
            tpm: quotas.tokens_per_minute.map(MinuteWindow::new),
            rpd: quotas.requests_per_day.map(DayWindow::new),
            tpd: quotas.tokens_per_day.map(DayWindow::new),
            spans: Vec::new(),
        }
    }

    /// These quotas plus scripted windows whose fixed boundaries count from `started`.
    pub(crate) fn with_spans(quotas: Quotas, spans: &[WindowQuota], started: Instant) -> Self {
        let mut windows = Self::new(quotas);
        windows.spans = spans.iter().map(|quota| Span::new(*quota, started)).collect();
        windows
    }

    fn settle(&mut self, now: Instant, today: NaiveDate) {
        for span in &mut self.spans {
            span.settle(now);
        }
        for window in [&mut self.rpm, &mut self.tpm].into_iter().flatten() {
            window.expire(now);
        }
        for window in [&mut self.rpd, &mut self.tpd].into_iter().flatten() {
            window.roll(today);
        }
    }

    /// Says which window refuses a call of `tokens` tokens, if one does. Daily windows are
    /// checked first: when both are spent, the day is what the client needs to hear.
    pub(crate) fn check(&mut self, time: &Time, tokens: u64) -> Result<(), Failure> {
        self.settle(time.now, time.today);
        if let Some(tpm) = &self.tpm
            && tokens > tpm.limit
        {
            return Err(Failure::RequestTooLarge { limit: tpm.limit, requested: tokens });
        }
        let day_checks = [(&self.rpd, Unit::Requests, 1), (&self.tpd, Unit::Tokens, tokens)];
        for (window, unit, cost) in day_checks {
            if let Some(window) = window
                && let Err(retry_after) = window.check(cost, time.until_midnight)
            {
                return Err(Failure::RateLimited {
                    window: Window::Day,
                    unit,
                    limit: window.limit,
                    used: window.used,
                    requested: cost,
                    retry_after,
                });
            }
        }
        // Scripted windows: the daily ones first, as above.
        for scope in [Window::Day, Window::Minute] {
            for span in self.spans.iter().filter(|span| span.quota.scope == scope) {
                span.check(time.now, tokens)?;
            }
        }
        let minute_checks = [(&self.rpm, Unit::Requests, 1), (&self.tpm, Unit::Tokens, tokens)];
        for (window, unit, cost) in minute_checks {
            if let Some(window) = window
                && let Err(retry_after) = window.check(time.now, cost)
            {
                return Err(Failure::RateLimited {
                    window: Window::Minute,
                    unit,
                    limit: window.limit,
                    used: window.used,
                    requested: cost,
                    retry_after,
                });
            }
        }
        Ok(())
    }

    /// Charges an admitted call.
    pub(crate) fn charge(&mut self, time: &Time, tokens: u64) {
        for span in &mut self.spans {
            span.charge(time.now, tokens);
        }
        for (window, cost) in [(&mut self.rpm, 1), (&mut self.tpm, tokens)] {
            if let Some(window) = window {
                window.charge(time.now, cost);
            }
        }
        for (window, cost) in [(&mut self.rpd, 1), (&mut self.tpd, tokens)] {
            if let Some(window) = window {
                window.used += cost;
            }
        }
    }

    /// Checks and charges in one step.
    #[cfg(test)]
    pub(crate) fn admit(&mut self, time: &Time, tokens: u64) -> Result<(), Failure> {
        self.check(time, tokens)?;
        self.charge(time, tokens);
        Ok(())
    }

    /// The windows' state for the rate-limit headers.
    pub(crate) fn readings(&mut self, time: &Time) -> Vec<WindowReading> {
        self.settle(time.now, time.today);
        let mut readings = Vec::with_capacity(4 + self.spans.len());
        // Scripted windows first, the one with the least left (by fraction) leading: a format
        // that reports one window per unit reports the one that binds.
        let mut spans: Vec<&Span> = self.spans.iter().collect();
        spans.sort_by(|a, b| {
            let left = |span: &Span| {
                span.quota.limit.saturating_sub(span.used()) as f64 / span.quota.limit.max(1) as f64
            };
            left(a).total_cmp(&left(b))
        });
        readings.extend(spans.into_iter().map(|span| span.reading(time.now, time.utc)));
        for (window, unit) in [(&self.rpm, Unit::Requests), (&self.tpm, Unit::Tokens)] {
            if let Some(window) = window {
                readings.push(window.reading(unit, time.now, time.utc));
            }
        }
        for (window, unit) in [(&self.rpd, Unit::Requests), (&self.tpd, Unit::Tokens)] {
            if let Some(window) = window {
                readings.push(window.reading(unit, time.utc, time.until_midnight));
            }
        }
        readings
    }
}

#[derive(Debug)]
pub(crate) struct KeyState {
    pub(crate) script: KeyScript,
    pub(crate) windows: Windows,
    /// The index of the quota group the key shares, if any.
    pub(crate) group: Option<usize>,
    pub(crate) counts: KeyCounts,
}

impl KeyState {
    fn new(script: KeyScript, group: Option<usize>, started: Instant) -> Self {
        Self {
            windows: Windows::with_spans(script.quotas, &script.windows, started),
            script,
            group,
            counts: KeyCounts::default(),
        }
    }

    /// Whether the key has been revoked by its call count.
    pub(crate) fn revoked(&self) -> bool {
        self.script.revoke_after.is_some_and(|n_calls| self.counts.served >= n_calls)
    }

    /// Whether the key has been revoked by its call count or its scripted time, `since_start`
    /// into the mock's run.
    pub(crate) fn revoked_by(&self, since_start: Duration) -> bool {
        self.revoked() || self.script.revoked_at.is_some_and(|at| since_start >= at)
    }
}

/// One reading of the clock, taken once per request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Time {
    pub(crate) now: Instant,
    pub(crate) utc: DateTime<Utc>,
    pub(crate) today: NaiveDate,
    pub(crate) until_midnight: Duration,
}

impl Time {
    pub(crate) fn read(clock: &dyn switchyard_core::Clock, tz: Tz) -> Self {
        let utc = clock.utc();
        let (today, until_midnight) = until_midnight(utc, tz);
        Self { now: clock.now(), utc, today, until_midnight }
    }
}

/// Everything that changes while the mock runs, behind one lock held only briefly (nothing
/// awaits while it is held).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) keys: Vec<KeyState>,
    pub(crate) by_secret: HashMap<String, usize>,
    /// Quotas several keys share (an organisation's limits), by name.
    pub(crate) groups: Vec<(String, Windows)>,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) log: VecDeque<RecordedRequest>,
    pub(crate) log_limit: usize,
    pub(crate) n_logged: u64,
    pub(crate) totals: KeyCounts,
    pub(crate) unknown_key: KeyCounts,
    pub(crate) rng: rand::rngs::StdRng,
    /// When the mock started, on its clock: scripted times (a revocation, a fault's span, a
    /// fixed window's boundaries) count from here.
    pub(crate) started: Instant,
}

/// One group's quotas as scripted: the classic ones and windows of any length.
pub(crate) type GroupScript = (String, Quotas, Vec<WindowQuota>);

impl State {
    pub(crate) fn new(
        keys: Vec<KeyScript>,
        groups: Vec<GroupScript>,
        faults: Vec<FaultRule>,
        log_limit: usize,
        seed: u64,
        started: Instant,
    ) -> Self {
        use rand::SeedableRng as _;
        let by_secret =
            keys.iter().enumerate().map(|(key_idx, key)| (key.secret.clone(), key_idx)).collect();
        let mut groups: Vec<(String, Windows)> = groups
            .into_iter()
            .map(|(name, quotas, spans)| (name, Windows::with_spans(quotas, &spans, started)))
            .collect();
        let keys = keys
            .into_iter()
            .map(|script| {
                let group = script.group.as_ref().map(|name| {
                    groups.iter().position(|(group, _)| group == name).unwrap_or_else(|| {
                        // A group named by a key but given no quotas limits nothing.
                        groups.push((name.clone(), Windows::new(Quotas::default())));
                        groups.len() - 1
                    })
                });
                KeyState::new(script, group, started)
            })
            .collect();
        Self {
            keys,
            groups,
            by_secret,
            faults,
            log: VecDeque::new(),
            log_limit,
            n_logged: 0,
            totals: KeyCounts::default(),
            unknown_key: KeyCounts::default(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            started,
        }
    }

    /// Admits a call of `tokens` on a key and its group, charging both, or says which
    /// window refuses it (the key's own first).
    pub(crate) fn admit(
        &mut self,
        key_idx: usize,
        time: &Time,
        tokens: u64,
    ) -> Result<(), Failure> {
        let group = self.keys[key_idx].group;
        self.keys[key_idx].windows.check(time, tokens)?;
        if let Some(group) = group {
            self.groups[group].1.check(time, tokens)?;
            self.groups[group].1.charge(time, tokens);
        }
        self.keys[key_idx].windows.charge(time, tokens);
        Ok(())
    }

    /// A key's windows for the rate-limit headers: its own, then its group's.
    pub(crate) fn readings(&mut self, key_idx: usize, time: &Time) -> Vec<WindowReading> {
        let mut readings = self.keys[key_idx].windows.readings(time);
        if let Some(group) = self.keys[key_idx].group {
            readings.extend(self.groups[group].1.readings(time));
        }
        readings
    }

    /// The first fault rule matching the call that fires, used up by one.
    pub(crate) fn take_fault(
        &mut self,
        key: Option<&KeyId>,
        model: Option<&str>,
        now: Instant,
    ) -> Option<Fault> {
        use rand::Rng as _;
        let since_start = now.saturating_duration_since(self.started);
        let mut fired = None;
        for (rule_idx, rule) in self.faults.iter_mut().enumerate() {
            let key_matches = rule.key.as_ref().is_none_or(|wanted| Some(wanted) == key);
            let model_matches = rule.model.as_deref().is_none_or(|wanted| Some(wanted) == model);
            let active =
                rule.active.is_none_or(|(from, until)| since_start >= from && since_start < until);
            if !key_matches || !model_matches || !active {
                continue;
            }
            if rule.probability < 1.0 && !self.rng.random_bool(rule.probability) {
                continue;
            }
            if let Some(remaining) = &mut rule.remaining {
                *remaining = remaining.saturating_sub(1);
            }
            fired = Some((rule_idx, rule.fault.clone()));
            break;
        }
        let (rule_idx, fault) = fired?;
        if self.faults[rule_idx].remaining == Some(0) {
            self.faults.remove(rule_idx);
        }
        Some(fault)
    }

    fn counts_mut(&mut self, key_idx: Option<usize>) -> &mut KeyCounts {
        match key_idx {
            Some(key_idx) => &mut self.keys[key_idx].counts,
            None => &mut self.unknown_key,
        }
    }

    pub(crate) fn record(&mut self, mut request: RecordedRequest, key_idx: Option<usize>) {
        count(self.counts_mut(key_idx), &request.outcome);
        count(&mut self.totals, &request.outcome);
        request.seq = self.n_logged;
        self.n_logged += 1;
        if self.log_limit > 0 {
            if self.log.len() == self.log_limit {
                self.log.pop_front();
            }
            self.log.push_back(request);
        }
    }
}

fn count(counts: &mut KeyCounts, outcome: &Outcome) {
    counts.requests += 1;
    match outcome {
        Outcome::Served { usage } => {
            counts.served += 1;
            counts.prompt_tokens += u64::from(usage.prompt_tokens);
            counts.completion_tokens += u64::from(usage.completion_tokens);
        }
        Outcome::Refused(Failure::RateLimited { .. }) => counts.rate_limited += 1,
        Outcome::Refused(_) | Outcome::NotFound => counts.refused += 1,
        Outcome::Fault(_) => counts.faulted += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::ManualClock;

    fn time(clock: &ManualClock) -> Time {
        Time::read(clock, chrono_tz::America::Los_Angeles)
    }

    #[test]
    fn a_minute_window_reopens_as_charges_age() {
        let clock = ManualClock::default();
        let mut key = Windows::new(KeyScript::valid("k", "s").requests_per_minute(2).quotas);
        assert_eq!(key.admit(&time(&clock), 1), Ok(()));
        clock.advance(Duration::from_secs(10));
        assert_eq!(key.admit(&time(&clock), 1), Ok(()));
        clock.advance(Duration::from_secs(5));
        let refused = key.admit(&time(&clock), 1);
        assert_eq!(
            refused,
            Err(Failure::RateLimited {
                window: Window::Minute,
                unit: Unit::Requests,
                limit: 2,
                used: 2,
                requested: 1,
                retry_after: Duration::from_secs(45),
            })
        );
        clock.advance(Duration::from_secs(45));
        assert_eq!(key.admit(&time(&clock), 1), Ok(()));
    }

    #[test]
    fn a_day_window_empties_at_local_midnight() {
        // 2026-01-15 12:00 UTC is 04:00 in Los Angeles: 20 hours to local midnight.
        let clock = ManualClock::default();
        let mut key = Windows::new(KeyScript::valid("k", "s").requests_per_day(1).quotas);
        assert_eq!(key.admit(&time(&clock), 1), Ok(()));
        let refused = key.admit(&time(&clock), 1);
        let Err(Failure::RateLimited { window: Window::Day, retry_after, .. }) = refused else {
            panic!("expected a daily refusal, got {refused:?}");
        };
        assert_eq!(retry_after, Duration::from_secs(20 * 3600));
        clock.advance(Duration::from_secs(20 * 3600 - 1));
        assert!(key.admit(&time(&clock), 1).is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(key.admit(&time(&clock), 1), Ok(()));
    }

    #[test]
    fn midnight_follows_daylight_saving() {
        // 2026-03-08 is the spring-forward day in Los Angeles: the day has 23 hours.
        let start = DateTime::parse_from_rfc3339("2026-03-08T08:00:00Z").expect("date").to_utc();
        let (today, left) = until_midnight(start, chrono_tz::America::Los_Angeles);
        assert_eq!(today.to_string(), "2026-03-08");
        assert_eq!(left, Duration::from_secs(23 * 3600));
    }

    #[test]
    fn tokens_beyond_the_minute_limit_are_too_large_not_limited() {
        let clock = ManualClock::default();
        let mut key = Windows::new(KeyScript::valid("k", "s").tokens_per_minute(100).quotas);
        assert_eq!(
            key.admit(&time(&clock), 101),
            Err(Failure::RequestTooLarge { limit: 100, requested: 101 })
        );
        assert_eq!(key.admit(&time(&clock), 60), Ok(()));
        let readings = key.readings(&time(&clock));
        assert_eq!(readings[0].remaining, 40);
        assert_eq!(readings[0].reset_after, Duration::from_secs(60));
        assert!(matches!(
            key.admit(&time(&clock), 60),
            Err(Failure::RateLimited { window: Window::Minute, unit: Unit::Tokens, .. })
        ));
    }
}
