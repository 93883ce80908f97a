//! Every retry hint of the OpenAI family, through the adapter over loopback HTTP: a status,
//! headers and a body in (as the mock sends them byte for byte), the `ProviderError`'s kind,
//! window, delay and reset out. One test per phrasing and per wire; the texts follow the
//! shapes in the providers' reference.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{
    Call, ChatRequest, Clock, Credential, ErrorKind, LimitScope, LimitUnit, MAX_HINT, ManualClock,
    ModelId, Provider, ProviderError, ProviderId, Reset,
};
use switchyard_mock::{FaultRule, KeyScript, MockUpstream};
use switchyard_openai::{OpenAiConfig, OpenAiProvider, Preset};

#[path = "../../../switchyard-core/tests/support/hints.rs"]
mod shared;
use shared::{assert_hint, near, now, raw, reset_after};

const SECRET: &str = "sk-hints-0123456789abcdefghijklmnop";

/// The error `preset`'s adapter makes of one answer, read on a clock at [`now`].
async fn hinted(
    preset: Preset,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> ProviderError {
    let mock = MockUpstream::openai()
        .key(KeyScript::valid("key-1", SECRET))
        .models(["model-a"])
        .start()
        .await
        .expect("the mock starts");
    mock.inject(FaultRule::once(raw(status, headers, body.to_owned())));
    let config = OpenAiConfig::new(ProviderId::new(preset.as_str()), preset).at(mock.base_url());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(now()));
    let adapter = OpenAiProvider::try_new(config, clock).expect("the adapter builds");
    let (request, model) = (ChatRequest::from_user("hi"), ModelId::new("model-a"));
    let credential = Credential::new("key-1", SECRET);
    adapter.chat(Call::new(&request, &model, Some(&credential))).await.expect_err("refused")
}

fn secs(secs: f64) -> Option<Duration> {
    Some(Duration::from_secs_f64(secs))
}

/// An OpenAI-style 429 that names no delay and no window.
const BARE: &str =
    r#"{"error":{"message":"Rate limit reached.","type":"requests","code":"rate_limit_exceeded"}}"#;

#[tokio::test]
async fn retry_after_in_seconds() {
    let error = hinted(Preset::OpenAi, 429, &[("retry-after", "20")], BARE).await;
    assert_hint(&error, LimitScope::Unknown, secs(20.0));
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let headers = [("retry-after", "Mon, 23 Nov 2026 10:00:30 GMT")];
    let error = hinted(Preset::Compatible, 429, &headers, BARE).await;
    assert_hint(&error, LimitScope::Unknown, secs(30.0));
}

#[tokio::test]
async fn retry_after_ms_is_the_finer_header() {
    let headers = [("retry-after-ms", "1500"), ("retry-after", "2")];
    let error = hinted(Preset::OpenAi, 429, &headers, BARE).await;
    assert_hint(&error, LimitScope::Unknown, secs(1.5));
}

#[tokio::test]
async fn a_spent_request_bucket_resets_after_a_go_duration() {
    let headers = [
        ("x-ratelimit-limit-requests", "3"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1m2.5s"),
    ];
    let error = hinted(Preset::OpenAi, 429, &headers, BARE).await;
    assert_hint(&error, LimitScope::Minute, secs(62.5));
}

#[tokio::test]
async fn a_spent_token_bucket_resets_after_milliseconds() {
    let headers = [("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "6ms")];
    let error = hinted(Preset::OpenAi, 429, &headers, BARE).await;
    assert_hint(&error, LimitScope::Minute, secs(0.006));
}

#[tokio::test]
async fn try_again_in_a_go_duration_in_the_message() {
    let body = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1m2.5s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let error = hinted(Preset::OpenAi, 429, &[], body).await;
    assert_hint(&error, LimitScope::Minute, secs(62.5));
    assert_eq!(error.resets_at, None, "a minute has no reset instant");
}

#[tokio::test]
async fn the_message_wins_over_a_shorter_header_and_never_goes_below_one() {
    let body = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_x` service tier `on_demand` on tokens per minute (TPM): Limit 12000, Used 4437, Requested 9854. Please try again in 11.455s.","type":"tokens","code":"rate_limit_exceeded"}}"#;
    let error = hinted(Preset::Groq, 429, &[("retry-after", "2")], body).await;
    assert_hint(&error, LimitScope::Minute, secs(11.455));
    let body = body.replace("11.455s", "1.984999999s");
    let error = hinted(Preset::Groq, 429, &[("retry-after", "2")], &body).await;
    assert_hint(&error, LimitScope::Minute, secs(2.0));
}

#[tokio::test]
async fn a_daily_message_is_a_day_until_its_delay() {
    let body = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_x` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 97050, Requested 3619. Please try again in 9m38.016s.","type":"tokens","code":"rate_limit_exceeded"}}"#;
    let error = hinted(Preset::Groq, 429, &[("retry-after", "578")], body).await;
    assert_hint(&error, LimitScope::Day, secs(578.016));
    assert!(near(reset_after(&error), secs(578.016)), "{error}");
}

#[tokio::test]
async fn groqs_spent_requests_header_is_a_day() {
    // On Groq the `-requests` headers count per day: at 0, the day is spent, whatever the
    // message says.
    let headers = [
        ("retry-after", "2"),
        ("x-ratelimit-limit-requests", "1000"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2h59m56s"),
        ("x-ratelimit-remaining-tokens", "11000"),
        ("x-ratelimit-reset-tokens", "7.66s"),
    ];
    let error = hinted(Preset::Groq, 429, &headers, BARE).await;
    assert_hint(&error, LimitScope::Day, secs(2.0));
    assert_eq!(reset_after(&error), secs(10_796.0), "exhausted until the bucket refills");
}

#[tokio::test]
async fn a_reset_hours_away_is_a_day() {
    let error = hinted(Preset::Compatible, 429, &[("retry-after", "18000")], BARE).await;
    assert_hint(&error, LimitScope::Day, secs(18_000.0));
    assert_eq!(reset_after(&error), secs(18_000.0));
}

#[tokio::test]
async fn mistrals_spent_month_is_a_month() {
    let headers = [
        ("x-ratelimit-limit-tokens-month", "1000000"),
        ("x-ratelimit-remaining-tokens-month", "0"),
    ];
    let body = r#"{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#;
    let error = hinted(Preset::Mistral, 429, &headers, body).await;
    assert_hint(&error, LimitScope::Month, None);
}

#[tokio::test]
async fn retry_after_n_seconds_in_the_message() {
    let body = r#"{"message":"Requests rate limit exceeded, retry after 20 seconds"}"#;
    let error = hinted(Preset::Mistral, 429, &[], body).await;
    assert_hint(&error, LimitScope::Unknown, secs(20.0));
}

#[tokio::test]
async fn resets_at_an_rfc_3339_instant_in_the_message() {
    let body = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Resets at 2026-11-24T00:00:00Z.","code":429}}"#;
    let error = hinted(Preset::OpenRouter, 429, &[], body).await;
    assert_hint(&error, LimitScope::Day, secs(14.0 * 3600.0));
    assert_eq!(
        error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
        Some("2026-11-24T00:00:00+00:00")
    );
}

/// Gemini's OpenAI-compatible endpoint: a `google.rpc.Status` in a list, with `QuotaFailure`
/// naming the window and `RetryInfo` the delay (rounded down; the message has the fraction).
fn gemini_listed(quota_id: &str) -> String {
    format!(
        r#"[{{"error":{{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5, model: gemini-2.5-flash\nPlease retry in 37.4s.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"{quota_id}","quotaDimensions":{{"location":"global","model":"gemini-2.5-flash"}},"quotaValue":"5"}}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}}]}}}}]"#
    )
}

#[tokio::test]
async fn geminis_listed_body_at_a_compatible_url_gives_its_minute_and_delay() {
    let body = gemini_listed("GenerateRequestsPerMinutePerProjectPerModel-FreeTier");
    let error = hinted(Preset::Compatible, 429, &[], &body).await;
    assert_hint(&error, LimitScope::Minute, secs(37.4));
    let reading = error.rate_limits.reading_in(LimitUnit::Requests, LimitScope::Minute);
    let reading = reading.expect("the violated quota as a reading");
    assert_eq!((reading.limit, reading.remaining), (Some(5), Some(0)), "the quota's value");
    assert_eq!(reading.reset, error.retry_after.map(Reset::After), "spent until the delay");
}

#[tokio::test]
async fn geminis_listed_per_day_quota_is_a_day_until_pacific_midnight() {
    let body = gemini_listed("GenerateRequestsPerDayPerProjectPerModel-FreeTier");
    let error = hinted(Preset::Compatible, 429, &[], &body).await;
    assert_hint(&error, LimitScope::Day, secs(37.4));
    // 10:00 UTC on 23 November is 02:00 PST; the next Pacific midnight is 08:00 UTC on the 24th.
    assert_eq!(
        error.resets_at.map(|at| at.to_rfc3339()).as_deref(),
        Some("2026-11-24T08:00:00+00:00")
    );
    let reading = error.rate_limits.reading_in(LimitUnit::Requests, LimitScope::Day);
    assert_eq!(reading.and_then(|r| r.reset), error.resets_at.map(Reset::At));
}

#[tokio::test]
async fn a_gemini_status_without_the_list_reads_the_same() {
    let body = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota). Please retry in 37.4s.","status":"RESOURCE_EXHAUSTED"}}"#;
    let error = hinted(Preset::Compatible, 429, &[], body).await;
    assert_hint(&error, LimitScope::Unknown, secs(37.4));
}

#[tokio::test]
async fn a_zero_limit_quota_is_exhausted_not_limited() {
    let body = gemini_listed("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
        .replace("limit: 5", "limit: 0");
    let error = hinted(Preset::Compatible, 429, &[], &body).await;
    assert_eq!(error.kind, ErrorKind::QuotaExhausted { scope: LimitScope::Day });
}

#[tokio::test]
async fn garbage_hints_give_no_hint() {
    let headers =
        [("retry-after", "-5"), ("retry-after-ms", "NaN"), ("x-ratelimit-reset-requests", "soon")];
    let body = r#"{"error":{"message":"Please try again in -3s. Retry after NaN seconds.","code":"rate_limit_exceeded"}}"#;
    let error = hinted(Preset::OpenAi, 429, &headers, body).await;
    assert_hint(&error, LimitScope::Unknown, None);
}

#[tokio::test]
async fn huge_hints_are_clamped_to_max_hint() {
    let body =
        r#"{"error":{"message":"Please try again in 1e308s.","code":"rate_limit_exceeded"}}"#;
    let error =
        hinted(Preset::OpenAi, 429, &[("retry-after", "99999999999999999999999")], body).await;
    assert_hint(&error, LimitScope::Day, Some(MAX_HINT));
    assert_eq!(reset_after(&error), Some(MAX_HINT));
}
