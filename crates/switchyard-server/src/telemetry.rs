//! OpenTelemetry traces of what the router did: one span per request and, under it, one span
//! per attempt, exported over OTLP/HTTP (protobuf) to a collector. Off unless configured.
//!
//! The spans are built from the router's events ([`RouterEvent`]), not from code in the
//! request path: [`Telemetry`] is an [`EventSink`] that keeps a request's finished attempts
//! until its [`RequestEvent`] arrives, then emits the request's span and its attempts' spans
//! with their real start and end times (read on the router's [`Clock`], so every inbound
//! format and every way a request ends is traced the same way).
//!
//! Attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `error.type`) plus Switchyard's
//! own under `switchyard.*` (route, request id, client, key id and fingerprint, attempt
//! number, outcome, cost); `docs/telemetry.md` lists them. A span never carries a secret (keys
//! appear by id and fingerprint) nor any prompt or answer text: the events carry none.
//!
//! What is kept between an attempt and its request's end is bounded: at most
//! [`MAX_PENDING`] requests and [`MAX_ATTEMPTS`] attempts each; past that an attempt's span is
//! dropped and counted ([`Telemetry::dropped`]), and the request's span still goes out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use switchyard::{AttemptEvent, EventSink, RequestEvent, RouterEvent};
use switchyard_core::Clock;

/// Requests whose attempts are kept until the request ends.
pub(crate) const MAX_PENDING: usize = 4096;
/// Attempts kept per request (a cascade makes far fewer).
pub(crate) const MAX_ATTEMPTS: usize = 64;
/// A request whose end never came is forgotten after this long (when room is needed).
const STALE_AFTER: Duration = Duration::from_secs(3600);
/// The longest client-chosen text (a request id) put in an attribute.
const MAX_ATTRIBUTE_CHARS: usize = 128;

/// Where and how spans are exported. Plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to its
    /// `/v1/traces` (a URL already ending in `/v1/traces` is used as is).
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The share of requests traced, 0 to 1 (a request the caller's trace already sampled is
    /// decided by its ratio too: the gateway starts its own traces).
    pub sample_ratio: f64,
    /// How long one export may take.
    pub export_timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: "http://127.0.0.1:4318".to_owned(),
            service_name: "switchyard".to_owned(),
            sample_ratio: 1.0,
            export_timeout: Duration::from_secs(10),
        }
    }
}

/// Why telemetry cannot start or flush.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint is not a usable OTLP/HTTP URL. The URL itself is not repeated: it could
    /// hold a credential.
    #[error("invalid OTLP endpoint: {reason}")]
    Endpoint {
        /// What is wrong and what was expected.
        reason: String,
    },
    /// The sample ratio is outside 0..=1.
    #[error("sample ratio {0} is not between 0 and 1")]
    SampleRatio(f64),
    /// The exporter could not be built.
    #[error("cannot start the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// Spans could not be handed to the collector.
    #[error("spans not exported")]
    Export(#[source] opentelemetry_sdk::error::OTelSdkError),
}

/// The URL spans are posted to, from a configured endpoint.
///
/// # Errors
/// [`TelemetryError::Endpoint`] when `endpoint` is not an `http://` or `https://` URL with a
/// host, or carries a user name, password, query or fragment.
pub fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let invalid = |reason: &str| TelemetryError::Endpoint { reason: reason.to_owned() };
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|_| invalid("expected an http:// or https:// URL (OTLP over HTTP, port 4318)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("expected an http:// or https:// URL (OTLP over HTTP, port 4318)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL: set OTEL_EXPORTER_OTLP_HEADERS instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("expected a URL without a query or fragment"));
    }
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url.into())
}

/// A finished attempt waiting for its request's end.
struct Finished {
    name: String,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<&'static str>,
}

struct Pending {
    first_seen: SystemTime,
    attempts: Vec<Finished>,
}

/// Requests are told apart by client and id: ids come from clients and may repeat.
type PendingKey = (Option<Arc<str>>, String);

/// The trace exporter and the router's event sink that feeds it. Share it as an
/// `Arc<dyn EventSink>` with the router (beside the gateway's [`EventHub`](crate::EventHub):
/// see [`EventSinks`]), and call [`Telemetry::shutdown`] before the process exits.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    clock: Arc<dyn Clock>,
    pending: Mutex<HashMap<PendingKey, Pending>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map holds finished spans only; a panic mid-update leaves nothing half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Telemetry {
    /// Starts the exporter: a batch of spans is posted from a thread of its own, so nothing
    /// in the request path waits on the collector. Reads `OTEL_EXPORTER_OTLP_HEADERS` (and
    /// the other `OTEL_EXPORTER_OTLP_*` settings the exporter knows) from the environment.
    ///
    /// # Errors
    /// [`TelemetryError::Endpoint`], [`TelemetryError::SampleRatio`] or
    /// [`TelemetryError::Exporter`].
    pub fn start(config: &TelemetryConfig, clock: Arc<dyn Clock>) -> Result<Self, TelemetryError> {
        let url = traces_url(&config.otlp_endpoint)?;
        if !(0.0..=1.0).contains(&config.sample_ratio) {
            return Err(TelemetryError::SampleRatio(config.sample_ratio));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(config.export_timeout)
            .build()
            .map_err(TelemetryError::Exporter)?;
        let resource = Resource::builder().with_service_name(config.service_name.clone()).build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("switchyard");
        Ok(Self {
            provider,
            tracer,
            clock,
            pending: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        })
    }

    /// Attempts whose span was dropped because too many requests or attempts were pending.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports every finished span now. Blocks until the collector answered (or the export
    /// timed out): call it from a blocking thread in async code.
    ///
    /// # Errors
    /// [`TelemetryError::Export`] when the collector could not be reached or refused.
    pub fn flush(&self) -> Result<(), TelemetryError> {
        self.provider.force_flush().map_err(TelemetryError::Export)
    }

    /// Exports what is left and stops the exporter. Blocks like [`Telemetry::flush`].
    ///
    /// # Errors
    /// [`TelemetryError::Export`] when the last export failed.
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        self.provider.shutdown().map_err(TelemetryError::Export)
    }

    fn now(&self) -> SystemTime {
        SystemTime::from(self.clock.utc())
    }

    fn on_attempt(&self, attempt: &AttemptEvent) {
        let end = self.now();
        let start = end.checked_sub(attempt.latency).unwrap_or(end);
        let candidate = &attempt.candidate;
        let provider = candidate.provider.to_string();
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", provider.clone()),
            KeyValue::new("gen_ai.system", provider),
            KeyValue::new("gen_ai.request.model", candidate.model.to_string()),
            KeyValue::new("switchyard.route", attempt.route.clone()),
            KeyValue::new("switchyard.key.id", candidate.key.to_string()),
            KeyValue::new("switchyard.key.fingerprint", attempt.fingerprint.to_string()),
            KeyValue::new("switchyard.attempt", i64::from(attempt.attempt)),
            KeyValue::new("switchyard.outcome", attempt.error.map_or("ok", |kind| kind.as_str())),
        ];
        if let Some(usage) = attempt.usage {
            attributes.push(KeyValue::new("gen_ai.response.model", candidate.model.to_string()));
            attributes.extend(usage_attributes(usage));
        }
        if let Some(dollars) = attempt.cost {
            attributes.push(KeyValue::new("switchyard.cost_usd", dollars));
        }
        if let Some(kind) = attempt.error {
            attributes.push(KeyValue::new("error.type", kind.as_str()));
        }
        if let Some(status) = attempt.status {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        if let Some(id) = &attempt.upstream_request_id {
            attributes.push(KeyValue::new("switchyard.upstream_request_id", bounded(id)));
        }
        let finished = Finished {
            name: format!("chat {}", candidate.model),
            start,
            end,
            attributes,
            error: attempt.error.map(|kind| kind.as_str()),
        };
        let key = (attempt.client.clone(), attempt.request_id.clone());
        let mut pending = lock(&self.pending);
        if !pending.contains_key(&key) && pending.len() >= MAX_PENDING {
            // Only when full: forget requests whose end never came.
            pending.retain(|_, waiting| {
                end.duration_since(waiting.first_seen).unwrap_or_default() < STALE_AFTER
            });
            if pending.len() >= MAX_PENDING {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let waiting =
            pending.entry(key).or_insert_with(|| Pending { first_seen: end, attempts: Vec::new() });
        if waiting.attempts.len() >= MAX_ATTEMPTS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        waiting.attempts.push(finished);
    }

    fn on_request(&self, request: &RequestEvent) {
        let end = self.now();
        let start = end.checked_sub(request.latency).unwrap_or(end);
        let key = (request.client.clone(), request.request_id.clone());
        let attempts = lock(&self.pending).remove(&key).map(|p| p.attempts).unwrap_or_default();
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", request.route.clone()),
            KeyValue::new("switchyard.route", request.route.clone()),
            KeyValue::new("switchyard.request_id", bounded(&request.request_id)),
            KeyValue::new("switchyard.attempts", i64::from(request.n_attempts)),
            KeyValue::new("switchyard.outcome", request.error.unwrap_or("ok")),
        ];
        if let Some(client) = &request.client {
            attributes.push(KeyValue::new("switchyard.client", client.to_string()));
        }
        if let Some(candidate) = request.served_by.as_ref().or(request.attempted.as_ref()) {
            let provider = candidate.provider.to_string();
            attributes.push(KeyValue::new("gen_ai.provider.name", provider.clone()));
            attributes.push(KeyValue::new("gen_ai.system", provider));
            attributes.push(KeyValue::new("switchyard.key.id", candidate.key.to_string()));
        }
        if let Some(candidate) = &request.served_by {
            attributes.push(KeyValue::new("gen_ai.response.model", candidate.model.to_string()));
        }
        if let Some(usage) = request.usage {
            attributes.extend(usage_attributes(usage));
        }
        if let Some(dollars) = request.cost {
            attributes.push(KeyValue::new("switchyard.cost_usd", dollars));
        }
        if let Some(code) = request.error {
            attributes.push(KeyValue::new("error.type", code));
        }
        if !request.skipped.is_empty() {
            // `provider/model [key]: reason`, one per candidate not called.
            let skipped: Vec<StringValue> = request
                .skipped
                .iter()
                .map(|skip| format!("{}: {}", skip.candidate, skip.reason).into())
                .collect();
            attributes.push(KeyValue::new("switchyard.skipped", Value::Array(skipped.into())));
        }
        let span = self
            .tracer
            .span_builder(format!("chat {}", request.route))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &Context::new());
        let context = Context::new().with_span(span);
        for attempt in attempts {
            let mut child = self
                .tracer
                .span_builder(attempt.name)
                .with_kind(SpanKind::Client)
                .with_start_time(attempt.start)
                .with_attributes(attempt.attributes)
                .start_with_context(&self.tracer, &context);
            if let Some(kind) = attempt.error {
                child.set_status(Status::error(kind));
            }
            child.end_with_timestamp(attempt.end);
        }
        let span = context.span();
        if let Some(code) = request.error {
            span.set_status(Status::error(code));
        }
        span.end_with_timestamp(end);
    }
}

fn usage_attributes(usage: switchyard_core::Usage) -> [KeyValue; 2] {
    [
        KeyValue::new("gen_ai.usage.input_tokens", i64::from(usage.prompt_tokens)),
        KeyValue::new("gen_ai.usage.output_tokens", i64::from(usage.completion_tokens)),
    ]
}

/// Client-chosen text, cut to [`MAX_ATTRIBUTE_CHARS`].
fn bounded(text: &str) -> String {
    text.chars().take(MAX_ATTRIBUTE_CHARS).collect()
}

impl EventSink for Telemetry {
    fn record(&self, event: &RouterEvent) {
        match event {
            RouterEvent::Attempt(attempt) => self.on_attempt(attempt),
            RouterEvent::Request(request) => self.on_request(request),
        }
    }
}

/// Several event sinks as one, called in order: the router's builder takes one sink where
/// the gateway has two (its [`EventHub`](crate::EventHub) and [`Telemetry`]).
pub struct EventSinks(pub Vec<Arc<dyn EventSink>>);

impl EventSink for EventSinks {
    fn record(&self, event: &RouterEvent) {
        for sink in &self.0 {
            sink.record(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_traces_urls() {
        let url = |endpoint: &str| traces_url(endpoint).map_err(|error| error.to_string());
        assert_eq!(url("http://collector:4318").as_deref(), Ok("http://collector:4318/v1/traces"));
        assert_eq!(url("https://otel.example/").as_deref(), Ok("https://otel.example/v1/traces"));
        assert_eq!(
            url("http://127.0.0.1:4318/v1/traces").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            url("http://proxy/otlp").as_deref(),
            Ok("http://proxy/otlp/v1/traces"),
            "a path prefix is kept"
        );
        for bad in ["collector:4318", "grpc://collector:4317", "", "http://"] {
            assert!(url(bad).is_err(), "{bad} accepted");
        }
        let leaked = url("https://user:hunter2@otel.example").expect_err("userinfo refused");
        assert!(leaked.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{leaked}");
        assert!(!leaked.contains("hunter2"), "a credential in an error: {leaked}");
        assert!(url("http://otel.example/?token=x").is_err());
    }

    #[test]
    fn a_ratio_outside_0_to_1_is_refused() {
        let clock: Arc<dyn Clock> = Arc::new(switchyard_core::ManualClock::default());
        for ratio in [-0.1, 1.5, f64::NAN] {
            let config = TelemetryConfig { sample_ratio: ratio, ..TelemetryConfig::default() };
            let error = Telemetry::start(&config, Arc::clone(&clock)).expect_err("refused");
            assert!(matches!(error, TelemetryError::SampleRatio(_)), "{error:?}");
        }
    }

    #[test]
    fn client_text_is_cut() {
        let long = "x".repeat(1000);
        assert_eq!(bounded(&long).len(), MAX_ATTRIBUTE_CHARS);
        assert_eq!(bounded("req-1"), "req-1");
    }
}
