//! `switchyard serve`: reads `switchyard.toml`, builds the router and runs the gateway until
//! SIGINT or SIGTERM, draining the requests in flight. On SIGHUP the configuration (and the
//! environment and `.env` it expands from) is read again and a new router and client
//! settings swapped in; a bad configuration is refused and the running one keeps serving.
//!
//! Logs are JSON lines on stderr; the one line on stdout says where the gateway listens, so a
//! script (or a test) started with `--listen 127.0.0.1:0` learns the port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use switchyard_core::{Clock, SystemClock};
use switchyard_server::Gateway;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Loaded};

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (never in this binary) would fail harmlessly: logs go to the first one.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The environment, with `.env` (in the working directory) filling what it does not set.
fn variables() -> Result<HashMap<String, String>> {
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

fn load(path: &Path, clock: &Arc<dyn Clock>) -> Result<config::Built> {
    let loaded = Loaded::read(path)?;
    let built = config::build(&loaded, &variables()?, Arc::clone(clock))?;
    for warning in &built.warnings {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    Ok(built)
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let built = load(&args.config, &clock)?;
    let listen = args
        .listen
        .clone()
        .or_else(|| built.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let gateway = Gateway::new(built.router, Arc::clone(&clock), built.gateway);
    let mut persistence = built.persistence;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    println!("switchyard: listening on http://{addr}");
    tracing::info!(%addr, config = %args.config.display(), routes = ?gateway.router().route_names(), "gateway started");

    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
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
                // The old ledger's counts are saved first so the new one restores them.
                if let Some(old) = &persistence
                    && let Err(error) = old.flush()
                {
                    tracing::warn!(%error, "quota state not saved before reload");
                }
                match load(&args.config, &clock) {
                    Ok(built) => {
                        gateway.reload(built.router, built.gateway);
                        persistence = built.persistence;
                        tracing::info!(config = %args.config.display(), routes = ?gateway.router().route_names(), "configuration reloaded");
                    }
                    Err(error) => {
                        tracing::error!(config = %args.config.display(), error = %format!("{error:#}"), "configuration refused; the running one stays");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: draining requests in flight");
    let _ = stop.send(());
    server.await.context("the server task")?.context("serving")?;
    drop(persistence);
    Ok(ExitCode::SUCCESS)
}
