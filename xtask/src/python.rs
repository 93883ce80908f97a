//! The Python virtual environment the gateway's end-to-end tests drive it from: the official
//! `openai` and `anthropic` SDKs from PyPI in `target/py`, created once and reused while they
//! import.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What the tests use, as PyPI names them (and Python imports them): the SDKs, and coverage.py
/// for the coverage optimizer example.
const PACKAGES: [&str; 3] = ["openai", "anthropic", "coverage"];

/// The venv's interpreter, with every SDK importable; creates the venv when it is missing or
/// broken, and installs what it lacks.
///
/// # Errors
/// When `python3 -m venv` or `pip install` fails (the message names the command).
pub(crate) fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("py");
    let python = venv.join("bin").join("python");
    if imports_all(&python) {
        return Ok(python);
    }
    if !python.exists() {
        println!("xtask: creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv target/py")?;
    }
    println!("xtask: installing {} into {}", PACKAGES.join(", "), venv.display());
    run(
        Command::new(venv.join("bin").join("pip")).args(["install", "--quiet"]).args(PACKAGES),
        &format!("target/py/bin/pip install {}", PACKAGES.join(" ")),
    )?;
    if !imports_all(&python) {
        bail!("{} cannot import {} after installing them", python.display(), PACKAGES.join(", "));
    }
    Ok(python)
}

fn imports_all(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", &format!("import {}", PACKAGES.join(", "))])
            .output()
            .is_ok_and(|output| output.status.success())
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("running `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}
