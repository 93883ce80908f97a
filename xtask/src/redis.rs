//! A throwaway `redis-server` on a free loopback port, for the tests that need a real one.
//! Installed with apt when missing and we are root; otherwise the error names the command.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A running server, stopped on drop.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub(crate) fn start() -> Result<Self> {
        ensure_installed()?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("switchyard-redis-{port}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning redis-server")?;
        let server = Self { child, port, dir };
        server.wait_ready()?;
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn wait_ready(&self) -> Result<()> {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            // xtask is not library code: a short real wait for a real process to boot.
            #[expect(clippy::disallowed_methods, reason = "waiting for a child process to listen")]
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("redis-server did not listen on port {} within 5 s", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn ensure_installed() -> Result<()> {
    if which("redis-server") {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0"))
        .unwrap_or(false);
    const INSTALL: &str = "apt-get update && apt-get install -y redis-server";
    if !is_root {
        bail!("redis-server is not installed; run as root: {INSTALL}");
    }
    eprintln!("xtask: installing redis-server ({INSTALL})");
    let status = Command::new("sh")
        .args(["-c", &format!("export DEBIAN_FRONTEND=noninteractive; {INSTALL}")])
        .stdout(Stdio::null())
        .status()
        .context("running apt-get")?;
    if !status.success() || !which("redis-server") {
        bail!("installing redis-server failed; run: {INSTALL}");
    }
    Ok(())
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}
