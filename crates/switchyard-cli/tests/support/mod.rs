//! Shared set-up of the gateway tests: mock upstreams, and the real `switchyard` binary
//! started on a configuration file in a temporary directory, its logs collected.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;
use switchyard_core::ManualClock;
use switchyard_mock::{KeyScript, MockUpstream};
use tokio::sync::Notify;

/// A mock upstream and the secrets of its keys.
pub(crate) struct Mock {
    /// The upstream.
    pub(crate) upstream: MockUpstream,
}

impl Mock {
    /// The secret of key `id`.
    pub(crate) fn secret(&self, id: &str) -> String {
        format!("sk-mock-{id}-0123456789abcdef")
    }
}

/// A mock OpenAI-format upstream with these valid keys.
pub(crate) async fn start_mock(keys: &[&str]) -> Mock {
    let upstream = MockUpstream::openai()
        .clock(ManualClock::default())
        .keys(keys.iter().map(|id| KeyScript::valid(*id, format!("sk-mock-{id}-0123456789abcdef"))))
        .models([
            "gpt-4o-mini",
            "llama-3.3-70b-versatile",
            "mistral-small-latest",
            "gemini-2.0-flash",
        ])
        .start()
        .await
        .expect("mock starts");
    Mock { upstream }
}

/// The real binary serving a configuration; killed when dropped.
#[derive(Debug)]
pub(crate) struct Gateway {
    child: Child,
    addr: String,
    config: PathBuf,
    stderr: Arc<Mutex<String>>,
    logged: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `config` to `switchyard.toml` in a fresh directory and runs
    /// `switchyard serve --config <it> --listen 127.0.0.1:0` there with `env` set.
    ///
    /// # Errors
    /// What the binary wrote to stderr when it exited instead of listening.
    pub(crate) fn start(config: &str, env: &[(&str, String)]) -> Result<Self, String> {
        Self::start_with_dotenv(config, env, None)
    }

    /// As [`Gateway::start`], with a `.env` file of `dotenv` in the working directory.
    ///
    /// # Errors
    /// What the binary wrote to stderr when it exited instead of listening.
    pub(crate) fn start_with_dotenv(
        config: &str,
        env: &[(&str, String)],
        dotenv: Option<&str>,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("config written");
        if let Some(dotenv) = dotenv {
            std::fs::write(dir.path().join(".env"), dotenv).expect(".env written");
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("SWITCHYARD_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            // `("RUST_LOG", "")` runs the binary with its own default filter.
            if *name == "RUST_LOG" && value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let mut child = command.spawn().expect("the binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let logged = Arc::new(Notify::new());
        let pipe = child.stderr.take().expect("stderr piped");
        let (log_sink, notify) = (Arc::clone(&stderr), Arc::clone(&logged));
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = log_sink.lock().expect("log lock");
                text.push_str(&line);
                text.push('\n');
                drop(text);
                notify.notify_waiters();
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = sender.send(first);
            // Keep draining so the binary never blocks on a full pipe.
            for _ in lines {}
        });
        // Real time on purpose: this waits for another process to start, not for time to
        // pass in the code under test.
        let first = receiver.recv_timeout(Duration::from_secs(60)).ok().flatten();
        let Some(addr) = first
            .as_deref()
            .and_then(|line| line.strip_prefix("switchyard: listening on http://"))
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            // The reader ends when the process has exited; what it read is the reason.
            let _ = reader.join();
            return Err(stderr.lock().expect("log lock").clone());
        };
        Ok(Self { child, addr, config: path, stderr, logged, _dir: dir })
    }

    /// A URL on the gateway.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` with the admin token: asserts a 200 and returns the JSON body.
    pub(crate) async fn admin_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        response.json().await.expect("json")
    }

    /// Everything the binary logged so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// Replaces the configuration file.
    pub(crate) fn rewrite(&self, config: &str) {
        std::fs::write(&self.config, config).expect("config rewritten");
    }

    /// Sends SIGHUP.
    pub(crate) fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("the binary exits")
    }

    /// A notification on every new log line.
    pub(crate) fn logged(&self) -> Arc<Notify> {
        Arc::clone(&self.logged)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for new log lines of `gateway` (up to 30 s of real time) until `ready` holds.
pub(crate) async fn wait_for(gateway: &Gateway, what: &str, ready: impl Fn() -> bool) {
    let logged = gateway.logged();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let notified = logged.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready() {
                return;
            }
            notified.await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

/// The OpenAI `error` object (`code`, `type`, `message`) of a refusal with `status`.
pub(crate) async fn refusal(
    response: reqwest::Response,
    status: reqwest::StatusCode,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "the gateway's answer");
    let mut body: serde_json::Value = response.json().await.expect("an error body in JSON");
    body["error"].take()
}

/// Runs a Python `script` with `args` in the SDK venv `cargo xtask test` prepares (named in
/// `SWITCHYARD_TEST_PYTHON`) and returns the one JSON line it printed.
pub(crate) async fn python<const N: usize>(script: &'static str, args: [String; N]) -> Value {
    let python = std::env::var("SWITCHYARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SWITCHYARD_TEST_PYTHON is not set: these tests need the official Python SDKs; \
             run them with `cargo xtask test`, which creates target/py and sets it"
        )
    });
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg("-c").arg(script).args(args).output()
    })
    .await
    .expect("the SDK task joins")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// A provider `tight` at `base_url` with two OpenAI-format keys (`TIGHT_1`, `TIGHT_2` in the
/// environment) of one request a minute each, and its route `tight`: the third call in a
/// minute finds every key spent.
pub(crate) fn tight_provider(base_url: &str) -> String {
    format!(
        r#"
[[providers]]
name = "tight"
kind = "openai"
base_url = "{base_url}"
keys = ["${{TIGHT_1}}", "${{TIGHT_2}}"]
models = ["gpt-4o-mini"]
limits = {{ requests_per_minute = 1 }}

[[routes]]
name = "tight"
targets = ["tight/gpt-4o-mini"]
"#
    )
}
