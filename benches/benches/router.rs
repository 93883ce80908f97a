//! Routing overhead: `router.chat` against an in-process provider that answers at once, so
//! what is measured is the router's own work per request — expanding the route, the circuit
//! gates, ranking, admission, settlement, scoring and stats — not any upstream. Routes of 1,
//! 10 and 100 candidates, with the priority and the adaptive (learned score) strategies, on
//! one and on two threads.
//!
//! `scorer_explore/100` times the adaptive strategy's exploration draw over 100 candidates
//! alone (the scorer's work, no routing), so the router's own share of
//! `router_chat/adaptive/*/100` is the difference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::{Router, RouterConfig, StrategyKind};
use switchyard_core::{
    Call, Candidate, ChatReply, ChatRequest, ChatResponse, ChatStream, Credential, ModelInfo,
    Protocol, Provider, ProviderError, ProviderId, RateLimitSnapshot, SystemClock, Usage,
};
use switchyard_score::{AdaptiveScorer, Outcome, Scorer};

/// Answers every call at once with the same small answer.
struct Immediate {
    id: ProviderId,
}

#[async_trait]
impl Provider for Immediate {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        Ok(ChatReply {
            response: ChatResponse {
                model: call.model.to_string(),
                text: "ok".to_owned(),
                usage: Usage::new(12, 2),
                ..ChatResponse::default()
            },
            rate_limits: RateLimitSnapshot::default(),
            upstream_request_id: None,
        })
    }

    async fn chat_stream(&self, _call: Call<'_>) -> Result<ChatStream, ProviderError> {
        Err(ProviderError::new(
            switchyard_core::ErrorKind::BadRequest,
            self.id.clone(),
            "not streamed in this bench",
        ))
    }

    async fn list_models(
        &self,
        _credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(Vec::new())
    }
}

fn router(n_candidates: usize, strategy: StrategyKind) -> Router {
    let mut builder =
        Router::builder().config(RouterConfig { seed: Some(1), ..RouterConfig::default() });
    // Ten keys per provider, as many providers as it takes.
    let n_providers = n_candidates.div_ceil(10);
    let mut targets = Vec::new();
    let mut placed = 0;
    for provider_idx in 0..n_providers {
        let id = format!("p{provider_idx}");
        builder = builder.provider(Arc::new(Immediate { id: ProviderId::new(&id) }));
        let n_keys = (n_candidates - placed).min(10);
        for key_idx in 0..n_keys {
            builder = builder.credential(
                id.as_str(),
                Credential::new(format!("{id}-k{key_idx}"), format!("secret-{id}-{key_idx}")),
            );
        }
        placed += n_keys;
        targets.push(format!("{id}/model"));
    }
    builder.route("bench", strategy, targets).build().expect("bench router builds")
}

fn bench_chat(c: &mut Criterion) {
    let request = ChatRequest::from_user("Say hello in five words").with_max_tokens(16);
    let mut group = c.benchmark_group("router_chat");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (label, strategy) in
        [("priority", StrategyKind::Priority), ("adaptive", StrategyKind::Adaptive)]
    {
        for n in [1usize, 10, 100] {
            let router = router(n, strategy.clone());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            group.bench_with_input(BenchmarkId::new(format!("{label}/1-thread"), n), &n, |b, _| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        #[expect(clippy::disallowed_methods, reason = "a bench measures real time")]
                        let start = Instant::now();
                        for _ in 0..iters {
                            router.chat("bench", &request).await.expect("served");
                        }
                        start.elapsed()
                    })
                });
            });
            group.bench_with_input(
                BenchmarkId::new(format!("{label}/2-threads"), n),
                &n,
                |b, _| {
                    b.iter_custom(|iters| {
                        runtime.block_on(async {
                            #[expect(
                                clippy::disallowed_methods,
                                reason = "a bench measures real time"
                            )]
                            let start = Instant::now();
                            let tasks: Vec<_> = (0..2)
                                .map(|_| {
                                    let router = router.clone();
                                    let request = request.clone();
                                    tokio::spawn(async move {
                                        for _ in 0..iters.div_ceil(2) {
                                            router.chat("bench", &request).await.expect("served");
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.expect("bench task");
                            }
                            // Two threads did the iterations together: time per call is the
                            // wall time over all of them.
                            start.elapsed()
                        })
                    });
                },
            );
        }
    }
    group.finish();
}

fn bench_scorer(c: &mut Criterion) {
    let scorer = AdaptiveScorer::new(Arc::new(SystemClock));
    let candidates: Vec<Candidate> = (0..100)
        .map(|idx| Candidate {
            provider: ProviderId::new(format!("p{}", idx / 10)),
            key: format!("p{}-k{}", idx / 10, idx % 10).into(),
            model: "model".into(),
        })
        .collect();
    // Every candidate has answered once, as in the router bench after its warm-up.
    for candidate in &candidates {
        scorer
            .record(candidate, Outcome::Success { latency: Duration::from_millis(1), tokens: 14 });
    }
    let mut group = c.benchmark_group("scorer_explore");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::from_parameter(candidates.len()), |b| {
        b.iter(|| scorer.explore(&candidates));
    });
    group.finish();
}

criterion_group!(benches, bench_chat, bench_scorer);
criterion_main!(benches);
