//! The learning simulation: candidates with known true success rates and latencies, one
//! routed call per simulated second, the scorer choosing by [`Scorer::sample`]. It must find
//! the best candidate, leave it when it degrades, and try a newcomer.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use switchyard_core::{Candidate, ErrorKind, ManualClock};
use switchyard_score::{AdaptiveScorer, Outcome, ScoreConfig, Scorer, Weights};

/// A simulated upstream: how often it succeeds and how long it takes.
struct Upstream {
    candidate: Candidate,
    success_rate: f64,
    mean_latency_ms: f64,
}

impl Upstream {
    fn new(name: &str, success_rate: f64, mean_latency_ms: f64) -> Self {
        Self {
            candidate: Candidate::new(name, format!("{name}-1"), "m"),
            success_rate,
            mean_latency_ms,
        }
    }

    /// One call: log-normal latency around the mean (σ = 0.25), success by the true rate.
    fn call(&self, rng: &mut StdRng) -> Outcome {
        const SIGMA: f64 = 0.25;
        let mu = self.mean_latency_ms.ln() - SIGMA * SIGMA / 2.0;
        let latency_ms = LogNormal::new(mu, SIGMA).expect("valid log-normal").sample(rng);
        let latency = Duration::from_secs_f64(latency_ms / 1e3);
        if rng.random_bool(self.success_rate) {
            Outcome::Success { latency, tokens: 400 }
        } else {
            Outcome::Failure { kind: ErrorKind::ServerError, latency }
        }
    }
}

/// The score each upstream would have if its true rates were known exactly (equal quality,
/// a success just now): the target the scorer should learn to prefer.
fn expected_best(upstreams: &[Upstream]) -> usize {
    let weights = Weights::default();
    let fastest = upstreams.iter().map(|u| u.mean_latency_ms).fold(f64::INFINITY, f64::min);
    let expected: Vec<f64> = upstreams
        .iter()
        .map(|u| {
            weights.reliability() * u.success_rate
                + weights.speed() * fastest / u.mean_latency_ms
                + weights.quality() * 0.5
                + weights.recency()
        })
        .collect();
    switchyard_score::best_index(&expected).expect("upstreams")
}

struct Run {
    clock: ManualClock,
    scorer: AdaptiveScorer,
    rng: StdRng,
    upstreams: Vec<Upstream>,
    /// The upstream index each call went to.
    routed: Vec<usize>,
}

impl Run {
    fn new(seed: u64, upstreams: Vec<Upstream>) -> Self {
        let clock = ManualClock::default();
        let scorer = AdaptiveScorer::try_new(
            Arc::new(clock.clone()),
            ScoreConfig { seed: Some(seed), ..ScoreConfig::default() },
        )
        .expect("default config is valid");
        Self {
            clock,
            scorer,
            rng: StdRng::seed_from_u64(seed ^ 0xA5A5),
            upstreams,
            routed: Vec::new(),
        }
    }

    fn calls(&mut self, n: usize) {
        for _ in 0..n {
            self.clock.advance(Duration::from_secs(1));
            let candidates: Vec<Candidate> =
                self.upstreams.iter().map(|u| u.candidate.clone()).collect();
            let chosen = self.scorer.sample(&candidates).expect("candidates");
            let outcome = self.upstreams[chosen].call(&mut self.rng);
            self.scorer.record(&candidates[chosen], outcome);
            self.routed.push(chosen);
        }
    }

    /// How many of the last `n` calls went to each upstream.
    fn last(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; self.upstreams.len()];
        for &idx in &self.routed[self.routed.len() - n..] {
            counts[idx] += 1;
        }
        counts
    }

    fn shares(&self, n: usize) -> String {
        let counts = self.last(n);
        self.upstreams
            .iter()
            .zip(counts)
            .map(|(u, count)| {
                format!("{} {:.0}%", u.candidate.provider, 100.0 * count as f64 / n as f64)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What one seeded run showed.
struct Findings {
    leader_share_of_last_100: f64,
    leader_share_after_degrading: f64,
    newcomer_first_tried_after: Option<usize>,
}

fn simulate(seed: u64, print: bool) -> Findings {
    let upstreams = vec![
        Upstream::new("a", 0.95, 1_200.0),
        Upstream::new("b", 0.99, 1_500.0),
        Upstream::new("c", 0.85, 2_100.0),
    ];
    let leader = expected_best(&upstreams);
    let mut run = Run::new(seed, upstreams);

    run.calls(500);
    let leader_share_of_last_100 = run.last(100)[leader] as f64 / 100.0;
    if print {
        println!("seed {seed}, calls 1-500, last 100: {}", run.shares(100));
    }

    run.upstreams[leader].success_rate = 0.5;
    run.calls(150);
    let leader_share_after_degrading = run.last(50)[leader] as f64 / 50.0;
    if print {
        println!("seed {seed}, leader at 50% failures, calls 601-650: {}", run.shares(50));
    }

    run.upstreams.push(Upstream::new("d", 0.97, 1_000.0));
    let before = run.routed.len();
    run.calls(50);
    let newcomer = run.upstreams.len() - 1;
    let newcomer_first_tried_after =
        run.routed[before..].iter().position(|&idx| idx == newcomer).map(|pos| pos + 1);
    if print {
        println!(
            "seed {seed}, newcomer d added at call 651, first tried at call {}; calls 651-700: {}",
            newcomer_first_tried_after.map_or("never".to_owned(), |n| (650 + n).to_string()),
            run.shares(50)
        );
    }
    Findings { leader_share_of_last_100, leader_share_after_degrading, newcomer_first_tried_after }
}

#[test]
fn the_expected_best_is_the_fast_and_fairly_reliable_one() {
    let upstreams = vec![
        Upstream::new("a", 0.95, 1_200.0),
        Upstream::new("b", 0.99, 1_500.0),
        Upstream::new("c", 0.85, 2_100.0),
    ];
    assert_eq!(expected_best(&upstreams), 0);
}

/// The run over a hundred seeds, printing each run's traffic shares. The best candidate's
/// expected score is only 0.044 above the runner-up's (a: 0.95 at 1,200 ms against b: 0.99 at
/// 1,500 ms), so a run whose draws favour b for a while shares calls 401-500 between them, and
/// one whose first calls of a fail may leave a untried for hundreds of calls: most runs, not
/// all, clear 70%. The bounds are on the hundred runs together, so they measure the
/// exploration's behaviour rather than one seed's luck: with the Beta sampler of
/// `rand_distr` these seeds gave 94 runs clearing 70%, a mean of 84.3%, the degraded leader
/// 10.4% of calls 601-650 on average and 44% at most; with the Gamma-ratio sampler of
/// `draw.rs` (the same distribution, another random stream) 90 runs, 84.3%, 11.6% and 52%.
/// Over 200 seeds both samplers clear 70% in 93% of runs with a mean of 84%.
#[test]
fn learns_the_best_leaves_it_when_it_degrades_and_tries_a_newcomer() {
    let runs: Vec<Findings> = (1..=100).map(|seed| simulate(seed, true)).collect();
    let shares: Vec<f64> = runs.iter().map(|run| run.leader_share_of_last_100).collect();
    let clearing = shares.iter().filter(|&&share| share >= 0.7).count();
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    let worst_after_degrading =
        runs.iter().map(|run| run.leader_share_after_degrading).fold(0.0, f64::max);
    let mean_after_degrading =
        runs.iter().map(|run| run.leader_share_after_degrading).sum::<f64>() / runs.len() as f64;
    let newcomer_tried: Vec<usize> =
        runs.iter().filter_map(|run| run.newcomer_first_tried_after).collect();
    println!(
        "100 seeds: the best candidate got >= 70% of calls 401-500 in {clearing} runs (mean \
         {:.1}%, lowest {:.0}%); the degraded leader got {:.1}% of calls 601-650 on average, \
         at most {:.0}%; the newcomer was tried within {} calls",
        100.0 * mean,
        100.0 * shares.iter().copied().fold(1.0, f64::min),
        100.0 * mean_after_degrading,
        100.0 * worst_after_degrading,
        newcomer_tried.iter().max().copied().unwrap_or(usize::MAX),
    );
    assert!(clearing >= 85, "only {clearing} of 100 runs gave the best candidate 70%");
    assert!(mean >= 0.8, "mean share {mean:.3}");
    assert!(mean_after_degrading < 0.2, "degraded leaders kept {mean_after_degrading:.3}");
    assert!(worst_after_degrading < 0.6, "a degraded leader kept {worst_after_degrading:.2}");
    assert_eq!(newcomer_tried.len(), 100, "a newcomer went untried in some run");
    assert!(
        newcomer_tried.iter().all(|&calls| calls <= 10),
        "a newcomer waited: {newcomer_tried:?}"
    );
}
