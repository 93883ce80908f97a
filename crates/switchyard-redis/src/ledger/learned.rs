//! Limits nobody declared, learned from 429s and shared through Redis like declared ones.
//!
//! Every served admission of a bucket that leaves a window to learning is kept in a sorted
//! set (`{prefix}:a:{base}`: score the admission time, member its lease; two days, at most
//! [`LOG_CAP`] entries). A 429 for an undeclared window learns from it with the quota crate's
//! own rules ([`switchyard_quota::learn_shared`]) and stores the result in a hash
//! (`{prefix}:l:{base}`, one JSON record per scope). From then on every ledger sharing the
//! Redis admits against it as one more meter of the bucket, counted atomically by the same
//! scripts as a declared limit: a sliding meter, or for a fixed window a meter that starts
//! again at each of its boundaries.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{LimitScope, ProviderError};
use switchyard_quota::{
    LearnedKind, LearnedRecord, Limit, MAX_LEARNED, Placement, Unit, fixed_window, learn_shared,
    learned_wait, lesson,
};

use super::{MeterArg, RedisLedger, SLOTS, duration_ms, from_ms, ms};
use crate::error::RedisLedgerError;

/// The most served admissions remembered per bucket (as the in-memory ledger).
const LOG_CAP: i64 = 2048;
/// How long served admissions are remembered.
const RETENTION_MS: i64 = 2 * 86_400_000;
/// How long a ledger trusts its copy of a bucket's learned limits before asking Redis again.
const CACHE_MS: i64 = 1_000;
/// The most buckets whose learned limits are cached; beyond it the cache starts afresh.
const CACHE_CAP: usize = 4_096;

/// Learned limits read from Redis, per bucket, with when they were read.
#[derive(Debug, Default)]
pub(super) struct LearnedCache(parking_lot::Mutex<HashMap<String, (i64, Vec<LearnedRecord>)>>);

impl LearnedCache {
    fn get(&self, base: &str, now_ms: i64) -> Option<Vec<LearnedRecord>> {
        let cache = self.0.lock();
        let (read_at, records) = cache.get(base)?;
        (now_ms.saturating_sub(*read_at) < CACHE_MS && now_ms >= *read_at).then(|| records.clone())
    }

    fn put(&self, base: &str, now_ms: i64, records: Vec<LearnedRecord>) {
        let mut cache = self.0.lock();
        if cache.len() >= CACHE_CAP && !cache.contains_key(base) {
            cache.clear();
        }
        cache.insert(base.to_owned(), (now_ms, records));
    }
}

fn scope_field(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Day => "day",
        LimitScope::Minute | LimitScope::Month | LimitScope::Unknown => "minute",
    }
}

/// Whether the configuration declares a request limit of `scope` for this placement: then
/// nothing is learned for it (declared limits win).
fn declares(placement: &Placement<'_>, scope: LimitScope) -> bool {
    placement.rule.is_some_and(|rule| {
        rule.limits
            .iter()
            .any(|limit| limit.unit == Unit::Requests && limit.window.scope() == scope)
    })
}

/// Whether some window of this placement is left to learning.
pub(super) fn learns(placement: &Placement<'_>) -> bool {
    !(declares(placement, LimitScope::Minute) && declares(placement, LimitScope::Day))
}

impl RedisLedger {
    fn served_key(&self, base: &str) -> String {
        format!("{}:a:{base}", self.options.prefix)
    }

    fn learned_key(&self, base: &str) -> String {
        format!("{}:l:{base}", self.options.prefix)
    }

    /// Remembers a served admission of a bucket that learns.
    pub(super) async fn note_served(
        &self,
        base: &str,
        taken_at_ms: i64,
        lease: u64,
        now: DateTime<Utc>,
    ) -> Result<(), RedisLedgerError> {
        let key = self.served_key(base);
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(taken_at_ms)
            .arg(Self::lease_token(lease))
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({}", ms(now).saturating_sub(RETENTION_MS)))
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(LOG_CAP + 1))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(RETENTION_MS)
            .ignore();
        let mut connection = self.connection().await?;
        let answer = tokio::time::timeout(
            self.options.response_timeout,
            pipe.query_async::<()>(&mut connection),
        )
        .await;
        self.judge("note served", answer).await
    }

    /// More served within one window than a learned limit allows (attempts in flight when it
    /// was learned, another process's): the limit is raised to what was served.
    pub(super) async fn raise_on_success(
        &self,
        base: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RedisLedgerError> {
        let records = self.learned_limits(base, now).await?;
        for mut record in records {
            let start = match fixed_window(&record, now) {
                Some((start, _)) => ms(start),
                None => ms(now)
                    .saturating_sub(i64::try_from(record.window_ms).unwrap_or(i64::MAX))
                    .saturating_add(1),
            };
            let mut command = redis::cmd("ZCOUNT");
            command.arg(self.served_key(base)).arg(start).arg("+inf");
            let served: u64 = self.run("learned", command).await?;
            if served <= record.limit {
                continue;
            }
            record.limit = served;
            record.from_accepted = served;
            record.learned_at = now;
            record.source = format!("raised: {served} served in one window");
            record.corrections = record.corrections.saturating_add(1);
            self.store_learned(base, &record, now).await?;
        }
        Ok(())
    }

    /// Saves `record` as its bucket's learned limit of its scope, here and in Redis.
    async fn store_learned(
        &self,
        base: &str,
        record: &LearnedRecord,
        now: DateTime<Utc>,
    ) -> Result<(), RedisLedgerError> {
        let json = serde_json::to_string(record).map_err(|error| RedisLedgerError::Reply {
            op: "learned",
            detail: error.to_string(),
        })?;
        let mut command = redis::cmd("HSET");
        command.arg(self.learned_key(base)).arg(scope_field(record.scope)).arg(json);
        let _: i64 = self.run("learned", command).await?;
        let mut expire = redis::cmd("PEXPIRE");
        expire.arg(self.learned_key(base)).arg(30 * 86_400_000_i64);
        let _: i64 = self.run("learned", expire).await?;
        let mut cached = self.learned_limits(base, now).await?;
        cached.retain(|known| known.scope != record.scope);
        cached.push(record.clone());
        cached.sort_by_key(|record| scope_field(record.scope));
        self.learned.put(base, ms(now), cached);
        Ok(())
    }

    /// The served admissions remembered for a bucket, oldest first.
    async fn served(&self, base: &str) -> Result<Vec<DateTime<Utc>>, RedisLedgerError> {
        let mut command = redis::cmd("ZRANGE");
        command.arg(self.served_key(base)).arg(0).arg(-1).arg("WITHSCORES");
        let pairs: Vec<(String, f64)> = self.run("learned", command).await?;
        Ok(pairs.into_iter().filter_map(|(_, at)| from_ms(at as i64)).collect())
    }

    /// A bucket's learned limits, from the cache when it is fresh.
    pub(super) async fn learned_limits(
        &self,
        base: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<LearnedRecord>, RedisLedgerError> {
        if let Some(records) = self.learned.get(base, ms(now)) {
            return Ok(records);
        }
        let fields = self.hash("learned", self.learned_key(base)).await?;
        let mut records = Vec::new();
        for (field, json) in &fields {
            match serde_json::from_str::<LearnedRecord>(json) {
                Ok(record)
                    if (1..=MAX_LEARNED).contains(&record.limit)
                        && (1..=RETENTION_MS as u64).contains(&record.window_ms) =>
                {
                    records.push(record);
                }
                // A value this version cannot read is dropped: learning starts again.
                _ => self.note_repaired(if field == "day" { "learned day" } else { "learned" }, 1),
            }
        }
        records.sort_by_key(|record| scope_field(record.scope));
        self.learned.put(base, ms(now), records.clone());
        Ok(records)
    }

    /// The meters of a bucket's learned limits, for the admission and settlement scripts.
    pub(super) fn learned_meters(
        &self,
        base: &str,
        records: &[LearnedRecord],
        now: DateTime<Utc>,
    ) -> Vec<MeterArg> {
        records
            .iter()
            .map(|record| {
                let length = Duration::from_millis(record.window_ms.max(1));
                let key = format!(
                    "{}:m:{base}:learned-{}-{}-{}ms",
                    self.options.prefix,
                    scope_field(record.scope),
                    record.kind.as_str(),
                    record.window_ms
                );
                let limit = Limit::requests_per(record.limit, length);
                let (kind, p1, p2) = match fixed_window(record, now) {
                    // Like a day: counts start again when the window's end moves on.
                    Some((start, end)) => ("d", ms(end), ms(start)),
                    None => ("s", duration_ms(length).saturating_add(SLOTS - 1) / SLOTS, SLOTS + 1),
                };
                MeterArg { key, limit, kind, p1: p1.max(1), p2, learned: Some(record.clone()) }
            })
            .collect()
    }

    /// Learns from a 429 (see the module): stores the corrected or new limit, seeds its meter
    /// with what its window served, and returns how long until the window has room (the
    /// cooldown when the 429 named no delay).
    pub(super) async fn learn_from(
        &self,
        placement: &Placement<'_>,
        base: &str,
        error: &ProviderError,
        now: DateTime<Utc>,
        admitted: Option<DateTime<Utc>>,
    ) -> Result<Option<Duration>, RedisLedgerError> {
        let Some(mut lesson) = lesson(error, placement.day, now) else { return Ok(None) };
        lesson.admitted = admitted;
        if declares(placement, lesson.scope) {
            return Ok(None);
        }
        let served = self.served(base).await?;
        let cached = self.learned_limits(base, now).await?;
        let existing = cached.iter().find(|record| record.scope == lesson.scope).cloned();
        let Some(record) = learn_shared(existing.as_ref(), &served, now, &lesson) else {
            // Nothing to correct (a herd's 429, or nothing served): the limit it has still
            // says how long the key waits, as in the in-process ledger.
            return Ok(existing.and_then(|record| learned_wait(&record, &served, now)));
        };
        self.store_learned(base, &record, now).await?;
        // The new meter counts what the window already served, so no ledger hands that
        // capacity out again.
        let meter = self.learned_meters(base, std::slice::from_ref(&record), now);
        let start = match (record.kind, fixed_window(&record, now)) {
            (LearnedKind::Fixed, Some((start, _))) => start,
            _ => {
                now - chrono::Duration::milliseconds(duration_ms(Duration::from_millis(
                    record.window_ms,
                )))
            }
        };
        let in_window = served.iter().filter(|&&at| at >= start).count() as u64;
        let keys = vec![
            self.gates_key(base),
            self.inflight_key(base),
            self.bucket_key(base),
            meter[0].key.clone(),
        ];
        // observe.lua with no attempt (-1, not overlapped) and no gate: only the meter's count.
        let args = vec![
            ms(now).to_string(),
            "-1".to_owned(),
            "0".to_owned(),
            "0".to_owned(),
            meter[0].kind.to_owned(),
            in_window.min(record.limit).to_string(),
            meter[0].p1.to_string(),
            meter[0].p2.to_string(),
            record.limit.to_string(),
        ];
        let repaired: i64 = self.invoke("learned", &self.observe_script, &keys, &args).await?;
        self.note_repaired("learned", repaired);
        Ok(learned_wait(&record, &served, now))
    }
}
