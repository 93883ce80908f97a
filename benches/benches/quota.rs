//! The quota ledger's hot path: one admission and its settlement on the in-memory ledger
//! (alone, and with a second thread doing the same on the same or another key), and one
//! admission plus settlement on the Redis ledger over loopback; and the headroom read that
//! `spread` makes for every free candidate, on both. Target: in-memory admit + settle under
//! 200 ns median.
//!
//! The Redis bench reads `SWITCHYARD_TEST_REDIS_URL` (`cargo xtask bench` starts a server and
//! sets it).

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use chrono_tz::America::Los_Angeles;
use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_core::{Candidate, SystemClock, Usage};
use switchyard_quota::{
    DayBoundary, Estimate, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig, QuotaLedger,
};
use switchyard_redis::{OnUnavailable, RedisLedger, RedisOptions};

/// A Groq-like model: requests a minute (sliding), a day (refill), tokens a minute and a day,
/// with limits high enough that the bench never reaches them.
fn config() -> QuotaConfig {
    let big = 1 << 50;
    QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "groq".into(),
            day: DayBoundary::Rolling,
            models: vec![ModelQuota::every_model(vec![
                Limit::per_minute(big),
                Limit::requests_refill(big, Duration::from_secs(86_400)),
                Limit::tokens_refill(big, Duration::from_secs(60)),
                Limit::tokens_per_day(big, Los_Angeles),
            ])],
        }],
        ..QuotaConfig::default()
    }
}

/// Polls a future that is ready at once (every in-memory ledger call is).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the in-memory ledger never waits"),
    }
}

fn admit_settle(ledger: &MemoryLedger, candidate: &Candidate, usage: &Usage) {
    let permit = ledger.try_admit(candidate, Estimate::new(500, 300)).expect("under the limits");
    ledger.settle_now(black_box(permit), usage);
}

/// Runs `admit_settle` on `candidate` in a second thread until the returned guard is dropped.
fn background(ledger: &Arc<MemoryLedger>, candidate: Candidate) -> impl Drop {
    struct Stop(Arc<AtomicBool>, Option<thread::JoinHandle<()>>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(handle) = self.1.take() {
                handle.join().expect("background thread");
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = Arc::clone(&stop);
        let ledger = Arc::clone(ledger);
        thread::spawn(move || {
            let usage = Usage::new(450, 200);
            while !stop.load(Ordering::Relaxed) {
                admit_settle(&ledger, &candidate, &usage);
            }
        })
    };
    Stop(stop, Some(handle))
}

fn memory(c: &mut Criterion) {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock), config()));
    let candidate = Candidate::new("groq", "groq-1", "llama-3.3-70b-versatile");
    let usage = Usage::new(450, 200);
    let mut group = c.benchmark_group("quota/memory");
    group.bench_function("admit+settle, 1 thread", |b| {
        b.iter(|| admit_settle(&ledger, black_box(&candidate), &usage));
    });
    let shared: Arc<dyn QuotaLedger> = Arc::clone(&ledger) as Arc<dyn QuotaLedger>;
    group.bench_function("admit+settle through dyn QuotaLedger, 1 thread", |b| {
        b.iter(|| {
            let permit = ready(shared.admit(black_box(&candidate), Estimate::new(500, 300)))
                .expect("under the limits");
            ready(shared.settle(black_box(permit), &usage)).expect("settled");
        });
    });
    // What `spread` asks of every free candidate of every request, through the trait.
    group.bench_function("headroom through dyn QuotaLedger", |b| {
        b.iter(|| shared.headroom(black_box(&candidate)));
    });
    let handle = ledger.handle(&candidate);
    group.bench_function("admit+settle by handle, 1 thread", |b| {
        b.iter(|| {
            let permit = ledger
                .try_admit_handle(black_box(&handle), Estimate::new(500, 300))
                .expect("under the limits");
            ledger.settle_now(black_box(permit), &usage);
        });
    });
    {
        let _other =
            background(&ledger, Candidate::new("groq", "groq-2", "llama-3.3-70b-versatile"));
        group.bench_function("admit+settle, 2 threads, different keys", |b| {
            b.iter(|| admit_settle(&ledger, black_box(&candidate), &usage));
        });
    }
    {
        let _same = background(&ledger, candidate.clone());
        group.bench_function("admit+settle, 2 threads, same key", |b| {
            b.iter(|| admit_settle(&ledger, black_box(&candidate), &usage));
        });
    }
    group.finish();
}

fn redis(c: &mut Criterion) {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("SWITCHYARD_TEST_REDIS_URL is not set: run `cargo xtask bench`, or start redis-server and set it")
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let options = RedisOptions {
        prefix: format!("sy-bench:{}", std::process::id()),
        on_unavailable: OnUnavailable::FailClosed,
        ..RedisOptions::default()
    };
    let ledger = RedisLedger::new(&url, config(), Arc::new(SystemClock), options).expect("ledger");
    let candidate = Candidate::new("groq", "groq-1", "llama-3.3-70b-versatile");
    let usage = Usage::new(450, 200);
    runtime.block_on(ledger.ping()).expect("the bench redis answers");
    let mut group = c.benchmark_group("quota/redis");
    group.bench_function("admit+settle, loopback", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let permit =
                    ledger.admit(&candidate, Estimate::new(500, 300)).await.expect("admitted");
                ledger.settle(permit, &usage).await.expect("settled");
            });
        });
    });
    // Answered from what the admissions above returned: no round trip.
    group.bench_function("headroom, no round trip", |b| {
        b.iter(|| ledger.headroom(black_box(&candidate)));
    });
    group.bench_function("admit only, loopback", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let permit =
                    ledger.admit(&candidate, Estimate::new(500, 300)).await.expect("admitted");
                // Counted on the limits, which are far from full.
                black_box(permit)
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = memory, redis
}
criterion_main!(benches);
