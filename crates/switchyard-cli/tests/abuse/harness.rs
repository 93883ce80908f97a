//! The suite's own set-up: the real `switchyard serve` started in a directory the test keeps
//! (so a restart finds the same `[state]` file), its pid for RSS and `kill -9`, its stderr
//! collected for panics; clients with timeouts that count hangs; the report file.
//!
//! Real time is read here on purpose, through `SystemClock`: the gateway is another process
//! on the real clock, and the suite reports latencies. No test asserts a wall-clock speed;
//! every wait is bounded and fails with a message.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_core::{Clock, SystemClock};
use switchyard_mock::{KeyScript, MockBuilder, MockUpstream};

/// The admin token every abuse config uses (`${ABUSE_ADMIN}`).
pub(crate) const ADMIN: &str = "abuse-admin-token";
/// The client token every abuse config uses (`${ABUSE_CLIENT}`): with a token set, the
/// gateway's Host check for an open localhost gateway does not apply to the suite.
pub(crate) const CLIENT: &str = "abuse-client-token";
/// A client request's timeout: generous, so a loaded machine is not a hang; a request that
/// reaches it is counted as a hang.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The real clock, for the figures the suite reports and for bounded waits.
pub(crate) fn now() -> Instant {
    SystemClock.now()
}

/// Sleeps on the real clock (pacing a load generator, polling another process).
pub(crate) async fn pause(duration: Duration) {
    SystemClock.sleep(duration).await;
}

/// The secret of mock key `id`.
pub(crate) fn secret(id: &str) -> String {
    format!("sk-mock-{id}-0123456789abcdef")
}

/// A mock upstream on the system clock (the gateway runs on real time, so the mock's
/// stream pacing must too) with these valid keys and any model.
pub(crate) fn mock(builder: MockBuilder, keys: &[&str]) -> MockBuilder {
    builder.keys(keys.iter().map(|id| KeyScript::valid(*id, secret(id))))
}

/// Starts a mock, or fails the test saying so.
pub(crate) async fn start(builder: MockBuilder) -> MockUpstream {
    builder.start().await.expect("the mock upstream starts")
}

/// The directory a gateway runs in; it outlives one gateway process.
pub(crate) struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    /// A fresh directory with `switchyard.toml` holding `config`.
    pub(crate) fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("switchyard.toml"), config).expect("config written");
        Self { dir }
    }

    /// A path inside it.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The real binary serving the config in a [`Workdir`]; killed when dropped.
pub(crate) struct Gateway {
    child: Child,
    pid: u32,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Gateway {
    /// Runs `switchyard serve` in `workdir` with `env`, until it prints its address.
    ///
    /// # Panics
    /// When it exits or does not listen within 60 s, with what it wrote to stderr.
    pub(crate) fn start(workdir: &Workdir, env: &[(&str, String)]) -> Self {
        match Self::try_start(workdir, env) {
            Ok(gateway) => gateway,
            Err(stderr) => panic!("the gateway did not start:\n{stderr}"),
        }
    }

    fn try_start(workdir: &Workdir, env: &[(&str, String)]) -> Result<Self, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(["serve", "--config"])
            .arg(workdir.path("switchyard.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(workdir.dir.path())
            .env_remove("SWITCHYARD_CONFIG")
            .env("RUST_LOG", "info")
            .env("ABUSE_ADMIN", ADMIN)
            .env("ABUSE_CLIENT", CLIENT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the binary starts");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            // Lines are kept whole but the total is capped: a flood must not make the
            // test itself the memory hog. Panics are looked for in what is kept, and the
            // tail is kept once the cap is reached.
            const KEEP_BYTES: usize = 16 * 1024 * 1024;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("log lock");
                if text.len() > KEEP_BYTES && !line.contains("panicked") {
                    continue;
                }
                text.push_str(&line);
                text.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let first = receiver.recv_timeout(Duration::from_secs(60)).ok().flatten();
        let Some(addr) = first
            .as_deref()
            .and_then(|line| line.strip_prefix("switchyard: listening on http://"))
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            return Err(stderr.lock().expect("log lock").clone());
        };
        Ok(Self { child, pid, addr, stderr })
    }

    /// `host:port`.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// A URL on the gateway.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The resident memory of the gateway process, in KiB (`VmRSS` of /proc/<pid>/status).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the gateway's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Everything it logged so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// How many of its log lines say a thread panicked.
    pub(crate) fn panics(&self) -> usize {
        self.stderr().lines().filter(|line| line.contains("panicked")).count()
    }

    /// Asserts nothing panicked, quoting the first panic lines when something did.
    #[track_caller]
    pub(crate) fn assert_no_panic(&self) {
        let log = self.stderr();
        let panics: Vec<&str> = log.lines().filter(|line| line.contains("panicked")).collect();
        assert!(
            panics.is_empty(),
            "the gateway panicked {} times: {:#?}",
            panics.len(),
            &panics[..panics.len().min(5)]
        );
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, and waits for the exit.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits (up to 60 s) for a clean exit.
    pub(crate) async fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
        let deadline = now() + Duration::from_secs(60);
        while self.is_running() {
            assert!(now() < deadline, "the gateway did not exit within 60 s of SIGTERM");
            pause(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` with the admin token: the JSON body of a 200.
    pub(crate) async fn admin_json(&self, path: &str) -> Value {
        let response = client()
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// `GET path` with the client token: the JSON body of a 200.
    pub(crate) async fn client_json(&self, path: &str) -> Value {
        let response = client()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// `GET path` without a token: status and body text.
    pub(crate) async fn get_text(&self, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .timeout(CLIENT_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with the suite's timeout, keep-alive and client token.
pub(crate) fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {CLIENT}").parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client")
}

/// A chat body asking for `text` to be echoed.
pub(crate) fn chat(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 64,
           "messages": [{"role": "user", "content": text}]})
}

/// What the mocks echo for `text`.
pub(crate) fn echoed(text: &str) -> String {
    format!("You said: {text}")
}

/// How one client call ended.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A complete response: status, headers, body.
    Done { status: u16, provider: Option<String>, body: Vec<u8> },
    /// The client's timeout fired: a hang.
    Hang,
    /// The connection failed (reset, refused, cut).
    Broken(String),
}

/// Sends a POST and reads the whole answer, classifying how it ended.
pub(crate) async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Answer {
    let sent = client.post(url).json(body).send().await;
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Answer::Hang,
        Err(error) => return Answer::Broken(error.to_string()),
    };
    let status = response.status().as_u16();
    let provider = response
        .headers()
        .get("x-switchyard-provider")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match response.bytes().await {
        Ok(body) => Answer::Done { status, provider, body: body.to_vec() },
        Err(error) if error.is_timeout() => Answer::Hang,
        Err(error) => Answer::Broken(error.to_string()),
    }
}

/// How a streamed answer ended, as an OpenAI client reads it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// `data: [DONE]` after this text.
    Completed(String),
    /// An error event (its code), the stream then closed.
    ErrorEvent(String),
    /// Not a stream: a plain answer with this status (a refusal before the first chunk).
    Refused(u16),
    /// The body broke off or ended with neither `[DONE]` nor an error event.
    Broken(String),
    /// The client's timeout fired.
    Hang,
}

/// Streams `body` and reads it to its end, or the client's timeout.
pub(crate) async fn stream(client: &reqwest::Client, url: &str, body: &Value) -> StreamEnd {
    match tokio::time::timeout(CLIENT_TIMEOUT, read_stream(client, url, body)).await {
        Ok(end) => end,
        Err(_) => StreamEnd::Hang,
    }
}

async fn read_stream(client: &reqwest::Client, url: &str, body: &Value) -> StreamEnd {
    let mut response = match client.post(url).json(body).send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return StreamEnd::Hang,
        Err(error) => return StreamEnd::Broken(error.to_string()),
    };
    if response.status() != reqwest::StatusCode::OK {
        return StreamEnd::Refused(response.status().as_u16());
    }
    let mut buffer = Vec::new();
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
            Ok(None) => return StreamEnd::Broken(format!("ended without [DONE] after {text:?}")),
            Err(error) if error.is_timeout() => return StreamEnd::Hang,
            Err(error) => return StreamEnd::Broken(format!("{error} after {text:?}")),
        }
        while let Some(end) = buffer.windows(2).position(|window| window == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let Some(data) = frame.trim_end().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                return StreamEnd::Completed(text);
            }
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                return StreamEnd::Broken(format!("a frame that is not JSON: {data:.200}"));
            };
            if let Some(error) = event.get("error") {
                return StreamEnd::ErrorEvent(error["code"].as_str().unwrap_or("").to_owned());
            }
            if let Some(piece) = event["choices"][0]["delta"]["content"].as_str() {
                text.push_str(piece);
            }
        }
    }
}

/// `/metrics`: its size in bytes and its series (sample lines, values stripped).
pub(crate) async fn metrics(gateway: &Gateway) -> (usize, Vec<String>) {
    let (status, text) = gateway.get_text("/metrics").await;
    assert_eq!(status, 200, "/metrics");
    let series = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.rsplit_once(' ').map_or(line, |(series, _)| series).to_owned())
        .collect();
    (text.len(), series)
}

/// Waits until `ready` holds, polling every 100 ms for at most `limit`.
///
/// # Panics
/// When it never does, naming `what`.
pub(crate) async fn wait_until<F, Fut>(what: &str, limit: Duration, ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(poll_until(limit, ready).await, "gave up after {limit:?} waiting for {what}");
}

/// Polls `ready` every 100 ms for at most `limit`; whether it came to hold.
pub(crate) async fn poll_until<F, Fut>(limit: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = now() + limit;
    loop {
        if ready().await {
            return true;
        }
        if now() >= deadline {
            return false;
        }
        pause(Duration::from_millis(100)).await;
    }
}

/// Appends one JSON line for a scenario to `<target>/abuse-report.jsonl` and prints it.
#[expect(clippy::print_stderr, reason = "the suite prints its figures for the lead to quote")]
pub(crate) fn report(scenario: &str, figures: Value) {
    let line = json!({"scenario": scenario, "figures": figures}).to_string();
    eprintln!("abuse report: {line}");
    let path = target_dir().join("abuse-report.jsonl");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
    if let Err(error) = written {
        eprintln!("abuse report: cannot append to {}: {error}", path.display());
    }
}

/// `CARGO_TARGET_DIR` when absolute (tests run in the package's directory, so a relative
/// one would land elsewhere), else the directory the binary under test was built in
/// (`<target>/debug/switchyard` → `<target>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir;
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_switchyard"));
    binary.parent().and_then(Path::parent).map_or_else(|| PathBuf::from("target"), Path::to_owned)
}

/// This process's (soft, hard) limits on open files; the gateway inherits them.
fn open_files_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|line| line.starts_with("Max open files")).unwrap_or_default();
    let mut fields = line.split_whitespace().skip(3);
    let mut next = || fields.next().and_then(|value| value.parse().ok()).unwrap_or(u64::MAX);
    (next(), next())
}

/// Raises the soft limit on open files to at least `needed` when the hard limit allows
/// (with util-linux's `prlimit`, as the crate forbids `unsafe` and so `setrlimit`); returns
/// the soft limit in force.
pub(crate) fn ensure_open_files(needed: u64) -> u64 {
    let (soft, hard) = open_files_limits();
    if soft >= needed || hard < needed {
        return soft;
    }
    let raised = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), &format!("--nofile={hard}:{hard}")])
        .status();
    if !raised.is_ok_and(|status| status.success()) {
        return soft;
    }
    open_files_limits().0
}

/// Milliseconds of a duration, for the report.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
