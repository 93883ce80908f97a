//! How a route's admissible candidates are ranked. A [`Strategy`] only orders; admission
//! (quota, key state, circuit) happens before it and the cascade after it, both in the
//! router.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_core::{Candidate, ChatRequest};
use switchyard_score::{Scorer, order_by_score};

/// What a strategy knows of one candidate when it ranks.
#[derive(Clone, Copy, Debug)]
pub struct CandidateView<'a> {
    /// The candidate.
    pub candidate: &'a Candidate,
    /// Its position in the route's configured order (targets in order, keys in order).
    pub position: usize,
    /// Attempts of it in flight now, across every request.
    pub in_flight: u32,
    /// Its recent latency (an exponentially weighted average), if it has answered before.
    pub latency: Option<Duration>,
    /// Its configured weight for the weighted strategy (default 1).
    pub weight: u32,
    /// The request's estimated cost on it, in dollars, when its price is known.
    pub estimated_cost: Option<f64>,
}

/// What a strategy may use besides the candidates.
pub struct RankContext<'a> {
    /// The request being routed.
    pub request: &'a ChatRequest,
    /// The router's scorer (the adaptive strategy ranks with it).
    pub scorer: &'a dyn Scorer,
    /// The candidates of `candidates` views, in the same order, as one slice (what the
    /// scorer takes).
    pub candidates: &'a [Candidate],
    /// A fresh random number for this ranking, from the router's seedable generator.
    pub roll: u64,
}

/// Orders a route's admissible candidates, best first.
pub trait Strategy: Send + Sync + 'static {
    /// Indexes into `candidates`, best first. Indexes left out are not tried; an index
    /// given twice is tried once.
    fn rank(&self, candidates: &[CandidateView<'_>], context: &RankContext<'_>) -> Vec<usize>;
}

fn _object_safe(_: &dyn Strategy) {}

/// The built-in strategies, by name, plus any other through [`StrategyKind::Custom`].
#[derive(Clone)]
pub enum StrategyKind {
    /// Each request starts one further along the list.
    RoundRobin,
    /// A random order drawn in proportion to each candidate's weight.
    Weighted,
    /// The fewest attempts in flight first.
    LeastLoaded,
    /// The lowest recent latency first; candidates never measured come first, to measure
    /// them.
    Fastest,
    /// The cheapest estimated cost first; unpriced candidates last.
    CostOptimal,
    /// The configured order.
    Priority,
    /// The learned score, with exploration (the scorer's Thompson draw).
    Adaptive,
    /// Any other strategy.
    Custom(Arc<dyn Strategy>),
}

impl fmt::Debug for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl StrategyKind {
    /// The strategy's name as configuration writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Weighted => "weighted",
            Self::LeastLoaded => "least-loaded",
            Self::Fastest => "fastest",
            Self::CostOptimal => "cost-optimal",
            Self::Priority => "priority",
            Self::Adaptive => "adaptive",
            Self::Custom(_) => "custom",
        }
    }

    /// Reads a built-in strategy's configured name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "round-robin" | "round_robin" => Self::RoundRobin,
            "weighted" => Self::Weighted,
            "least-loaded" | "least_loaded" => Self::LeastLoaded,
            "fastest" | "latency" => Self::Fastest,
            "cost-optimal" | "cost_optimal" | "cost" => Self::CostOptimal,
            "priority" => Self::Priority,
            "adaptive" => Self::Adaptive,
            _ => return None,
        })
    }

    pub(crate) fn build(&self) -> Arc<dyn Strategy> {
        match self {
            Self::RoundRobin => Arc::new(RoundRobin::default()),
            Self::Weighted => Arc::new(Weighted),
            Self::LeastLoaded => Arc::new(LeastLoaded),
            Self::Fastest => Arc::new(Fastest),
            Self::CostOptimal => Arc::new(CostOptimal),
            Self::Priority => Arc::new(Priority),
            Self::Adaptive => Arc::new(Adaptive),
            Self::Custom(strategy) => Arc::clone(strategy),
        }
    }
}

/// See [`StrategyKind::RoundRobin`].
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicU64,
}

impl Strategy for RoundRobin {
    fn rank(&self, candidates: &[CandidateView<'_>], _: &RankContext<'_>) -> Vec<usize> {
        let n = candidates.len();
        if n == 0 {
            return Vec::new();
        }
        let mut order = by_position(candidates);
        let start = (self.next.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
        order.rotate_left(start);
        order
    }
}

/// See [`StrategyKind::Weighted`].
#[derive(Debug)]
pub struct Weighted;

impl Strategy for Weighted {
    fn rank(&self, candidates: &[CandidateView<'_>], context: &RankContext<'_>) -> Vec<usize> {
        // Weighted sampling without replacement: each candidate draws u^(1/w) and the
        // largest draws go first (Efraimidis–Spirakis), from one seeded stream per ranking.
        let mut rng = SplitMix64(context.roll);
        let mut keyed: Vec<(f64, usize)> = candidates
            .iter()
            .enumerate()
            .map(|(idx, view)| {
                let weight = f64::from(view.weight.max(1));
                (rng.next_unit().powf(1.0 / weight), idx)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, idx)| idx).collect()
    }
}

/// See [`StrategyKind::LeastLoaded`].
#[derive(Debug)]
pub struct LeastLoaded;

impl Strategy for LeastLoaded {
    fn rank(&self, candidates: &[CandidateView<'_>], _: &RankContext<'_>) -> Vec<usize> {
        let mut order = by_position(candidates);
        order.sort_by_key(|&idx| (candidates[idx].in_flight, candidates[idx].position));
        order
    }
}

/// See [`StrategyKind::Fastest`].
#[derive(Debug)]
pub struct Fastest;

impl Strategy for Fastest {
    fn rank(&self, candidates: &[CandidateView<'_>], _: &RankContext<'_>) -> Vec<usize> {
        let mut order = by_position(candidates);
        order.sort_by_key(|&idx| {
            let view = &candidates[idx];
            (view.latency.unwrap_or(Duration::ZERO), view.position)
        });
        order
    }
}

/// See [`StrategyKind::CostOptimal`].
#[derive(Debug)]
pub struct CostOptimal;

impl Strategy for CostOptimal {
    fn rank(&self, candidates: &[CandidateView<'_>], _: &RankContext<'_>) -> Vec<usize> {
        let mut order = by_position(candidates);
        order.sort_by(|&a, &b| {
            let (a, b) = (&candidates[a], &candidates[b]);
            let cost = |view: &CandidateView<'_>| view.estimated_cost.unwrap_or(f64::INFINITY);
            cost(a).total_cmp(&cost(b)).then(a.position.cmp(&b.position))
        });
        order
    }
}

/// See [`StrategyKind::Priority`].
#[derive(Debug)]
pub struct Priority;

impl Strategy for Priority {
    fn rank(&self, candidates: &[CandidateView<'_>], _: &RankContext<'_>) -> Vec<usize> {
        by_position(candidates)
    }
}

/// See [`StrategyKind::Adaptive`].
#[derive(Debug)]
pub struct Adaptive;

impl Strategy for Adaptive {
    fn rank(&self, candidates: &[CandidateView<'_>], context: &RankContext<'_>) -> Vec<usize> {
        debug_assert_eq!(candidates.len(), context.candidates.len());
        order_by_score(&context.scorer.explore(context.candidates))
    }
}

fn by_position(candidates: &[CandidateView<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&idx| candidates[idx].position);
    order
}

/// A tiny seeded generator (SplitMix64): enough for jitter, ramp-up rolls and weighted
/// orders, and reproducible from one seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::ManualClock;
    use switchyard_score::AdaptiveScorer;

    fn views(candidates: &[Candidate]) -> Vec<CandidateView<'_>> {
        candidates
            .iter()
            .enumerate()
            .map(|(position, candidate)| CandidateView {
                candidate,
                position,
                in_flight: 0,
                latency: None,
                weight: 1,
                estimated_cost: None,
            })
            .collect()
    }

    fn candidates(n: usize) -> Vec<Candidate> {
        (0..n).map(|i| Candidate::new("p", format!("k{i}"), "m")).collect()
    }

    fn rank_with(strategy: &dyn Strategy, views: &[CandidateView<'_>], roll: u64) -> Vec<usize> {
        let scorer = AdaptiveScorer::new(Arc::new(ManualClock::default()));
        let request = ChatRequest::from_user("hi");
        let candidates: Vec<Candidate> = views.iter().map(|view| view.candidate.clone()).collect();
        strategy.rank(
            views,
            &RankContext { request: &request, scorer: &scorer, candidates: &candidates, roll },
        )
    }

    #[test]
    fn round_robin_starts_one_further_each_time() {
        let candidates = candidates(3);
        let views = views(&candidates);
        let strategy = RoundRobin::default();
        let firsts: Vec<usize> = (0..6).map(|_| rank_with(&strategy, &views, 0)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_loaded_fastest_and_cheapest_order_by_their_measure() {
        let candidates = candidates(3);
        let mut views = views(&candidates);
        views[0].in_flight = 4;
        views[1].in_flight = 0;
        views[2].in_flight = 2;
        assert_eq!(rank_with(&LeastLoaded, &views, 0), [1, 2, 0]);
        views[0].latency = Some(Duration::from_millis(900));
        views[1].latency = Some(Duration::from_millis(1500));
        views[2].latency = None;
        assert_eq!(rank_with(&Fastest, &views, 0), [2, 0, 1], "unmeasured first, then fastest");
        views[0].estimated_cost = Some(0.002);
        views[1].estimated_cost = Some(0.0);
        views[2].estimated_cost = None;
        assert_eq!(rank_with(&CostOptimal, &views, 0), [1, 0, 2], "free, cheap, unpriced");
        assert_eq!(rank_with(&Priority, &views, 0), [0, 1, 2]);
    }

    #[test]
    fn weighted_follows_the_weights() {
        let candidates = candidates(2);
        let mut views = views(&candidates);
        views[0].weight = 3;
        views[1].weight = 1;
        let mut seed = SplitMix64(7);
        let n_first =
            (0..4000).filter(|_| rank_with(&Weighted, &views, seed.next_u64())[0] == 0).count();
        // P(first) = 3/4 for weights 3:1.
        assert!((2850..=3150).contains(&n_first), "{n_first} of 4000");
    }

    #[test]
    fn names_round_trip() {
        for kind in [
            StrategyKind::RoundRobin,
            StrategyKind::Weighted,
            StrategyKind::LeastLoaded,
            StrategyKind::Fastest,
            StrategyKind::CostOptimal,
            StrategyKind::Priority,
            StrategyKind::Adaptive,
        ] {
            assert_eq!(StrategyKind::from_name(kind.name()).map(|k| k.name()), Some(kind.name()));
        }
        assert!(StrategyKind::from_name("random").is_none());
    }
}
