//! `cargo xtask sim [--runs N] [--via router|gateway] [--limits as-file|declared|undeclared|both]
//! [SCENARIO...]`: runs the real router, in process or as the release `switchyard serve` over
//! HTTP (`gateway.rs`), against `switchyard-mock` upstreams over loopback HTTP that enforce
//! exactly the scenario's limits and give its retry hints, in real time, and reports goodput,
//! wasted upstream calls, free share and cost against the oracle, and client latency.
//! Scenarios are `sim/<name>.toml` (see `docs/sim.md`); each run writes
//! `target/sim/<name>-<limits>-<via>-run<N>.json`, and the closing table goes to
//! `target/sim/summary.txt`.
//!
//! `cargo xtask sim` builds and runs this same program in release (`sim-run`), so the
//! router's overhead is the one users get.

mod gateway;
mod oracle;
mod report;
mod run;
mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use self::report::Summary;
use self::run::GatewayFiles;
use self::scenario::{Scenario, Via};

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

/// `cargo xtask sim ...`: builds the simulator (and, unless `--via router`, the gateway) in
/// release and runs it.
pub(crate) fn sim(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let router_only = args.windows(2).any(|pair| pair[0] == "--via" && pair[1] == "router");
    let mut build = vec!["build", "--release", "--quiet", "--package", "xtask"];
    if !router_only {
        build.extend(["--package", "switchyard-cli"]);
    }
    let status = Command::new(&cargo)
        .args(&build)
        .current_dir(root())
        .status()
        .context("building the simulator in release")?;
    if !status.success() {
        bail!("building the simulator failed ({status})");
    }
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

/// Which way the limits are told, per `--limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitsMode {
    AsFile,
    Declared,
    Undeclared,
    Both,
}

impl LimitsMode {
    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "as-file" => Self::AsFile,
            "declared" => Self::Declared,
            "undeclared" => Self::Undeclared,
            "both" => Self::Both,
            other => bail!("--limits is as-file, declared, undeclared or both, not {other:?}"),
        })
    }

    /// The `declare_limits` values to run a scenario with.
    fn values(self, scenario: &Scenario) -> Vec<bool> {
        match self {
            Self::AsFile => vec![scenario.router.declare_limits],
            Self::Declared => vec![true],
            Self::Undeclared => vec![false],
            Self::Both => vec![true, false],
        }
    }
}

/// The parsed command line of `sim-run`.
struct Options {
    runs: usize,
    via: Option<Via>,
    limits: LimitsMode,
    names: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options =
            Self { runs: 1, via: None, limits: LimitsMode::AsFile, names: Vec::new() };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--runs" => options.runs = value()?.parse().context("--runs N")?,
                "--via" => {
                    options.via = Some(match value()?.as_str() {
                        "router" => Via::Router,
                        "gateway" => Via::Gateway,
                        other => bail!("--via is router or gateway, not {other:?}"),
                    });
                }
                "--limits" => options.limits = LimitsMode::parse(value()?)?,
                flag if flag.starts_with("--") => {
                    bail!("unknown flag {flag:?}; sim takes --runs, --via, --limits")
                }
                name => options.names.push(name.to_owned()),
            }
        }
        if options.runs == 0 {
            bail!("--runs must be at least 1");
        }
        Ok(options)
    }
}

/// The simulator proper (`sim-run`), in release.
pub(crate) fn sim_run(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let dir = root().join("sim");
    let paths: Vec<PathBuf> = if options.names.is_empty() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        paths
    } else {
        options
            .names
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
    let files =
        GatewayFiles { binary: gateway::binary_beside_self()?, dir: out_dir.join("gateway") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for scenario in &scenarios {
        let via = options.via.unwrap_or(scenario.router.via);
        for declare_limits in options.limits.values(scenario) {
            let mut scenario = scenario.clone();
            scenario.router.declare_limits = declare_limits;
            let limits = if declare_limits { "declared" } else { "undeclared" };
            if via == Via::Gateway
                && let Err(error) =
                    gateway::config(&scenario, &vec![String::new(); scenario.providers.len()])
            {
                println!("sim: {} ({limits}, gateway) skipped: {error:#}", scenario.name);
                skipped.push(format!("{} {limits} gateway: {error:#}", scenario.name));
                continue;
            }
            for n_run in 1..=options.runs {
                let label = format!("{}-{limits}-{}-run{n_run}", scenario.name, via.name());
                println!("sim: {label} — {}", scenario.description);
                let arrivals = arrivals(&scenario);
                let measured =
                    runtime.block_on(run::run(&scenario, &arrivals, via, &files, &label))?;
                let oracle = oracle::compute(&scenario.shifted(measured.lead_secs), &arrivals);
                let report = Summary::new(&scenario, via.name(), &measured, &oracle);
                let path = out_dir.join(format!("{label}.json"));
                let json = serde_json::to_string_pretty(&report.json())?;
                std::fs::write(&path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
                report.print_detail();
                reports.push(report);
            }
        }
    }
    println!();
    let table = Summary::table(&reports);
    print!("{table}");
    for line in &skipped {
        println!("skipped: {line}");
    }
    let path = out_dir.join("summary.txt");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nwritten: {}/<scenario>-<limits>-<via>-run<N>.json and summary.txt",
        out_dir.display()
    );
    Ok(())
}
