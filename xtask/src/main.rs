//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `test`: formatting, clippy, then every test of the workspace, with the services the tests
//!   need started first (a real `redis-server` on a free loopback port, and a Python virtual
//!   environment in `target/py` with the official `openai` SDK and coverage.py, passed as
//!   `SWITCHYARD_TEST_PYTHON`, and Debian's `chromium` with `chromedriver` for the status page's
//!   browser test, installed with apt when missing). This is the README's test command and what
//!   CI runs.
//! - `bench`: the criterion benches, then the end-to-end run (`e2e.rs`: the release gateway in
//!   front of a mock upstream, against that upstream called directly). `bench e2e [flags]` runs
//!   only the end-to-end part; `bench <filter>` only the criterion benches matching the filter.
//! - `sim [--runs N] [--via router|gateway] [--limits as-file|declared|undeclared|both]
//!   [SCENARIO...]`: the goodput simulator (`sim/`): the router, in process or as the release
//!   gateway over HTTP, against mock upstreams enforcing each scenario's limits and giving its
//!   retry hints, in real time, next to the oracle.
//!
//! xtask may print and may use `anyhow`: it is a developer's tool, not a library.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "xtask reports to a terminal")]

mod chromium;
mod e2e;
mod python;
mod redis;
mod sim;

use std::env;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_else(|| "help".to_owned());
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "test" => test(&rest),
        "bench" => bench(&rest),
        "sim" => sim::sim(&rest),
        "sim-run" => sim::sim_run(&rest),
        "help" | "--help" | "-h" => {
            println!("cargo xtask test [--no-lint] [-- <cargo test args>]   every check and test");
            println!(
                "cargo xtask bench [<criterion filter>]   criterion benches; with no filter, then e2e"
            );
            println!("cargo xtask bench e2e [--soak-secs 60]    the gateway end to end, vs direct");
            println!(
                "cargo xtask sim [--runs N] [--via router|gateway] \
                 [--limits as-file|declared|undeclared|both] [SCENARIO...]   goodput under quota"
            );
            Ok(())
        }
        other => bail!("unknown task {other:?}; try `cargo xtask help`"),
    }
}

fn test(args: &[String]) -> Result<()> {
    let (ours, passthrough) = match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let lint = !ours.iter().any(|arg| arg == "--no-lint");
    if lint {
        cargo(&["fmt", "--all", "--check"]).context("formatting differs: run `cargo fmt --all`")?;
        cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
            .context("clippy found warnings")?;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = python::ensure_venv(&root).context("preparing the Python SDK for the tests")?;
    let browser = chromium::ensure_installed().context("preparing chromium for the UI test")?;
    let redis = redis::RedisServer::start().context("starting redis-server for the tests")?;
    println!("xtask: redis-server on {}", redis.url());
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(passthrough.iter().map(String::as_str));
    let status = cargo_command()
        .args(&test_args)
        .env("SWITCHYARD_TEST_REDIS_URL", redis.url())
        .env("SWITCHYARD_TEST_PYTHON", &python)
        .env("SWITCHYARD_TEST_CHROMIUM", &browser.browser)
        .env("SWITCHYARD_TEST_CHROMEDRIVER", &browser.driver)
        .status()
        .context("running cargo test")?;
    drop(redis);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if args.first().is_some_and(|arg| arg == "e2e") {
        return e2e::run(&root, &e2e::Options::parse(&args[1..])?);
    }
    criterion(args)?;
    if args.is_empty() {
        e2e::run(&root, &e2e::Options::default())?;
    }
    Ok(())
}

fn criterion(args: &[String]) -> Result<()> {
    let redis = redis::RedisServer::start().context("starting redis-server for the benches")?;
    let mut bench_args = vec!["bench", "--package", "switchyard-benches"];
    if !args.is_empty() {
        bench_args.push("--");
        bench_args.extend(args.iter().map(String::as_str));
    }
    let status = cargo_command()
        .args(&bench_args)
        .env("SWITCHYARD_TEST_REDIS_URL", redis.url())
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = cargo_command().args(args).status().context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn cargo_bin() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// `cargo`, without the variables `cargo run` set for xtask itself (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR=.../xtask`, ...). Build scripts watch some of them (ring's does), so
/// a child cargo that inherited them rebuilt ring and everything above it on every
/// `cargo xtask test`, and the next plain `cargo` build rebuilt it all again.
fn cargo_command() -> Command {
    let mut command = Command::new(cargo_bin());
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo_run = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE";
        if set_by_cargo_run {
            command.env_remove(name);
        }
    }
    command
}

#[cfg(test)]
mod arch;
