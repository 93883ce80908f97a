//! The oracle: the best a router that knew every limit exactly could do with the same
//! arrivals. It serves each arrival, in order, on the free quota unit with the most headroom
//! that has room; with `prefer = "cost"` it may hold an arrival until a free unit has room
//! within its deadline; otherwise it pays the cheapest paid unit with room; in a burst it may
//! hold an arrival up to the bounded wait. A unit is a key, or a group of keys sharing one
//! quota: rotating among a group's keys gains nothing here either.
//!
//! Its figures are an upper bound for free requests served (it never loses capacity to
//! latency, headers or a learning router) and a lower bound for cost, up to the greedy
//! choice of a unit (exact for identical units, which every shipped scenario uses).

use super::Arrival;
use super::scenario::{FaultSpec, LimitSpec, LimitUnit, PriceSpec, Scenario, WindowKind};

/// What the oracle serves.
#[derive(Clone, Debug, Default)]
pub(crate) struct Oracle {
    pub(crate) served: u64,
    pub(crate) free: u64,
    pub(crate) paid: u64,
    pub(crate) failed: u64,
    pub(crate) cost: f64,
    /// Served per provider.
    pub(crate) by_provider: std::collections::BTreeMap<String, u64>,
}

struct Meter {
    spec: LimitSpec,
    /// Admissions as (time in seconds, amount), in no particular order.
    taken: Vec<(f64, u64)>,
}

impl Meter {
    fn amount(&self, words: u32, max_tokens: u32) -> u64 {
        match self.spec.unit {
            LimitUnit::Requests => 1,
            LimitUnit::Tokens => tokens(words, max_tokens),
        }
    }

    fn sum(&self, from: f64, until: f64) -> u64 {
        self.taken
            .iter()
            .filter(|(at, _)| *at >= from && *at < until)
            .map(|(_, amount)| amount)
            .sum()
    }

    /// Whether `need` more at `x` keeps every window within the limit.
    fn fits(&self, x: f64, need: u64) -> bool {
        let length = self.spec.per_secs;
        let limit = self.spec.amount;
        match self.spec.kind {
            WindowKind::Fixed => {
                let (start, end) = self.fixed_bounds(x);
                self.sum(start, end) + need <= limit
            }
            WindowKind::Sliding => {
                // The windows [s, s + length) holding x; their count changes only where a
                // point enters or leaves, so those starts are enough.
                let mut starts = vec![x - length + 1e-9, x];
                for &(at, _) in &self.taken {
                    if at > x - length && at <= x {
                        starts.push(at);
                    }
                    if at > x && at <= x + length {
                        starts.push(at - length + 1e-9);
                    }
                }
                starts.into_iter().all(|s| self.sum(s, s + length) + need <= limit)
            }
        }
    }

    fn fixed_bounds(&self, x: f64) -> (f64, f64) {
        let length = self.spec.per_secs;
        let n = ((x - self.spec.offset_secs) / length).floor();
        let start = self.spec.offset_secs + n * length;
        (start, start + length)
    }

    /// What is left now, as a fraction of the limit.
    fn headroom(&self, x: f64) -> f64 {
        let (from, until) = match self.spec.kind {
            WindowKind::Fixed => self.fixed_bounds(x),
            WindowKind::Sliding => (x - self.spec.per_secs + 1e-9, x + 1e-9),
        };
        let used = self.sum(from, until);
        self.spec.amount.saturating_sub(used) as f64 / self.spec.amount as f64
    }

    /// Times after `x` when this meter may have room again.
    fn frees(&self, x: f64, out: &mut Vec<f64>) {
        match self.spec.kind {
            WindowKind::Fixed => out.push(self.fixed_bounds(x).1),
            WindowKind::Sliding => {
                for &(at, _) in &self.taken {
                    let leaves = at + self.spec.per_secs;
                    if leaves > x {
                        out.push(leaves);
                    }
                }
            }
        }
    }
}

/// A request's tokens as the mock counts them: its prompt (four characters a token) and the
/// echoed answer, capped at `max_tokens`. An estimate good to a few tokens.
fn tokens(words: u32, max_tokens: u32) -> u64 {
    let prompt = u64::from(words) * 7 / 4 + 1;
    prompt + (prompt + 3).min(u64::from(max_tokens))
}

struct Unit {
    provider: String,
    free: bool,
    price: PriceSpec,
    meters: Vec<Meter>,
    /// When each of its keys is revoked (`None`: never).
    revoked: Vec<Option<f64>>,
    /// Spans when every call fails.
    down: Vec<(f64, f64)>,
    latency_secs: f64,
}

impl Unit {
    fn usable(&self, x: f64) -> bool {
        self.revoked.iter().any(|at| at.is_none_or(|at| x < at))
            && !self.down.iter().any(|&(from, until)| x >= from && x < until)
    }

    fn fits(&self, x: f64, arrival: &Arrival, max_tokens: u32) -> bool {
        self.usable(x)
            && self
                .meters
                .iter()
                .all(|meter| meter.fits(x, meter.amount(arrival.words, max_tokens)))
    }

    fn headroom(&self, x: f64) -> f64 {
        self.meters.iter().map(|meter| meter.headroom(x)).fold(1.0, f64::min)
    }

    fn take(&mut self, x: f64, arrival: &Arrival, max_tokens: u32) {
        for meter in &mut self.meters {
            let amount = meter.amount(arrival.words, max_tokens);
            meter.taken.push((x, amount));
        }
    }

    /// The first time in `[x, until]` it has room, if any.
    fn earliest(&self, x: f64, until: f64, arrival: &Arrival, max_tokens: u32) -> Option<f64> {
        let mut times = vec![x];
        for meter in &self.meters {
            meter.frees(x, &mut times);
        }
        times.extend(self.down.iter().map(|&(_, end)| end).filter(|&end| end > x));
        times.retain(|&at| at <= until);
        times.sort_by(f64::total_cmp);
        times.into_iter().find(|&at| self.fits(at, arrival, max_tokens))
    }
}

/// The oracle's figures for `scenario` with these arrivals.
pub(crate) fn compute(scenario: &Scenario, arrivals: &[Arrival]) -> Oracle {
    let max_tokens = scenario.demand.max_tokens;
    let mut units: Vec<Unit> = Vec::new();
    for provider in &scenario.providers {
        let down: Vec<(f64, f64)> = provider
            .faults
            .iter()
            .filter_map(|fault| match *fault {
                FaultSpec::ServerErrors { from_secs, until_secs, probability }
                    if probability >= 1.0 =>
                {
                    Some((from_secs, until_secs))
                }
                _ => None,
            })
            .collect();
        for keys in provider.units() {
            units.push(Unit {
                provider: provider.name.clone(),
                free: provider.price.is_free(),
                price: provider.price,
                meters: provider
                    .limits
                    .iter()
                    .map(|spec| Meter { spec: *spec, taken: Vec::new() })
                    .collect(),
                revoked: keys.iter().map(|&n| provider.revoked_at(n)).collect(),
                down: down.clone(),
                latency_secs: provider.latency_ms[0] as f64 / 1000.0,
            });
        }
    }
    let deadline = scenario.demand.deadline_secs;
    let max_wait = scenario.router.max_wait_secs.min(deadline);
    let prefer_cost = scenario.router.prefer == "cost";
    let mut oracle = Oracle::default();
    for arrival in arrivals {
        let x = arrival.at_secs;
        let best_free = units
            .iter()
            .enumerate()
            .filter(|(_, unit)| unit.free && unit.fits(x, arrival, max_tokens))
            .max_by(|(_, a), (_, b)| a.headroom(x).total_cmp(&b.headroom(x)))
            .map(|(idx, _)| (idx, x));
        let waited_free = || {
            units
                .iter()
                .enumerate()
                .filter(|(_, unit)| unit.free)
                .filter_map(|(idx, unit)| {
                    let until = x + deadline - unit.latency_secs;
                    unit.earliest(x, until, arrival, max_tokens).map(|at| (idx, at))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
        };
        let paid_now = || {
            units
                .iter()
                .enumerate()
                .filter(|(_, unit)| !unit.free && unit.fits(x, arrival, max_tokens))
                .min_by(|(_, a), (_, b)| a.price.per_request.total_cmp(&b.price.per_request))
                .map(|(idx, _)| (idx, x))
        };
        let any_after_wait = || {
            units
                .iter()
                .enumerate()
                .filter_map(|(idx, unit)| {
                    unit.earliest(x, x + max_wait, arrival, max_tokens).map(|at| (idx, at))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1).then(units[b.0].free.cmp(&units[a.0].free)))
        };
        let choice = best_free
            .or_else(|| if prefer_cost { waited_free() } else { None })
            .or_else(paid_now)
            .or_else(|| if max_wait > 0.0 { any_after_wait() } else { None });
        let Some((idx, at)) = choice else {
            oracle.failed += 1;
            continue;
        };
        units[idx].take(at, arrival, max_tokens);
        oracle.served += 1;
        *oracle.by_provider.entry(units[idx].provider.clone()).or_insert(0) += 1;
        if units[idx].free {
            oracle.free += 1;
        } else {
            oracle.paid += 1;
            let prompt = u64::from(arrival.words) * 7 / 4 + 1;
            let completion = (prompt + 3).min(u64::from(max_tokens));
            oracle.cost += units[idx].price.cost(prompt, completion);
        }
    }
    oracle
}
