//! One classification of upstream failures for every provider, and what the router does
//! after each.
//!
//! Every adapter turns its provider's status codes, error bodies and headers into a
//! [`ProviderError`] of one [`ErrorKind`]. The kind decides the cascade through [`Classify`]:
//! try the same candidate again later, the next key, the next model, the next provider, or
//! stop and answer the caller.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Credential, KeyId, LimitScope, ModelId, ProviderId, RateLimitSnapshot};

/// What the router does after an attempt fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// The same candidate, after a backoff that honours the stated retry delay.
    RetrySame,
    /// Another key of the same provider.
    NextKey,
    /// Another model (of this or another provider).
    NextModel,
    /// Another provider.
    NextProvider,
    /// No other attempt can help: answer the caller now.
    Stop,
}

/// How failures map to the router's next step. Implemented by every error a candidate's
/// attempt can end with; matched without a `_` arm, so a new variant does not compile until
/// someone decides what it means.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    /// What to do next.
    fn next_step(&self) -> NextStep;
    /// How long the provider asked to wait before calling this candidate again.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Why an attempt failed, in one vocabulary for every provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorKind {
    /// A rate limit or quota window is spent (HTTP 429 and its kin). With
    /// [`LimitScope::Minute`] the key cools down until the retry delay; with
    /// [`LimitScope::Day`] it is exhausted until the provider's daily reset.
    RateLimited {
        /// The window that is spent.
        scope: LimitScope,
    },
    /// A quota beyond any rate window is used up and returns at a known time or never by
    /// itself: a monthly allowance, or a model this key's tier has no quota for at all
    /// (Gemini's `limit: 0`). Waiting a minute does not help.
    QuotaExhausted {
        /// The window, when the provider said.
        scope: LimitScope,
    },
    /// The account cannot pay: no credit, a spend cap reached (`insufficient_quota`,
    /// Anthropic's credit balance, OpenRouter's 402). The key is disabled, not cooled.
    BillingStopped,
    /// The key is wrong, revoked or unknown (401, Gemini's `API_KEY_INVALID`).
    InvalidKey,
    /// The key may not do this (403): a region, a leaked key, a disabled API.
    PermissionDenied,
    /// The model does not exist or this key may not use it.
    ModelNotFound,
    /// The prompt does not fit the model's context window.
    ContextTooLong,
    /// The request is larger than this key's per-minute token limit allows at all (Groq's
    /// 413, OpenAI's "Request too large"): no wait on this key can serve it.
    RequestTooLarge,
    /// The provider refused the content.
    ContentFiltered,
    /// The request itself is wrong; no other candidate would take it.
    BadRequest,
    /// The provider is overloaded (503, Anthropic's 529).
    Overloaded,
    /// The provider failed (500 and other 5xx).
    ServerError,
    /// No answer in time.
    Timeout,
    /// The connection failed, was refused or was cut.
    Network,
    /// The provider answered something that cannot be read.
    MalformedResponse,
}

impl ErrorKind {
    /// What the router does after an attempt failed this way.
    pub fn next_step(self) -> NextStep {
        match self {
            Self::RateLimited { .. }
            | Self::QuotaExhausted { .. }
            | Self::BillingStopped
            | Self::InvalidKey
            | Self::PermissionDenied => NextStep::NextKey,
            Self::ModelNotFound | Self::ContextTooLong | Self::RequestTooLarge => {
                NextStep::NextModel
            }
            // Another provider may judge the content differently; the route decides whether
            // it may.
            Self::ContentFiltered => NextStep::NextProvider,
            Self::BadRequest => NextStep::Stop,
            // A 500 is often one bad node: one more try after a backoff, then the router's
            // per-candidate retry bound moves on.
            Self::ServerError => NextStep::RetrySame,
            // The whole provider is struggling; its other keys would be too.
            Self::Overloaded | Self::Timeout | Self::Network | Self::MalformedResponse => {
                NextStep::NextProvider
            }
        }
    }

    /// A stable snake-case name for logs, metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited { scope: LimitScope::Day } => "rate_limited_day",
            Self::RateLimited { scope: LimitScope::Month } => "rate_limited_month",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExhausted { .. } => "quota_exhausted",
            Self::BillingStopped => "billing_stopped",
            Self::InvalidKey => "invalid_key",
            Self::PermissionDenied => "permission_denied",
            Self::ModelNotFound => "model_not_found",
            Self::ContextTooLong => "context_too_long",
            Self::RequestTooLarge => "request_too_large",
            Self::ContentFiltered => "content_filtered",
            Self::BadRequest => "bad_request",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::MalformedResponse => "malformed_response",
        }
    }

    /// Whether this failure says something about the key rather than the request or the
    /// provider's health.
    pub fn is_key_problem(self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::QuotaExhausted { .. }
                | Self::BillingStopped
                | Self::InvalidKey
                | Self::PermissionDenied
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attempt's failure, classified. Built by adapters; never holds a secret (the key is
/// named by id, and upstream messages are redacted by the adapter before they land here).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ProviderError {
    /// The classification.
    pub kind: ErrorKind,
    /// The provider that failed.
    pub provider: ProviderId,
    /// The key used, by id.
    pub key: Option<KeyId>,
    /// The model asked for.
    pub model: Option<ModelId>,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// What went wrong, in the provider's words where it gave some.
    pub message: String,
    /// How long the provider asked to wait.
    pub retry_after: Option<Duration>,
    /// When the spent quota or stopped billing comes back, when the provider said.
    pub resets_at: Option<DateTime<Utc>>,
    /// The rate-limit headers of the failed response.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's own request id, for a support ticket.
    pub upstream_request_id: Option<String>,
}

impl ProviderError {
    /// An error of `kind` from `provider` with a message; the other fields are empty.
    pub fn new(
        kind: ErrorKind,
        provider: impl Into<ProviderId>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            provider: provider.into(),
            key: None,
            model: None,
            status: None,
            message: message.into(),
            retry_after: None,
            resets_at: None,
            rate_limits: RateLimitSnapshot::default(),
            upstream_request_id: None,
        }
    }

    /// Names the key the attempt used.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<KeyId>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Names the model the attempt asked for.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<ModelId>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Records the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// A failed transport (a refused or cut connection, a timeout): [`ErrorKind::Timeout`]
    /// when `timed_out`, else [`ErrorKind::Network`], with the error and its whole chain of
    /// causes as the message (the top error often says only which URL failed).
    pub fn transport(
        provider: impl Into<ProviderId>,
        error: &dyn std::error::Error,
        timed_out: bool,
    ) -> Self {
        let kind = if timed_out { ErrorKind::Timeout } else { ErrorKind::Network };
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::new(kind, provider, message)
    }

    /// Labels the error with the attempt that met it: its model (unless empty) and its key's
    /// id, and redacts the key's secret from the message in case the upstream echoed it.
    #[must_use]
    pub fn for_attempt(mut self, model: &ModelId, credential: Option<&Credential>) -> Self {
        if !model.as_str().is_empty() {
            self.model = Some(model.clone());
        }
        if let Some(credential) = credential {
            self.key = Some(credential.id().clone());
            self.message = credential.redact(&self.message);
        }
        self
    }

    /// Records the provider's requested delay, no longer than [`MAX_HINT`](crate::MAX_HINT).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after.map(crate::clamp_hint);
        self
    }

    /// Records when the spent quota comes back, no later than [`MAX_HINT`](crate::MAX_HINT)
    /// after `now`.
    #[must_use]
    pub fn with_resets_at(mut self, resets_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        self.resets_at = resets_at.map(|at| crate::ratelimit::clamp_reset(at, now));
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.kind, self.provider)?;
        if let Some(model) = &self.model {
            write!(f, " model {model}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " key {key}")?;
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(retry_after) = self.retry_after {
            write!(f, ", retry after {:.3}s", retry_after.as_secs_f64())?;
        }
        if let Some(resets_at) = self.resets_at {
            write!(f, ", resets at {}", resets_at.to_rfc3339())?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl Classify for ProviderError {
    fn next_step(&self) -> NextStep {
        self.kind.next_step()
    }

    /// The delay asked for, no longer than [`MAX_HINT`](crate::MAX_HINT): the fields are
    /// public, so a delay set without [`ProviderError::with_retry_after`] is clamped here.
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after.or(self.rate_limits.retry_after).map(crate::clamp_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credential;

    #[test]
    fn each_kind_has_a_next_step() {
        let cases = [
            (ErrorKind::RateLimited { scope: LimitScope::Minute }, NextStep::NextKey),
            (ErrorKind::RateLimited { scope: LimitScope::Day }, NextStep::NextKey),
            (ErrorKind::QuotaExhausted { scope: LimitScope::Month }, NextStep::NextKey),
            (ErrorKind::BillingStopped, NextStep::NextKey),
            (ErrorKind::InvalidKey, NextStep::NextKey),
            (ErrorKind::PermissionDenied, NextStep::NextKey),
            (ErrorKind::ModelNotFound, NextStep::NextModel),
            (ErrorKind::ContextTooLong, NextStep::NextModel),
            (ErrorKind::RequestTooLarge, NextStep::NextModel),
            (ErrorKind::ContentFiltered, NextStep::NextProvider),
            (ErrorKind::BadRequest, NextStep::Stop),
            (ErrorKind::Overloaded, NextStep::NextProvider),
            (ErrorKind::ServerError, NextStep::RetrySame),
            (ErrorKind::Timeout, NextStep::NextProvider),
            (ErrorKind::Network, NextStep::NextProvider),
            (ErrorKind::MalformedResponse, NextStep::NextProvider),
        ];
        for (kind, step) in cases {
            assert_eq!(kind.next_step(), step, "{kind}");
        }
    }

    #[test]
    fn transport_errors_keep_their_causes_and_attempts_redact_the_key() {
        let cause =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let error = ProviderError::transport("groq", &cause, false);
        assert_eq!(error.kind, ErrorKind::Network);
        assert_eq!(ProviderError::transport("groq", &cause, true).kind, ErrorKind::Timeout);
        let credential = Credential::new("groq-1", "gsk_secret_value_123");
        let echoed =
            ProviderError::new(ErrorKind::InvalidKey, "groq", "bad key gsk_secret_value_123")
                .for_attempt(&ModelId::new("llama"), Some(&credential));
        assert_eq!(echoed.message, "bad key [key groq-1]");
        assert_eq!(echoed.key.as_ref().map(KeyId::as_str), Some("groq-1"));
        assert_eq!(echoed.model.as_ref().map(ModelId::as_str), Some("llama"));
        let keyless = error.for_attempt(&ModelId::new(""), None);
        assert_eq!((keyless.model, keyless.key), (None, None));
    }

    #[test]
    fn retry_after_falls_back_to_the_headers() {
        let mut error = ProviderError::new(
            ErrorKind::RateLimited { scope: LimitScope::Minute },
            "groq",
            "slow down",
        );
        error.rate_limits.retry_after = Some(Duration::from_secs(7));
        assert_eq!(Classify::retry_after(&error), Some(Duration::from_secs(7)));
        let error = error.with_retry_after(Some(Duration::from_secs(2)));
        assert_eq!(Classify::retry_after(&error), Some(Duration::from_secs(2)));
    }

    #[test]
    fn an_error_built_from_a_key_shows_no_secret() {
        let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
        let credential = Credential::new("openai-1", secret);
        let message = credential.redact(&format!("Incorrect API key provided: {secret}."));
        let error = ProviderError::new(ErrorKind::InvalidKey, "openai", message)
            .with_key(credential.id().clone())
            .with_status(401);
        for text in [format!("{error}"), format!("{error:?}"), format!("{error:#?}")] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("openai-1"), "{text}");
        }
        assert_eq!(
            error.to_string(),
            "invalid_key from openai key openai-1 (HTTP 401): Incorrect API key provided: [key openai-1]."
        );
    }
}
