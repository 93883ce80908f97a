//! `cargo xtask sim [SCENARIO...]`: runs the real router in process against
//! `switchyard-mock` upstreams over loopback HTTP that enforce exactly the scenario's limits,
//! in real time, and reports goodput, wasted upstream calls, free share and cost against the
//! oracle, and client latency. Scenarios are `sim/<name>.toml` (see `docs/sim.md`); each
//! writes `target/sim/<name>.json`.
//!
//! `cargo xtask sim` builds and runs this same program in release (`sim-run`), so the
//! router's overhead is the one users get.

mod oracle;
mod run;
mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use self::scenario::Scenario;

/// One client request of the demand: when it arrives and how long its prompt is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    pub(crate) at_secs: f64,
    pub(crate) words: u32,
}

/// A tiny seeded generator (SplitMix64): the same arrivals from the same seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The demand's arrivals: Poisson at the scenario's rate, prompt lengths uniform.
pub(crate) fn arrivals(scenario: &Scenario) -> Vec<Arrival> {
    let demand = &scenario.demand;
    let mut rng = SplitMix64(scenario.seed);
    let mut at_secs = 0.0;
    let mut arrivals = Vec::new();
    loop {
        let unit = rng.next_unit().max(f64::MIN_POSITIVE);
        at_secs += -unit.ln() / demand.rate_per_sec;
        if at_secs >= demand.duration_secs {
            break;
        }
        let [low, high] = demand.prompt_words;
        let span = u64::from(high - low) + 1;
        let words = low + u32::try_from(rng.next_u64() % span).unwrap_or(0);
        arrivals.push(Arrival { at_secs, words });
    }
    arrivals
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo xtask sim [--runs N] [SCENARIO...]`: builds the simulator in release and runs it.
pub(crate) fn sim(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["run", "--release", "--quiet", "--package", "xtask", "--", "sim-run"])
        .args(args)
        .current_dir(root())
        .status()
        .context("running the simulator in release")?;
    if !status.success() {
        bail!("the simulator failed ({status})");
    }
    Ok(())
}

/// The simulator proper (`sim-run`), in release.
pub(crate) fn sim_run(args: &[String]) -> Result<()> {
    let mut runs = 1;
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().context("--runs needs a number")?.parse().context("--runs N")?;
        } else {
            names.push(arg.clone());
        }
    }
    let dir = root().join("sim");
    let paths: Vec<PathBuf> = if names.is_empty() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        paths
    } else {
        names
            .iter()
            .map(|name| {
                let path = PathBuf::from(name);
                if path.exists() { path } else { dir.join(format!("{name}.toml")) }
            })
            .collect()
    };
    let scenarios: Vec<Scenario> =
        paths.iter().map(|path| Scenario::load(path)).collect::<Result<_>>()?;
    let out_dir = root().join("target").join("sim");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut reports = Vec::new();
    for scenario in &scenarios {
        for n_run in 0..runs {
            println!("sim: {} — {}", scenario.name, scenario.description);
            let arrivals = arrivals(scenario);
            let oracle = oracle::compute(scenario, &arrivals);
            let report = runtime.block_on(run::run(scenario, &arrivals))?;
            let report = run::Summary::new(scenario, &report, &oracle);
            let suffix = if runs > 1 { format!("-run{}", n_run + 1) } else { String::new() };
            let path = out_dir.join(format!("{}{suffix}.json", scenario.name));
            let json = serde_json::to_string_pretty(&report.json())?;
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
            report.print_detail();
            reports.push(report);
        }
    }
    println!();
    run::Summary::print_table(&reports);
    println!("\nwritten: {}/<scenario>.json", out_dir.display());
    Ok(())
}
