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
    /// Starts a server on a free port. The port is found by binding and closing it, so another
    /// process may take it before `redis-server` binds: then the server exits and the start
    /// is tried again on a new port.
    pub(crate) fn start() -> Result<Self> {
        ensure_installed()?;
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_once() {
                Ok(server) => return Ok(server),
                Err(error) => failures.push(format!("{error:#}")),
            }
        }
        bail!("redis-server did not start: {}", failures.join("; "))
    }

    fn start_once() -> Result<Self> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("switchyard-redis-{}-{port}", std::process::id()));
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
        let mut server = Self { child, port, dir };
        server.wait_ready()?;
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Waits until our child answers `PING` on the port: a connection alone could be another
    /// process that took the port. Generous, for a machine busy with other builds.
    fn wait_ready(&mut self) -> Result<()> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().context("checking redis-server")? {
                bail!("redis-server exited ({status}) instead of listening on port {}", self.port);
            }
            if self.answers_ping() {
                return Ok(());
            }
            // xtask is not library code: a short real wait for a real process to boot.
            #[expect(clippy::disallowed_methods, reason = "waiting for a child process to listen")]
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("redis-server did not answer PING on port {} within 30 s", self.port)
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0_u8; 7];
        stream.set_read_timeout(Some(Duration::from_secs(5))).is_ok()
            && stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
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
