//! `switchyard demo`: the whole product on one machine with no API keys and no internet.
//!
//! Four simulated upstreams (`switchyard-mock`) speak Gemini's, Groq's, OpenAI's and
//! Anthropic's real wire formats on loopback, with small quotas counted in 10-second windows
//! so rotation and exhaustion show within seconds: Gemini has two keys, Groq one good key
//! with a small "daily" quota and one invalid key, OpenAI is flaky (a quarter of its calls
//! answer 503 overloaded), Anthropic is slow. The router is built in process with the real
//! adapters and the declared limits, the gateway (`switchyard-server`) serves it on
//! 127.0.0.1, and the demo drives requests through the gateway over HTTP like any client,
//! watching the key states through the admin API as they change.
//!
//! At the start it prints a one-time login link to the gateway's status page (`/ui`), to
//! watch the keys rotate live. Without `--exit` it then keeps serving and prints a `curl`
//! line and a Python snippet to try it by hand, until Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chrono_tz::Tz;
use futures_util::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use switchyard::{EventSink, ModelFacts, Price, RouteConfig, Router, RouterConfig, StrategyKind};
use switchyard_anthropic::{Anthropic, AnthropicConfig};
use switchyard_core::{Clock, Credential, Provider, ProviderId, SystemClock};
use switchyard_gemini::{Gemini, GeminiConfig};
use switchyard_mock::{
    AnthropicWire, Fault, FaultRule, Flavor, GeminiWire, KeyScript, Latency, MockBuilder,
    MockUpstream, OpenAiWire, WindowQuota,
};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};
use switchyard_quota::{DayBoundary, Limit, MemoryLedger, ModelQuota, ProviderQuota, QuotaConfig};
use switchyard_server::api::StatusView;
use switchyard_server::{EventHub, Gateway, GatewayConfig, Services};

use crate::admin_api::AdminClient;
use crate::ui;

/// Arguments of `switchyard demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many requests to drive through the gateway.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    requests: u32,
    /// Exit after the requests with a summary, instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Where the gateway listens (`host:port`; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
}

/// The demo's admin token: the demo's gateway is local and short-lived.
const ADMIN_TOKEN: &str = "demo-admin";
/// The route clients name.
const ROUTE: &str = "default";
/// Every short window of the demo: a "minute" compressed to ten seconds.
const WINDOW: Duration = Duration::from_secs(10);
const PROMPTS: [&str; 5] = [
    "What is a railway switchyard?",
    "Why rotate API keys?",
    "What does HTTP 429 mean?",
    "Name a fast model.",
    "Summarise quota windows in one line.",
];

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(&args))
}

/// One simulated provider: its upstream and what the router is told about it.
struct Simulated {
    name: &'static str,
    mock: MockUpstream,
    adapter: Arc<dyn Provider>,
    keys: Vec<Credential>,
    model: &'static str,
    limits: Vec<Limit>,
    day: DayBoundary,
    zone: Option<Tz>,
    price: Option<Price>,
    story: &'static str,
}

fn secret(id: &str) -> String {
    format!("sk-demo-{id}-0123456789abcdef")
}

fn script(id: &str, per_window: u64) -> KeyScript {
    KeyScript::valid(id, secret(id)).window(WindowQuota::requests_sliding(per_window, WINDOW))
}

async fn start_mock(builder: MockBuilder) -> anyhow::Result<MockUpstream> {
    builder.seed(7).start().await.context("cannot start a simulated upstream")
}

/// The four simulated upstreams with their adapters.
async fn simulate(clock: &Arc<dyn Clock>) -> anyhow::Result<Vec<Simulated>> {
    let credentials = |ids: &[&str]| -> Vec<Credential> {
        ids.iter().map(|id| Credential::new(*id, secret(id))).collect()
    };
    let mut simulated = Vec::new();

    let pacific = chrono_tz::America::Los_Angeles;
    let gemini = start_mock(
        MockUpstream::builder(GeminiWire)
            .time_zone(pacific)
            .models(["gemini-2.0-flash"])
            .keys([script("gemini-1", 20), script("gemini-2", 20)])
            .latency(Latency::Uniform {
                min: Duration::from_millis(20),
                max: Duration::from_millis(60),
            }),
    )
    .await?;
    let config = GeminiConfig {
        base_url: format!("http://{}", gemini.addr()),
        ..GeminiConfig::new("gemini")
    };
    simulated.push(Simulated {
        name: "gemini",
        adapter: Arc::new(Gemini::try_new(config, Arc::clone(clock))?),
        mock: gemini,
        keys: credentials(&["gemini-1", "gemini-2"]),
        model: "gemini-2.0-flash",
        limits: vec![Limit::requests_per(20, WINDOW)],
        day: DayBoundary::Midnight(pacific),
        zone: Some(pacific),
        price: None,
        story: "free, two keys of 20 requests per 10 s",
    });

    // Groq's keys also have a small daily quota (UTC days), declared: once groq-1 has served
    // its 30 the router leaves it exhausted until midnight without asking again.
    let groq = start_mock(
        MockUpstream::builder(OpenAiWire::new(Flavor::Groq))
            .time_zone(chrono_tz::UTC)
            .models(["llama-3.1-8b-instant"])
            .key(script("groq-1", 20).requests_per_day(30))
            .key(KeyScript::invalid("groq-2", secret("groq-2")))
            .latency(Latency::Uniform {
                min: Duration::from_millis(5),
                max: Duration::from_millis(20),
            }),
    )
    .await?;
    simulated.push(Simulated {
        name: "groq",
        adapter: openai_adapter("groq", Preset::Groq, &groq, clock)?,
        mock: groq,
        keys: credentials(&["groq-1", "groq-2"]),
        model: "llama-3.1-8b-instant",
        limits: vec![Limit::requests_per(20, WINDOW), Limit::requests_per_day(30, chrono_tz::UTC)],
        day: DayBoundary::Midnight(chrono_tz::UTC),
        zone: Some(chrono_tz::UTC),
        price: None,
        story: "free and fast; 30 requests a day (UTC); groq-2 is invalid",
    });

    let openai = start_mock(
        MockUpstream::openai()
            .models(["gpt-4o-mini"])
            .key(script("openai-1", 40))
            .fault(FaultRule::always(Fault::overloaded()).with_probability(0.25))
            .latency(Latency::Uniform {
                min: Duration::from_millis(30),
                max: Duration::from_millis(80),
            }),
    )
    .await?;
    simulated.push(Simulated {
        name: "openai",
        adapter: openai_adapter("openai", Preset::OpenAi, &openai, clock)?,
        mock: openai,
        keys: credentials(&["openai-1"]),
        model: "gpt-4o-mini",
        limits: vec![Limit::requests_per(40, WINDOW)],
        day: DayBoundary::Rolling,
        zone: None,
        price: Some(Price { input_per_mtok: 0.15, output_per_mtok: 0.6, per_request: 0.0 }),
        story: "paid and flaky: a quarter of calls answer 503",
    });

    let anthropic = start_mock(
        MockUpstream::builder(AnthropicWire)
            .models(["claude-3-5-haiku-latest"])
            .key(script("anthropic-1", 30))
            .latency(Latency::Fixed(Duration::from_millis(400))),
    )
    .await?;
    let config = AnthropicConfig {
        base_url: format!("http://{}", anthropic.addr()),
        ..AnthropicConfig::new("anthropic")
    };
    simulated.push(Simulated {
        name: "anthropic",
        adapter: Arc::new(Anthropic::try_new(config, Arc::clone(clock))?),
        mock: anthropic,
        keys: credentials(&["anthropic-1"]),
        model: "claude-3-5-haiku-latest",
        limits: vec![Limit::requests_per(30, WINDOW)],
        day: DayBoundary::Rolling,
        zone: None,
        price: Some(Price { input_per_mtok: 0.8, output_per_mtok: 4.0, per_request: 0.0 }),
        story: "paid and slow: 400 ms a call",
    });
    Ok(simulated)
}

fn openai_adapter(
    name: &str,
    preset: Preset,
    mock: &MockUpstream,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn Provider>> {
    let config = OpenAiConfig::new(name, preset).at(mock.base_url());
    Ok(Arc::new(OpenAiProvider::try_new(config, Arc::clone(clock))?))
}

/// The router over the simulated upstreams and the gateway settings that go with it.
fn router(
    simulated: &[Simulated],
    clock: &Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
) -> anyhow::Result<(Router, GatewayConfig)> {
    let mut builder = Router::builder().clock(Arc::clone(clock)).event_sink(events);
    let mut quota = QuotaConfig::default();
    let mut gateway =
        GatewayConfig { admin_token: Some(ADMIN_TOKEN.to_owned()), ..GatewayConfig::default() };
    let mut targets = Vec::new();
    for sim in simulated {
        builder = builder.provider(Arc::clone(&sim.adapter));
        for credential in &sim.keys {
            gateway.fingerprints.insert(
                (ProviderId::from(sim.name), credential.id().clone()),
                credential.fingerprint().to_string(),
            );
            builder = builder.credential(sim.name, credential.clone());
        }
        quota.providers.push(ProviderQuota {
            provider: ProviderId::from(sim.name),
            day: sim.day,
            models: vec![ModelQuota::every_model(sim.limits.clone())],
        });
        if let Some(zone) = sim.zone {
            gateway.time_zones.insert(ProviderId::from(sim.name), zone);
        }
        let target = format!("{}/{}", sim.name, sim.model);
        if sim.price.is_some() {
            builder =
                builder.model(&target, ModelFacts { price: sim.price, ..ModelFacts::default() });
        }
        targets.push(target);
    }
    let mut route = RouteConfig::new(ROUTE, StrategyKind::Adaptive, targets);
    // When every key is momentarily spent a request waits for the first to free instead of
    // failing: the demo's windows are ten seconds.
    route.max_wait = Some(Duration::from_secs(15));
    route.timeout = Some(Duration::from_secs(30));
    let config = RouterConfig { seed: Some(11), ..RouterConfig::default() };
    let ledger = Arc::new(MemoryLedger::new(Arc::clone(clock), quota));
    let router = builder.route_config(route).quota(ledger).config(config).build()?;
    Ok((router, gateway))
}

/// What one request through the gateway ended as.
#[derive(Debug, Default)]
struct Outcome {
    /// `provider/key` that served it.
    served_by: Option<String>,
    /// Whether it took more than one attempt.
    fallback: bool,
    /// Whether an attempt failed on another provider than the one that served.
    provider_fallback: bool,
    /// `provider/key`s that answered "invalid key" on the way.
    invalid: Vec<String>,
    /// The error, when nothing served.
    error: Option<String>,
}

async fn send(client: &reqwest::Client, base: &str, n: u32) -> Outcome {
    let prompt = PROMPTS[(n as usize) % PROMPTS.len()];
    let body = serde_json::json!({
        "model": ROUTE,
        "messages": [{"role": "user", "content": format!("{prompt} (#{n})")}],
        "max_tokens": 16,
    });
    let sent = client
        .post(format!("{base}/v1/chat/completions"))
        .header("x-switchyard-trace", "1")
        .json(&body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Outcome { error: Some(error.to_string()), ..Outcome::default() },
    };
    let header = |name: &str| {
        response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    };
    let trace: serde_json::Value = header("x-switchyard-trace")
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let served_provider = header("x-switchyard-provider");
    let mut outcome = Outcome::default();
    for attempt in trace["attempts"].as_array().into_iter().flatten() {
        let Some(kind) = attempt["error"]["kind"].as_str() else { continue };
        let provider = attempt["candidate"]["provider"].as_str().unwrap_or_default();
        let key = attempt["candidate"]["key"].as_str().unwrap_or_default();
        if kind == "invalid_key" {
            outcome.invalid.push(format!("{provider}/{key}"));
        }
        if served_provider.as_deref().is_some_and(|served| served != provider) {
            outcome.provider_fallback = true;
        }
    }
    if response.status().is_success() {
        // The last attempt is the one that served; the header shows the key's fingerprint
        // only, the trace names its id.
        let last = trace["attempts"].as_array().and_then(|attempts| attempts.last());
        outcome.served_by = Some(match last {
            Some(attempt) => format!(
                "{}/{}",
                attempt["candidate"]["provider"].as_str().unwrap_or("?"),
                attempt["candidate"]["key"].as_str().unwrap_or("?")
            ),
            None => format!(
                "{}/{}",
                served_provider.as_deref().unwrap_or("?"),
                header("x-switchyard-key").as_deref().unwrap_or("?")
            ),
        });
        outcome.fallback =
            header("x-switchyard-attempts").and_then(|n| n.parse::<u32>().ok()).unwrap_or(1) > 1;
    } else {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|json| json["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        outcome.error = Some(format!("{status} {code}"));
    }
    outcome
}

/// Everything the run counted, for the live view and the summary.
#[derive(Debug, Default)]
struct Tally {
    done: u32,
    served: u32,
    failed: u32,
    fallbacks: u32,
    provider_fallbacks: u32,
    per_key: BTreeMap<String, u32>,
    /// Per key, the request numbers (in completion order) it served.
    served_at: BTreeMap<String, Vec<u32>>,
    /// Invalid keys and the completion number they were found at.
    invalid_found: BTreeMap<String, u32>,
    /// Keys seen exhausted, with the time they come back and why.
    exhausted: BTreeMap<String, String>,
    errors: BTreeMap<String, u32>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        self.done += 1;
        for key in outcome.invalid {
            self.invalid_found.entry(key).or_insert(self.done);
        }
        if let Some(key) = outcome.served_by {
            self.served += 1;
            *self.per_key.entry(key.clone()).or_default() += 1;
            self.served_at.entry(key).or_default().push(self.done);
            self.fallbacks += u32::from(outcome.fallback);
            self.provider_fallbacks += u32::from(outcome.provider_fallback);
        } else {
            self.failed += 1;
            *self.errors.entry(outcome.error.unwrap_or_default()).or_default() += 1;
        }
    }

    fn observe(&mut self, view: &StatusView) {
        for provider in &view.providers {
            for key in &provider.keys {
                let name = format!("{}/{}", provider.name, key.id);
                if key.state == "exhausted" {
                    let until = ui::zoned_time(key.until.as_deref());
                    let reason = key.reason.clone().unwrap_or_default();
                    self.exhausted.insert(name.clone(), format!("until {until}; {reason}"));
                }
                if key.state == "invalid" {
                    self.invalid_found.entry(name).or_insert(self.done);
                }
            }
        }
    }
}

/// One line per key, for a log that is not a terminal.
fn plain_line(tally: &Tally, total: u32, view: Option<&StatusView>) -> String {
    let mut line = format!(
        "[{:>5}/{total}] served {}, failed {}, fallbacks {}",
        tally.done, tally.served, tally.failed, tally.fallbacks
    );
    if let Some(view) = view {
        let states: Vec<String> = view
            .providers
            .iter()
            .flat_map(|provider| {
                provider.keys.iter().map(|key| format!("{} {}", key.id, key.state))
            })
            .collect();
        let _ = write!(line, " | {}", states.join(", "));
    }
    line
}

/// The live view: the key table, then counts and the ranking's head.
fn live_text(tally: &Tally, view: &StatusView) -> String {
    let mut text = live_table(tally, view).to_string();
    let ranking = ranking(view);
    let head: Vec<String> =
        ranking.iter().take(3).map(|(score, name)| format!("{name} {score:.2}")).collect();
    let _ = write!(
        text,
        "\nserved {}  failed {}  fallbacks {} ({} to another provider)  best: {}",
        tally.served,
        tally.failed,
        tally.fallbacks,
        tally.provider_fallbacks,
        head.join(" > ")
    );
    text
}

/// The live table: narrow enough for an 80-column terminal, one row per key.
fn live_table(tally: &Tally, view: &StatusView) -> comfy_table::Table {
    let mut table =
        ui::table_for(["key", "state", "until", "window used", "served", "score"], true);
    for provider in &view.providers {
        for key in &provider.keys {
            let name = format!("{}/{}", provider.name, key.id);
            let model = key.models.first();
            let used = model
                .and_then(|model| model.limits.first())
                .map_or_else(String::new, |limit| format!("{}/{}", limit.used, limit.limit));
            let until = key
                .until
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .map_or_else(String::new, |at| at.format("%H:%M:%S %:z").to_string());
            let score = model
                .and_then(|model| model.score)
                .map_or_else(|| "-".to_owned(), |score| format!("{score:.2}"));
            let served = tally.per_key.get(&name).copied().unwrap_or(0);
            table.add_row(vec![
                comfy_table::Cell::new(&name),
                ui::state_cell(&key.state, true),
                comfy_table::Cell::new(until),
                comfy_table::Cell::new(used),
                comfy_table::Cell::new(served),
                comfy_table::Cell::new(score),
            ]);
        }
    }
    table
}

/// Every scored candidate, best first.
fn ranking(view: &StatusView) -> Vec<(f64, String)> {
    let mut ranked: Vec<(f64, String)> = Vec::new();
    for provider in &view.providers {
        for key in &provider.keys {
            for model in &key.models {
                if let Some(score) = model.score {
                    // The score is what was learned; a key out of rotation says so.
                    let state = match key.state.as_str() {
                        "invalid" | "billing_stopped" | "disabled" => format!(" [{}]", key.state),
                        _ => String::new(),
                    };
                    ranked.push((
                        score,
                        format!("{}/{} {}{state}", provider.name, key.id, model.model),
                    ));
                }
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked
}

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let simulated = simulate(&clock).await?;
    let events = Arc::new(EventHub::new(Arc::clone(&clock), None));
    let (router, gateway_config) =
        router(&simulated, &clock, Arc::clone(&events) as Arc<dyn EventSink>)?;
    let services = Services { events: Some(events), ..Services::default() };
    let gateway = Gateway::with_services(router, Arc::clone(&clock), gateway_config, services);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    let base = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            switchyard_server::serve(listener, &gateway, async move {
                let _ = stopped.await;
            })
            .await
        }
    });

    println!("switchyard demo: a gateway on {base} in front of four simulated providers");
    for sim in &simulated {
        let keys: Vec<String> = sim.keys.iter().map(ToString::to_string).collect();
        println!(
            "  {:<9} {:<24} at {:<28} keys {}; {}",
            sim.name,
            sim.model,
            sim.mock.base_url(),
            keys.join(", "),
            sim.story
        );
    }
    println!("  route {ROUTE:?}: adaptive ranking, free keys first, declared limits per 10 s");
    // The code, not the token, goes in the link, after `#`: a browser never sends that part,
    // and the page trades the code (once) for the token and clears it from the address bar.
    if let Some(code) = gateway.login_code() {
        println!("  watch it live: {base}/ui#code={code} (a one-time login link)");
    }
    println!();

    let started = clock.now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let admin =
        AdminClient::new(&base, Some(ADMIN_TOKEN.parse().expect("invariant: any text is a token")));
    let (bar, table_bar, multi) = bars(args.requests);
    let watcher = tokio::spawn(watch(
        Arc::clone(&clock),
        admin.clone(),
        Arc::clone(&tally),
        table_bar.clone(),
        args.requests,
    ));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;
    let mut outcomes = futures_util::stream::iter(1..=args.requests)
        .map(|n| {
            let client = client.clone();
            let base = base.clone();
            async move { send(&client, &base, n).await }
        })
        .buffer_unordered(args.concurrency as usize);
    while let Some(outcome) = outcomes.next().await {
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        tally.add(outcome);
        bar.set_message(format!("served {} · fallbacks {}", tally.served, tally.fallbacks));
        bar.inc(1);
    }
    watcher.abort();
    bar.finish_and_clear();
    table_bar.finish_and_clear();
    drop(multi);
    let elapsed = clock.now().saturating_duration_since(started);

    let final_view = admin.get::<StatusView>("/admin/status").await.ok();
    let mut tally = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    if let Some(view) = &final_view {
        tally.observe(view);
        if ui::stdout_is_terminal() {
            println!("{}", live_table(&tally, view));
        }
    }
    print_summary(&tally, args.requests, elapsed, final_view.as_ref(), &simulated);

    if !args.exit {
        print_try_it(&base);
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        println!("\nstopping");
    }
    let _ = stop.send(());
    server.await.context("the gateway task")?.context("serving")?;
    Ok(ExitCode::SUCCESS)
}

/// The progress bar and, on a terminal, the live table above it.
fn bars(total: u32) -> (ProgressBar, ProgressBar, MultiProgress) {
    let multi = MultiProgress::with_draw_target(ui::draw_target());
    let table_bar = multi.add(ProgressBar::new_spinner());
    if let Ok(style) = ProgressStyle::with_template("{msg}") {
        table_bar.set_style(style);
    }
    let bar = multi.add(ui::progress(u64::from(total), "requests"));
    (bar, table_bar, multi)
}

/// Polls the admin status twice a second: redraws the live table on a terminal, prints a
/// plain line every two seconds otherwise, and notes exhausted and invalid keys.
async fn watch(
    clock: Arc<dyn Clock>,
    admin: AdminClient,
    tally: Arc<Mutex<Tally>>,
    table_bar: ProgressBar,
    total: u32,
) {
    let terminal = ui::stderr_is_terminal();
    let mut ticks: u64 = 0;
    loop {
        clock.sleep_until(clock.now() + Duration::from_millis(500)).await;
        ticks += 1;
        let view = admin.get::<StatusView>("/admin/status").await.ok();
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = &view {
            tally.observe(view);
            if terminal {
                table_bar.set_message(live_text(&tally, view));
            }
        }
        if !terminal && ticks.is_multiple_of(4) {
            println!("{}", plain_line(&tally, total, view.as_ref()));
        }
    }
}

fn print_summary(
    tally: &Tally,
    total: u32,
    elapsed: Duration,
    view: Option<&StatusView>,
    simulated: &[Simulated],
) {
    println!("\nsummary after {:.1} s", elapsed.as_secs_f64());
    println!("requests served per provider and key:");
    let mut keys: BTreeSet<String> = tally.per_key.keys().cloned().collect();
    for sim in simulated {
        for credential in &sim.keys {
            keys.insert(format!("{}/{}", sim.name, credential.id()));
        }
    }
    for key in &keys {
        let served = tally.per_key.get(key).copied().unwrap_or(0);
        println!("  {key}: {served} served");
    }
    println!(
        "fallbacks: {} requests served after a failed attempt, {} of them by another provider",
        tally.fallbacks, tally.provider_fallbacks
    );
    if tally.exhausted.is_empty() {
        println!("keys exhausted: none");
    } else {
        for (key, until) in &tally.exhausted {
            println!("key exhausted: {key} ({until})");
        }
    }
    if tally.invalid_found.is_empty() {
        println!("invalid keys taken out of rotation: none");
    }
    for (key, found) in &tally.invalid_found {
        let after = tally
            .served_at
            .get(key)
            .map_or(0, |served| served.iter().filter(|n| **n > *found).count());
        println!(
            "invalid key taken out of rotation: {key} (found by request {found}, served {after} after)"
        );
    }
    for (error, count) in &tally.errors {
        println!("failed: {count} x {error}");
    }
    if let Some(view) = view {
        println!("final ranking (learned scores, route {ROUTE}):");
        for (place, (score, name)) in ranking(view).iter().enumerate() {
            println!("  {:>2}. {name}  {score:.3}", place + 1);
        }
    }
    let upstream: Vec<String> = simulated
        .iter()
        .map(|sim| {
            let totals = sim.mock.totals();
            format!("{} {} calls ({} refused 429)", sim.name, totals.requests, totals.rate_limited)
        })
        .collect();
    println!("upstreams saw: {}", upstream.join(", "));
    println!("served {} of {total}", tally.served);
}

fn print_try_it(base: &str) {
    println!(
        "\nThe gateway keeps serving at {base} until Ctrl-C. Try it by hand:\n\n  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\": \"{ROUTE}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'\n\n  # the live status page (log in with the admin token {ADMIN_TOKEN}):\n  {base}/ui\n\n  # the key states, as `switchyard status` shows them:\n  switchyard status --url {base} --admin-token {ADMIN_TOKEN}\n\nor from Python (pip install openai):\n\n  from openai import OpenAI\n  client = OpenAI(base_url=\"{base}/v1\", api_key=\"unused\")\n  reply = client.chat.completions.create(\n      model=\"{ROUTE}\", messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}])\n  print(reply.choices[0].message.content)\n"
    );
}
