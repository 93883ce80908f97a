//! A run's figures next to the oracle's (`Summary`), and the closing table: every scenario
//! with its limits declared and not, each over its runs (the spread is the lowest and highest
//! of the runs), with PASS/MISS against the scenario's targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::oracle::Oracle;
use super::run::Measured;
use super::scenario::{Scenario, Targets};

/// A run's figures next to the oracle's.
pub(crate) struct Summary {
    name: String,
    /// `declared` or `undeclared`.
    limits: &'static str,
    /// `router` or `gateway`.
    via: &'static str,
    targets: Option<Targets>,
    sent: u64,
    served: u64,
    failures: BTreeMap<String, u64>,
    upstream_calls: u64,
    upstream_429s: u64,
    calls_in_cooldown: u64,
    free: u64,
    paid: u64,
    cost: f64,
    oracle: Oracle,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    wall_secs: f64,
    /// Failures that said when to retry, and whether every such time was within the longest
    /// window from the failure.
    retry_stated: u64,
    retry_sane: bool,
    by_provider: BTreeMap<String, u64>,
    refusals: BTreeMap<String, u64>,
    by_unit_limit: BTreeMap<String, u64>,
    n_unit_limits: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Summary {
    pub(crate) fn new(
        scenario: &Scenario,
        via: &'static str,
        measured: &Measured,
        oracle: &Oracle,
    ) -> Self {
        let free_providers: Vec<&str> = scenario
            .providers
            .iter()
            .filter(|provider| provider.price.is_free())
            .map(|provider| provider.name.as_str())
            .collect();
        let mut failures = BTreeMap::new();
        let (mut served, mut free, mut paid, mut cost) = (0, 0, 0, 0.0);
        let (mut retry_stated, mut retry_sane) = (0, true);
        let mut by_provider = BTreeMap::new();
        for result in &measured.results {
            match &result.outcome {
                Ok((provider, answer_cost)) => {
                    served += 1;
                    *by_provider.entry(provider.clone()).or_insert(0) += 1;
                    if free_providers.contains(&provider.as_str()) {
                        free += 1;
                    } else {
                        paid += 1;
                        cost += answer_cost;
                    }
                }
                Err(failed) => {
                    *failures.entry(failed.code.clone()).or_insert(0) += 1;
                    if let Some(retry_in) = failed.retry_in {
                        retry_stated += 1;
                        retry_sane &=
                            retry_in >= -0.05 && retry_in <= measured.longest_window_secs + 0.5;
                    }
                }
            }
        }
        let mut latencies: Vec<f64> =
            measured.results.iter().map(|r| r.latency.as_secs_f64() * 1000.0).collect();
        latencies.sort_by(f64::total_cmp);
        Self {
            name: scenario.name.clone(),
            limits: if scenario.router.declare_limits { "declared" } else { "undeclared" },
            via,
            targets: scenario.targets,
            sent: measured.results.len() as u64,
            served,
            failures,
            upstream_calls: measured.upstream_calls,
            upstream_429s: measured.upstream_429s,
            calls_in_cooldown: measured.calls_in_cooldown,
            free,
            paid,
            cost,
            oracle: oracle.clone(),
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
            wall_secs: measured.wall_secs,
            retry_stated,
            retry_sane,
            by_provider,
            refusals: measured.refusals.clone(),
            by_unit_limit: measured.by_unit_limit.clone(),
            n_unit_limits: measured.n_unit_limits,
        }
    }

    fn free_vs_oracle(&self) -> f64 {
        self.free as f64 / self.oracle.free.max(1) as f64
    }

    fn cost_vs_oracle(&self) -> f64 {
        if self.oracle.cost > 0.0 {
            self.cost / self.oracle.cost
        } else if self.cost > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }

    /// The most 429s one quota unit took for one of its limits.
    fn worst_unit_limit(&self) -> u64 {
        self.by_unit_limit.values().copied().max().unwrap_or(0)
    }

    /// Each target with whether this run meets it.
    fn verdicts(&self) -> Vec<(String, bool)> {
        let Some(targets) = self.targets else { return Vec::new() };
        vec![
            (
                format!("goodput >= {:.0}%", targets.goodput * 100.0),
                self.goodput() >= targets.goodput,
            ),
            (
                format!("free >= {:.0}% of oracle", targets.free_vs_oracle * 100.0),
                self.free_vs_oracle() >= targets.free_vs_oracle,
            ),
            (
                format!("cost <= oracle +{:.0}%", (targets.cost_vs_oracle - 1.0) * 100.0),
                self.cost_vs_oracle() <= targets.cost_vs_oracle + 1e-9,
            ),
            (
                format!("429s <= {} per unit and limit", targets.max_429s_per_unit_limit),
                self.worst_unit_limit() <= targets.max_429s_per_unit_limit,
            ),
        ]
    }

    fn goodput(&self) -> f64 {
        self.served as f64 / self.sent.max(1) as f64
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "scenario": self.name,
            "limits": self.limits,
            "via": self.via,
            "sent": self.sent,
            "served": self.served,
            "goodput": self.goodput(),
            "failures": self.failures,
            "upstream_calls": self.upstream_calls,
            "upstream_429s": self.upstream_429s,
            "calls_in_known_cooldown": self.calls_in_cooldown,
            "free_served": self.free,
            "paid_served": self.paid,
            "paid_share": self.paid as f64 / self.served.max(1) as f64,
            "cost": self.cost,
            "oracle": {
                "served": self.oracle.served,
                "free_served": self.oracle.free,
                "paid_served": self.oracle.paid,
                "failed": self.oracle.failed,
                "cost": self.oracle.cost,
            },
            "free_vs_oracle": self.free_vs_oracle(),
            "cost_vs_oracle": self.cost_vs_oracle(),
            "upstream_429s_by_unit_and_limit": self.by_unit_limit,
            "unit_limits": self.n_unit_limits,
            "targets": self.verdicts().into_iter().map(|(what, met)| json!({"target": what, "met": met})).collect::<Vec<_>>(),
            "latency_ms": { "p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms },
            "failures_with_retry_time": self.retry_stated,
            "retry_times_within_longest_window": self.retry_sane,
            "wall_secs": self.wall_secs,
            "served_by_provider": self.by_provider,
            "oracle_free_by_provider": self.oracle.by_provider,
            "upstream_refusals": self.refusals,
        })
    }

    pub(crate) fn print_detail(&self) {
        let failures: Vec<String> =
            self.failures.iter().map(|(code, n)| format!("{code}={n}")).collect();
        println!(
            "  sent {} served {} ({:.2}%) failures [{}] upstream calls {} 429s {} in-cooldown {} \
             wall {:.1}s",
            self.sent,
            self.served,
            self.goodput() * 100.0,
            failures.join(" "),
            self.upstream_calls,
            self.upstream_429s,
            self.calls_in_cooldown,
            self.wall_secs,
        );
        println!(
            "  free {} (oracle {}, {:.2}%) paid {} cost ${:.4} (oracle ${:.4}) oracle served {} \
             failed {}; p50 {:.0} ms p99 {:.0} ms max {:.0} ms; retry times stated {} sane {}",
            self.free,
            self.oracle.free,
            self.free as f64 * 100.0 / self.oracle.free.max(1) as f64,
            self.paid,
            self.cost,
            self.oracle.cost,
            self.oracle.served,
            self.oracle.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.retry_stated,
            self.retry_sane,
        );
        println!(
            "  served by provider {:?} (oracle {:?})",
            self.by_provider, self.oracle.by_provider
        );
        if !self.refusals.is_empty() {
            println!("  upstream refusals {:?}", self.refusals);
        }
        if !self.by_unit_limit.is_empty() {
            println!(
                "  429s by quota unit and limit (of {} unit-limits) {:?}",
                self.n_unit_limits, self.by_unit_limit
            );
        }
        for (what, met) in self.verdicts() {
            println!("  {} {what}", if met { "PASS" } else { "MISS" });
        }
    }

    /// The closing table: one row per scenario, via and limits, each figure over its runs as
    /// `low-high`, then PASS/MISS per target (MISS when any run misses).
    pub(crate) fn table(reports: &[Self]) -> String {
        let mut out = String::new();
        let mut groups: BTreeMap<(String, &str, &str), Vec<&Self>> = BTreeMap::new();
        for report in reports {
            groups
                .entry((report.name.clone(), report.via, report.limits))
                .or_default()
                .push(report);
        }
        writeln!(
            out,
            "{:<32} {:<7} {:<10} {:>4} {:>13} {:>9} {:>9} {:>9} {:>13} {:>13} {:>7} {:>5} {:>6}",
            "scenario",
            "via",
            "limits",
            "runs",
            "goodput %",
            "free",
            "oracle",
            "paid",
            "free/oracle %",
            "cost/oracle %",
            "429s",
            "worst",
            "p50ms"
        )
        .expect("invariant: writing to a String cannot fail");
        for ((name, via, limits), runs) in &groups {
            writeln!(
            out,
                "{:<32} {:<7} {:<10} {:>4} {:>13} {:>9} {:>9} {:>9} {:>13} {:>13} {:>7} {:>5} {:>6.0}",
                name,
                via,
                limits,
                runs.len(),
                spread(runs, 2, |r| r.goodput() * 100.0),
                spread(runs, 0, |r| r.free as f64),
                spread(runs, 0, |r| r.oracle.free as f64),
                spread(runs, 0, |r| r.paid as f64),
                spread(runs, 1, |r| r.free_vs_oracle() * 100.0),
                spread(runs, 1, |r| r.cost_vs_oracle() * 100.0),
                spread(runs, 0, |r| r.upstream_429s as f64),
                spread(runs, 0, |r| r.worst_unit_limit() as f64),
                runs.iter().map(|r| r.p50_ms).fold(0.0, f64::max),
            )
            .expect("invariant: writing to a String cannot fail");
            let Some(first) = runs.first() else { continue };
            let verdicts: Vec<String> = first
                .verdicts()
                .iter()
                .enumerate()
                .map(|(idx, (what, _))| {
                    let met = runs.iter().all(|run| run.verdicts()[idx].1);
                    format!("{} {what}", if met { "PASS" } else { "MISS" })
                })
                .collect();
            if !verdicts.is_empty() {
                writeln!(out, "{:<32}   targets: {}", "", verdicts.join("; "))
                    .expect("invariant: writing to a String cannot fail");
            }
        }
        out
    }
}

/// `low-high` of a figure over runs (`low` alone when they agree), with `decimals` places.
fn spread(runs: &[&Summary], decimals: usize, figure: impl Fn(&Summary) -> f64) -> String {
    let values: Vec<f64> = runs.iter().map(|run| figure(run)).collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if (high - low).abs() < 1e-9 {
        format!("{low:.decimals$}")
    } else {
        format!("{low:.decimals$}-{high:.decimals$}")
    }
}
