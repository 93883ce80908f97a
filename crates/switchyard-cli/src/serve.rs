//! `switchyard serve`: reads `switchyard.toml`, builds the router and runs the gateway until
//! SIGINT or SIGTERM, draining the requests in flight. On SIGHUP or `POST /admin/reload` the
//! configuration (and the environment and `.env` it expands from) is read again and a new
//! router and client settings swapped in; a bad configuration is refused and the running one
//! keeps serving.
//!
//! Around the router: the analytics event log (`<state>.analytics.db` next to the state
//! file, written by a thread of its own), the alert webhook task, and the admin token. The
//! analytics and alert settings are read at start; a reload keeps them. Health probes
//! (`[probes]`, a provider's `probe_interval_secs`) run on the serving router: a reload stops
//! them and starts the new configuration's on the new router; shutdown stops them.
//!
//! Logs are JSON lines on stderr; the one line on stdout says where the gateway listens, so a
//! script (or a test) started with `--listen 127.0.0.1:0` learns the port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use switchyard::{EventSink, ProbeConfig, ProbeHandle, Router, SpendWriteBehind};
use switchyard_core::{Clock, SystemClock};
use switchyard_quota::WriteBehind;
use switchyard_server::{
    EventHub, EventSinks, Gateway, GatewayConfig, Reloader, Services, Telemetry,
};
use switchyard_store::{Analytics, AnalyticsWriter, AnalyticsWriterConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Loaded, ScoreSaver};

mod operator;

/// Arguments of `switchyard serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file.
    #[arg(long, env = "SWITCHYARD_CONFIG", default_value = "switchyard.toml")]
    config: PathBuf,
    /// Where to listen (`host:port`), over the file's `[server] listen`.
    #[arg(long)]
    listen: Option<String>,
}

/// Runs the gateway.
pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    init_logs();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `TOKIO_WORKER_THREADS`, when set, is Tokio's own override and wins.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(default_worker_threads());
    }
    let runtime = builder.enable_all().build().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

/// Workers of the async runtime: one core fewer than the machine has, at least one. A
/// request wakes a task on another worker when several idle: on a two-core machine one worker
/// halved the gateway's added latency and served more requests a second than two
/// (`cargo xtask bench e2e`, docs/benchmarks.md); the spare core is the upstream's, the
/// kernel's and the analytics writer's.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// The log filter when `RUST_LOG` is not set: `info`, less the router's line per attempt
/// and per request (`switchyard::attempt`, `switchyard::request`). Writing those cost about
/// a tenth of the gateway's CPU per request; the analytics log keeps every attempt and
/// request whatever the filter, and `RUST_LOG=info` brings the lines back.
const DEFAULT_LOG_FILTER: &str = "info,switchyard::attempt=warn,switchyard::request=warn";

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // A second init (never in this binary) would fail harmlessly: logs go to the first one.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The environment, with `.env` (in the working directory) filling what it does not set.
pub(crate) fn variables() -> Result<HashMap<String, String>> {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    let dotenv = Path::new(".env");
    if dotenv.exists() {
        for line in dotenvy::from_path_iter(dotenv).context("reading .env")? {
            let (name, value) = line.context("reading .env")?;
            vars.entry(name).or_insert(value);
        }
    }
    Ok(vars)
}

fn load(
    path: &Path,
    clock: &Arc<dyn Clock>,
    sink: &Arc<dyn EventSink>,
    previous: Option<&Router>,
) -> Result<config::Built> {
    let loaded = Loaded::read(path)?;
    let sink = Some(Arc::clone(sink));
    let built = config::build_with(&loaded, &variables()?, Arc::clone(clock), sink, previous)?;
    for warning in &built.warnings {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    Ok(built)
}

/// Opens the analytics log `[analytics]` asks for: a writer on one connection, and a second
/// connection for the admin API's reports.
fn open_analytics(
    path: &Path,
    clock: &Arc<dyn Clock>,
) -> Result<(Option<AnalyticsWriter>, Option<Analytics>)> {
    let loaded = Loaded::read(path)?;
    let Some(settings) = config::analytics_settings(&loaded, &variables()?)? else {
        return Ok((None, None));
    };
    if let Some(dir) = settings.path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for analytics", dir.display()))?;
    }
    let writer_connection = Analytics::open(&settings.path)
        .with_context(|| format!("opening the analytics log {}", settings.path.display()))?;
    let reader = Analytics::open(&settings.path)
        .with_context(|| format!("opening the analytics log {}", settings.path.display()))?;
    let config =
        AnalyticsWriterConfig { retention: settings.retention, ..AnalyticsWriterConfig::default() };
    let writer = AnalyticsWriter::start(writer_connection, Arc::clone(clock), config)
        .context("starting the analytics writer")?;
    tracing::info!(path = %settings.path.display(), retention_days = settings.retention.as_secs() / 86_400, "analytics on");
    Ok((Some(writer), Some(reader)))
}

/// Starts the trace exporter `[telemetry]` asks for.
fn start_telemetry(path: &Path, clock: &Arc<dyn Clock>) -> Result<Option<Arc<Telemetry>>> {
    let loaded = Loaded::read(path)?;
    let Some(settings) = config::telemetry_settings(&loaded, &variables()?)? else {
        return Ok(None);
    };
    let telemetry = Telemetry::start(&settings, Arc::clone(clock)).context("starting telemetry")?;
    tracing::info!(service_name = %settings.service_name, sample_ratio = settings.sample_ratio, "OpenTelemetry traces on");
    Ok(Some(Arc::new(telemetry)))
}

/// Rebuilds everything from the configuration file, for SIGHUP and `POST /admin/reload`.
struct FileReloader {
    config: PathBuf,
    clock: Arc<dyn Clock>,
    /// The router's event sink: the hub, and the trace exporter when `[telemetry]` is on.
    sink: Arc<dyn EventSink>,
    /// The running ledger's saver; replaced with the new one's on a successful reload.
    persistence: Mutex<Option<WriteBehind>>,
    /// The running scorer's saver; replaced likewise.
    scores: Mutex<Option<ScoreSaver>>,
    /// The running router's spend saver; replaced likewise.
    spend: Mutex<Option<SpendWriteBehind>>,
    /// The gateway, once it runs: the keys an operator disabled on its router stay disabled
    /// on the new one.
    gateway: OnceLock<Gateway>,
    /// The running router's probe tasks (dropping a handle stops its task).
    probes: Mutex<Vec<ProbeHandle>>,
    /// The runtime the probe tasks run on: a reload runs on a blocking thread.
    runtime: tokio::runtime::Handle,
}

impl FileReloader {
    /// Stops the running probes and starts `configs` on `router`.
    fn restart_probes(&self, router: &Router, configs: Vec<ProbeConfig>) {
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        probes.clear();
        let _entered = self.runtime.enter();
        for config in configs {
            tracing::info!(interval_secs = config.interval.as_secs_f64(), providers = ?config.providers, "health probes on");
            probes.push(router.spawn_probes(config));
        }
    }
}

impl Reloader for FileReloader {
    fn reload(&self) -> std::result::Result<(Router, GatewayConfig), String> {
        let mut persistence = self.persistence.lock().unwrap_or_else(PoisonError::into_inner);
        // The old ledger's counts are saved first so the new one restores them, holds an
        // operator cleared (`reset`) included: the new ledger must not load a stale hold.
        if let Some(old) = persistence.as_ref()
            && let Err(error) = old.flush()
        {
            tracing::warn!(%error, "quota state not saved before reload");
        }
        let mut scores = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = scores.as_ref()
            && let Err(error) = old.flush()
        {
            tracing::warn!(%error, "learned scores not saved before reload");
        }
        // The new router carries the old one's disabled keys and shares its spend books.
        let previous = self.gateway.get().map(Gateway::router);
        match load(&self.config, &self.clock, &self.sink, previous.as_deref()) {
            Ok(built) => {
                *persistence = built.persistence;
                *scores = built.scores;
                *self.spend.lock().unwrap_or_else(PoisonError::into_inner) = built.spend;
                self.restart_probes(&built.router, built.probes);
                Ok((built.router, built.gateway))
            }
            Err(error) => Err(format!("{error:#}")),
        }
    }
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (writer, reader) = open_analytics(&args.config, &clock)?;
    let events = Arc::new(EventHub::new(Arc::clone(&clock), writer));
    let telemetry = start_telemetry(&args.config, &clock)?;
    let sink: Arc<dyn EventSink> = match &telemetry {
        Some(telemetry) => {
            Arc::new(EventSinks(vec![Arc::clone(&events) as _, Arc::clone(telemetry) as _]))
        }
        None => Arc::clone(&events) as Arc<dyn EventSink>,
    };
    let mut built = load(&args.config, &clock, &sink, None)?;
    let admin_saver = match &built.state_file {
        Some(file) => {
            let (saver, unknown) = operator::AdminSaver::open(file, &built.router)
                .map_err(|error| anyhow::anyhow!("admin state in {}: {error}", file.display()))?;
            for key in unknown {
                tracing::warn!(%key, "a key disabled before the restart is no longer configured");
            }
            Some(Arc::new(Mutex::new(saver)))
        }
        None => None,
    };
    let upstream = built.upstream;
    tracing::info!(
        max_body_bytes = upstream.max_body_bytes,
        max_line_bytes = upstream.max_line_bytes,
        stream_idle_timeout_secs = upstream.stream_idle_timeout.as_secs_f64(),
        stream_deadline_secs = upstream.stream_deadline.as_secs_f64(),
        "upstream limits"
    );
    let listen = args
        .listen
        .clone()
        .or_else(|| built.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let reloader = Arc::new(FileReloader {
        config: args.config.clone(),
        clock: Arc::clone(&clock),
        sink,
        persistence: Mutex::new(built.persistence),
        scores: Mutex::new(built.scores),
        spend: Mutex::new(built.spend),
        gateway: OnceLock::new(),
        probes: Mutex::new(Vec::new()),
        runtime: tokio::runtime::Handle::current(),
    });
    reloader.restart_probes(&built.router, built.probes);
    let services = Services {
        events: Some(Arc::clone(&events)),
        analytics: reader,
        reloader: Some(Arc::clone(&reloader) as Arc<dyn Reloader>),
        alerts: built.alerts,
        lifecycle: match &built.state_file {
            Some(file) => {
                Some(crate::keylife::lifecycle_config(file, std::mem::take(&mut built.keylife))?)
            }
            None => None,
        },
    };
    let has_tokens = !built.gateway.client_tokens.is_empty() || !built.gateway.clients.is_empty();
    let gateway = Gateway::with_services(built.router, Arc::clone(&clock), built.gateway, services);
    let _ = reloader.gateway.set(gateway.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    // The handlers first: a supervisor may signal as soon as it reads the line below.
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    println!("switchyard: listening on http://{addr}");
    if !has_tokens && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "no client token is configured on a non-loopback address: only requests naming this gateway in Host ([server] allowed_hosts) are answered; see docs/security.md");
    }
    tracing::info!(%addr, config = %args.config.display(), routes = ?gateway.router().route_names(), "gateway started");

    if let Some(saver) = &admin_saver {
        tokio::spawn(save_admin_state(Arc::clone(saver), gateway.clone(), Arc::clone(&clock)));
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            switchyard_server::serve(listener, &gateway, async move {
                let _ = stopped.await;
            })
            .await
        }
    });
    loop {
        tokio::select! {
            _ = hangups.recv() => {
                let reloader = Arc::clone(&reloader);
                let rebuilt = tokio::task::spawn_blocking(move || reloader.reload()).await;
                match rebuilt {
                    Ok(Ok((router, config))) => {
                        let counts = format!("{} routes, {} keys", router.route_names().len(), router.keys().len());
                        gateway.reload(router, config);
                        gateway.record_audit("sighup", "reload", None, Some(counts));
                        tracing::info!(config = %args.config.display(), routes = ?gateway.router().route_names(), "configuration reloaded");
                    }
                    Ok(Err(error)) => {
                        tracing::error!(config = %args.config.display(), error = %error, "configuration refused; the running one stays");
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "the reload task failed; the running configuration stays");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining requests in flight");
    reloader.probes.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let _ = stop.send(());
    server.await.context("the server task")?.context("serving")?;
    let saving = gateway.clone();
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || saving.flush_key_lifecycle()).await
    {
        tracing::warn!(%error, "key lifecycle not saved at shutdown");
    }
    if let Some(writer) = events.analytics()
        && let Err(error) = writer.flush()
    {
        tracing::warn!(%error, "analytics events not written at shutdown");
    }
    if let Some(telemetry) = telemetry {
        let stopped = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(error = %error, "spans not exported at shutdown");
        }
    }
    if let Some(saver) = &admin_saver {
        let saved = saver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save_if_changed(&gateway.router(), clock.utc());
        if let Err(error) = saved {
            tracing::warn!(%error, "admin state not saved at shutdown");
        }
    }
    drop(reloader.spend.lock().unwrap_or_else(PoisonError::into_inner).take());
    drop(reloader.persistence.lock().unwrap_or_else(PoisonError::into_inner).take());
    drop(reloader.scores.lock().unwrap_or_else(PoisonError::into_inner).take());
    Ok(ExitCode::SUCCESS)
}

/// Saves the running router's admin state once a second when it changed (real time on
/// purpose: this paces disk writes, not anything the router decides).
async fn save_admin_state(
    saver: Arc<Mutex<operator::AdminSaver>>,
    gateway: Gateway,
    clock: Arc<dyn Clock>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let saver = Arc::clone(&saver);
        let router = gateway.router();
        let now = clock.utc();
        let saved = tokio::task::spawn_blocking(move || {
            saver.lock().unwrap_or_else(PoisonError::into_inner).save_if_changed(&router, now)
        })
        .await;
        match saved {
            Ok(Ok(true)) => tracing::info!("admin state saved"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "admin state not saved; retrying"),
            Err(error) => tracing::warn!(%error, "the admin state saver failed"),
        }
    }
}
