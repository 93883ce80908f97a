//! What a classified provider error does to a key: the one mapping from
//! [`ProviderError`] to cooldowns, exhaustion and disabled keys, shared by every ledger.

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{Classify, ErrorKind, LimitScope, MAX_HINT, ProviderError, clamp_hint};

use crate::config::DayBoundary;
use crate::limit::next_midnight;

/// What an error does to the candidate's key and quota group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Cool the group down for `after`, or for the backoff schedule's next step if `None`.
    Cooldown {
        /// The provider's stated delay.
        after: Option<Duration>,
    },
    /// The group's quota for the period is spent until `until` (`None`: until re-enabled).
    Exhausted {
        /// The reset.
        until: Option<DateTime<Utc>>,
    },
    /// This key is invalid until replaced or re-enabled.
    Invalid,
    /// The account (every key of the group) cannot pay until `until` or re-enabled.
    BillingStopped {
        /// The named date.
        until: Option<DateTime<Utc>>,
    },
    /// The error says nothing about the key.
    Nothing,
}

/// `now + after`, `after` clamped to [`MAX_HINT`]; chrono's last instant if even that
/// overflows (a clock at the end of chrono's range).
pub(crate) fn after_now(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(clamp_hint(after))
        .ok()
        .and_then(|after| now.checked_add_signed(after))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at`, no later than `now` + [`MAX_HINT`]: a reset date from outside, clamped.
pub(crate) fn clamp_until(now: DateTime<Utc>, at: DateTime<Utc>) -> DateTime<Utc> {
    at.min(after_now(now, MAX_HINT))
}

/// The verdict for `error` at a provider whose day ends at `day`, at wall-clock time `now`.
/// Every delay and date the error carries is clamped to [`MAX_HINT`] from `now`: a hostile
/// upstream's `retry-after: 1e14` cools a key for 31 days at most and never overflows.
pub fn verdict(error: &ProviderError, day: DayBoundary, now: DateTime<Utc>) -> Verdict {
    let retry_after = Classify::retry_after(error).map(clamp_hint);
    let resets_at = error.resets_at.map(|at| clamp_until(now, at));
    let daily = || match (resets_at, day, retry_after) {
        (Some(at), _, _) => Verdict::Exhausted { until: Some(at) },
        (None, DayBoundary::Midnight(tz), _) => {
            Verdict::Exhausted { until: Some(next_midnight(tz, now)) }
        }
        (None, DayBoundary::Rolling, Some(after)) => {
            Verdict::Exhausted { until: Some(after_now(now, after)) }
        }
        // A rolling daily count with no stated delay: the backoff schedule probes again.
        (None, DayBoundary::Rolling, None) => Verdict::Cooldown { after: None },
    };
    match error.kind {
        ErrorKind::RateLimited { scope: LimitScope::Minute | LimitScope::Unknown }
        | ErrorKind::QuotaExhausted { scope: LimitScope::Minute } => {
            Verdict::Cooldown { after: retry_after }
        }
        ErrorKind::RateLimited { scope: LimitScope::Day }
        | ErrorKind::QuotaExhausted { scope: LimitScope::Day } => daily(),
        // A monthly allowance, or a model this tier has no quota for at all (Gemini's
        // `limit: 0`): back at the date the provider named, otherwise when re-enabled.
        ErrorKind::RateLimited { scope: LimitScope::Month }
        | ErrorKind::QuotaExhausted { scope: LimitScope::Month | LimitScope::Unknown } => {
            Verdict::Exhausted { until: resets_at }
        }
        ErrorKind::BillingStopped => Verdict::BillingStopped { until: resets_at },
        ErrorKind::InvalidKey | ErrorKind::PermissionDenied => Verdict::Invalid,
        ErrorKind::ModelNotFound
        | ErrorKind::ContextTooLong
        | ErrorKind::RequestTooLarge
        | ErrorKind::ContentFiltered
        | ErrorKind::BadRequest
        | ErrorKind::Overloaded
        | ErrorKind::ServerError
        | ErrorKind::Timeout
        | ErrorKind::Network
        | ErrorKind::MalformedResponse => Verdict::Nothing,
    }
}

/// The reason recorded with a state change: the error's kind and HTTP status.
pub fn reason(error: &ProviderError) -> String {
    match error.status {
        Some(status) => format!("{} (HTTP {status})", error.kind),
        None => error.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("date").to_utc()
    }

    #[test]
    fn daily_429_follows_the_provider_boundary() {
        let error = ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Day }, "g", "");
        let now = at("2026-03-08T06:00:00Z");
        let la = DayBoundary::Midnight(chrono_tz::America::Los_Angeles);
        assert_eq!(
            verdict(&error, la, now),
            Verdict::Exhausted { until: Some(at("2026-03-08T08:00:00Z")) }
        );
        let utc = DayBoundary::Midnight(chrono_tz::UTC);
        assert_eq!(
            verdict(&error, utc, now),
            Verdict::Exhausted { until: Some(at("2026-03-09T00:00:00Z")) }
        );
        let rolling = error.clone().with_retry_after(Some(Duration::from_secs(578)));
        assert_eq!(
            verdict(&rolling, DayBoundary::Rolling, now),
            Verdict::Exhausted { until: Some(at("2026-03-08T06:09:38Z")) }
        );
    }

    #[test]
    fn anthropic_spend_cap_names_its_date() {
        let mut error = ProviderError::new(ErrorKind::BillingStopped, "anthropic", "");
        error.resets_at = Some(at("2026-12-01T00:00:00Z"));
        assert_eq!(
            verdict(&error, DayBoundary::Rolling, at("2026-11-23T00:00:00Z")),
            Verdict::BillingStopped { until: Some(at("2026-12-01T00:00:00Z")) }
        );
    }

    #[test]
    fn huge_delays_and_far_resets_are_clamped_to_max_hint() {
        let now = at("2026-03-08T06:00:00Z");
        let limit = now + chrono::Duration::from_std(MAX_HINT).expect("31 days");
        let minute =
            ProviderError::new(ErrorKind::RateLimited { scope: LimitScope::Minute }, "g", "")
                .with_retry_after(Some(Duration::MAX));
        assert_eq!(
            verdict(&minute, DayBoundary::Rolling, now),
            Verdict::Cooldown { after: Some(MAX_HINT) }
        );
        let day = ProviderError::new(ErrorKind::QuotaExhausted { scope: LimitScope::Day }, "g", "")
            .with_retry_after(Some(Duration::MAX));
        assert_eq!(
            verdict(&day, DayBoundary::Rolling, now),
            Verdict::Exhausted { until: Some(limit) }
        );
        let mut billing = ProviderError::new(ErrorKind::BillingStopped, "g", "");
        billing.resets_at = Some(DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            verdict(&billing, DayBoundary::Rolling, now),
            Verdict::BillingStopped { until: Some(limit) }
        );
        // At the very end of chrono's range nothing overflows either.
        assert_eq!(
            verdict(&day, DayBoundary::Rolling, DateTime::<Utc>::MAX_UTC),
            Verdict::Exhausted { until: Some(DateTime::<Utc>::MAX_UTC) }
        );
    }
}
