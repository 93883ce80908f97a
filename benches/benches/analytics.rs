//! The analytics event log: what recording costs a request (the writer's `record`, accepted and
//! dropped when full), how fast batches reach the disk, and how long the admin reports take over
//! a day of 100,000 attempts. Targets: `record` under 1 µs; a 500-event batch under 10 ms;
//! each report over 100,000 attempts under 100 ms.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard_core::SystemClock;
use switchyard_store::{
    Analytics, AnalyticsEvent, AnalyticsWriter, AnalyticsWriterConfig, EventKind,
};

const DAY_START: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z
const N_DAY_ATTEMPTS: u32 = 100_000;
const BATCH: usize = 500;

fn day_start() -> DateTime<Utc> {
    DateTime::from_timestamp(DAY_START, 0).expect("a valid time")
}

/// The `idx`-th attempt of a busy day: 20 keys over 4 providers, one in ten failing.
fn attempt(idx: u32) -> AnalyticsEvent {
    let key_idx = idx % 20;
    let failed = idx.is_multiple_of(10);
    AnalyticsEvent {
        at: day_start() + TimeDelta::milliseconds(i64::from(idx) * 864),
        kind: EventKind::Attempt,
        request_id: format!("req-{idx}"),
        client: Some(format!("client-{}", idx % 5)),
        route: "default".to_owned(),
        provider: Some(format!("provider-{}", key_idx % 4)),
        key: Some(format!("key-{key_idx}")),
        model: Some("model-a".to_owned()),
        success: !failed,
        error_class: failed
            .then(|| ["rate_limited", "server_error", "timeout"][idx as usize % 3].to_owned()),
        quota_error: failed && idx.is_multiple_of(3),
        status: Some(if failed { 429 } else { 200 }),
        latency_ms: f64::from(100 + idx % 900),
        prompt_tokens: u64::from(idx % 700),
        completion_tokens: u64::from(idx % 300),
        cost: Some(f64::from(idx % 7) / 10_000.0),
        tags: Vec::new(),
    }
}

fn record(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let capacity = 50_000;
    let writer = AnalyticsWriter::start(
        Analytics::open(&path).expect("opens"),
        Arc::new(SystemClock),
        AnalyticsWriterConfig { capacity, ..AnalyticsWriterConfig::default() },
    )
    .expect("writer starts");
    let event = attempt(1);
    let mut group = c.benchmark_group("analytics");
    group.throughput(Throughput::Elements(1));
    // Accepted: events go in by the queue-full, then (untimed) are flushed to make room again,
    // so every timed call takes the accepting path while the thread writes alongside.
    group.bench_function("record", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(capacity as u64);
                let events: Vec<AnalyticsEvent> = (0..chunk).map(|_| event.clone()).collect();
                #[expect(clippy::disallowed_methods, reason = "a bench measures real time")]
                let started = Instant::now();
                for event in events {
                    black_box(writer.record(event));
                }
                timed += started.elapsed();
                writer.flush().expect("flush");
                left -= chunk;
            }
            timed
        });
    });
    assert_eq!(writer.dropped(), 0, "every timed record was accepted");

    // Dropped: a writer with no room, the cost of overload on the request path.
    let full = AnalyticsWriter::start(
        Analytics::open(&path).expect("opens"),
        Arc::new(SystemClock),
        AnalyticsWriterConfig { capacity: 0, ..AnalyticsWriterConfig::default() },
    )
    .expect("writer starts");
    group.bench_function("record_when_full", |b| {
        b.iter_batched(|| event.clone(), |event| full.record(event), BatchSize::SmallInput);
    });
    group.finish();
}

fn insert_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut analytics = Analytics::open(dir.path().join("state.db")).expect("opens");
    let mut group = c.benchmark_group("analytics");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Each batch is later than the one before, as live traffic is: the time index grows at
    // its end. (Re-inserting one batch would scatter the inserts over an ever larger index.)
    let mut next = 0u32;
    group.bench_function("insert_batch_500", |b| {
        b.iter_batched(
            || {
                let batch: Vec<AnalyticsEvent> = (next..next + BATCH as u32).map(attempt).collect();
                next += BATCH as u32;
                batch
            },
            |batch| analytics.insert_batch(&batch).expect("inserts"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn reports(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut analytics = Analytics::open(dir.path().join("state.db")).expect("opens");
    let events: Vec<AnalyticsEvent> = (0..N_DAY_ATTEMPTS).map(attempt).collect();
    for chunk in events.chunks(10_000) {
        analytics.insert_batch(chunk).expect("inserts");
    }
    let (start, end) = (day_start(), day_start() + TimeDelta::days(1));
    let date = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a valid date");
    assert_eq!(analytics.usage(start, end, None).expect("usage").keys.len(), 20);

    let mut group = c.benchmark_group("analytics");
    group.sample_size(20);
    group.bench_function("usage_100k", |b| {
        b.iter(|| analytics.usage(start, end, None).expect("usage"));
    });
    group.bench_function("usage_100k_one_key", |b| {
        b.iter(|| analytics.usage(start, end, Some("key-7")).expect("usage"));
    });
    group.bench_function("hourly_100k", |b| b.iter(|| analytics.hourly(date).expect("hourly")));
    group.bench_function("errors_100k", |b| {
        b.iter(|| analytics.errors(start, end).expect("errors"))
    });
    group.finish();
}

criterion_group!(benches, record, insert_batch, reports);
criterion_main!(benches);
