//! Shared set-up: mock upstreams, a router over them, the gateway on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard::{Backoff, Router, RouterBuilder, RouterConfig, StrategyKind};
use switchyard_core::{Clock, Credential, ManualClock, Provider};
use switchyard_mock::{KeyScript, MockUpstream};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{MemoryLedger, QuotaConfig};
use switchyard_server::{Gateway, GatewayConfig, Services};
use tokio::sync::oneshot;

/// A secret for a mock key.
pub(crate) fn secret(key: &str) -> String {
    format!("sk-mock-{key}-0123456789")
}

/// A valid scripted key whose secret is [`secret`].
pub(crate) fn key(id: &str) -> KeyScript {
    KeyScript::valid(id, secret(id))
}

/// A mock OpenAI-format upstream with these keys on `clock`.
pub(crate) async fn mock(clock: &ManualClock, keys: Vec<KeyScript>) -> MockUpstream {
    MockUpstream::openai()
        .clock(clock.clone())
        .keys(keys)
        .models(["gpt-4o-mini", "llama-3.3-70b-versatile"])
        .start()
        .await
        .expect("mock starts")
}

/// An OpenAI-format adapter named `id` pointed at `mock`.
pub(crate) fn provider(id: &str, mock: &MockUpstream, clock: &ManualClock) -> Arc<dyn Provider> {
    let mut config = OpenAiConfig::new(id, Preset::OpenAi).at(mock.base_url());
    config.request_timeout = Duration::from_secs(10);
    Arc::new(OpenAiProvider::try_new(config, Arc::new(clock.clone())).expect("adapter builds"))
}

/// A router builder on `clock` with `quota`, no backoff sleeps and a fixed seed.
pub(crate) fn builder(clock: &ManualClock, quota: QuotaConfig) -> RouterBuilder {
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    Router::builder()
        .clock(Arc::clone(&shared))
        .quota(Arc::new(MemoryLedger::new(shared, quota)))
        .config(RouterConfig {
            seed: Some(7),
            backoff: Backoff { base: Duration::ZERO, max: Duration::ZERO, stated_jitter: 0.0 },
            // Tests here pump the manual clock while a stream runs (each chunk waits on it):
            // the router's stream timers must not fire in the time that pumping passes.
            stream_idle_timeout: switchyard::MAX_TIMEOUT,
            stream_deadline: switchyard::MAX_TIMEOUT,
            ..RouterConfig::default()
        })
}

/// Adds the credentials of `provider` for these key ids.
pub(crate) fn credentials(
    mut builder: RouterBuilder,
    provider: &str,
    ids: &[&str],
) -> RouterBuilder {
    for id in ids {
        builder = builder.credential(provider, Credential::new(*id, secret(id)));
    }
    builder
}

/// A gateway serving on loopback; dropping it shuts the server down.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) gateway: Gateway,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks for a graceful shutdown and waits for the server to finish.
    pub(crate) async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("task").await.expect("server task joins")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts `router` behind a gateway on 127.0.0.1:0.
pub(crate) async fn serve(router: Router, clock: &ManualClock, config: GatewayConfig) -> Running {
    serve_with(router, clock, config, Services::default()).await
}

/// Starts `router` behind a gateway with `services` on 127.0.0.1:0.
pub(crate) async fn serve_with(
    router: Router,
    clock: &ManualClock,
    config: GatewayConfig,
    services: Services,
) -> Running {
    let gateway = Gateway::with_services(router, Arc::new(clock.clone()), config, services);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = gateway.clone();
    let task = tokio::spawn(async move {
        switchyard_server::serve(listener, &served, async move {
            let _ = stopped.await;
        })
        .await
    });
    Running { addr, gateway, stop: Some(stop), task: Some(task) }
}

/// A chat completion body.
pub(crate) fn body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in five words"}],
        "max_tokens": 16,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// The `data:` payloads of an SSE body, in order.
pub(crate) fn sse_data(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| line.strip_prefix("data: ")).map(str::to_owned).collect()
}

/// Waits until `ready` holds, yielding; fails after 20 s of real time so a bug shows as a
/// failure, not a hang. Never used to let time pass: time is the manual clock's.
pub(crate) async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !ready() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting until {what}");
}

/// Checks that `response` is a refusal with `status` and returns its OpenAI `error` object
/// (`code`, `type`, `message`, `param`).
pub(crate) async fn error_of(
    response: reqwest::Response,
    status: reqwest::StatusCode,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let mut body: serde_json::Value = response.json().await.expect("an error body in JSON");
    body["error"].take()
}

/// Posts `body` as JSON to `url`.
pub(crate) async fn send_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client.post(url).json(body).send().await.expect("sent")
}

/// The JSON answer to `GET url`.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.expect("sent").json().await.expect("a JSON answer")
}

/// Keys `k1` and `k2` of provider `groq` on `upstream`, one priority route `route` to
/// `target`, served behind the admin token `token`.
pub(crate) async fn serve_two_keys_with_admin(
    clock: &ManualClock,
    upstream: &MockUpstream,
    (route, target): (&str, &str),
    token: &str,
) -> Running {
    let router =
        credentials(
            builder(clock, QuotaConfig::default())
                .provider(provider("groq", upstream, clock))
                .route(route, StrategyKind::Priority, [target]),
            "groq",
            &["k1", "k2"],
        )
        .build()
        .expect("router builds");
    let config = GatewayConfig { admin_token: Some(token.into()), ..GatewayConfig::default() };
    serve_with(router, clock, config, Services::default()).await
}
