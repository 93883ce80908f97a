//! Debian's headless `chromium` and its `chromedriver`, for the status page's browser test
//! (`crates/switchyard-cli/tests/ui.rs`). Installed with apt when missing and we are root;
//! otherwise the error names the command. Their paths go to the tests as
//! `SWITCHYARD_TEST_CHROMIUM` and `SWITCHYARD_TEST_CHROMEDRIVER`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The command that installs both.
const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";

/// The browser and its driver, installed first when missing.
pub(crate) struct Chromium {
    /// The browser.
    pub(crate) browser: PathBuf,
    /// The WebDriver server.
    pub(crate) driver: PathBuf,
}

/// Finds `chromium` and `chromedriver`, installing them with apt when one is missing.
pub(crate) fn ensure_installed() -> Result<Chromium> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if !is_root {
        bail!("chromium or chromedriver is not installed; run as root: {INSTALL}");
    }
    eprintln!("xtask: installing chromium and chromedriver ({INSTALL})");
    let status = Command::new("sh")
        .args(["-c", &format!("export DEBIAN_FRONTEND=noninteractive; {INSTALL}")])
        .stdout(Stdio::null())
        .status()
        .context("running apt-get")?;
    match find() {
        Some(found) if status.success() => Ok(found),
        _ => bail!("installing chromium and chromedriver failed; run: {INSTALL}"),
    }
}

fn find() -> Option<Chromium> {
    Some(Chromium { browser: which("chromium")?, driver: which("chromedriver")? })
}

fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = path.trim();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}
