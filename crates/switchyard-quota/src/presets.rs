//! Limits of the free tiers this project's users live on, as configuration to start from.
//! Providers change these numbers; the provider's own headers and 429s correct the ledger at
//! run time, and a deployment should confirm them in the provider's console.

use std::time::Duration;

use chrono_tz::America::Los_Angeles;
use switchyard_core::ProviderId;

use crate::config::{DayBoundary, ModelMatch, ModelQuota, ProviderQuota};
use crate::limit::Limit;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Groq's free plan (per organization, per model; mid-2026 table): requests per minute as a
/// sliding window, requests and tokens per day and tokens per minute as refilling buckets
/// (Groq's `x-ratelimit-reset-*` headers give the time to a full refill).
pub fn groq_free(provider: impl Into<ProviderId>) -> ProviderQuota {
    let model = |name: &str, rpm, rpd, tpm: Option<u64>, tpd: Option<u64>| {
        let mut limits = vec![Limit::per_minute(rpm), Limit::requests_refill(rpd, DAY)];
        limits.extend(tpm.map(|tpm| Limit::tokens_refill(tpm, MINUTE)));
        limits.extend(tpd.map(|tpd| Limit::tokens_refill(tpd, DAY)));
        ModelQuota::model(name, limits)
    };
    ProviderQuota {
        provider: provider.into(),
        day: DayBoundary::Rolling,
        models: vec![
            model("llama-3.3-70b-versatile", 30, 1_000, Some(12_000), Some(100_000)),
            model("llama-3.1-8b-instant", 30, 14_400, Some(6_000), Some(500_000)),
            model("openai/gpt-oss-120b", 30, 1_000, None, None),
            model("openai/gpt-oss-20b", 30, 1_000, None, None),
            model("groq/compound", 30, 250, None, None),
        ],
    }
}

/// Gemini's free tier (per Google Cloud project, per model; as last published, confirm in AI
/// Studio): requests per minute sliding, requests per day ending at midnight Pacific.
pub fn gemini_free(provider: impl Into<ProviderId>) -> ProviderQuota {
    let model = |name: &str, rpm, rpd, tpm| {
        ModelQuota::model(
            name,
            vec![
                Limit::per_minute(rpm),
                Limit::tokens_per(tpm, MINUTE),
                Limit::requests_per_day(rpd, Los_Angeles),
            ],
        )
    };
    ProviderQuota {
        provider: provider.into(),
        day: DayBoundary::Midnight(Los_Angeles),
        models: vec![
            model("gemini-2.5-pro", 5, 100, 250_000),
            model("gemini-2.5-flash", 10, 250, 250_000),
            model("gemini-2.5-flash-lite", 15, 1_000, 250_000),
            model("gemini-2.0-flash", 15, 200, 1_000_000),
        ],
    }
}

/// OpenRouter's `:free` models: 20 requests a minute and 50 a day (1,000 after buying 10
/// credits: pass `credits_bought`), counted for the whole account across all free models; the
/// day ends at 00:00 UTC.
pub fn openrouter_free(provider: impl Into<ProviderId>, credits_bought: bool) -> ProviderQuota {
    let per_day = if credits_bought { 1_000 } else { 50 };
    ProviderQuota {
        provider: provider.into(),
        day: DayBoundary::Midnight(chrono_tz::UTC),
        models: vec![ModelQuota {
            models: ModelMatch::Suffix(":free".into()),
            shared: true,
            limits: vec![Limit::per_minute(20), Limit::requests_per_day(per_day, chrono_tz::UTC)],
            max_concurrent: None,
        }],
    }
}
