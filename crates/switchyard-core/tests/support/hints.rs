//! What the adapters' retry-hint tests (`tests/it/hints.rs` in each adapter) share, kept once
//! here and included by path: the instant their clocks start at, the raw answer the mock
//! sends, and the one assertion on the settled error.

#![allow(dead_code, reason = "each adapter uses what its wire needs")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_core::{ErrorKind, LimitScope, ProviderError};
use switchyard_mock::Fault;

/// When the adapters' clocks read: 10:00 UTC on 23 November 2026, 02:00 in Los Angeles.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc()
}

/// This answer, byte for byte: `status`, JSON `body` and `headers`.
pub(crate) fn raw(status: u16, headers: &[(&str, &str)], body: String) -> Fault {
    let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    Fault::Raw { status, content_type: "application/json".to_owned(), headers, body }
}

/// Whether two delays agree to the microsecond (a Go duration is summed in floating point).
pub(crate) fn near(got: Option<Duration>, want: Option<Duration>) -> bool {
    match (got, want) {
        (Some(got), Some(want)) => got.abs_diff(want) < Duration::from_micros(1),
        (got, want) => got == want,
    }
}

/// The error is rate limited over `scope` for `retry_after`, and its snapshot says the same.
#[track_caller]
pub(crate) fn assert_hint(error: &ProviderError, scope: LimitScope, retry_after: Option<Duration>) {
    assert_eq!(error.kind, ErrorKind::RateLimited { scope }, "{error}");
    assert!(near(error.retry_after, retry_after), "{error}: want {retry_after:?}");
    assert_eq!(error.rate_limits.retry_after, error.retry_after, "the snapshot carries it too");
}

/// How long after [`now`] the error's reset is.
pub(crate) fn reset_after(error: &ProviderError) -> Option<Duration> {
    error.resets_at.and_then(|at| (at - now()).to_std().ok())
}
