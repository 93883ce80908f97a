//! The status page (`/ui`) in a real headless Chromium, driven over WebDriver by Debian's
//! `chromedriver`, against the real `switchyard serve` binary in front of a Groq-format
//! `switchyard-mock`: log in with the form, watch a key go from available to cooling to
//! exhausted while requests run, see the invalid key marked, disable a key with its button and
//! see the next request skip it, read the decision trace of a request that fell back. And the
//! one-time login link `switchyard demo` prints. Screenshots go to `target/ui/*.png`, each
//! with the page's text beside it (`*.txt`), checked for what must be there.
//!
//! Needs `chromium` and `chromedriver` (`cargo xtask test` installs them and passes their
//! paths in `SWITCHYARD_TEST_CHROMIUM` / `SWITCHYARD_TEST_CHROMEDRIVER`); without them the
//! tests fail and say so. Every wait is bounded and fails with what it waited for.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_core::{Clock as _, ManualClock, SystemClock};
use switchyard_mock::{
    Failure, Fault, FaultRule, Flavor, KeyScript, MockUpstream, OpenAiWire, Unit, Window,
};

use support::Gateway;

const ADMIN: &str = "ui-admin-token-0123";
const MODEL: &str = "llama-3.3-70b-versatile";
/// A bounded wait for anything the browser or the gateway must do; generous for a loaded
/// 2-core machine.
const WAIT: Duration = Duration::from_secs(90);
/// The element key WebDriver wraps element references in.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn secret(id: &str) -> String {
    format!("gsk_ui_{id}_0123456789abcdefghij")
}

/// The pace of a bounded wait's polling. Real time on purpose: it waits for a real browser
/// and real processes, never for time to pass in the code under test.
async fn pace(millis: u64) {
    SystemClock.sleep_until(SystemClock.now() + Duration::from_millis(millis)).await;
}

/// Where the browser and its driver are: from xtask, else from `PATH`.
fn tool(variable: &str, program: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|path| path.trim().to_owned())
        .filter(|path| !path.is_empty());
    match found {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{program} is not installed and {variable} is not set: the status page's browser \
             test needs Debian's chromium and chromium-driver. Run `cargo xtask test` (it \
             installs them as root) or `apt-get install -y chromium chromium-driver`."
        ),
    }
}

/// The directory screenshots go to: `target/ui`.
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    let dir = target.join("ui");
    std::fs::create_dir_all(&dir).expect("target/ui created");
    dir
}

/// A running `chromedriver` on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start() -> Self {
        let driver = tool("SWITCHYARD_TEST_CHROMEDRIVER", "chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .expect("an HTTP client");
        let mut failures = Vec::new();
        // The port is found by binding and closing it; another process may take it first,
        // so a start that does not answer is tried again on a new port.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(&driver)
                .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".to_owned()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("{} does not start: {error}", driver.display()));
            let mut started =
                Self { child, base: format!("http://127.0.0.1:{port}"), http: http.clone() };
            match started.wait_ready().await {
                Ok(()) => return started,
                Err(why) => failures.push(why),
            }
        }
        panic!("chromedriver did not become ready: {}", failures.join("; "))
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let ready = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("chromedriver exited ({status})"));
                }
                let answer = self.http.get(format!("{}/status", self.base)).send().await;
                if let Ok(answer) = answer
                    && let Ok(body) = answer.json::<Value>().await
                    && body["value"]["ready"] == true
                {
                    return Ok(());
                }
                pace(100).await;
            }
        })
        .await;
        ready.unwrap_or_else(|_| Err(format!("no answer on {} within {WAIT:?}", self.base)))
    }

    /// A new browser session with a fresh profile.
    async fn session(&self, profile: &Path) -> Session {
        let browser = tool("SWITCHYARD_TEST_CHROMIUM", "chromium");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1800",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": browser, "args": args},
        }}});
        let answer = self.http.post(format!("{}/session", self.base)).json(&capabilities).send();
        let body: Value = answer.await.expect("chromedriver answers").json().await.expect("json");
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {body}"))
            .to_owned();
        Session { http: self.http.clone(), base: format!("{}/session/{id}", self.base) }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window, through WebDriver.
struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {body}");
        body["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn eval(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.call(reqwest::Method::POST, "/execute/sync", Some(body)).await
    }

    async fn find(&self, css: &str) -> String {
        let body = json!({ "using": "css selector", "value": css });
        let found = self.call(reqwest::Method::POST, "/element", Some(body)).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let body = json!({ "text": text });
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(body)).await;
    }

    /// Clicks the element; the page redraws what changed, so a click that lands on an
    /// element just replaced is tried again on the new one, within [`WAIT`].
    async fn click(&self, css: &str) {
        let clicked = tokio::time::timeout(WAIT, async {
            loop {
                let body = json!({ "using": "css selector", "value": css });
                let found = self
                    .http
                    .post(format!("{}/element", self.base))
                    .json(&body)
                    .send()
                    .await
                    .expect("chromedriver answers");
                let found: Value = found.json().await.expect("json");
                if let Some(element) = found["value"][ELEMENT].as_str() {
                    let click = self
                        .http
                        .post(format!("{}/element/{element}/click", self.base))
                        .json(&json!({}))
                        .send()
                        .await
                        .expect("chromedriver answers");
                    if click.status().is_success() {
                        return;
                    }
                }
                pace(100).await;
            }
        })
        .await;
        assert!(clicked.is_ok(), "could not click {css} within {WAIT:?}");
    }

    /// Waits until `condition` (a JavaScript expression) is true on the page.
    async fn wait_for(&self, what: &str, condition: &str) {
        let script = format!("return Boolean({condition});");
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                if self.eval(&script).await == Value::Bool(true) {
                    return;
                }
                pace(150).await;
            }
        })
        .await;
        if waited.is_err() {
            let text = self.eval("return document.body.innerText;").await;
            let shot = self.screenshot("failed").await;
            panic!(
                "gave up after {WAIT:?} waiting for {what} ({condition}); screenshot {}; the page says:\n{}",
                shot.display(),
                text.as_str().unwrap_or_default()
            );
        }
    }

    async fn text(&self) -> String {
        self.eval("return document.body.innerText;").await.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a screenshot as `target/ui/<name>.png` and the page's text as `<name>.txt`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64(encoded.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        let dir = shots_dir();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        std::fs::write(dir.join(format!("{name}.txt")), self.text().await).expect("text written");
        path
    }

    /// Saves a screenshot and checks the page shows each of `texts`.
    async fn shot_showing(&self, name: &str, texts: &[&str]) {
        self.screenshot(name).await;
        let text = self.text().await;
        for expected in texts {
            assert!(text.contains(expected), "{name}.png: the page lacks {expected:?}:\n{text}");
        }
    }

    async fn resize(&self, width: u32, height: u32) {
        let body = json!({ "width": width, "height": height });
        self.call(reqwest::Method::POST, "/window/rect", Some(body)).await;
    }

    async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

/// Standard base64 with padding, as WebDriver sends screenshots.
fn base64(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => u32::from(byte - b'A'),
            b'a'..=b'z' => u32::from(byte - b'a') + 26,
            b'0'..=b'9' => u32::from(byte - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|byte| !byte.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let digits: Vec<u32> = chunk.iter().filter(|b| **b != b'=').map(|b| value(*b)).collect();
        let n = digits.iter().enumerate().fold(0, |n, (idx, d)| n | d << (18 - 6 * idx));
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..digits.len().saturating_sub(1)]);
    }
    out
}

async fn groq_mock() -> MockUpstream {
    MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .clock(ManualClock::default())
        .models([MODEL])
        .keys([
            KeyScript::invalid("bad", secret("bad")),
            KeyScript::valid("a1", secret("a1")),
            KeyScript::valid("a2", secret("a2")),
            KeyScript::valid("a3", secret("a3")),
        ])
        .start()
        .await
        .expect("the mock starts")
}

fn rate_limited(window: Window) -> FaultRule {
    FaultRule::once(Fault::Fail(Failure::RateLimited {
        window,
        unit: Unit::Requests,
        limit: 1000,
        used: 1000,
        requested: 1,
        retry_after: Duration::from_secs(600),
    }))
    .for_key("a1")
}

async fn chat(gateway: &Gateway) -> StatusCode {
    let body = json!({"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8});
    let client = reqwest::Client::new();
    let sent = client.post(gateway.url("/v1/chat/completions")).json(&body).send().await;
    sent.expect("sent").status()
}

/// The state the page shows for a key.
fn key_is(key: &str, state: &str) -> String {
    format!("document.querySelector('.key[data-key=\"groq/{key}\"]')?.dataset.state === '{state}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_keys_change_state_and_the_decision_traces_in_a_real_browser() {
    let mock = groq_mock().await;
    let config = format!(
        r#"
[server]
admin_token = "${{ADMIN_TOKEN}}"

[state]
path = "state.db"

[[providers]]
name = "groq"
kind = "openai"
preset = "groq"
base_url = "{url}"
keys = ["${{BAD}}", "${{A1}}", "${{A2}}", "${{A3}}"]
models = ["{MODEL}"]
limits = {{ requests_per_minute = 30, requests_per_day = 1000 }}
reset = "00:00 UTC"

[[routes]]
name = "default"
strategy = "priority"
targets = ["groq/{MODEL}"]
"#,
        url = mock.base_url()
    );
    let env = [
        ("ADMIN_TOKEN", ADMIN.to_owned()),
        ("BAD", secret("bad")),
        ("A1", secret("a1")),
        ("A2", secret("a2")),
        ("A3", secret("a3")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");

    // The page is a static shell with a strict policy: no inline script, nothing from
    // elsewhere, no framing; the token is not in it.
    let page = reqwest::get(gateway.url("/ui")).await.expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script>") && html.contains("<script src=\"/ui/app.js\""), "{html}");
    let recent = reqwest::get(gateway.url("/admin/recent")).await.expect("sent");
    assert_eq!(recent.status(), StatusCode::UNAUTHORIZED, "recent requests need the token");
    // A login code is traded only from the page's own origin, and only a code made by the
    // gateway works (this one never was).
    let client = reqwest::Client::new();
    let login = |origin: Option<&'static str>| {
        let mut request = client.post(gateway.url("/ui/login")).json(&json!({"code": "0123"}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(login(Some("http://evil.example")).await, StatusCode::FORBIDDEN);
    assert_eq!(login(None).await, StatusCode::UNAUTHORIZED);

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = driver.session(profile.path()).await;
    browser.go(&gateway.url("/ui")).await;
    browser.wait_for("the login form", "!document.getElementById('login').hidden").await;
    browser.shot_showing("login", &["Log in", "Admin token"]).await;
    browser.type_into("#token", "not-the-token").await;
    browser.click("#login-button").await;
    browser
        .wait_for(
            "a refused token",
            "document.getElementById('login-error').textContent.includes('refused')",
        )
        .await;
    browser.type_into("#token", ADMIN).await;
    browser.click("#login-button").await;
    browser.wait_for("the status page", &key_is("A1", "available")).await;
    let kept = browser
        .eval("return [location.href, sessionStorage.getItem('switchyard.admin-token')];")
        .await;
    assert!(
        !kept[0].as_str().expect("href").contains(ADMIN),
        "the token is not in the URL: {kept}"
    );
    assert_eq!(kept[1], ADMIN, "the token is in the tab's session storage");

    // 1. The invalid key comes first: the request falls back to A1, and BAD is marked.
    assert_eq!(chat(&gateway).await, StatusCode::OK);
    assert_eq!(mock.counts("a1").map(|c| c.served), Some(1));
    browser.wait_for("BAD marked invalid", &key_is("BAD", "invalid")).await;
    browser
        .wait_for(
            "the fallback in the recent requests",
            "document.querySelector('#recent .fallback')",
        )
        .await;
    browser
        .shot_showing(
            "invalid-and-fallback",
            &[
                "invalid",
                "fell back",
                &format!("tried groq/BAD/{MODEL}"),
                "invalid key (HTTP 401)",
                &format!("tried groq/A1/{MODEL}"),
                "not billed",
                "Providers, keys and models",
                "Recent requests",
            ],
        )
        .await;

    // 2. A1 available -> cooling: a minute's 429; the request moves on to A2.
    browser.wait_for("A1 available", &key_is("A1", "available")).await;
    mock.inject(rate_limited(Window::Minute));
    assert_eq!(chat(&gateway).await, StatusCode::OK);
    assert_eq!(mock.counts("a2").map(|c| c.served), Some(1));
    browser.wait_for("A1 cooling", &key_is("A1", "cooling")).await;
    browser.shot_showing("cooling", &["cooling until", "rate_limited", "(UTC)"]).await;

    // 3. Reset with the button brings it back; the day's 429 then leaves it exhausted until
    // the reset the provider named, shown in the provider's zone (UTC here) and the viewer's.
    browser.click("button[data-key=\"groq/A1\"][data-action=\"reset\"]").await;
    browser.wait_for("A1 available after its reset", &key_is("A1", "available")).await;
    mock.inject(rate_limited(Window::Day));
    assert_eq!(chat(&gateway).await, StatusCode::OK);
    browser.wait_for("A1 exhausted", &key_is("A1", "exhausted")).await;
    browser.shot_showing("exhausted", &["exhausted until", "Z (UTC) · ", "rate_limited_day"]).await;

    // 4. Disable A2 with its button: the next request skips it (the upstream never sees it)
    // and A3 serves; the trace says why each other key was skipped.
    browser.click("button[data-key=\"groq/A2\"][data-action=\"disable\"]").await;
    browser.wait_for("A2 disabled", &key_is("A2", "disabled")).await;
    let a2_before = mock.counts("a2").map(|c| c.requests);
    assert_eq!(chat(&gateway).await, StatusCode::OK);
    assert_eq!(mock.counts("a2").map(|c| c.requests), a2_before, "A2 was not called");
    assert_eq!(mock.counts("a3").map(|c| c.served), Some(1));
    let skipped_a2 = format!("skipped groq/A2/{MODEL}: disabled by an operator");
    browser
        .wait_for(
            "the skip in the trace",
            &format!("document.getElementById('recent').innerText.includes('{skipped_a2}')"),
        )
        .await;
    browser
        .shot_showing(
            "disabled-skipped",
            &[
                &skipped_a2,
                &format!("skipped groq/BAD/{MODEL}: quota: invalid"),
                &format!("skipped groq/A1/{MODEL}: quota: exhausted"),
                "Enable",
            ],
        )
        .await;
    browser.click("button[data-key=\"groq/A2\"][data-action=\"enable\"]").await;
    browser.wait_for("A2 enabled again", &key_is("A2", "available")).await;

    // The charts come from the analytics reports, as inline SVG: the four requests' attempts
    // per key, per hour, and the failures by class.
    browser
        .wait_for(
            "the charts",
            "document.querySelector('#usage-chart svg')?.textContent.includes('groq/A3') \
             && document.querySelector('#errors-chart svg')?.textContent.includes('rate_limited_day') \
             && document.querySelector('#hourly-chart svg rect.c-ok')",
        )
        .await;
    browser.eval("document.getElementById('usage-chart').scrollIntoView(); return true;").await;
    browser
        .shot_showing(
            "charts",
            &[
                "Usage per key",
                "Attempts per hour",
                "Errors by class",
                "invalid_key",
                "rate_limited",
            ],
        )
        .await;

    // No content-security-policy violation was logged.
    let logs =
        browser.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
    let logs = logs.to_string();
    assert!(!logs.contains("Content Security Policy"), "CSP violations: {logs}");

    // At a phone's width the page still fits: nothing wider than the screen.
    browser.resize(390, 1400).await;
    browser
        .wait_for(
            "the page to fit 390 px",
            "document.documentElement.scrollWidth <= window.innerWidth + 1",
        )
        .await;
    browser.eval("window.scrollTo(0, 0); return true;").await;
    browser.shot_showing("phone", &["groq", "A1", "exhausted"]).await;
    browser.eval("document.getElementById('recent').scrollIntoView(); return true;").await;
    browser.shot_showing("phone-trace", &[&skipped_a2]).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_one_time_login_link_that_leaves_no_code_in_the_address_bar() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["demo", "--requests", "40", "--concurrency", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = demo.stdout.take().expect("stdout piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("http://")
                && line.contains("/ui#code=")
            {
                let link = line[at..].split_whitespace().next().unwrap_or("").to_owned();
                let _ = sender.send(link);
            }
        }
    });
    let link = receiver.recv_timeout(WAIT).expect("the demo prints a /ui#code= link");
    let (base, code) = link.split_once("/ui#code=").expect("a link");
    assert_eq!(code.len(), 32, "{link}");

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = driver.session(profile.path()).await;
    browser.go(&link).await;
    browser
        .wait_for(
            "the page logged in by the link",
            "document.querySelector('.key[data-key=\"gemini/gemini-1\"]')",
        )
        .await;
    let href = browser.eval("return location.href;").await;
    assert_eq!(href, format!("{base}/ui"), "the code left the address bar");
    let kept = browser.eval("return sessionStorage.getItem('switchyard.admin-token');").await;
    assert!(kept.is_string(), "logged in: {kept}");
    browser.screenshot("demo").await;
    browser.close().await;

    // The code worked once: a second browser with the same link is asked to log in.
    let profile = tempfile::tempdir().expect("a profile directory");
    let again = driver.session(profile.path()).await;
    again.go(&link).await;
    again
        .wait_for(
            "the used link refused",
            "document.getElementById('login-error').textContent.includes('used already')",
        )
        .await;
    again.close().await;
    let _ = demo.kill();
    let _ = demo.wait();
}
