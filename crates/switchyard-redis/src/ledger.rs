//! [`RedisLedger`]: the shared ledger's keys, scripts and fallback.
//!
//! Keys, under a configurable prefix `P`:
//! - `P:b:<provider>:<group>:<pool>` (hash): cooldown, exhaustion, strikes, and `admits`, the
//!   number of the last admission (an answer's headers are judged against later ones);
//! - `P:f:<provider>:<group>:<pool>` (sorted set): attempts in flight, each a lease token
//!   scored by the end of its lease, so a slot held by a process that died is freed when its
//!   lease ends ([`RedisOptions::inflight_lease`]);
//! - `P:g:<provider>:<group>:<pool>` (hash): header gates, `unit|scope` -> `remaining|until|need`,
//!   then `|limit|period` when an answer stated the request limit (the next window starts
//!   with it);
//! - `P:m:<provider>:<group>:<pool>:<limit name>` (hash): one limit's count;
//! - `P:k:<provider>:<key>` (hash): an invalid or billing-stopped key.
//!
//! All times in them are milliseconds since the Unix epoch on the ledger's `Clock`. Every
//! number is written as an integer string below 2^53 (the scripts' Lua numbers are doubles),
//! and a stored value a script cannot parse is dropped and logged, not fatal: see
//! `common.lua`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, Script};
use switchyard_core::{
    Candidate, Clock, KeyId, LimitScope, LimitUnit, MAX_HINT, ProviderError, ProviderId,
    RateLimitSnapshot, Reset, Usage, clamp_hint,
};
use switchyard_quota::{
    Estimate, KeyState, KeyStatus, KeySummary, LearnedRecord, Limit, LimitSummary, MemoryLedger,
    Permit, Placement, ProviderStatus, ProviderSummary, QuotaConfig, QuotaError, QuotaLedger,
    Refusal, Unit, Verdict, Window, day_start, next_midnight, reason, verdict,
};

mod learned;

use crate::error::RedisLedgerError;
use crate::headroom::{HeadroomCache, from_ppm};
use learned::{LearnedCache, learns};

/// Sub-slots per sliding window, as in the in-memory ledger: counted `length` to
/// `length * 61/60`.
const SLOTS: i64 = 60;

/// The largest count or time handed to a script: 2^53 - 1, the last integer a Lua number (a
/// double) holds exactly.
const MAX_SCRIPT_NUMBER: u64 = (1 << 53) - 1;

/// A count for a script, clamped to what its numbers hold exactly.
fn count_arg(count: u64) -> String {
    count.min(MAX_SCRIPT_NUMBER).to_string()
}

/// What the ledger does when Redis cannot be reached or does not answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Refuse with [`QuotaError::Backend`]: no admission without the shared count.
    #[default]
    FailClosed,
    /// Count in a local in-memory ledger until Redis answers again. Each process then admits
    /// up to the full limit on its own, so several processes together may exceed it.
    UseLocal,
}

/// How to reach Redis and what to do without it.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Prefix of every key, so several deployments (or tests) can share one server.
    pub prefix: String,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Longest wait for an answer.
    pub response_timeout: Duration,
    /// Failing closed, or falling back to a local ledger.
    pub on_unavailable: OnUnavailable,
    /// After Redis could not be reached or timed out, how long calls skip it (answering
    /// [`RedisLedgerError::Down`] at once) before trying again.
    pub retry_after_failure: Duration,
    /// How long an attempt's in-flight slot (counted against `max_concurrent`, and by header
    /// readings) is held at most without being released, on the ledger's clock: a process that
    /// dies mid-attempt frees its slots after this. Longer than any attempt, streams included.
    pub inflight_lease: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "switchyard".into(),
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
            on_unavailable: OnUnavailable::FailClosed,
            retry_after_failure: Duration::from_secs(1),
            inflight_lease: DEFAULT_INFLIGHT_LEASE,
        }
    }
}

/// The default [`RedisOptions::inflight_lease`]: ten minutes.
pub const DEFAULT_INFLIGHT_LEASE: Duration = Duration::from_secs(600);

/// One limit as passed to a script.
struct MeterArg {
    key: String,
    limit: Limit,
    kind: &'static str,
    p1: i64,
    p2: i64,
    /// For a learned limit's meter: the limit and its evidence.
    learned: Option<LearnedRecord>,
}

impl MeterArg {
    /// The name summaries and refusals give the meter's limit.
    fn name(&self) -> String {
        match &self.learned {
            Some(record) => {
                format!("requests/learned-{}-{}ms", record.kind.as_str(), record.window_ms)
            }
            None => self.limit.name(),
        }
    }
}

/// The shared ledger.
pub struct RedisLedger {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Until when Redis is considered down (on the ledger's clock).
    down_until: parking_lot::Mutex<Option<std::time::Instant>>,
    config: QuotaConfig,
    clock: Arc<dyn Clock>,
    options: RedisOptions,
    local: MemoryLedger,
    known: parking_lot::Mutex<BTreeSet<Candidate>>,
    /// What this process's own calls learnt of each bucket's headroom.
    headroom: HeadroomCache,
    /// Each bucket's learned limits as last read from Redis.
    learned: LearnedCache,
    /// Mixed into every lease id, so ids of processes sharing a Redis differ.
    instance: u64,
    next_lease: AtomicU64,
    admit_script: Script,
    finish_script: Script,
    hold_script: Script,
    observe_script: Script,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may hold a password: not shown.
        f.debug_struct("RedisLedger")
            .field("prefix", &self.options.prefix)
            .field("on_unavailable", &self.options.on_unavailable)
            .finish_non_exhaustive()
    }
}

fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn from_ms(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A random id for this ledger, from the standard library's per-process random hash keys
/// (no random-number crate needed for a token that only has to differ between processes).
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// `at`, no later than `now` + [`MAX_HINT`]: a reset from outside, clamped.
fn clamp_reset(now: DateTime<Utc>, reset: Reset) -> i64 {
    let horizon = ms(now).saturating_add(duration_ms(MAX_HINT));
    match reset {
        Reset::After(after) => ms(now).saturating_add(duration_ms(clamp_hint(after))),
        Reset::At(at) => ms(at).min(horizon),
    }
}

fn need_index(unit: LimitUnit) -> u8 {
    match unit {
        LimitUnit::Requests => 1,
        LimitUnit::Tokens => 2,
        LimitUnit::InputTokens => 3,
        LimitUnit::OutputTokens => 4,
    }
}

fn unit_name(unit: LimitUnit) -> &'static str {
    match unit {
        LimitUnit::Requests => "requests",
        LimitUnit::Tokens => "tokens",
        LimitUnit::InputTokens => "input_tokens",
        LimitUnit::OutputTokens => "output_tokens",
    }
}

fn unit_named(name: &str) -> Option<LimitUnit> {
    [LimitUnit::Requests, LimitUnit::Tokens, LimitUnit::InputTokens, LimitUnit::OutputTokens]
        .into_iter()
        .find(|unit| unit_name(*unit) == name)
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Minute => "minute",
        LimitScope::Day => "day",
        LimitScope::Month => "month",
        LimitScope::Unknown => "unknown",
    }
}

fn scope_named(name: &str) -> Option<LimitScope> {
    [LimitScope::Minute, LimitScope::Day, LimitScope::Month, LimitScope::Unknown]
        .into_iter()
        .find(|scope| scope_name(*scope) == name)
}

fn scope_ms(scope: LimitScope) -> i64 {
    match scope {
        LimitScope::Minute | LimitScope::Unknown => 60_000,
        LimitScope::Day => 86_400_000,
        LimitScope::Month => 30 * 86_400_000,
    }
}

fn needs(estimate: Estimate) -> [u64; 4] {
    [1, estimate.tokens(), estimate.prompt_tokens, estimate.output_tokens]
}

fn spent(usage: &Usage) -> [u64; 4] {
    let total = u64::from(usage.total_tokens);
    [1, total, u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens)]
}

fn meter_need(limit: &Limit, needs: [u64; 4]) -> u64 {
    match limit.unit {
        Unit::Requests => needs[0],
        Unit::Tokens => needs[1],
    }
}

impl RedisLedger {
    /// A ledger on the Redis at `url` (`redis://host:port/db`), counting by `config` on
    /// `clock`. Nothing is connected yet: the first call connects, and so does the first call
    /// after a connection is lost.
    ///
    /// # Errors
    /// [`RedisLedgerError::Url`] when `url` cannot be parsed.
    pub fn new(
        url: &str,
        config: QuotaConfig,
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, RedisLedgerError> {
        let client = redis::Client::open(url).map_err(|source| RedisLedgerError::Url { source })?;
        Ok(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
            down_until: parking_lot::Mutex::new(None),
            local: MemoryLedger::new(Arc::clone(&clock), config.clone()),
            config,
            clock,
            options,
            known: parking_lot::Mutex::new(BTreeSet::new()),
            headroom: HeadroomCache::default(),
            learned: LearnedCache::default(),
            instance: instance_id(),
            next_lease: AtomicU64::new(1),
            admit_script: Script::new(concat!(
                include_str!("common.lua"),
                include_str!("admit.lua")
            )),
            finish_script: Script::new(concat!(
                include_str!("common.lua"),
                include_str!("finish.lua")
            )),
            hold_script: Script::new(concat!(include_str!("common.lua"), include_str!("hold.lua"))),
            observe_script: Script::new(concat!(
                include_str!("common.lua"),
                include_str!("observe.lua")
            )),
        })
    }

    /// The local ledger used while Redis is unavailable, if so configured.
    pub fn local(&self) -> &MemoryLedger {
        &self.local
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisLedgerError> {
        let now = self.clock.now();
        if let Some(until) = *self.down_until.lock()
            && now < until
        {
            return Err(RedisLedgerError::Down { retry_in: until - now });
        }
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(self.options.response_timeout));
        let timeout = self.options.connect_timeout + self.options.response_timeout;
        let connecting = self.client.get_multiplexed_async_connection_with_config(&config);
        let connected = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => Err(RedisLedgerError::Timeout { op: "connect", timeout }),
            Ok(Err(source)) if source.is_timeout() => {
                Err(RedisLedgerError::Timeout { op: "connect", timeout })
            }
            Ok(Err(source)) => Err(RedisLedgerError::Unreachable { op: "connect", source }),
            Ok(Ok(connection)) => Ok(connection),
        };
        match connected {
            Ok(connection) => {
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                self.mark_down();
                Err(error)
            }
        }
    }

    fn mark_down(&self) {
        let now = self.clock.now();
        let until = now.checked_add(self.options.retry_after_failure).unwrap_or(now);
        *self.down_until.lock() = Some(until);
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
        self.mark_down();
    }

    async fn run<T: FromRedisValue>(
        &self,
        op: &'static str,
        command: redis::Cmd,
    ) -> Result<T, RedisLedgerError> {
        let mut connection = self.connection().await?;
        let timeout = self.options.response_timeout;
        let answer = tokio::time::timeout(timeout, command.query_async(&mut connection)).await;
        self.judge(op, answer).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisLedgerError> {
        let mut connection = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let timeout = self.options.response_timeout;
        let answer = tokio::time::timeout(timeout, invocation.invoke_async(&mut connection)).await;
        self.judge(op, answer).await
    }

    async fn judge<T>(
        &self,
        op: &'static str,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, RedisLedgerError> {
        let timeout = self.options.response_timeout;
        match answer {
            Ok(Ok(value)) => Ok(value),
            Err(_) => {
                self.forget_connection().await;
                Err(RedisLedgerError::Timeout { op, timeout })
            }
            Ok(Err(source)) if source.is_timeout() => {
                self.forget_connection().await;
                Err(RedisLedgerError::Timeout { op, timeout })
            }
            Ok(Err(source)) if source.is_io_error() || source.is_connection_dropped() => {
                self.forget_connection().await;
                Err(RedisLedgerError::Unreachable { op, source })
            }
            Ok(Err(source)) => Err(RedisLedgerError::Command { op, source }),
        }
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// A [`RedisLedgerError`] saying why not.
    pub async fn ping(&self) -> Result<(), RedisLedgerError> {
        let answer: String = self.run("ping", redis::cmd("PING")).await?;
        if answer == "PONG" {
            Ok(())
        } else {
            Err(RedisLedgerError::Reply { op: "ping", detail: answer })
        }
    }

    fn base(&self, placement: &Placement<'_>, provider: &ProviderId) -> String {
        format!("{}:{}:{}", provider, placement.group, placement.pool)
    }

    fn bucket_key(&self, base: &str) -> String {
        format!("{}:b:{base}", self.options.prefix)
    }

    fn gates_key(&self, base: &str) -> String {
        format!("{}:g:{base}", self.options.prefix)
    }

    fn inflight_key(&self, base: &str) -> String {
        format!("{}:f:{base}", self.options.prefix)
    }

    /// A new lease id: unique within this process (an odd multiplier and an XOR are
    /// bijections), random between processes (the instance id). Carried whole in the permit,
    /// so any ledger sharing the Redis can end it.
    fn new_lease(&self) -> u64 {
        let n = self.next_lease.fetch_add(1, Ordering::Relaxed);
        self.instance ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn lease_token(lease: u64) -> String {
        format!("{lease:016x}")
    }

    /// Logs what a script dropped as unreadable (see `common.lua`).
    fn note_repaired(&self, op: &'static str, repaired: i64) {
        if repaired > 0 {
            tracing::warn!(
                op,
                repaired,
                prefix = %self.options.prefix,
                "redis ledger dropped stored values it could not read"
            );
        }
    }

    /// A hash's fields by name (`HGETALL`): replies are read by field name, never by position.
    async fn hash(
        &self,
        op: &'static str,
        key: String,
    ) -> Result<HashMap<String, String>, RedisLedgerError> {
        let mut command = redis::cmd("HGETALL");
        command.arg(key);
        self.run(op, command).await
    }

    fn key_key(&self, provider: &ProviderId, key: &KeyId) -> String {
        format!("{}:k:{provider}:{key}", self.options.prefix)
    }

    fn meters(&self, placement: &Placement<'_>, base: &str, now: DateTime<Utc>) -> Vec<MeterArg> {
        let limits = placement.rule.map(|rule| rule.limits.as_slice()).unwrap_or_default();
        limits
            .iter()
            .map(|limit| {
                let key = format!("{}:m:{base}:{}", self.options.prefix, limit.name());
                let (kind, p1, p2) = match limit.window {
                    Window::Sliding(length) => {
                        ("s", duration_ms(length).saturating_add(SLOTS - 1) / SLOTS, SLOTS + 1)
                    }
                    Window::Refill(length) => ("r", duration_ms(length).max(1), 0),
                    Window::Day(tz) => ("d", ms(next_midnight(tz, now)), ms(day_start(tz, now))),
                };
                MeterArg { key, limit: *limit, kind, p1: p1.max(1), p2, learned: None }
            })
            .collect()
    }

    /// Until when a figure of `meter` counted at `now` stands: until everything counted in its
    /// window has left it.
    fn figure_until(meter: &MeterArg, now: DateTime<Utc>) -> i64 {
        match meter.limit.window {
            Window::Sliding(length) | Window::Refill(length) => {
                ms(now).saturating_add(duration_ms(length))
            }
            // `p1` is the day's end.
            Window::Day(_) => meter.p1,
        }
    }

    fn remember(&self, candidate: &Candidate) {
        let mut known = self.known.lock();
        if !known.contains(candidate) {
            known.insert(candidate.clone());
        }
    }

    fn refusal(
        &self,
        candidate: &Candidate,
        meters: &[MeterArg],
        reason: &str,
        until_ms: i64,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<QuotaError, RedisLedgerError> {
        let bad = || RedisLedgerError::Reply { op: "admit", detail: format!("{reason} {detail}") };
        let meter = || {
            detail
                .parse::<usize>()
                .ok()
                .and_then(|idx| meters.get(idx.checked_sub(1)?))
                .ok_or_else(bad)
        };
        let reason = match reason {
            "cooling_down" => Refusal::CoolingDown,
            "exhausted" => Refusal::Exhausted,
            "invalid" => Refusal::Invalid,
            "billing_stopped" => Refusal::BillingStopped,
            "concurrency" => Refusal::Concurrency { max: detail.parse().map_err(|_| bad())? },
            "provider_remaining" => {
                let mut parts = detail.split('|');
                let unit = parts.next().and_then(unit_named).ok_or_else(bad)?;
                let scope = parts.next().and_then(scope_named).ok_or_else(bad)?;
                let remaining = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                Refusal::ProviderRemaining { unit, scope, remaining }
            }
            "limit" => {
                let meter = meter()?;
                Refusal::Limit { unit: meter.limit.unit, limit: meter.name() }
            }
            "too_large" => Refusal::TooLarge { limit: meter()?.name() },
            _ => return Err(bad()),
        };
        let until = if until_ms < 0 { None } else { from_ms(until_ms) };
        Ok(QuotaError::Refused {
            candidate: candidate.clone(),
            reason,
            until,
            retry_after: until.and_then(|until| (until - now).to_std().ok()),
        })
    }

    async fn admit_shared(
        &self,
        candidate: &Candidate,
        estimate: Estimate,
    ) -> Result<Result<Permit, QuotaError>, RedisLedgerError> {
        self.remember(candidate);
        let now = self.clock.utc();
        let placement = self.config.place(candidate);
        let base = self.base(&placement, &candidate.provider);
        let mut meters = self.meters(&placement, &base, now);
        if learns(&placement) {
            let records = self.learned_limits(&base, now).await?;
            meters.extend(self.learned_meters(&base, &records, now));
        }
        let needs = needs(estimate);
        let mut keys = vec![
            self.bucket_key(&base),
            self.key_key(&candidate.provider, &candidate.key),
            self.gates_key(&base),
            self.inflight_key(&base),
        ];
        let max_concurrent = placement.rule.and_then(|rule| rule.max_concurrent);
        let lease = self.new_lease();
        let lease_end =
            ms(now).saturating_add(duration_ms(clamp_hint(self.options.inflight_lease)));
        let mut args = vec![ms(now).to_string(), max_concurrent.map_or(-1, i64::from).to_string()];
        args.extend(needs.iter().copied().map(count_arg));
        args.extend([lease_end.to_string(), Self::lease_token(lease), meters.len().to_string()]);
        for meter in &meters {
            keys.push(meter.key.clone());
            args.extend([
                meter.kind.to_owned(),
                count_arg(meter.limit.amount),
                count_arg(meter_need(&meter.limit, needs)),
                meter.p1.to_string(),
                meter.p2.to_string(),
            ]);
        }
        let reply: Vec<redis::Value> =
            self.invoke("admit", &self.admit_script, &keys, &args).await?;
        // {1, repaired, seq, overlapped, left per meter} or {0, reason, until, detail,
        // repaired}: checked, not indexed blindly.
        let bad = || RedisLedgerError::Reply { op: "admit", detail: format!("{reply:?}") };
        let integer = |idx: usize| reply.get(idx).and_then(|v| i64::from_redis_value_ref(v).ok());
        let text = |idx: usize| reply.get(idx).and_then(|v| String::from_redis_value_ref(v).ok());
        match (integer(0), reply.len()) {
            (Some(1), len) if len == 4 + meters.len() => {
                self.note_repaired("admit", integer(1).ok_or_else(bad)?);
                let seq = integer(2).and_then(|seq| u64::try_from(seq).ok()).ok_or_else(bad)?;
                let overlapped = integer(3).ok_or_else(bad)? != 0;
                let figures = meters
                    .iter()
                    .enumerate()
                    .map(|(idx, meter)| {
                        let left = from_ppm(integer(4 + idx).ok_or_else(bad)?);
                        Ok((left, Self::figure_until(meter, now)))
                    })
                    .collect::<Result<Vec<_>, RedisLedgerError>>()?;
                self.headroom.admitted(candidate, &base, &figures);
                let taken_at = u64::try_from(ms(now)).unwrap_or(0);
                let permit = Permit::shared(candidate.clone(), estimate, taken_at, lease);
                Ok(Ok(permit.with_admission(seq, overlapped)))
            }
            (Some(0), 5) => {
                self.note_repaired("admit", integer(4).ok_or_else(bad)?);
                let (reason, detail) = text(1).zip(text(3)).ok_or_else(bad)?;
                let until = integer(2).ok_or_else(bad)?;
                if reason == "limit"
                    && let Some(idx) = detail.parse::<usize>().ok().and_then(|m| m.checked_sub(1))
                {
                    self.headroom.refused(candidate, &base, meters.len(), idx, until);
                }
                Ok(Err(self.refusal(candidate, &meters, &reason, until, &detail, now)?))
            }
            _ => Err(bad()),
        }
    }

    async fn finish_shared(
        &self,
        candidate: &Candidate,
        estimate: Estimate,
        taken_at: u64,
        lease: u64,
        usage: Option<&Usage>,
    ) -> Result<(), RedisLedgerError> {
        let now = self.clock.utc();
        let placement = self.config.place(candidate);
        let base = self.base(&placement, &candidate.provider);
        let mut meters = self.meters(&placement, &base, now);
        let learning = learns(&placement);
        if learning {
            let records = self.learned_limits(&base, now).await?;
            meters.extend(self.learned_meters(&base, &records, now));
        }
        let reserved = needs(estimate);
        let spent = usage.map_or([0; 4], spent);
        let mut keys =
            vec![self.bucket_key(&base), self.gates_key(&base), self.inflight_key(&base)];
        let mut args = vec![
            ms(now).to_string(),
            count_arg(taken_at),
            if usage.is_some() { "1" } else { "0" }.to_owned(),
        ];
        args.extend(reserved.iter().copied().map(count_arg));
        args.extend(spent.iter().copied().map(count_arg));
        args.extend([Self::lease_token(lease), meters.len().to_string()]);
        for meter in &meters {
            keys.push(meter.key.clone());
            args.extend([
                meter.kind.to_owned(),
                count_arg(meter_need(&meter.limit, reserved)),
                count_arg(meter_need(&meter.limit, spent)),
                meter.p1.to_string(),
                meter.p2.to_string(),
            ]);
        }
        let repaired: i64 = self.invoke("finish", &self.finish_script, &keys, &args).await?;
        self.note_repaired("finish", repaired);
        if learning && usage.is_some() {
            let taken_at_ms = i64::try_from(taken_at).unwrap_or(i64::MAX);
            self.note_served(&base, taken_at_ms, lease, now).await?;
            if meters.iter().any(|meter| meter.learned.is_some()) {
                self.raise_on_success(&base, now).await?;
            }
        }
        Ok(())
    }

    /// `attempt`: the answered attempt's admission number and whether others were in flight
    /// then, when the headers come from a shared permit's attempt. `answered`: the readings
    /// come with a successful answer, so a request limit they state describes the next windows
    /// too (a 429's reading holds the key until its reset, and no more).
    /// A successful answer's headers, to Redis, or to the in-process fallback while Redis is
    /// away (when the policy allows).
    async fn observe_answer(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
        attempt: Option<(u64, bool)>,
    ) -> Result<(), QuotaError> {
        match self.observe_shared(candidate, snapshot, attempt, true).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.unavailable(error)?;
                self.local.observe_now(candidate, snapshot);
                Ok(())
            }
        }
    }

    async fn observe_shared(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
        attempt: Option<(u64, bool)>,
        answered: bool,
    ) -> Result<(), RedisLedgerError> {
        if snapshot.readings.is_empty() {
            return Ok(());
        }
        let now = self.clock.utc();
        let placement = self.config.place(candidate);
        let base = self.base(&placement, &candidate.provider);
        let meters = self.meters(&placement, &base, now);
        let mut keys =
            vec![self.gates_key(&base), self.inflight_key(&base), self.bucket_key(&base)];
        let mut gate_args = Vec::new();
        let mut meter_args = Vec::new();
        let mut n_gates = 0;
        for reading in &snapshot.readings {
            let Some(remaining) = reading.remaining else { continue };
            // A reset from outside is clamped to `MAX_HINT` before any arithmetic.
            let until =
                reading.reset.map_or(ms(now).saturating_add(scope_ms(reading.scope)), |reset| {
                    clamp_reset(now, reset)
                });
            self.headroom.stated(candidate, &base, meters.len(), reading, until);
            n_gates += 1;
            gate_args.push(format!("{}|{}", unit_name(reading.unit), scope_name(reading.scope)));
            let mut gate = format!("{}|{until}|{}", count_arg(remaining), need_index(reading.unit));
            if let Some(limit) = reading
                .limit
                .filter(|&limit| answered && reading.unit == LimitUnit::Requests && limit > 0)
            {
                gate.push_str(&format!("|{}|{}", count_arg(limit), scope_ms(reading.scope)));
            }
            gate_args.push(gate);
            for meter in &meters {
                if meter.limit.unit.matches(reading.unit)
                    && meter.limit.window.scope() == reading.scope
                {
                    let limit = reading.limit.unwrap_or(meter.limit.amount);
                    keys.push(meter.key.clone());
                    meter_args.extend([
                        meter.kind.to_owned(),
                        count_arg(limit.saturating_sub(remaining)),
                        meter.p1.to_string(),
                        meter.p2.to_string(),
                        count_arg(meter.limit.amount),
                    ]);
                }
            }
        }
        let (seq, overlapped) = attempt.map_or_else(
            || ("-1".to_owned(), false),
            |(seq, overlapped)| (count_arg(seq), overlapped),
        );
        let mut args =
            vec![ms(now).to_string(), seq, u8::from(overlapped).to_string(), n_gates.to_string()];
        args.extend(gate_args);
        args.extend(meter_args);
        let repaired: i64 = self.invoke("observe", &self.observe_script, &keys, &args).await?;
        self.note_repaired("observe", repaired);
        Ok(())
    }

    async fn hold_key(
        &self,
        provider: &ProviderId,
        key: &KeyId,
        kind: &str,
        until: Option<DateTime<Utc>>,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RedisLedgerError> {
        let mut command = redis::cmd("HSET");
        command
            .arg(self.key_key(provider, key))
            .arg("hold")
            .arg(kind)
            .arg("until")
            .arg(until.map_or(-1, ms))
            .arg("since")
            .arg(ms(now))
            .arg("reason")
            .arg(why)
            .arg("changed")
            .arg(ms(now));
        let _: i64 = self.run("hold key", command).await?;
        Ok(())
    }

    /// Records an attempt's error in Redis, or in the in-process fallback while Redis is away
    /// (when the ledger is set to fall back).
    async fn record(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
        admitted: Option<DateTime<Utc>>,
    ) -> Result<(), QuotaError> {
        match self.record_shared(candidate, error, admitted).await {
            Ok(()) => Ok(()),
            Err(backend) => {
                self.unavailable(backend)?;
                self.local.record_error_now(candidate, error);
                Ok(())
            }
        }
    }

    /// Records an attempt's error in Redis; `admitted` is when the attempt was admitted, when
    /// its permit says (see [`QuotaLedger::fail`]).
    async fn record_shared(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
        admitted: Option<DateTime<Utc>>,
    ) -> Result<(), RedisLedgerError> {
        self.observe_shared(candidate, &error.rate_limits, None, false).await?;
        let now = self.clock.utc();
        let placement = self.config.place(candidate);
        let base = self.base(&placement, &candidate.provider);
        let why = reason(error);
        let hold = |kind: &str, arg: i64| {
            let mut args = vec![ms(now).to_string(), kind.to_owned(), arg.to_string(), why.clone()];
            args.extend(
                self.config.backoff.iter().map(|step| duration_ms(clamp_hint(*step)).to_string()),
            );
            if self.config.backoff.is_empty() {
                args.push("60000".to_owned());
            }
            args
        };
        // With no delay stated, a learned window's remaining time is the cooldown.
        let learned_wait = self.learn_from(&placement, &base, error, now, admitted).await?;
        match verdict(error, placement.day, now) {
            Verdict::Cooldown { after } => {
                let args = hold("cool", after.or(learned_wait).map_or(-1, duration_ms));
                let _: i64 = self
                    .invoke("cooldown", &self.hold_script, &[self.bucket_key(&base)], &args)
                    .await?;
            }
            Verdict::Exhausted { until } => {
                let args = hold("exh", until.map_or(-1, ms));
                let _: i64 = self
                    .invoke("exhaust", &self.hold_script, &[self.bucket_key(&base)], &args)
                    .await?;
            }
            Verdict::Invalid => {
                self.hold_key(&candidate.provider, &candidate.key, "invalid", None, &why, now)
                    .await?;
            }
            Verdict::BillingStopped { until } => {
                for member in self.config.group_members(&candidate.provider, &candidate.key) {
                    self.hold_key(
                        &candidate.provider,
                        &member,
                        "billing_stopped",
                        until,
                        &why,
                        now,
                    )
                    .await?;
                }
            }
            Verdict::Nothing => {}
        }
        Ok(())
    }

    async fn status_shared(&self, candidate: &Candidate) -> Result<KeyStatus, RedisLedgerError> {
        self.remember(candidate);
        let now = ms(self.clock.utc());
        let placement = self.config.place(candidate);
        let base = self.base(&placement, &candidate.provider);
        let key = self.hash("status", self.key_key(&candidate.provider, &candidate.key)).await?;
        let text = |hash: &HashMap<String, String>, name: &str| hash.get(name).cloned();
        // A time that does not parse counts as absent: the admission script drops it too.
        let int = |hash: &HashMap<String, String>, name: &str| {
            hash.get(name).and_then(|text| parse_number(text)).map(|n| n as i64)
        };
        if let Some(kind) = key.get("hold") {
            let until = if key.contains_key("until") { int(&key, "until") } else { Some(-1) };
            if let Some(until) = until
                && (until < 0 || now < until)
            {
                let until = if until < 0 { None } else { from_ms(until) };
                let state = match kind.as_str() {
                    "invalid" => KeyState::Invalid,
                    _ => KeyState::BillingStopped { until },
                };
                return Ok(KeyStatus {
                    state,
                    reason: text(&key, "reason"),
                    changed_at: int(&key, "since").and_then(from_ms),
                });
            }
        }
        let bucket = self.hash("status", self.bucket_key(&base)).await?;
        if let Some(until) = int(&bucket, "exh_until")
            && (until < 0 || now < until)
        {
            return Ok(KeyStatus {
                state: KeyState::Exhausted { until: if until < 0 { None } else { from_ms(until) } },
                reason: text(&bucket, "exh_reason"),
                changed_at: int(&bucket, "exh_since").and_then(from_ms),
            });
        }
        if let Some(until) = int(&bucket, "cool_until")
            && now < until
        {
            return Ok(KeyStatus {
                state: KeyState::CoolingDown { until: from_ms(until).unwrap_or_default() },
                reason: text(&bucket, "cool_reason"),
                changed_at: int(&bucket, "cool_since").and_then(from_ms),
            });
        }
        // A hold that ended changed the state at its end.
        let ended = [
            int(&key, "until"),
            int(&bucket, "exh_until"),
            int(&bucket, "cool_until"),
            int(&bucket, "changed"),
            int(&key, "changed"),
        ]
        .into_iter()
        .flatten()
        .filter(|&at| at >= 0 && at <= now)
        .max();
        Ok(KeyStatus {
            state: KeyState::Available,
            reason: None,
            changed_at: ended.and_then(from_ms),
        })
    }

    async fn reenable_shared(
        &self,
        provider: &ProviderId,
        key: &KeyId,
    ) -> Result<(), RedisLedgerError> {
        let now = ms(self.clock.utc());
        let mut command = redis::cmd("HDEL");
        command.arg(self.key_key(provider, key)).arg(&["hold", "until", "since", "reason"]);
        let _: i64 = self.run("reenable", command).await?;
        let mut changed = redis::cmd("HSET");
        changed.arg(self.key_key(provider, key)).arg("changed").arg(now);
        let _: i64 = self.run("reenable", changed).await?;
        let candidates: Vec<Candidate> = self
            .known
            .lock()
            .iter()
            .filter(|candidate| &candidate.provider == provider && &candidate.key == key)
            .cloned()
            .collect();
        for candidate in candidates {
            let placement = self.config.place(&candidate);
            let base = self.base(&placement, provider);
            let mut clear = redis::cmd("HDEL");
            clear.arg(self.bucket_key(&base)).arg(&[
                "cool_until",
                "cool_since",
                "cool_reason",
                "exh_until",
                "exh_since",
                "exh_reason",
            ]);
            let _: i64 = self.run("reenable", clear).await?;
        }
        Ok(())
    }

    async fn summary_shared(
        &self,
        provider: &ProviderId,
    ) -> Result<ProviderSummary, RedisLedgerError> {
        let candidates: Vec<Candidate> = self
            .known
            .lock()
            .iter()
            .filter(|candidate| &candidate.provider == provider)
            .cloned()
            .collect();
        let now = self.clock.utc();
        let mut keys = Vec::new();
        for candidate in candidates {
            let status = self.status_shared(&candidate).await?;
            let placement = self.config.place(&candidate);
            let base = self.base(&placement, provider);
            let mut limits = Vec::new();
            let mut meters = self.meters(&placement, &base, now);
            if learns(&placement) {
                let records = self.learned_limits(&base, now).await?;
                meters.extend(self.learned_meters(&base, &records, now));
            }
            for meter in meters {
                let mut command = redis::cmd("HGETALL");
                command.arg(&meter.key);
                let fields: Vec<(String, String)> = self.run("summary", command).await?;
                let (used, resets_at) = meter_use(&meter, &fields, ms(now));
                let limit = meter.limit.amount;
                limits.push(LimitSummary {
                    unit: meter.limit.unit,
                    limit_name: meter.name(),
                    used,
                    limit,
                    remaining: limit.saturating_sub(used),
                    percent: if limit == 0 { 100.0 } else { used as f64 * 100.0 / limit as f64 },
                    resets_at: resets_at.and_then(from_ms),
                    learned: meter.learned.clone(),
                });
            }
            let full = limits.iter().find(|limit| limit.remaining == 0);
            let (available, available_at) = match (&status.state, full) {
                (KeyState::Available, None) => (true, None),
                (KeyState::Available, Some(limit)) => (false, limit.resets_at),
                (other, _) => (false, other.until()),
            };
            keys.push(KeySummary {
                key: candidate.key.clone(),
                model: candidate.model.clone(),
                group: placement.group.clone(),
                pool: placement.pool.clone(),
                status,
                available,
                available_at,
                limits,
            });
        }
        Ok(ProviderSummary { provider: provider.clone(), status: ProviderStatus::of(&keys), keys })
    }

    fn unavailable(&self, error: RedisLedgerError) -> Result<(), QuotaError> {
        match (self.options.on_unavailable, error.is_unavailable()) {
            (OnUnavailable::UseLocal, true) => {
                tracing::warn!(%error, "redis unavailable; counting in the local ledger");
                Ok(())
            }
            (OnUnavailable::FailClosed, _) | (OnUnavailable::UseLocal, false) => {
                Err(QuotaError::Backend { backend: "redis", source: Box::new(error) })
            }
        }
    }
}

/// A stored number: an integer, or a decimal or `1e+14` as earlier versions wrote; `None` when
/// it is not a finite number.
fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|number| number.is_finite())
}

/// A stored count, clamped at zero (an `f64` to `u64` cast saturates).
fn parse_count(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| parse_number(text).map(|number| number.max(0.0) as u64))
}

/// A meter's count and reset from its Redis hash. A value that does not parse counts as
/// nothing (the next script to meet it drops it).
fn meter_use(meter: &MeterArg, fields: &[(String, String)], now: i64) -> (u64, Option<i64>) {
    let field =
        |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let number = |name: &str| field(name).and_then(parse_number);
    match meter.kind {
        "s" => {
            let slot = now / meter.p1;
            let live: Vec<(i64, u64)> = fields
                .iter()
                .filter_map(|(key, value)| Some((key.parse::<i64>().ok()?, parse_count(value)?)))
                .filter(|&(start, count)| start > slot.saturating_sub(meter.p2) && count > 0)
                .collect();
            let used = live.iter().fold(0u64, |sum, &(_, count)| sum.saturating_add(count));
            let newest = live.iter().map(|&(start, _)| start).max();
            (used, newest.map(|start| start.saturating_add(meter.p2).saturating_mul(meter.p1)))
        }
        "r" => {
            let rate = meter.limit.amount as f64 / meter.p1 as f64;
            let used = number("used").unwrap_or(0.0).max(0.0);
            let as_of = number("asof").unwrap_or(now as f64);
            let used = (used - (now as f64 - as_of).max(0.0) * rate).max(0.0);
            // Float-to-int `as` saturates: a zero rate gives no overflow, only a far reset.
            let reset = (used > 0.0).then(|| now.saturating_add((used / rate).ceil() as i64));
            (used.ceil() as u64, reset)
        }
        _ => {
            let current = number("end").is_some_and(|end| end as i64 == meter.p1);
            let used = if current { number("used").unwrap_or(0.0).max(0.0) as u64 } else { 0 };
            (used, (used > 0).then_some(meter.p1))
        }
    }
}

#[async_trait]
impl QuotaLedger for RedisLedger {
    async fn admit(&self, candidate: &Candidate, estimate: Estimate) -> Result<Permit, QuotaError> {
        match self.admit_shared(candidate, estimate).await {
            Ok(decision) => decision,
            Err(error) => {
                self.unavailable(error)?;
                self.local.try_admit(candidate, estimate)
            }
        }
    }

    async fn settle(&self, permit: Permit, usage: &Usage) -> Result<(), QuotaError> {
        let Some(lease) = permit.lease() else {
            self.local.settle_now(permit, usage);
            return Ok(());
        };
        let (candidate, estimate, taken_at) =
            (permit.candidate(), permit.estimate(), permit.taken_at());
        match self.finish_shared(candidate, estimate, taken_at, lease, Some(usage)).await {
            Ok(()) => Ok(()),
            Err(error) => self.unavailable(error),
        }
    }

    async fn release(&self, permit: Permit) -> Result<(), QuotaError> {
        let Some(lease) = permit.lease() else {
            self.local.release_now(permit);
            return Ok(());
        };
        let (candidate, estimate, taken_at) =
            (permit.candidate(), permit.estimate(), permit.taken_at());
        match self.finish_shared(candidate, estimate, taken_at, lease, None).await {
            Ok(()) => Ok(()),
            Err(error) => self.unavailable(error),
        }
    }

    async fn observe(
        &self,
        candidate: &Candidate,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError> {
        self.observe_answer(candidate, snapshot, None).await
    }

    async fn observe_attempt(
        &self,
        permit: &Permit,
        snapshot: &RateLimitSnapshot,
    ) -> Result<(), QuotaError> {
        // A permit of the in-process fallback is judged there, where it was admitted.
        if permit.lease().is_none() {
            self.local.observe_attempt_now(permit, snapshot);
            return Ok(());
        }
        let attempt = permit.admission_seq().map(|seq| (seq, permit.overlapped()));
        self.observe_answer(permit.candidate(), snapshot, attempt).await
    }

    async fn record_error(
        &self,
        candidate: &Candidate,
        error: &ProviderError,
    ) -> Result<(), QuotaError> {
        self.record(candidate, error, None).await
    }

    async fn fail(&self, permit: Permit, error: &ProviderError) -> Result<(), QuotaError> {
        let candidate = permit.candidate().clone();
        // A shared permit was admitted on this ledger's clock: a 429 of an attempt admitted
        // before the shared learned limit was last set does not lower it (a herd in flight
        // when it was taught). A permit of the in-process fallback has no such time.
        let admitted =
            permit.lease().and_then(|_| i64::try_from(permit.taken_at()).ok()).and_then(from_ms);
        self.release(permit).await?;
        self.record(&candidate, error, admitted).await
    }

    async fn status(&self, candidate: &Candidate) -> Result<KeyStatus, QuotaError> {
        match self.status_shared(candidate).await {
            Ok(status) => Ok(status),
            Err(error) => {
                self.unavailable(error)?;
                Ok(self.local.status_now(candidate))
            }
        }
    }

    async fn reenable(&self, provider: &ProviderId, key: &KeyId) -> Result<(), QuotaError> {
        self.local.reenable_now(provider, key);
        match self.reenable_shared(provider, key).await {
            Ok(()) => Ok(()),
            Err(error) => self.unavailable(error),
        }
    }

    async fn summary(&self, provider: &ProviderId) -> Result<ProviderSummary, QuotaError> {
        match self.summary_shared(provider).await {
            Ok(summary) => Ok(summary),
            Err(error) => {
                self.unavailable(error)?;
                Ok(self.local.summary_now(provider))
            }
        }
    }

    /// From what this process's own admissions and observed headers said (see the
    /// `headroom` module): no round trip. While Redis is down and the local ledger counts
    /// instead, that ledger's figure stands in for a bucket this process has no shared
    /// figure of.
    fn headroom(&self, candidate: &Candidate) -> Option<f64> {
        let now = ms(self.clock.utc());
        self.headroom.headroom(candidate, now).or_else(|| self.local.headroom(candidate))
    }
}
