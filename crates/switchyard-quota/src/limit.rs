//! What a limit counts and over which window: the vocabulary of the quota configuration.
//!
//! Three window shapes cover what providers do. A sliding window (per-minute limits) counts
//! what happened in the last `length`; a refilling bucket (OpenAI, Groq) drains continuously,
//! so its reset header is the time to a full refill; a calendar day (Gemini, OpenRouter's
//! free counter) starts again at local midnight in a named time zone.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use switchyard_core::{LimitScope, LimitUnit};

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Requests: each admitted attempt costs one.
    Requests,
    /// Tokens, input and output together: an attempt costs its estimate until settled.
    Tokens,
}

impl Unit {
    /// The unit as text, for summaries and stored meter names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
        }
    }

    /// Whether a provider's reading counts this unit.
    pub fn matches(self, unit: LimitUnit) -> bool {
        match unit {
            LimitUnit::Requests => self == Self::Requests,
            LimitUnit::Tokens => self == Self::Tokens,
            // Our meters count input and output together; split readings only feed gates.
            LimitUnit::InputTokens | LimitUnit::OutputTokens => false,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The window a limit counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// What happened in the last `length`, of any length (`60s`, `10s` in a simulation). Kept
    /// in 60 sub-slots: an admission stays counted between `length` and `length * 61/60`, so
    /// the limit is never exceeded in any real window and capacity returns at most
    /// `length / 60` late.
    Sliding(Duration),
    /// A bucket of `amount` that refills continuously, empty to full in `length` (OpenAI,
    /// Groq).
    Refill(Duration),
    /// A calendar day ending at midnight in this time zone (Gemini: America/Los_Angeles;
    /// OpenRouter's free counter: UTC), daylight-saving days included.
    Day(Tz),
}

impl Window {
    /// Which of a provider's reported scopes this window corresponds to: up to five minutes
    /// is a minute limit, up to two days a daily one, longer a monthly one.
    pub fn scope(self) -> LimitScope {
        match self {
            Self::Sliding(length) | Self::Refill(length) => {
                if length <= Duration::from_secs(300) {
                    LimitScope::Minute
                } else if length <= Duration::from_secs(2 * 86_400) {
                    LimitScope::Day
                } else {
                    LimitScope::Month
                }
            }
            Self::Day(_) => LimitScope::Day,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sliding(length) => write!(f, "sliding-{}ms", length.as_millis()),
            Self::Refill(length) => write!(f, "refill-{}ms", length.as_millis()),
            Self::Day(tz) => write!(f, "day-{}", tz.name()),
        }
    }
}

/// One limit: at most `amount` of `unit` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What is counted.
    pub unit: Unit,
    /// How much is allowed per window.
    pub amount: u64,
    /// The window.
    pub window: Window,
}

impl Limit {
    /// `amount` requests in any sliding window of `length`.
    pub fn requests_per(amount: u64, length: Duration) -> Self {
        Self { unit: Unit::Requests, amount, window: Window::Sliding(length) }
    }

    /// `amount` tokens in any sliding window of `length`.
    pub fn tokens_per(amount: u64, length: Duration) -> Self {
        Self { unit: Unit::Tokens, amount, window: Window::Sliding(length) }
    }

    /// `amount` requests a minute, sliding.
    pub fn per_minute(amount: u64) -> Self {
        Self::requests_per(amount, Duration::from_secs(60))
    }

    /// `amount` requests in a bucket refilling fully in `length`.
    pub fn requests_refill(amount: u64, length: Duration) -> Self {
        Self { unit: Unit::Requests, amount, window: Window::Refill(length) }
    }

    /// `amount` tokens in a bucket refilling fully in `length`.
    pub fn tokens_refill(amount: u64, length: Duration) -> Self {
        Self { unit: Unit::Tokens, amount, window: Window::Refill(length) }
    }

    /// `amount` requests per calendar day in `tz`.
    pub fn requests_per_day(amount: u64, tz: Tz) -> Self {
        Self { unit: Unit::Requests, amount, window: Window::Day(tz) }
    }

    /// `amount` tokens per calendar day in `tz`.
    pub fn tokens_per_day(amount: u64, tz: Tz) -> Self {
        Self { unit: Unit::Tokens, amount, window: Window::Day(tz) }
    }

    /// A stable name for this limit (`requests/day-America/Los_Angeles`), used to match
    /// stored counters to configured limits after a restart.
    pub fn name(&self) -> String {
        format!("{}/{}", self.unit, self.window)
    }
}

/// The first midnight in `tz` strictly after `utc`: when a calendar-day quota starts again.
/// Daylight-saving changes are honoured (a Los Angeles day is 23 or 25 hours long on the
/// days the clocks change). At the end of chrono's range, where no later day exists, it is
/// chrono's last instant: never a panic.
pub fn next_midnight(tz: Tz, utc: DateTime<Utc>) -> DateTime<Utc> {
    let Some(mut date) = local_date(tz, utc) else {
        return utc
            .checked_add_signed(chrono::Duration::days(1))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    };
    // A zone could skip midnight on a DST change (none of the providers' zones do, but a
    // configured one might): then the day starts at the first instant that exists.
    for _ in 0..3 {
        let Some(next) = date.succ_opt() else { break };
        date = next;
        let midnight = date.and_time(NaiveTime::MIN);
        if let Some(start) = tz.from_local_datetime(&midnight).earliest() {
            return start.with_timezone(&Utc);
        }
        for hour in 1..3 {
            let Some(later) = midnight.checked_add_signed(chrono::Duration::hours(hour)) else {
                continue;
            };
            if let Some(start) = tz.from_local_datetime(&later).earliest() {
                return start.with_timezone(&Utc);
            }
        }
    }
    utc.checked_add_signed(chrono::Duration::days(1)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `utc`'s date in `tz`; `None` at the ends of chrono's range, where the local time does
/// not exist (`DateTime::with_timezone` would panic there).
fn local_date(tz: Tz, utc: DateTime<Utc>) -> Option<NaiveDate> {
    let offset = tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
    utc.naive_utc().checked_add_offset(offset).map(|local| local.date())
}

/// The last midnight in `tz` at or before `utc`: when the current calendar day began.
pub fn day_start(tz: Tz, utc: DateTime<Utc>) -> DateTime<Utc> {
    local_date(tz, utc)
        .and_then(|date| tz.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest())
        .map_or_else(
            || {
                utc.checked_sub_signed(chrono::Duration::days(1))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC)
            },
            |start| start.with_timezone(&Utc),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Los_Angeles;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("date").to_utc()
    }

    #[test]
    fn midnight_los_angeles_is_8_utc_in_winter_and_7_in_summer() {
        assert_eq!(
            next_midnight(Los_Angeles, at("2026-01-15T12:00:00Z")),
            at("2026-01-16T08:00:00Z")
        );
        assert_eq!(
            next_midnight(Los_Angeles, at("2026-07-15T12:00:00Z")),
            at("2026-07-16T07:00:00Z")
        );
    }

    #[test]
    fn days_around_dst_changes_are_23_and_25_hours() {
        // 2026: DST starts Sunday 8 March, ends Sunday 1 November in Los Angeles.
        let start_of_8_march = next_midnight(Los_Angeles, at("2026-03-07T20:00:00Z"));
        assert_eq!(start_of_8_march, at("2026-03-08T08:00:00Z"));
        let start_of_9_march = next_midnight(Los_Angeles, start_of_8_march);
        assert_eq!(start_of_9_march, at("2026-03-09T07:00:00Z"));
        assert_eq!((start_of_9_march - start_of_8_march).num_hours(), 23);
        let start_of_1_nov = next_midnight(Los_Angeles, at("2026-10-31T20:00:00Z"));
        assert_eq!(start_of_1_nov, at("2026-11-01T07:00:00Z"));
        let start_of_2_nov = next_midnight(Los_Angeles, start_of_1_nov);
        assert_eq!(start_of_2_nov, at("2026-11-02T08:00:00Z"));
        assert_eq!((start_of_2_nov - start_of_1_nov).num_hours(), 25);
    }

    #[test]
    fn day_start_is_the_previous_local_midnight() {
        assert_eq!(day_start(Los_Angeles, at("2026-01-16T07:59:59Z")), at("2026-01-15T08:00:00Z"));
        assert_eq!(
            day_start(chrono_tz::UTC, at("2026-01-16T07:59:59Z")),
            at("2026-01-16T00:00:00Z")
        );
    }

    #[test]
    fn day_boundaries_at_the_ends_of_chronos_range_do_not_overflow() {
        let last = DateTime::<Utc>::MAX_UTC;
        assert_eq!(next_midnight(Los_Angeles, last), last);
        assert_eq!(next_midnight(chrono_tz::UTC, last), last);
        assert!(day_start(Los_Angeles, last) <= last);
        let first = DateTime::<Utc>::MIN_UTC;
        assert!(day_start(Los_Angeles, first) >= first);
        assert!(next_midnight(Los_Angeles, first) > first);
    }

    #[test]
    fn window_scopes() {
        assert_eq!(Window::Sliding(Duration::from_secs(60)).scope(), LimitScope::Minute);
        assert_eq!(Window::Refill(Duration::from_secs(86_400)).scope(), LimitScope::Day);
        assert_eq!(Window::Day(Los_Angeles).scope(), LimitScope::Day);
        assert_eq!(Window::Sliding(Duration::from_secs(30 * 86_400)).scope(), LimitScope::Month);
        assert_eq!(Limit::per_minute(3).name(), "requests/sliding-60000ms");
    }
}
