//! `switchyard`: the command-line face of Switchyard and the composition root that turns
//! configuration into adapters, ledgers and a router.
//!
//! Each subcommand lives in its own module with its own arguments; this file only parses
//! and dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a CLI talks to its terminal")]

mod config;
mod demo;
mod keys;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Route LLM chat requests across providers and keys, so one spent key never stops your app.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run against simulated providers, no API keys needed: keys rotate, quotas run out,
    /// errors are classified.
    Demo(demo::DemoArgs),
    /// Manage the encrypted key vault.
    Keys(keys::KeysArgs),
    /// Run the OpenAI-compatible gateway from `switchyard.toml`.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
