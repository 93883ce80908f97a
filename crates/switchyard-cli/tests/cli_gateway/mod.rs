//! A real gateway in the test process for the `status` and `stats` tests: the router with the
//! real OpenAI adapter in front of a Groq-shaped `switchyard-mock` upstream, served by
//! `switchyard-server` on loopback with an admin token and, when asked, the analytics log.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::sync::Arc;
use std::time::Duration;

use switchyard::{EventSink, Router, StrategyKind};
use switchyard_core::{Clock, Credential, SystemClock};
use switchyard_mock::{Flavor, KeyScript, MockUpstream, OpenAiWire};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_server::{EventHub, Gateway, GatewayConfig, Services};
use switchyard_store::{Analytics, AnalyticsWriter, AnalyticsWriterConfig};

pub(crate) const TOKEN: &str = "admin-secret-token";
pub(crate) const MODEL: &str = "llama-3.1-8b-instant";

/// A running gateway, its upstream and its event hub.
pub(crate) struct Running {
    pub(crate) base: String,
    pub(crate) mock: MockUpstream,
    pub(crate) events: Arc<EventHub>,
    _dir: tempfile::TempDir,
}

pub(crate) fn secret(id: &str) -> String {
    format!("gsk-{id}-0000000000")
}

/// Keys named `good-*` are valid, `bad-*` invalid.
pub(crate) async fn start(keys: &[&str], analytics: bool) -> Running {
    let scripts = keys.iter().map(|id| {
        if id.starts_with("good") {
            KeyScript::valid(*id, secret(id))
        } else {
            KeyScript::invalid(*id, secret(id))
        }
    });
    let mock = MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
        .models([MODEL])
        .keys(scripts)
        .start()
        .await
        .expect("mock starts");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = tempfile::tempdir().expect("temporary directory");
    let (writer, reader) = if analytics {
        let path = dir.path().join("analytics.db");
        let writer = AnalyticsWriter::start(
            Analytics::open(&path).expect("analytics opens"),
            Arc::clone(&clock),
            AnalyticsWriterConfig::default(),
        )
        .expect("writer starts");
        (Some(writer), Some(Analytics::open(&path).expect("reader opens")))
    } else {
        (None, None)
    };
    let events = Arc::new(EventHub::new(Arc::clone(&clock), writer));
    let mut config = OpenAiConfig::new("groq", Preset::Groq).at(mock.base_url());
    config.request_timeout = Duration::from_secs(10);
    let mut builder = Router::builder()
        .clock(Arc::clone(&clock))
        .event_sink(Arc::clone(&events) as Arc<dyn EventSink>)
        .provider(Arc::new(
            OpenAiProvider::try_new(config, Arc::new(SystemClock)).expect("adapter"),
        ));
    let mut gateway_config =
        GatewayConfig { admin_token: Some(TOKEN.to_owned()), ..GatewayConfig::default() };
    for id in keys {
        let credential = Credential::new(*id, secret(id));
        gateway_config
            .fingerprints
            .insert(("groq".into(), credential.id().clone()), credential.fingerprint().to_string());
        builder = builder.credential("groq", credential);
    }
    let router = builder
        .route("default", StrategyKind::Priority, [format!("groq/{MODEL}")])
        .build()
        .expect("router builds");
    let services =
        Services { events: Some(Arc::clone(&events)), analytics: reader, ..Services::default() };
    let gateway = Gateway::with_services(router, clock, gateway_config, services);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = switchyard_server::serve(listener, &gateway, std::future::pending()).await;
    });
    Running { base, mock, events, _dir: dir }
}

impl Running {
    /// One chat request through the gateway; its status.
    pub(crate) async fn chat(&self) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&serde_json::json!({
                "model": "default",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 4,
            }))
            .send()
            .await
            .expect("the gateway answers")
            .status()
            .as_u16()
    }
}

/// Runs the binary with `args`, off the test's runtime (the gateway runs on it).
pub(crate) async fn switchyard(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .env_remove("SWITCHYARD_URL")
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("joined")
}
