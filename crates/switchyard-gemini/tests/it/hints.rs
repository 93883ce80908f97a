//! Every retry hint Gemini (or a proxy in front of it) gives, through the adapter over loopback
//! HTTP: status, headers and body in, the `ProviderError`'s kind, window, delay and reset out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{ChatRequest, LimitScope, ManualClock, ProviderError};
use switchyard_mock::FaultRule;

use crate::support::{answer, mock, provider};

#[path = "../../../switchyard-core/tests/support/hints.rs"]
mod shared;
use shared::{assert_hint, now, raw};

/// The error the adapter makes of one answer, on a clock at [`now`].
async fn hinted(status: u16, headers: &[(&str, &str)], body: &Value) -> ProviderError {
    let upstream = mock().start().await.expect("the mock starts");
    upstream.inject(FaultRule::once(raw(status, headers, body.to_string())));
    let clock = Arc::new(ManualClock::starting_at(now()));
    let adapter = provider(&upstream.base_url(), Duration::from_secs(10), clock);
    answer(&adapter, &ChatRequest::from_user("hi"), false).await.expect_err("refused")
}

/// A `RESOURCE_EXHAUSTED` status with a `QuotaFailure` naming `quota` by id and metric, and
/// `RetryInfo` when `retry_delay` is given.
fn exhausted(message: &str, quota: (&str, &str), retry_delay: Option<&str>) -> Value {
    let (quota_id, quota_metric) = quota;
    let mut details = vec![json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": quota_metric, "quotaId": quota_id, "quotaValue": "15",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}}]})];
    if let Some(delay) = retry_delay {
        details.push(
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        );
    }
    json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": message, "details": details}})
}

const METRIC: &str = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
const PER_MINUTE: (&str, &str) = ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", METRIC);
const PER_DAY: (&str, &str) = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", METRIC);

fn pacific_midnight(error: &ProviderError) -> Option<String> {
    error.resets_at.map(|at| at.to_rfc3339())
}

#[tokio::test]
async fn retry_info_and_the_message_the_longer_wins() {
    let message = "You exceeded your current quota.\nPlease retry in 38.922534355s.";
    let error = hinted(429, &[], &exhausted(message, PER_MINUTE, Some("38s"))).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::new(38, 922_534_355)));
    assert_eq!(error.resets_at, None);
}

#[tokio::test]
async fn retry_info_alone() {
    let error =
        hinted(429, &[], &exhausted("You exceeded your current quota.", PER_MINUTE, Some("37s")))
            .await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(37)));
}

#[tokio::test]
async fn please_retry_in_the_message_alone() {
    let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Resource has been exhausted (e.g. check quota). Please retry in 37.4s."}});
    let error = hinted(429, &[], &body).await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_secs_f64(37.4)));
}

#[tokio::test]
async fn a_per_day_quota_id_is_a_day_until_pacific_midnight() {
    let error =
        hinted(429, &[], &exhausted("You exceeded your current quota.", PER_DAY, Some("20s")))
            .await;
    assert_hint(&error, LimitScope::Day, Some(Duration::from_secs(20)));
    // 10:00 UTC on 23 November is 02:00 PST: the next Pacific midnight is 08:00 UTC on the 24th.
    assert_eq!(pacific_midnight(&error).as_deref(), Some("2026-11-24T08:00:00+00:00"));
}

#[tokio::test]
async fn a_per_day_quota_metric_without_an_id_is_a_day() {
    let quota = ("", "generativelanguage.googleapis.com/generate_requests_per_day");
    let error = hinted(429, &[], &exhausted("You exceeded your current quota.", quota, None)).await;
    assert_hint(&error, LimitScope::Day, None);
    assert_eq!(pacific_midnight(&error).as_deref(), Some("2026-11-24T08:00:00+00:00"));
}

#[tokio::test]
async fn the_listed_body_of_the_compatible_endpoint_reads_the_same() {
    let status = exhausted("Please retry in 37.4s.", PER_DAY, Some("37s"));
    let error = hinted(429, &[], &json!([status])).await;
    assert_hint(&error, LimitScope::Day, Some(Duration::from_secs_f64(37.4)));
}

#[tokio::test]
async fn a_proxys_retry_after_ms_when_the_body_has_no_delay() {
    let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Resource exhausted."}});
    let error = hinted(429, &[("retry-after-ms", "2500"), ("retry-after", "3")], &body).await;
    assert_hint(&error, LimitScope::Unknown, Some(Duration::from_millis(2500)));
}

#[tokio::test]
async fn never_shorter_than_a_proxys_retry_after() {
    let body = exhausted("Quota exceeded.", PER_MINUTE, Some("5s"));
    let error = hinted(429, &[("retry-after", "Mon, 23 Nov 2026 10:01:00 GMT")], &body).await;
    assert_hint(&error, LimitScope::Minute, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn garbage_delays_give_no_hint() {
    for delay in ["-5s", "NaNs", "soon", ""] {
        let body = exhausted("Please retry in -1s.", PER_MINUTE, Some(delay));
        let error = hinted(429, &[("retry-after", "-3")], &body).await;
        assert_hint(&error, LimitScope::Minute, None);
    }
}
