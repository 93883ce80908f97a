//! The scorer's hot path: ranking 100 candidates (deterministic score then sort, and with an
//! exploration draw) and recording one outcome, each alone and with a second thread doing the
//! same work on the same scorer. Targets: `record` under 100 ns, ranking 100 under 2 µs.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_core::{Candidate, ErrorKind, SystemClock};
use switchyard_score::{AdaptiveScorer, Outcome, ScoreConfig, Scorer, order_by_score};

const N_CANDIDATES: usize = 100;

fn candidates() -> Vec<Candidate> {
    (0..N_CANDIDATES)
        .map(|n| {
            Candidate::new(
                format!("provider-{}", n % 7),
                format!("provider-{}-key-{n}", n % 7),
                format!("model-{}", n % 5),
            )
        })
        .collect()
}

fn outcome(n: usize) -> Outcome {
    if n.is_multiple_of(20) {
        Outcome::Failure { kind: ErrorKind::ServerError, latency: Duration::from_millis(900) }
    } else {
        Outcome::Success { latency: Duration::from_millis(300 + (n % 50) as u64 * 20), tokens: 600 }
    }
}

/// A scorer on the real clock that has seen 40 outcomes of every candidate.
fn warmed_scorer(candidates: &[Candidate]) -> Arc<AdaptiveScorer> {
    let scorer = AdaptiveScorer::try_new(
        Arc::new(SystemClock),
        ScoreConfig { seed: Some(1), ..ScoreConfig::default() },
    )
    .expect("default config is valid");
    for round in 0..40 {
        for (idx, candidate) in candidates.iter().enumerate() {
            scorer.record(candidate, outcome(idx + round));
        }
    }
    Arc::new(scorer)
}

/// Runs `work` on a second thread until the returned guard is dropped.
struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Background {
    fn start(work: impl Fn(usize) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    work(n);
                    n = n.wrapping_add(1);
                }
            })
        };
        Self { stop, handle: Some(handle) }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            handle.join().expect("background bench thread");
        }
    }
}

fn rank(c: &mut Criterion) {
    let candidates = candidates();
    let scorer = warmed_scorer(&candidates);
    let mut group = c.benchmark_group("score");
    group.bench_function("rank_100/1_thread", |b| {
        b.iter(|| order_by_score(&scorer.score(black_box(&candidates))))
    });
    group.bench_function("explore_rank_100/1_thread", |b| {
        b.iter(|| scorer.rank(black_box(&candidates)))
    });
    {
        let (other, other_candidates) = (Arc::clone(&scorer), candidates.clone());
        let _background = Background::start(move |_| {
            black_box(order_by_score(&other.score(&other_candidates)));
        });
        group.bench_function("rank_100/2_threads", |b| {
            b.iter(|| order_by_score(&scorer.score(black_box(&candidates))))
        });
    }
    {
        let (other, other_candidates) = (Arc::clone(&scorer), candidates.clone());
        let _background = Background::start(move |_| {
            black_box(other.rank(&other_candidates));
        });
        group.bench_function("explore_rank_100/2_threads", |b| {
            b.iter(|| scorer.rank(black_box(&candidates)))
        });
    }
    group.finish();
}

fn record(c: &mut Criterion) {
    let candidates = candidates();
    let scorer = warmed_scorer(&candidates);
    let mut group = c.benchmark_group("record");
    let mut n = 0;
    group.bench_function("1_thread", |b| {
        b.iter(|| {
            n += 1;
            scorer.record(&candidates[n % N_CANDIDATES], outcome(n));
        })
    });
    {
        let (other, other_candidates) = (Arc::clone(&scorer), candidates.clone());
        let _background = Background::start(move |n| {
            other.record(&other_candidates[(n * 7) % N_CANDIDATES], outcome(n));
        });
        group.bench_function("2_threads", |b| {
            b.iter(|| {
                n += 1;
                scorer.record(&candidates[n % N_CANDIDATES], outcome(n));
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = rank, record }
criterion_main!(benches);
