//! `cargo xtask bench e2e`: the gateway measured end to end, as users measure it.
//!
//! Three processes on this machine: the fastest `switchyard-mock` upstream (`e2e-upstream`,
//! OpenAI wire, no latency, one valid key without limits), the real release `switchyard serve`
//! in front of it, and the clients. Every figure is taken twice, through the gateway and
//! against the same upstream called directly, with the same client and the same load:
//!
//! - latency at one connection: `e2e-client` alternates sequential requests between the two
//!   (reqwest, kept alive, the answer parsed as JSON) and reports nearest-rank percentiles;
//!   the added latency is the gateway's percentile minus the direct one;
//! - the most requests a second while p99 stays under 5 ms: `oha` sends at a fixed rate
//!   (open loop, latency counted from when each request was due), the rate stepped up until
//!   two steps in a row miss p99, drop a request or fall behind the rate;
//! - CPU per request: the process's own utime + stime (`/proc/<pid>/stat`) across a fixed
//!   number of requests sent at a steady rate, divided by that number;
//! - memory: VmRSS (`/proc/<pid>/status`) when the gateway has just started, then every second
//!   of a soak at a steady rate; it is flat when the soak's second half did not grow.
//!
//! As root, every bench process runs at `nice -10` (builds elsewhere disturb less), and the
//! load average before and after goes into the report.
//!
//! Prints a table (ours, direct, target) and writes `target/bench/e2e.json`.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// The targets of issue 11, on this 2-core machine.
const TARGET_ADDED_P50_US: f64 = 60.0;
const TARGET_ADDED_P99_US: f64 = 200.0;
const TARGET_CPU_US: f64 = 80.0;
const TARGET_RSS_MB: f64 = 50.0;
/// The p99 every rate step must stay under.
const STEP_P99_MS: f64 = 5.0;
/// The rates tried, in requests a second, until one fails.
const RATES: &[u32] = &[
    100, 250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 15_000, 20_000, 25_000,
];
/// The upstream key's secret: fake, known only to the mock.
const SECRET: &str = "sk-bench";
/// The one model the direct calls name; the gateway's route serves it.
const MODEL: &str = "bench-model";
/// How oha installs when it is missing (a few minutes, once: its TLS backend builds a C
/// library; oha 1.16 does not build without a TLS feature).
const OHA_INSTALL: &str = "cargo install oha --locked --root target/tools";

/// The knobs of one run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Options {
    /// How long the memory soak lasts.
    pub(crate) soak_secs: u64,
    /// The soak's rate, in requests a second.
    pub(crate) soak_rate: u32,
    /// Sequential requests per target for the one-connection latency (after warm-up).
    pub(crate) requests: usize,
    /// How long each rate step lasts.
    pub(crate) step_secs: u64,
    /// Requests per target for the CPU count.
    pub(crate) cpu_requests: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { soak_secs: 60, soak_rate: 1000, requests: 2000, step_secs: 5, cpu_requests: 10_000 }
    }
}

impl Options {
    /// Reads `--soak-secs N --soak-rate N --requests N --step-secs N --cpu-requests N`.
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().with_context(|| format!("{flag} needs a number"))?;
            let number = || -> Result<u64> {
                value.parse().with_context(|| format!("{flag} {value:?} is not a whole number"))
            };
            match flag.as_str() {
                "--soak-secs" => options.soak_secs = number()?,
                "--soak-rate" => options.soak_rate = u32::try_from(number()?)?,
                "--requests" => options.requests = usize::try_from(number()?)?,
                "--step-secs" => options.step_secs = number()?,
                "--cpu-requests" => options.cpu_requests = u32::try_from(number()?)?,
                other => bail!(
                    "unknown flag {other:?}; e2e takes --soak-secs, --soak-rate, --requests, \
                     --step-secs, --cpu-requests"
                ),
            }
        }
        ensure!(options.soak_secs > 0 && options.soak_rate > 0, "the soak needs time and a rate");
        ensure!(
            options.requests > 0 && options.step_secs > 0 && options.cpu_requests > 0,
            "--requests, --step-secs and --cpu-requests must be at least 1"
        );
        Ok(options)
    }
}

/// Runs the whole end-to-end bench from the workspace root `root`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let root = &root.canonicalize().with_context(|| format!("finding {}", root.display()))?;
    let load_before = load_average();
    println!("xtask: load average before the run: {load_before}");
    let out_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let oha = ensure_oha(root)?;
    println!("xtask: building the release binaries (switchyard, e2e-upstream, e2e-client)");
    crate::cargo(&[
        "build",
        "--release",
        "--package",
        "switchyard-cli",
        "--package",
        "switchyard-benches",
        "--bins",
    ])?;
    let release = target_dir(root).join("release");
    let clk_tck = clock_ticks_per_second();

    let upstream = Upstream::start(&release.join("e2e-upstream"))?;
    let upstream_base = upstream.base_url.clone();
    let config = out_dir.join("e2e-gateway.toml");
    std::fs::write(&config, gateway_config(&upstream_base))
        .with_context(|| format!("writing {}", config.display()))?;
    let log = out_dir.join("gateway.log");
    let gateway = Gateway::start(&release.join("switchyard"), &config, &log)?;
    let rss_start_kb = rss_kb(gateway.pid)?;
    let upstream_rss_start_kb = rss_kb(upstream.pid)?;
    println!(
        "xtask: upstream {upstream_base} (pid {}), gateway {} (pid {}), RSS at start {:.1} MB",
        upstream.pid,
        gateway.base_url,
        gateway.pid,
        mb(rss_start_kb)
    );
    let gateway_url = format!("{}/v1/chat/completions", gateway.base_url);
    let direct_url = format!("{upstream_base}/chat/completions");
    let gateway_load = Load::new(&oha, &gateway_url, "default");
    let direct_load = Load::new(&oha, &direct_url, MODEL);

    println!("xtask: latency at one connection, {} requests to each, alternated", options.requests);
    let latency = one_connection_latency(&release, &gateway_url, &direct_url, options.requests)?;

    println!("xtask: CPU over {} requests to each at 1000/s", options.cpu_requests);
    let cpu_gateway = cpu_per_request(gateway.pid, clk_tck, options.cpu_requests, || {
        gateway_load.fixed_count(options.cpu_requests, 1000)
    })?;
    let cpu_upstream_direct = cpu_per_request(upstream.pid, clk_tck, options.cpu_requests, || {
        direct_load.fixed_count(options.cpu_requests, 1000)
    })?;

    println!(
        "xtask: stepping the rate up ({} s a step) until p99 reaches {STEP_P99_MS} ms",
        options.step_secs
    );
    let steps_gateway = step_up(&gateway_load, options.step_secs, "gateway")?;
    let steps_direct = step_up(&direct_load, options.step_secs, "direct")?;

    println!("xtask: soak, {} s at {}/s through the gateway", options.soak_secs, options.soak_rate);
    let soak = soak(&gateway_load, gateway.pid, upstream.pid, clk_tck, options)?;

    let report = Report {
        latency,
        cpu_gateway,
        cpu_upstream_direct,
        max_rate_gateway: max_passing(&steps_gateway),
        max_rate_direct: max_passing(&steps_direct),
        rss_start_kb,
        upstream_rss_start_kb,
        soak,
    };
    let mut json = report.to_json(options, &steps_gateway, &steps_direct);
    // Other work on the machine moves every figure: the report says how busy it was.
    json["machine"]["load_average_before"] = json!(load_before);
    json["machine"]["load_average_after"] = json!(load_average());
    let path = out_dir.join("e2e.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", report.table());
    println!("xtask: load average after the run: {}", load_average());
    println!("xtask: wrote {} (gateway log: {})", path.display(), log.display());
    drop(gateway);
    drop(upstream);
    Ok(())
}

/// The gateway's configuration: one OpenAI-compatible provider, the upstream, one key, no
/// limits, and one route to it. No state file, no client tokens: nothing beyond routing.
fn gateway_config(upstream_base: &str) -> String {
    format!(
        r#"# Written by `cargo xtask bench e2e`: the gateway in front of one mock upstream.
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "mock"
kind = "openai"
preset = "compatible"
base_url = "{upstream_base}"
keys = ["{SECRET}"]
models = ["{MODEL}"]

[[routes]]
name = "default"
strategy = "priority"
targets = ["mock/{MODEL}"]
"#
    )
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Finds `oha` (in `target/tools/bin`, then on `PATH`), installing it when missing.
fn ensure_oha(root: &Path) -> Result<PathBuf> {
    let local = root.join("target/tools/bin/oha");
    if local.is_file() {
        return Ok(local);
    }
    if on_path("oha") {
        return Ok(PathBuf::from("oha"));
    }
    println!("xtask: installing oha, the load generator ({OHA_INSTALL})");
    let status = Command::new(crate::cargo_bin())
        .args(["install", "oha", "--locked", "--root"])
        .arg(root.join("target/tools"))
        .status()
        .context("running cargo install")?;
    if !status.success() || !local.is_file() {
        bail!("installing oha failed ({status}); from the workspace root run: {OHA_INSTALL}");
    }
    Ok(local)
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A command for one of the bench's processes. As root, every one of them (gateway, upstream,
/// clients alike) runs at `nice -10`, so builds elsewhere on the machine disturb the figures
/// less; `nice` execs the program, so the child's pid is the program's own.
fn bench_command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("nice");
        command.args(["-n", "-10"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

/// A child process killed and reaped on drop, so no bench process outlives a failed run.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's first stdout line, then keeps draining stdout on a thread so a later
/// line never blocks the child on a full pipe.
fn first_line(child: &mut Child, what: &str) -> Result<String> {
    let stdout = child.stdout.take().with_context(|| format!("{what} has no stdout"))?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).with_context(|| format!("reading {what}'s first line"))?;
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    Ok(line.trim().to_owned())
}

/// `… listening on <url>` → `<url>`.
fn listening_url(line: &str) -> Option<&str> {
    line.split_once("listening on ").map(|(_, url)| url.trim())
}

struct Upstream {
    base_url: String,
    pid: u32,
    _stdin: ChildStdin,
    _child: Guard,
}

impl Upstream {
    fn start(binary: &Path) -> Result<Self> {
        let mut child = bench_command(binary)
            .arg(SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        // Holding its stdin open keeps it serving; dropping it (or dying) stops it.
        let stdin = child.stdin.take().context("e2e-upstream has no stdin")?;
        let line = first_line(&mut child, "e2e-upstream")?;
        let child = Guard(child);
        let base_url = listening_url(&line)
            .with_context(|| format!("e2e-upstream printed {line:?}, not its address"))?
            .to_owned();
        Ok(Self { base_url, pid, _stdin: stdin, _child: child })
    }
}

struct Gateway {
    base_url: String,
    pid: u32,
    _child: Guard,
}

impl Gateway {
    fn start(binary: &Path, config: &Path, log: &Path) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = bench_command(binary)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let line = first_line(&mut child, "switchyard serve")?;
        let child = Guard(child);
        let Some(url) = listening_url(&line) else {
            let logged = std::fs::read_to_string(log).unwrap_or_default();
            bail!("switchyard serve did not start (it printed {line:?}); its log:\n{logged}");
        };
        Ok(Self { base_url: url.to_owned(), pid, _child: child })
    }
}

fn one_connection_latency(
    release: &Path,
    gateway_url: &str,
    direct_url: &str,
    requests: usize,
) -> Result<Value> {
    let output = bench_command(&release.join("e2e-client"))
        .args(["--gateway", gateway_url, "--direct", direct_url])
        .args([
            "--requests",
            &requests.to_string(),
            "--warmup",
            &(requests / 10).max(50).to_string(),
        ])
        .args(["--gateway-model", "default", "--direct-model", MODEL, "--key", SECRET])
        .stderr(Stdio::inherit())
        .output()
        .context("running e2e-client")?;
    ensure!(output.status.success(), "e2e-client failed ({})", output.status);
    serde_json::from_slice(&output.stdout).context("e2e-client printed no JSON report")
}

/// Runs of `oha` against one target with one request body.
struct Load {
    oha: PathBuf,
    url: String,
    body: String,
}

impl Load {
    fn new(oha: &Path, url: &str, model: &str) -> Self {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Say hello in one word."}],
            "max_tokens": 16,
        });
        Self { oha: oha.to_owned(), url: url.to_owned(), body: body.to_string() }
    }

    fn command(&self, rate: u32, connections: u32) -> Command {
        let mut command = bench_command(&self.oha);
        command
            .args(["--no-tui", "--output-format", "json", "--latency-correction"])
            .args(["-q", &rate.to_string(), "-c", &connections.to_string()])
            .args(["-m", "POST", "-T", "application/json"])
            .args(["-H", &format!("authorization: Bearer {SECRET}")])
            .args(["-d", &self.body])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Exactly `n` requests at `rate` a second.
    fn fixed_count(&self, n: u32, rate: u32) -> Result<OhaRun> {
        let mut command = self.command(rate, 8);
        command.args(["-n", &n.to_string(), &self.url]);
        OhaRun::from_output(command.output().context("running oha")?)
    }

    /// `secs` seconds at `rate` a second, waiting for the requests still running at the end.
    fn for_duration(&self, secs: u64, rate: u32) -> Command {
        // Connections enough for the rate at a few milliseconds each, so the generator stays
        // open-loop: a slow answer delays no later request.
        let connections = (rate / 100).clamp(8, 64);
        let mut command = self.command(rate, connections);
        command.args(["-z", &format!("{secs}s"), "-w", &self.url]);
        command
    }
}

/// What one `oha` run measured.
#[derive(Clone, Debug, PartialEq)]
struct OhaRun {
    n_requests: u64,
    n_ok: u64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl OhaRun {
    fn from_output(output: std::process::Output) -> Result<Self> {
        ensure!(
            output.status.success(),
            "oha failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let json: Value = serde_json::from_slice(&output.stdout).context("oha printed no JSON")?;
        Self::parse(&json)
    }

    /// Reads oha's `--output-format json` report: every request counted is in
    /// `statusCodeDistribution` (answered) or `errorDistribution` (not answered).
    fn parse(json: &Value) -> Result<Self> {
        let count = |field: &str| -> u64 {
            json[field].as_object().map_or(0, |map| map.values().filter_map(Value::as_u64).sum())
        };
        let n_ok = json["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
        let latency = &json["metrics"]["latency_ms"];
        let number = |value: &Value, what: &str| -> Result<f64> {
            value.as_f64().with_context(|| format!("oha's report has no {what}"))
        };
        Ok(Self {
            n_requests: count("statusCodeDistribution") + count("errorDistribution"),
            n_ok,
            requests_per_sec: number(&json["metrics"]["requests_per_sec"], "requests_per_sec")?,
            p50_ms: number(&latency["p50"], "p50")?,
            p99_ms: number(&latency["p99"], "p99")?,
        })
    }

    fn all_ok(&self) -> bool {
        self.n_requests > 0 && self.n_ok == self.n_requests
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.n_requests,
            "ok": self.n_ok,
            "requests_per_sec": self.requests_per_sec,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        })
    }
}

/// CPU time `pid` spent across `load`, in microseconds per request.
fn cpu_per_request(
    pid: u32,
    clk_tck: u64,
    n: u32,
    load: impl FnOnce() -> Result<OhaRun>,
) -> Result<f64> {
    let before = cpu_ticks(pid)?;
    let run = load()?;
    let after = cpu_ticks(pid)?;
    ensure!(run.all_ok(), "only {} of {} requests answered 200 during the CPU count", run.n_ok, n);
    Ok(ticks_to_us(after.saturating_sub(before), clk_tck) / f64::from(n))
}

/// One rate step's outcome.
#[derive(Clone, Debug)]
struct Step {
    rate: u32,
    run: OhaRun,
    passed: bool,
}

/// Steps the rate up through [`RATES`] until two steps in a row fail: one failed step on a
/// shared machine may be another process's doing, two are the target's limit.
fn step_up(load: &Load, step_secs: u64, label: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for &rate in RATES {
        let output = load.for_duration(step_secs, rate).output().context("running oha")?;
        let run = OhaRun::from_output(output)?;
        let passed = run.all_ok()
            && run.p99_ms < STEP_P99_MS
            && run.requests_per_sec >= 0.95 * f64::from(rate);
        println!(
            "  {label:8} {rate:>6}/s: got {:>8.0}/s, p50 {:.2} ms, p99 {:.2} ms, {}/{} ok {}",
            run.requests_per_sec,
            run.p50_ms,
            run.p99_ms,
            run.n_ok,
            run.n_requests,
            if passed { "pass" } else { "FAIL" }
        );
        steps.push(Step { rate, run, passed });
        if steps.iter().rev().take(2).filter(|step| !step.passed).count() == 2 {
            break;
        }
    }
    Ok(steps)
}

fn max_passing(steps: &[Step]) -> Option<u32> {
    steps.iter().filter(|step| step.passed).map(|step| step.rate).max()
}

/// The soak's memory samples and what the gateway spent.
#[derive(Clone, Debug)]
struct Soak {
    rss_kb: Vec<u64>,
    upstream_rss_kb: Vec<u64>,
    run: OhaRun,
    cpu_us_per_request: f64,
}

fn soak(load: &Load, pid: u32, upstream_pid: u32, clk_tck: u64, options: &Options) -> Result<Soak> {
    let before = cpu_ticks(pid)?;
    let mut child = load
        .for_duration(options.soak_secs, options.soak_rate)
        .spawn()
        .context("running oha for the soak")?;
    let mut stdout = child.stdout.take().context("oha has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        stdout.read_to_end(&mut buffer).map(|_| buffer)
    });
    let mut rss = vec![rss_kb(pid)?];
    let mut upstream_rss = vec![rss_kb(upstream_pid)?];
    let started = now();
    let give_up = Duration::from_secs(options.soak_secs + 60);
    let mut next = Duration::from_secs(1);
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for oha")? {
            break status;
        }
        let elapsed = now().duration_since(started);
        if elapsed >= give_up {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the soak's oha did not finish within {} s", give_up.as_secs());
        }
        if elapsed >= next {
            rss.push(rss_kb(pid)?);
            upstream_rss.push(rss_kb(upstream_pid)?);
            next += Duration::from_secs(1);
        }
        pause(Duration::from_millis(20));
    };
    let after = cpu_ticks(pid)?;
    rss.push(rss_kb(pid)?);
    upstream_rss.push(rss_kb(upstream_pid)?);
    let stdout = reader.join().map_err(|_| anyhow::anyhow!("the oha reader panicked"))??;
    let stderr = child.stderr.take().map(|mut err| {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let run = OhaRun::from_output(std::process::Output {
        status,
        stdout,
        stderr: stderr.unwrap_or_default().into_bytes(),
    })?;
    ensure!(run.n_requests > 0, "the soak sent no request");
    #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
    let cpu_us_per_request =
        ticks_to_us(after.saturating_sub(before), clk_tck) / run.n_requests as f64;
    Ok(Soak { rss_kb: rss, upstream_rss_kb: upstream_rss, run, cpu_us_per_request })
}

/// Whether memory grew over a soak's second half: the mean of its last five samples exceeds
/// the mean of the five from its half-way point by more than 5 % and more than 1 MB. The
/// first half is warm-up (the allocator's arenas and the pools settle to the load); a leak
/// grows in the second half as much as in the first.
fn rss_grew(samples_kb: &[u64]) -> bool {
    let half = &samples_kb[samples_kb.len() / 2..];
    if half.len() < 2 {
        return false;
    }
    let window = (half.len() / 2).min(5);
    #[expect(clippy::cast_precision_loss, reason = "kilobyte counts are far below 2^52")]
    let mean = |part: &[u64]| part.iter().sum::<u64>() as f64 / part.len() as f64;
    let first = mean(&half[..window]);
    let last = mean(&half[half.len() - window..]);
    last > first * 1.05 && last - first > 1000.0
}

/// The process's user + system CPU time, in clock ticks (fields 14 and 15 of
/// `/proc/<pid>/stat`, which count every thread).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_ticks(&stat).with_context(|| format!("{path} has no utime and stime"))
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields that follow start after the last `)`, at field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The process's resident set, in kB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_kb(&status).with_context(|| format!("{path} has no VmRSS"))
}

fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat`'s times (100 on Linux, whatever the
/// kernel's HZ).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

#[expect(clippy::cast_precision_loss, reason = "tick counts are far below 2^52")]
fn ticks_to_us(ticks: u64, clk_tck: u64) -> f64 {
    ticks as f64 * 1e6 / clk_tck as f64
}

/// kB (as `/proc` counts, 1024 bytes) to MB (10^6 bytes), the unit of the target.
#[expect(clippy::cast_precision_loss, reason = "kilobyte counts are far below 2^52")]
fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

// xtask measures real processes from outside: it reads the real time and waits for real.
#[expect(clippy::disallowed_methods, reason = "timing real processes from outside")]
fn now() -> Instant {
    Instant::now()
}

#[expect(clippy::disallowed_methods, reason = "pacing samples of a real process")]
fn pause(duration: Duration) {
    std::thread::sleep(duration);
}

/// Everything one run measured.
struct Report {
    latency: Value,
    cpu_gateway: f64,
    cpu_upstream_direct: f64,
    max_rate_gateway: Option<u32>,
    max_rate_direct: Option<u32>,
    rss_start_kb: u64,
    upstream_rss_start_kb: u64,
    soak: Soak,
}

impl Report {
    fn added_p50_us(&self) -> f64 {
        self.latency["added_p50_us"].as_f64().unwrap_or(f64::NAN)
    }

    fn added_p99_us(&self) -> f64 {
        self.latency["added_p99_us"].as_f64().unwrap_or(f64::NAN)
    }

    fn rss_max_kb(&self) -> u64 {
        self.soak.rss_kb.iter().copied().max().unwrap_or(self.rss_start_kb).max(self.rss_start_kb)
    }

    fn rss_ok(&self) -> bool {
        !rss_grew(&self.soak.rss_kb) && mb(self.rss_max_kb()) < TARGET_RSS_MB
    }

    fn to_json(&self, options: &Options, gateway_steps: &[Step], direct_steps: &[Step]) -> Value {
        let steps = |steps: &[Step]| -> Vec<Value> {
            steps
                .iter()
                .map(|step| json!({"rate": step.rate, "passed": step.passed, "run": step.run.to_json()}))
                .collect()
        };
        let first = |samples: &[u64]| samples.first().copied().unwrap_or(0);
        let last = |samples: &[u64]| samples.last().copied().unwrap_or(0);
        json!({
            "machine": machine(),
            "options": {
                "requests": options.requests,
                "step_secs": options.step_secs,
                "cpu_requests": options.cpu_requests,
                "soak_secs": options.soak_secs,
                "soak_rate": options.soak_rate,
            },
            "latency_one_connection": self.latency,
            "cpu_us_per_request": {
                "gateway": self.cpu_gateway,
                "upstream_called_directly": self.cpu_upstream_direct,
                "gateway_during_soak": self.soak.cpu_us_per_request,
            },
            "max_rate_p99_under_5ms": {
                "gateway": self.max_rate_gateway,
                "direct": self.max_rate_direct,
                "gateway_steps": steps(gateway_steps),
                "direct_steps": steps(direct_steps),
            },
            "rss": {
                "gateway_start_mb": mb(self.rss_start_kb),
                "gateway_soak_first_mb": mb(first(&self.soak.rss_kb)),
                "gateway_soak_end_mb": mb(last(&self.soak.rss_kb)),
                "gateway_max_mb": mb(self.rss_max_kb()),
                "gateway_grew": rss_grew(&self.soak.rss_kb),
                "gateway_samples_kb": self.soak.rss_kb,
                "upstream_start_mb": mb(self.upstream_rss_start_kb),
                "upstream_soak_end_mb": mb(last(&self.soak.upstream_rss_kb)),
                "soak_run": self.soak.run.to_json(),
            },
            "targets": {
                "added_p50_us": TARGET_ADDED_P50_US,
                "added_p99_us": TARGET_ADDED_P99_US,
                "cpu_us_per_request": TARGET_CPU_US,
                "rss_mb": TARGET_RSS_MB,
            },
            "met": {
                "added_p50": self.added_p50_us() <= TARGET_ADDED_P50_US,
                "added_p99": self.added_p99_us() <= TARGET_ADDED_P99_US,
                "cpu": self.cpu_gateway <= TARGET_CPU_US,
                "rss": self.rss_ok(),
            },
        })
    }

    fn table(&self) -> String {
        let side = |name: &str, field: &str| self.latency[name][field].as_f64().unwrap_or(f64::NAN);
        let verdict = |ok: bool| if ok { "yes" } else { "MISSED" };
        let rate =
            |rate: Option<u32>| rate.map_or_else(|| format!("< {}", RATES[0]), |r| r.to_string());
        let soak = &self.soak.rss_kb;
        let rows: Vec<[String; 5]> = vec![
            [
                "added latency p50, 1 connection".into(),
                format!("{:.0} µs", self.added_p50_us()),
                String::new(),
                format!("≤ {TARGET_ADDED_P50_US:.0} µs"),
                verdict(self.added_p50_us() <= TARGET_ADDED_P50_US).into(),
            ],
            [
                "added latency p99, 1 connection".into(),
                format!("{:.0} µs", self.added_p99_us()),
                String::new(),
                format!("≤ {TARGET_ADDED_P99_US:.0} µs"),
                verdict(self.added_p99_us() <= TARGET_ADDED_P99_US).into(),
            ],
            [
                "latency p50 / p99, 1 connection".into(),
                format!("{:.0} / {:.0} µs", side("gateway", "p50_us"), side("gateway", "p99_us")),
                format!("{:.0} / {:.0} µs", side("direct", "p50_us"), side("direct", "p99_us")),
                String::new(),
                String::new(),
            ],
            [
                format!("max requests/s, p99 < {STEP_P99_MS} ms"),
                rate(self.max_rate_gateway),
                rate(self.max_rate_direct),
                String::new(),
                String::new(),
            ],
            [
                "CPU per request (process)".into(),
                format!("{:.0} µs", self.cpu_gateway),
                format!("{:.0} µs", self.cpu_upstream_direct),
                format!("≤ {TARGET_CPU_US:.0} µs"),
                verdict(self.cpu_gateway <= TARGET_CPU_US).into(),
            ],
            [
                "RSS at start".into(),
                format!("{:.1} MB", mb(self.rss_start_kb)),
                format!("{:.1} MB", mb(self.upstream_rss_start_kb)),
                String::new(),
                String::new(),
            ],
            [
                format!("RSS soak first / end / max ({} s)", soak.len().saturating_sub(1)),
                format!(
                    "{:.1} / {:.1} / {:.1} MB",
                    mb(soak.first().copied().unwrap_or(0)),
                    mb(soak.last().copied().unwrap_or(0)),
                    mb(self.rss_max_kb())
                ),
                format!("{:.1} MB end", mb(self.soak.upstream_rss_kb.last().copied().unwrap_or(0))),
                format!("flat, < {TARGET_RSS_MB:.0} MB"),
                format!(
                    "{}{}",
                    verdict(self.rss_ok()),
                    if rss_grew(soak) { " (grew)" } else { " (flat)" }
                ),
            ],
        ];
        let header = ["figure", "ours (gateway)", "direct (upstream)", "target", "met"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| -> String {
            cells
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out =
            String::from("\nend to end: switchyard serve vs the same upstream called directly\n");
        out += &line(header);
        out.push('\n');
        out += &widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  ");
        out.push('\n');
        for row in &rows {
            out += &line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
            out.push('\n');
        }
        out
    }
}

/// `/proc/loadavg`'s 1, 5 and 15-minute load averages.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// What this machine is, for the report: CPU model, cores, kernel.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown", |(_, name)| name.trim());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpu": model, "cores": cores, "kernel": kernel.trim()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        // A real line of /proc/<pid>/stat, with a command name holding a space and a `)`.
        let stat = "4242 (switch yard) S 1 4242 4242 0 -1 4194560 1803 0 0 0 \
                    731 244 0 0 20 0 3 0 123456 987654321 3072 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(731 + 244));
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(parse_stat_ticks(odd), Some(11));
        assert_eq!(parse_stat_ticks("7 (short) R 1"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kb() {
        let status =
            "Name:\tswitchyard\nVmPeak:\t  812344 kB\nVmRSS:\t   14212 kB\nRssAnon:\t 6000 kB\n";
        assert_eq!(parse_vm_rss_kb(status), Some(14_212));
        assert_eq!(parse_vm_rss_kb("Name:\tx\n"), None);
        assert!((mb(14_212) - 14.553_088).abs() < 1e-6);
    }

    #[test]
    fn the_own_process_has_cpu_and_memory() {
        let pid = std::process::id();
        assert!(rss_kb(pid).expect("own VmRSS") > 100);
        assert!(cpu_ticks(pid).is_ok());
    }

    #[test]
    fn rss_growth_is_judged_on_the_second_half() {
        let flat = [20_000, 20_400, 20_100, 20_300, 20_200, 20_250, 20_300, 20_200, 20_350, 20_300];
        assert!(!rss_grew(&flat));
        // A leak: 100 kB a second for a minute.
        let growing: Vec<u64> = (0..60).map(|s| 20_000 + s * 100).collect();
        assert!(rss_grew(&growing));
        // Warm-up then a plateau (a real soak of the gateway): not growth.
        let mut settling: Vec<u64> = (0..30).map(|s| 17_400 + s * 65).collect();
        settling.extend([19_304; 32]);
        assert!(!rss_grew(&settling));
        // 5 % of 2 MB is below the 1 MB floor: a small process's noise is not growth.
        assert!(!rss_grew(&[2000, 2000, 2000, 2000, 2400, 2400, 2400, 2400]));
        assert!(!rss_grew(&[30_000]));
    }

    #[test]
    fn oha_report_is_read() {
        let report = json!({
            "summary": {"successRate": 1.0, "requestsPerSec": 1998.7},
            "metrics": {
                "success_rate": 1.0,
                "requests_per_sec": 1998.7,
                "latency_ms": {"min": 0.1, "mean": 0.3, "p50": 0.27, "p95": 0.6, "p99": 1.25, "max": 4.0}
            },
            "statusCodeDistribution": {"200": 9990, "502": 4},
            "errorDistribution": {"aborted due to deadline": 6}
        });
        let run = OhaRun::parse(&report).expect("a full report");
        assert_eq!(
            run,
            OhaRun {
                n_requests: 10_000,
                n_ok: 9990,
                requests_per_sec: 1998.7,
                p50_ms: 0.27,
                p99_ms: 1.25
            }
        );
        assert!(!run.all_ok());
        assert!(OhaRun::parse(&json!({"statusCodeDistribution": {}})).is_err());
    }

    #[test]
    fn listening_lines_give_the_url() {
        assert_eq!(
            listening_url("switchyard: listening on http://127.0.0.1:40123"),
            Some("http://127.0.0.1:40123")
        );
        assert_eq!(
            listening_url("e2e-upstream: listening on http://127.0.0.1:5000/v1\n"),
            Some("http://127.0.0.1:5000/v1")
        );
        assert_eq!(listening_url("error: cannot bind"), None);
    }

    #[test]
    fn options_parse_and_refuse() {
        let args: Vec<String> =
            ["--soak-secs", "5", "--requests", "300"].iter().map(|s| (*s).to_owned()).collect();
        let options = Options::parse(&args).expect("valid flags");
        assert_eq!(options, Options { soak_secs: 5, requests: 300, ..Options::default() });
        assert!(Options::parse(&["--soak-secs".to_owned()]).is_err());
        assert!(Options::parse(&["--soak".to_owned(), "5".to_owned()]).is_err());
        assert!(Options::parse(&["--soak-secs".to_owned(), "0".to_owned()]).is_err());
    }

    #[test]
    fn the_config_names_the_upstream() {
        let config = gateway_config("http://127.0.0.1:5000/v1");
        assert!(config.contains(r#"base_url = "http://127.0.0.1:5000/v1""#), "{config}");
        assert!(config.contains(r#"targets = ["mock/bench-model"]"#), "{config}");
    }
}
