//! The Python virtual environment the gateway's end-to-end tests drive it from: the official
//! `openai` SDK from PyPI in `target/py`, created once and reused while it imports.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The venv's interpreter, with `openai` importable; creates the venv when it is missing or
/// broken.
///
/// # Errors
/// When `python3 -m venv` or `pip install openai` fails (the message names the command).
pub(crate) fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("py");
    let python = venv.join("bin").join("python");
    if imports_openai(&python) {
        return Ok(python);
    }
    println!("xtask: creating {} with the openai package", venv.display());
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv target/py")?;
    run(
        Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "openai"]),
        "target/py/bin/pip install openai",
    )?;
    if !imports_openai(&python) {
        bail!("{} cannot import openai after installing it", python.display());
    }
    Ok(python)
}

fn imports_openai(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", "import openai"])
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
