//! `switchyard keys`: the encrypted key vault.

use std::process::ExitCode;

/// Arguments of `switchyard keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {}

pub(crate) fn run(_args: KeysArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the key vault commands are being built (key vault issue)")
}
