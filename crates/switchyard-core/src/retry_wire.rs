//! The [`Wire`] of the protocols whose only rate-limit headers are `retry-after-ms` and
//! `retry-after` (Gemini and Ollama send none of their own; a proxy or Ollama's cloud may send
//! these): the headers read by [`hints::header_delay`], every failure by one function of the
//! adapter's.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::http::{Attempt, ErrorReport, Wire};
use crate::{ProviderError, ProviderId, RateLimitSnapshot, hints};

/// An adapter's reading of a non-2xx answer: the provider, the status, the body, the
/// response's rate-limit snapshot and when it was received.
pub type ErrorOf = fn(&ProviderId, u16, &[u8], RateLimitSnapshot, DateTime<Utc>) -> ProviderError;

/// A [`Wire`] reading only the retry headers, and errors with an [`ErrorOf`].
#[derive(Clone, Copy, Debug)]
pub struct RetryAfterWire {
    error_of: ErrorOf,
}

impl RetryAfterWire {
    /// The wire whose failures `error_of` reads.
    pub const fn new(error_of: ErrorOf) -> Self {
        Self { error_of }
    }
}

impl Wire for RetryAfterWire {
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
        retry_after_headers(headers, now)
    }

    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError {
        let ErrorReport { status, body, rate_limits, now, .. } = report;
        (self.error_of)(attempt.provider(), status, body, rate_limits, now)
    }
}

/// The `retry-after-ms` and `retry-after` headers as a snapshot with no readings.
pub fn retry_after_headers(headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let retry_after = hints::header_delay(text("retry-after-ms"), text("retry-after"), now);
    RateLimitSnapshot { readings: Vec::new(), retry_after }
}
