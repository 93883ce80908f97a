//! `switchyard demo`: a simulated OpenAI-compatible upstream with two keys and a tiny
//! per-minute quota, called through the real adapter over loopback HTTP. It shows answers,
//! which key served each, the 429 when a key's quota is spent with its classification, and
//! the move to the next key. No API keys, no internet.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatReply, ChatRequest, Classify as _, Clock, Credential, LimitUnit, ModelId, Provider,
    ProviderError, StreamAccumulator, SystemClock,
};
use switchyard_mock::{KeyScript, MockUpstream};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};

/// Arguments of `switchyard demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many requests to send.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    requests: u32,
    /// Each simulated key's quota, in requests per minute.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    per_minute: u64,
}

const MODEL: &str = "gpt-4o-mini";
const PROMPTS: [&str; 4] = [
    "What is a railway switchyard?",
    "Why rotate API keys?",
    "What does HTTP 429 mean?",
    "Name a fast model.",
];

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(&args))?;
    Ok(ExitCode::SUCCESS)
}

/// One simulated key: its credential and, once refused, when it may be used again.
struct DemoKey {
    credential: Credential,
    resting_until: Option<Instant>,
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let secrets = ["sk-demo-first-0000000000000000", "sk-demo-second-111111111111111"];
    let mut keys: Vec<DemoKey> = secrets
        .iter()
        .enumerate()
        .map(|(key_idx, secret)| DemoKey {
            credential: Credential::new(format!("demo-key-{}", key_idx + 1), *secret),
            resting_until: None,
        })
        .collect();
    let mut mock = MockUpstream::openai().models([MODEL]);
    for key in &keys {
        let secret = key.credential.expose_secret();
        let script = KeyScript::valid(key.credential.id().clone(), secret);
        mock = mock.key(script.requests_per_minute(args.per_minute));
    }
    let mock = mock.start().await.context("cannot start the simulated upstream")?;
    let provider =
        OpenAiProvider::try_new(OpenAiConfig::new("openai", Preset::OpenAi).at(mock.base_url()))?;
    println!("switchyard demo: a simulated OpenAI upstream at {}", mock.base_url());
    let key_list: Vec<String> = keys.iter().map(|key| key.credential.to_string()).collect();
    println!(
        "  keys: {}; quota {} requests per minute each\n",
        key_list.join(", "),
        args.per_minute
    );

    let model = ModelId::new(MODEL);
    let mut key_idx = 0;
    'requests: for n in 1..=args.requests {
        let prompt = PROMPTS[(n as usize - 1) % PROMPTS.len()];
        let request = ChatRequest::from_user(format!("{prompt} (#{n})")).with_max_tokens(32);
        // Every other request streams, to show both paths reassemble the same way.
        let stream = n % 2 == 0;
        loop {
            let key = &mut keys[key_idx];
            let call = Call::new(&request, &model, Some(&key.credential));
            let outcome = if stream {
                chat_streamed(&provider, call).await
            } else {
                provider.chat(call).await
            };
            match outcome {
                Ok(reply) => {
                    print_answer(n, key.credential.id().as_str(), stream, &reply);
                    continue 'requests;
                }
                Err(error) => {
                    let wait = error.retry_after();
                    print_refusal(n, &error);
                    let rest = wait.unwrap_or(Duration::from_secs(60));
                    key.resting_until = Some(SystemClock.now() + rest);
                    if !error.kind.is_key_problem() {
                        anyhow::bail!("the simulated upstream failed: {error}");
                    }
                }
            }
            match keys.iter().position(|key| key.resting_until.is_none()) {
                Some(next) => {
                    println!("    -> next key: {}", keys[next].credential.id());
                    key_idx = next;
                }
                None => {
                    let first = keys
                        .iter()
                        .filter_map(|key| key.resting_until.map(|at| (at, key.credential.id())))
                        .min_by_key(|(at, _)| *at);
                    if let Some((at, id)) = first {
                        let rest = at.saturating_duration_since(SystemClock.now());
                        println!(
                            "    -> every key is rate limited; {id} is usable again in {:.1}s",
                            rest.as_secs_f64()
                        );
                    }
                    break 'requests;
                }
            }
        }
    }

    println!("\nwhat the upstream saw:");
    for key in &keys {
        let id = key.credential.id();
        let counts = mock.counts(id.as_str()).unwrap_or_default();
        println!(
            "  {id}: {} requests, {} served, {} rate limited",
            counts.requests, counts.served, counts.rate_limited
        );
    }
    Ok(())
}

async fn chat_streamed(
    provider: &OpenAiProvider,
    call: Call<'_>,
) -> Result<ChatReply, ProviderError> {
    let mut stream = provider.chat_stream(call).await?;
    let mut accumulator = StreamAccumulator::new();
    while let Some(chunk) = stream.chunks.next().await {
        accumulator.push(&chunk?);
    }
    Ok(ChatReply {
        response: accumulator.finish(),
        rate_limits: stream.rate_limits,
        upstream_request_id: stream.upstream_request_id,
    })
}

fn print_answer(n: u32, key: &str, stream: bool, reply: &ChatReply) {
    let how = if stream { "streamed" } else { "plain" };
    let usage = reply.response.usage;
    let left = reply
        .rate_limits
        .reading(LimitUnit::Requests)
        .and_then(|reading| reading.remaining)
        .map_or_else(String::new, |left| format!(", {left} left this minute"));
    println!(
        "#{n:<2} {key}  200 {how:<8} {:?}  ({}+{} tokens{left})",
        reply.response.text, usage.prompt_tokens, usage.completion_tokens
    );
}

fn print_refusal(n: u32, error: &ProviderError) {
    let key = error.key.as_ref().map_or("no key", |key| key.as_str());
    let status = error.status.map_or_else(|| "---".to_owned(), |status| status.to_string());
    let retry = error
        .retry_after()
        .map_or_else(String::new, |after| format!(", retry after {:.1}s", after.as_secs_f64()));
    let scope = match error.kind {
        switchyard_core::ErrorKind::RateLimited { scope } => format!(" ({scope})"),
        _ => String::new(),
    };
    println!(
        "#{n:<2} {key}  {status} {}{scope}{retry}; next step: {:?}",
        error.kind,
        error.kind.next_step()
    );
}
