//! The facade: a [`Router`] that expands a route into candidates (provider, key, model),
//! drops those that may not run now (quota ledger, key state, circuit breaker), ranks the
//! rest with the route's [`Strategy`], calls the best, and falls back in a cascade decided by
//! each failure's classification: the same candidate after a backoff, the next key, the next
//! model, the next provider, or an immediate answer. When nothing can serve, the caller gets
//! one typed [`RouterError`] that says why.
//!
//! Around the cascade, all opt-in and free when off: a bounded wait in a fair queue when every
//! candidate is momentarily out ([`RouterConfig::max_wait`]), an overload cap
//! ([`RouterConfig::max_in_flight`]), a response cache ([`CacheConfig`]), routing rules
//! (images only to models that take them, a `provider:<id>` tag, a preferred provider),
//! batches ([`Router::batch`]), embeddings ([`Router::embed`], through the same cascade), costs and daily budgets ([`BudgetConfig`], [`SpendStore`]) and
//! health probes ([`Router::spawn_probes`]).
//!
//! This crate joins the parts through their traits (`Provider`, `KeySource`, `QuotaLedger`,
//! `Scorer`) and never through another crate's internals. It never reads the system time:
//! everything runs on the [`Clock`] it is given.

mod admin;
mod attempt;
pub mod backoff;
mod budget;
mod builder;
mod cache;
mod cascade;
pub mod circuit;
mod config;
mod disabled;
mod embed;
mod error;
mod events;
mod finish;
mod guards;
mod pin;
mod pinned;
mod probe;
mod recent;
mod router;
mod rules;
mod state;
mod stats;
pub mod strategy;
mod stream;
pub mod target;
mod trace;
mod verdict;
mod wait;

pub use admin::{AdminError, AdminState};
pub use backoff::Backoff;
pub use budget::{
    BudgetConfig, JsonFileSpendStore, MemorySpendStore, SpendDay, SpendError, SpendStore,
    SpendWriteBehind,
};
pub use builder::RouterBuilder;
pub use cache::CacheConfig;
pub use circuit::{CircuitBreaker, CircuitConfig, CircuitState, Gate};
pub use config::{
    MAX_TIMEOUT, ModelFacts, Prefer, Price, RequestOptions, RouteConfig, RouterConfig,
};
pub use embed::EmbedAnswer;
pub use error::{BuildError, RouterError};
pub use events::{AttemptEvent, EventSink, MAX_SKIPPED, RequestEvent, RouterEvent, SkippedEvent};
pub use pin::{MAX_PIN, PinnedKey};
pub use probe::{ProbeConfig, ProbeHandle, ProbeOutcome, ProbeResult};
pub use router::{FeedbackError, Router};
pub use stats::{RouterStats, SessionSummary};
pub use strategy::{CandidateView, RankContext, Strategy, StrategyKind};
pub use stream::{RoutedStream, StreamError};
pub use target::{Target, TargetError};
pub use trace::{Answer, Attempt, Considered, Skip, Trace};

// What a library user needs, side by side.
pub use switchyard_core::{
    Candidate, ChatRequest, ChatResponse, Clock, Credential, EmbedRequest, EmbedResponse,
    ErrorKind, KeyId, ManualClock, Message, ModelId, Provider, ProviderError, ProviderId,
    SystemClock, Usage,
};
pub use switchyard_quota::{
    Estimate, LearnedKind, LearnedRecord, MemoryLedger, QuotaConfig, QuotaError, QuotaLedger,
};
pub use switchyard_score::{AdaptiveScorer, Scorer};
pub use switchyard_vault::KeySource;
