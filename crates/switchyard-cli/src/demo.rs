//! `switchyard demo`: simulated upstreams, real HTTP, what the adapter saw.

use std::process::ExitCode;

/// Arguments of `switchyard demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {}

pub(crate) fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the demo is being built (workspace foundation issue)")
}
