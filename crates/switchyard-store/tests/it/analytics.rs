//! The analytics event log on real SQLite files: reports of a scripted run, window bounds,
//! restarts, retention on a manual clock, the batching writer, and the v2 → v3 and v3 → v4
//! upgrades.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rusqlite::Connection;
use switchyard_core::{Candidate, ErrorKind, ManualClock, ProviderError};
use switchyard_quota::{LedgerStore, MemoryLedger, QuotaConfig};
use switchyard_score::{AdaptiveScorer, Outcome, Scorer, StatsStore};
use switchyard_store::schema::MIGRATIONS;
use switchyard_store::{
    Analytics, AnalyticsEvent, AnalyticsWriter, AnalyticsWriterConfig, ClientUsage, ErrorRow,
    EventKind, HourlyRow, KeyUsage, SqliteStore, StoreError,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("date").to_utc()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

/// One attempt: `key` is `provider/key`; an error class means it failed.
struct Try<'a> {
    key: &'a str,
    error: Option<(&'a str, u16)>,
    latency_ms: f64,
    tokens: (u64, u64),
    cost: f64,
}

fn ok<'a>(key: &'a str, latency_ms: f64, tokens: (u64, u64), cost: f64) -> Try<'a> {
    Try { key, error: None, latency_ms, tokens, cost }
}

fn failed<'a>(key: &'a str, class: &'a str, status: u16, latency_ms: f64) -> Try<'a> {
    Try { key, error: Some((class, status)), latency_ms, tokens: (0, 0), cost: 0.0 }
}

/// The events of one request: its attempts, each finishing `latency_ms` after the previous,
/// then the request itself, answered by (or failed on) the last key tried.
fn request(
    id: &str,
    started: &str,
    client: Option<&str>,
    tries: &[Try<'_>],
) -> Vec<AnalyticsEvent> {
    let mut now = at(started);
    let mut events = Vec::new();
    for attempt in tries {
        let (provider, key) = attempt.key.split_once('/').expect("provider/key");
        events.push(AnalyticsEvent {
            at: now,
            kind: EventKind::Attempt,
            request_id: id.to_owned(),
            client: client.map(str::to_owned),
            route: "default".to_owned(),
            provider: Some(provider.to_owned()),
            key: Some(key.to_owned()),
            model: Some("some-model".to_owned()),
            success: attempt.error.is_none(),
            error_class: attempt.error.map(|(class, _)| class.to_owned()),
            quota_error: attempt.error.is_some_and(|(_, status)| status == 429),
            status: Some(attempt.error.map_or(200, |(_, status)| status)),
            latency_ms: attempt.latency_ms,
            prompt_tokens: attempt.tokens.0,
            completion_tokens: attempt.tokens.1,
            cost: Some(attempt.cost),
            tags: Vec::new(),
        });
        // The next attempt finishes after its own latency (whole milliseconds here).
        now += TimeDelta::milliseconds(attempt.latency_ms as i64);
    }
    let last = events.last().expect("at least one attempt").clone();
    let total_latency: f64 = tries.iter().map(|attempt| attempt.latency_ms).sum();
    events.push(AnalyticsEvent {
        at: last.at,
        kind: EventKind::Request,
        latency_ms: total_latency,
        prompt_tokens: tries.iter().map(|attempt| attempt.tokens.0).sum(),
        completion_tokens: tries.iter().map(|attempt| attempt.tokens.1).sum(),
        cost: Some(tries.iter().map(|attempt| attempt.cost).sum()),
        ..last
    });
    events
}

/// The scripted run of 2026-11-23, with a request just after midnight on each side.
fn scripted_run() -> Vec<AnalyticsEvent> {
    [
        request(
            "r0",
            "2026-11-22T23:59:59.990Z",
            Some("ci-bot"),
            &[ok("groq/groq-1", 5.0, (1, 1), 0.5)],
        ),
        request(
            "r1",
            "2026-11-23T14:05:00Z",
            Some("ci-bot"),
            &[
                failed("groq/groq-1", "rate_limited", 429, 50.0),
                ok("groq/groq-2", 150.0, (10, 5), 0.25),
            ],
        ),
        request(
            "r2",
            "2026-11-23T14:30:00Z",
            Some("ci-bot"),
            &[ok("groq/groq-2", 100.0, (20, 10), 0.5)],
        ),
        request(
            "r3",
            "2026-11-23T15:10:00Z",
            Some("web"),
            &[
                failed("gemini/g1", "invalid_key", 401, 30.0),
                failed("groq/groq-1", "rate_limited", 429, 40.0),
                failed("groq/groq-2", "server_error", 500, 200.0),
            ],
        ),
        // The same key id at another provider.
        request(
            "r4",
            "2026-11-23T16:00:00Z",
            Some("ci-bot"),
            &[ok("openrouter/groq-2", 90.0, (1, 1), 0.0)],
        ),
        request("r5", "2026-11-23T23:59:59.999Z", None, &[ok("gemini/g2", 80.0, (5, 5), 0.125)]),
        request(
            "r6",
            "2026-11-24T00:00:00Z",
            Some("web"),
            &[ok("groq/groq-1", 60.0, (2, 2), 0.125)],
        ),
    ]
    .concat()
}

fn key_row(
    key: &str,
    requests: u64,
    successes: u64,
    avg_latency_ms: f64,
    quota_errors: u64,
    tokens: (u64, u64),
    cost: f64,
) -> KeyUsage {
    let (provider, key) = key.split_once('/').expect("provider/key");
    KeyUsage {
        provider: provider.to_owned(),
        key: key.to_owned(),
        requests,
        successes,
        failures: requests - successes,
        avg_latency_ms,
        quota_errors,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        cost,
        uncosted: 0,
        // In these runs only successes cost anything, and a request's last attempt is its
        // success: what a key's attempts cost is what the requests it served cost.
        served_cost: cost,
    }
}

fn client_row(client: &str, requests: u64, successes: u64, cost: f64) -> ClientUsage {
    ClientUsage { client: client.to_owned(), requests, successes, cost, uncosted: 0 }
}

fn hour_row(hour: &str, key: &str, requests: u64, successes: u64, avg: f64) -> HourlyRow {
    let (provider, key) = key.split_once('/').expect("provider/key");
    HourlyRow {
        hour: at(hour),
        provider: provider.to_owned(),
        key: key.to_owned(),
        requests,
        successes,
        failures: requests - successes,
        avg_latency_ms: avg,
    }
}

fn error_row(class: &str, count: u64, keys: &[&str]) -> ErrorRow {
    ErrorRow {
        class: class.to_owned(),
        count,
        keys: keys.iter().map(|key| (*key).to_owned()).collect(),
    }
}

fn day_23() -> (DateTime<Utc>, DateTime<Utc>) {
    (at("2026-11-23T00:00:00Z"), at("2026-11-24T00:00:00Z"))
}

fn analytics_with(path: &std::path::Path, events: &[AnalyticsEvent]) -> Analytics {
    let mut analytics = Analytics::open(path).expect("opens");
    analytics.insert_batch(events).expect("inserts");
    analytics
}

#[test]
fn usage_of_the_scripted_day_per_key_and_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analytics = analytics_with(&dir.path().join("state.db"), &scripted_run());
    let (start, end) = day_23();
    let usage = analytics.usage(start, end, None).expect("usage");
    assert_eq!((usage.start, usage.end), (start, end));
    // Worked out by hand from `scripted_run`: r0 is before the day, r6 at its (excluded) end.
    assert_eq!(
        usage.keys,
        [
            key_row("gemini/g1", 1, 0, 30.0, 0, (0, 0), 0.0),
            key_row("gemini/g2", 1, 1, 80.0, 0, (5, 5), 0.125),
            key_row("groq/groq-1", 2, 0, 45.0, 2, (0, 0), 0.0),
            key_row("groq/groq-2", 3, 2, 150.0, 0, (30, 15), 0.75),
            key_row("openrouter/groq-2", 1, 1, 90.0, 0, (1, 1), 0.0),
        ]
    );
    // r5 has no client: no row.
    assert_eq!(usage.clients, [client_row("ci-bot", 3, 3, 0.75), client_row("web", 1, 0, 0.0)]);
}

#[test]
fn a_key_filter_takes_a_bare_id_or_provider_slash_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analytics = analytics_with(&dir.path().join("state.db"), &scripted_run());
    let (start, end) = day_23();

    let bare = analytics.usage(start, end, Some("groq-2")).expect("usage");
    let keys: Vec<(&str, &str, u64)> = bare
        .keys
        .iter()
        .map(|row| (row.provider.as_str(), row.key.as_str(), row.requests))
        .collect();
    assert_eq!(keys, [("groq", "groq-2", 3), ("openrouter", "groq-2", 1)]);
    // Requests answered by (or failed last on) a key named groq-2: r1, r2, r4; r3 for web.
    assert_eq!(bare.clients, [client_row("ci-bot", 3, 3, 0.75), client_row("web", 1, 0, 0.0)]);

    let qualified = analytics.usage(start, end, Some("groq/groq-2")).expect("usage");
    assert_eq!(qualified.keys, [key_row("groq/groq-2", 3, 2, 150.0, 0, (30, 15), 0.75)]);
    assert_eq!(qualified.clients, [client_row("ci-bot", 2, 2, 0.75), client_row("web", 1, 0, 0.0)]);

    let wrong_provider = analytics.usage(start, end, Some("gemini/groq-2")).expect("usage");
    assert!(wrong_provider.keys.is_empty() && wrong_provider.clients.is_empty());
    let unknown = analytics.usage(start, end, Some("nope")).expect("usage");
    assert!(unknown.keys.is_empty() && unknown.clients.is_empty());
}

/// The scripted run with request `r1` tagged `team-a` and `exp`, `r3` tagged `team-a`, `r2`
/// tagged `team-b`.
fn tagged_run() -> Vec<AnalyticsEvent> {
    let mut events = scripted_run();
    for event in &mut events {
        let tags: &[&str] = match (event.kind, event.request_id.as_str()) {
            (EventKind::Request, "r1") => &["team-a", "exp"],
            (EventKind::Request, "r3") => &["team-a"],
            (EventKind::Request, "r2") => &["team-b"],
            _ => &[],
        };
        event.tags = tags.iter().map(|tag| (*tag).to_owned()).collect();
    }
    events
}

#[test]
fn a_tag_filter_keeps_the_tagged_requests_and_their_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = tagged_run();
    let analytics = analytics_with(&dir.path().join("state.db"), &events);
    let (start, end) = day_23();
    let read = analytics.events(start - TimeDelta::days(1), end + TimeDelta::days(1));
    assert_eq!(read.expect("events"), events, "tags read back as written");

    let attempts_of = |ids: &[&str]| -> u64 {
        let n = events
            .iter()
            .filter(|event| event.kind == EventKind::Attempt)
            .filter(|event| ids.contains(&event.request_id.as_str()))
            .count();
        u64::try_from(n).expect("fits")
    };
    let team_a = analytics.usage_tagged(start, end, None, Some("team-a")).expect("usage");
    let n_attempts: u64 = team_a.keys.iter().map(|row| row.requests).sum();
    assert_eq!(n_attempts, attempts_of(&["r1", "r3"]));
    let n_requests: u64 = team_a.clients.iter().map(|row| row.requests).sum();
    assert_eq!(n_requests, 2, "{:?}", team_a.clients);

    let exp = analytics.usage_tagged(start, end, None, Some("exp")).expect("usage");
    assert_eq!(exp.keys.iter().map(|row| row.requests).sum::<u64>(), attempts_of(&["r1"]));
    // A tag is matched whole: `team` is no tag of any request.
    let partial = analytics.usage_tagged(start, end, None, Some("team")).expect("usage");
    assert!(partial.keys.is_empty() && partial.clients.is_empty());
    // With a key filter too, both apply; without a tag, the report is the untagged one.
    let both = analytics.usage_tagged(start, end, Some("groq-2"), Some("team-b")).expect("usage");
    let untagged = analytics.usage(start, end, Some("groq-2")).expect("usage");
    let r2_on_groq_2 = events
        .iter()
        .filter(|event| event.kind == EventKind::Attempt && event.request_id == "r2")
        .filter(|event| event.key.as_deref() == Some("groq-2"))
        .count();
    let n_both: u64 = both.keys.iter().map(|row| row.requests).sum();
    assert_eq!(n_both, u64::try_from(r2_on_groq_2).expect("fits"));
    assert_eq!(analytics.usage_tagged(start, end, Some("groq-2"), None).expect("usage"), untagged);
}

#[test]
fn hourly_rows_of_a_utc_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analytics = analytics_with(&dir.path().join("state.db"), &scripted_run());
    let report = analytics.hourly(day("2026-11-23")).expect("hourly");
    assert_eq!(report.date, day("2026-11-23"));
    assert_eq!(
        report.hours,
        [
            hour_row("2026-11-23T14:00:00Z", "groq/groq-1", 1, 0, 50.0),
            hour_row("2026-11-23T14:00:00Z", "groq/groq-2", 2, 2, 125.0),
            hour_row("2026-11-23T15:00:00Z", "gemini/g1", 1, 0, 30.0),
            hour_row("2026-11-23T15:00:00Z", "groq/groq-1", 1, 0, 40.0),
            hour_row("2026-11-23T15:00:00Z", "groq/groq-2", 1, 0, 200.0),
            hour_row("2026-11-23T16:00:00Z", "openrouter/groq-2", 1, 1, 90.0),
            hour_row("2026-11-23T23:00:00Z", "gemini/g2", 1, 1, 80.0),
        ]
    );
    let next = analytics.hourly(day("2026-11-24")).expect("hourly");
    assert_eq!(next.hours, [hour_row("2026-11-24T00:00:00Z", "groq/groq-1", 1, 1, 60.0)]);
    let before = analytics.hourly(day("2026-11-22")).expect("hourly");
    assert_eq!(before.hours, [hour_row("2026-11-22T23:00:00Z", "groq/groq-1", 1, 1, 5.0)]);
    assert!(analytics.hourly(day("2026-11-25")).expect("hourly").hours.is_empty());
}

#[test]
fn errors_per_class_with_the_keys_involved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut events = scripted_run();
    // A second rate limit on another key, so a class lists two keys.
    events.extend(request(
        "r7",
        "2026-11-23T18:00:00Z",
        None,
        &[failed("groq/groq-2", "rate_limited", 429, 10.0), ok("gemini/g2", 10.0, (1, 1), 0.0)],
    ));
    let analytics = analytics_with(&dir.path().join("state.db"), &events);
    let (start, end) = day_23();
    let report = analytics.errors(start, end).expect("errors");
    assert_eq!((report.start, report.end), (start, end));
    assert_eq!(
        report.errors,
        [
            error_row("rate_limited", 3, &["groq/groq-1", "groq/groq-2"]),
            error_row("invalid_key", 1, &["gemini/g1"]),
            error_row("server_error", 1, &["groq/groq-2"]),
        ]
    );
    // The failed request r3 carries "server_error" too; only its attempts are counted.
    let only_r3 = analytics.errors(at("2026-11-23T15:00:00Z"), at("2026-11-23T16:00:00Z"));
    let classes: Vec<(String, u64)> =
        only_r3.expect("errors").errors.into_iter().map(|row| (row.class, row.count)).collect();
    assert_eq!(
        classes,
        [
            ("invalid_key".to_owned(), 1),
            ("rate_limited".to_owned(), 1),
            ("server_error".to_owned(), 1)
        ]
    );
}

#[test]
fn windows_include_their_start_and_exclude_their_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analytics = analytics_with(&dir.path().join("state.db"), &scripted_run());
    // r1's first attempt finished at 14:05:00.000, its second (and the request) at .050.
    let first = at("2026-11-23T14:05:00Z");
    let second = at("2026-11-23T14:05:00.050Z");
    let one_ms = TimeDelta::milliseconds(1);

    let usage = analytics.usage(first, second, None).expect("usage");
    assert_eq!(usage.keys, [key_row("groq/groq-1", 1, 0, 50.0, 1, (0, 0), 0.0)]);
    assert!(usage.clients.is_empty(), "the request finished at the excluded end");
    let usage = analytics.usage(first + one_ms, second + one_ms, None).expect("usage");
    assert_eq!(usage.keys, [key_row("groq/groq-2", 1, 1, 150.0, 0, (10, 5), 0.25)]);
    assert_eq!(usage.clients, [client_row("ci-bot", 1, 1, 0.25)]);
    assert!(analytics.usage(first, first, None).expect("usage").keys.is_empty(), "empty window");

    let errors = analytics.errors(first - one_ms, first).expect("errors");
    assert!(errors.errors.is_empty(), "the error at `first` is outside [first - 1ms, first)");
    let errors = analytics.errors(first, first + one_ms).expect("errors");
    assert_eq!(errors.errors, [error_row("rate_limited", 1, &["groq/groq-1"])]);

    // Consecutive windows split the day without counting an event twice.
    let (start, end) = day_23();
    let noon = at("2026-11-23T15:10:00.030Z"); // r3's second attempt, exactly
    let total = |from, to| -> u64 {
        analytics.usage(from, to, None).expect("usage").keys.iter().map(|row| row.requests).sum()
    };
    assert_eq!(total(start, noon) + total(noon, end), total(start, end));
    assert_eq!(total(start, end), 8);
}

/// Attempts, successes, latency sum, quota errors, prompt and completion tokens, cost.
type KeySums = (u64, u64, f64, u64, u64, u64, f64);

/// Folds the events by hand into what each report must say.
#[derive(Default)]
struct Expected {
    keys: BTreeMap<(String, String), KeySums>,
    clients: BTreeMap<String, (u64, u64, f64)>,
    hours: BTreeMap<(i64, String, String), (u64, u64, f64)>,
    errors: BTreeMap<String, (u64, BTreeSet<String>)>,
}

fn expect(events: &[AnalyticsEvent], start: DateTime<Utc>, end: DateTime<Utc>) -> Expected {
    let mut expected = Expected::default();
    for event in events.iter().filter(|event| start <= event.at && event.at < end) {
        match event.kind {
            EventKind::Attempt => {
                let provider = event.provider.clone().expect("provider");
                let key = event.key.clone().expect("key");
                let row = expected.keys.entry((provider.clone(), key.clone())).or_default();
                row.0 += 1;
                row.1 += u64::from(event.success);
                row.2 += event.latency_ms;
                row.3 += u64::from(event.quota_error);
                row.4 += event.prompt_tokens;
                row.5 += event.completion_tokens;
                row.6 += event.cost.expect("every generated attempt is priced");
                let hour = event.at.timestamp().div_euclid(3600);
                let row = expected.hours.entry((hour, provider.clone(), key.clone())).or_default();
                row.0 += 1;
                row.1 += u64::from(event.success);
                row.2 += event.latency_ms;
                if let Some(class) = &event.error_class {
                    let row = expected.errors.entry(class.clone()).or_default();
                    row.0 += 1;
                    row.1.insert(format!("{provider}/{key}"));
                }
            }
            EventKind::Request => {
                if let Some(client) = &event.client {
                    let row = expected.clients.entry(client.clone()).or_default();
                    row.0 += 1;
                    row.1 += u64::from(event.success);
                    row.2 += event.cost.expect("every generated request is priced");
                }
            }
        }
    }
    expected
}

/// A longer run with many keys, clients, hours and classes, made by a fixed recipe.
fn generated_run(n_requests: u32) -> Vec<AnalyticsEvent> {
    let keys = ["groq/groq-1", "groq/groq-2", "gemini/g1", "gemini/g2", "cerebras/c-1"];
    let classes =
        [("rate_limited", 429), ("server_error", 503), ("invalid_key", 401), ("timeout", 504)];
    let clients = [Some("ci-bot"), Some("web"), None];
    let mut events = Vec::new();
    for idx in 0..n_requests {
        let step = u64::from(idx);
        // Spread over two days, at uneven minutes.
        let started = at("2026-11-22T00:00:00Z") + TimeDelta::seconds(i64::from(idx) * 173);
        let n_failures = (step * 7 % 5) as usize % 3;
        let mut tries = Vec::new();
        for failure in 0..n_failures {
            let key = keys[(idx as usize + failure) % keys.len()];
            let (class, status) = classes[(idx as usize * 3 + failure) % classes.len()];
            tries.push(failed(key, class, status, (10 + step % 90) as f64));
        }
        let key = keys[(idx as usize * 11 + n_failures) % keys.len()];
        // Costs in eighths, so sums are exact in binary floating point.
        tries.push(ok(
            key,
            (100 + step % 400) as f64,
            (step % 50, step % 20),
            (step % 4) as f64 / 8.0,
        ));
        let started = started.to_rfc3339();
        events.extend(request(&format!("g{idx}"), &started, clients[idx as usize % 3], &tries));
    }
    events
}

#[test]
fn a_generated_run_matches_a_fold_done_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = generated_run(900);
    let analytics = analytics_with(&dir.path().join("state.db"), &events);
    let (start, end) = (at("2026-11-22T07:30:00Z"), at("2026-11-23T11:15:00Z"));
    let expected = expect(&events, start, end);
    assert!(expected.keys.len() == 5 && expected.errors.len() == 4, "the run covers everything");

    let usage = analytics.usage(start, end, None).expect("usage");
    let got: Vec<_> = usage
        .keys
        .iter()
        .map(|row| {
            let sum_latency = row.avg_latency_ms * row.requests as f64;
            assert_eq!(row.failures, row.requests - row.successes);
            (
                (row.provider.clone(), row.key.clone()),
                (row.requests, row.successes, sum_latency.round(), row.quota_errors),
                (row.prompt_tokens, row.completion_tokens, row.cost),
            )
        })
        .collect();
    let want: Vec<_> = expected
        .keys
        .iter()
        .map(|(key, row)| (key.clone(), (row.0, row.1, row.2, row.3), (row.4, row.5, row.6)))
        .collect();
    assert_eq!(got, want);
    let got: Vec<_> = usage
        .clients
        .iter()
        .map(|row| (row.client.clone(), (row.requests, row.successes, row.cost)))
        .collect();
    let want: Vec<_> = expected.clients.into_iter().collect();
    assert_eq!(got, want);

    let report = analytics.errors(start, end).expect("errors");
    let mut want: Vec<ErrorRow> = expected
        .errors
        .into_iter()
        .map(|(class, (count, keys))| ErrorRow { class, count, keys: keys.into_iter().collect() })
        .collect();
    want.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.class.cmp(&b.class)));
    assert_eq!(report.errors, want);

    let whole_day = expect(&events, at("2026-11-22T00:00:00Z"), at("2026-11-23T00:00:00Z"));
    let report = analytics.hourly(day("2026-11-22")).expect("hourly");
    let got: Vec<_> = report
        .hours
        .iter()
        .map(|row| {
            let sum_latency = row.avg_latency_ms * row.requests as f64;
            (
                (row.hour.timestamp() / 3600, row.provider.clone(), row.key.clone()),
                (row.requests, row.successes, sum_latency.round()),
            )
        })
        .collect();
    let want: Vec<_> = whole_day.hours.into_iter().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn reports_serialize_to_the_admin_api_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analytics = analytics_with(&dir.path().join("state.db"), &scripted_run());
    let (start, end) = day_23();
    let usage =
        serde_json::to_value(analytics.usage(start, end, None).expect("usage")).expect("json");
    assert_eq!(usage["start"], "2026-11-23T00:00:00Z");
    assert_eq!(usage["end"], "2026-11-24T00:00:00Z");
    let fields = |value: &serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(
        fields(&usage["keys"][0]),
        [
            "avg_latency_ms",
            "completion_tokens",
            "cost",
            "failures",
            "key",
            "prompt_tokens",
            "provider",
            "quota_errors",
            "requests",
            "served_cost",
            "successes",
            "uncosted"
        ]
    );
    assert_eq!(usage["keys"][0]["provider"], "gemini");
    assert_eq!(
        fields(&usage["clients"][0]),
        ["client", "cost", "requests", "successes", "uncosted"]
    );

    let hourly =
        serde_json::to_value(analytics.hourly(day("2026-11-23")).expect("hourly")).expect("json");
    assert_eq!(hourly["date"], "2026-11-23");
    assert_eq!(hourly["hours"][0]["hour"], "2026-11-23T14:00:00Z");
    assert_eq!(
        fields(&hourly["hours"][0]),
        ["avg_latency_ms", "failures", "hour", "key", "provider", "requests", "successes"]
    );

    let errors = serde_json::to_value(analytics.errors(start, end).expect("errors")).expect("json");
    assert_eq!(errors["errors"][0]["class"], "rate_limited");
    assert_eq!(errors["errors"][0]["keys"], serde_json::json!(["groq/groq-1"]));
    assert_eq!(fields(&errors["errors"][0]), ["class", "count", "keys"]);
}

#[test]
fn events_come_back_as_written_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let events = scripted_run();
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    let (start, end) = day_23();
    let (usage, hourly, errors) = {
        let writer = AnalyticsWriter::start(
            Analytics::open(&path).expect("opens"),
            Arc::new(clock.clone()),
            AnalyticsWriterConfig::default(),
        )
        .expect("starts");
        for event in &events {
            assert!(writer.record(event.clone()));
        }
        writer.flush().expect("flush");
        let reader = Analytics::open(&path).expect("a second connection");
        let reports = (
            reader.usage(start, end, None).expect("usage"),
            reader.hourly(day("2026-11-23")).expect("hourly"),
            reader.errors(start, end).expect("errors"),
        );
        assert_eq!(reports.0.keys.len(), 5);
        reports
        // The writer and the reader close here, as at shutdown.
    };

    let reopened = Analytics::open(&path).expect("reopens");
    assert_eq!(reopened.len().expect("len"), u64::try_from(events.len()).expect("fits"));
    assert_eq!(
        reopened.events(at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z")).expect("events"),
        events
    );
    assert_eq!(reopened.usage(start, end, None).expect("usage"), usage);
    assert_eq!(reopened.hourly(day("2026-11-23")).expect("hourly"), hourly);
    assert_eq!(reopened.errors(start, end).expect("errors"), errors);
}

#[test]
fn dropping_the_writer_writes_what_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    let events = scripted_run();
    // Batches never fill and the interval never passes on the manual clock: only the drop
    // can write them.
    let config = AnalyticsWriterConfig {
        batch_size: 1_000_000,
        flush_interval: Duration::from_secs(3600),
        ..AnalyticsWriterConfig::default()
    };
    let writer =
        AnalyticsWriter::start(Analytics::open(&path).expect("opens"), Arc::new(clock), config)
            .expect("starts");
    for event in &events {
        assert!(writer.record(event.clone()));
    }
    assert_eq!(writer.pending(), events.len());
    drop(writer);
    let reopened = Analytics::open(&path).expect("reopens");
    assert_eq!(reopened.len().expect("len"), u64::try_from(events.len()).expect("fits"));
}

fn event_at(time: DateTime<Utc>, id: &str) -> AnalyticsEvent {
    request(id, &time.to_rfc3339(), Some("ci-bot"), &[ok("groq/groq-1", 0.0, (1, 1), 0.0)])
        .remove(0)
}

#[test]
fn prune_deletes_only_rows_before_its_cutoff() {
    let mut analytics = Analytics::open_in_memory().expect("opens");
    let cutoff = at("2026-11-01T00:00:00Z");
    let one_ms = TimeDelta::milliseconds(1);
    let events = [
        event_at(cutoff - one_ms, "old"),
        event_at(cutoff, "edge"),
        event_at(cutoff + one_ms, "new"),
    ];
    analytics.insert_batch(&events).expect("inserts");
    assert_eq!(analytics.prune(cutoff).expect("prunes"), 1);
    let left: Vec<String> = analytics
        .events(cutoff - TimeDelta::days(1), cutoff + TimeDelta::days(1))
        .expect("events")
        .into_iter()
        .map(|event| event.request_id)
        .collect();
    assert_eq!(left, ["edge", "new"]);
    assert_eq!(analytics.prune(cutoff).expect("prunes"), 0, "nothing more to delete");
}

#[test]
fn retention_runs_at_start_and_then_periodically_on_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let now = at("2026-11-23T12:00:00Z");
    let days = |n: i64| TimeDelta::days(n);
    let old = [
        event_at(now - days(40), "40-days"),
        event_at(now - days(30) - TimeDelta::milliseconds(1), "just-over-30-days"),
        event_at(now - days(30), "exactly-30-days"),
        event_at(now - days(29), "29-days"),
        event_at(now - days(1), "1-day"),
    ];
    analytics_with(&path, &old);

    let clock = ManualClock::starting_at(now);
    let config = AnalyticsWriterConfig {
        retention: Duration::from_secs(30 * 24 * 3600),
        prune_interval: Duration::from_secs(3600),
        ..AnalyticsWriterConfig::default()
    };
    let writer = AnalyticsWriter::start(
        Analytics::open(&path).expect("opens"),
        Arc::new(clock.clone()),
        config,
    )
    .expect("starts");
    // The flush is answered after the start's retention ran.
    writer.flush().expect("flush");
    let reader = Analytics::open(&path).expect("reader");
    let left = |reader: &Analytics| -> Vec<String> {
        reader
            .events(now - days(100), now + days(100))
            .expect("events")
            .into_iter()
            .map(|event| event.request_id)
            .collect()
    };
    assert_eq!(left(&reader), ["exactly-30-days", "29-days", "1-day"]);
    assert_eq!(writer.pruned(), 2);

    // Half an hour on: not due yet, even though "exactly-30-days" is now too old.
    clock.advance(Duration::from_secs(1800));
    writer.flush().expect("flush");
    assert_eq!(left(&reader), ["exactly-30-days", "29-days", "1-day"]);
    // Two days on: due, and one more day has aged out.
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    writer.flush().expect("flush");
    assert_eq!(left(&reader), ["1-day"]);
    assert_eq!(writer.pruned(), 4);
    assert_eq!(writer.write_errors(), 0);
}

fn quiet_writer(
    path: &std::path::Path,
    clock: &ManualClock,
    config: AnalyticsWriterConfig,
) -> AnalyticsWriter {
    AnalyticsWriter::start(Analytics::open(path).expect("opens"), Arc::new(clock.clone()), config)
        .expect("starts")
}

/// Waits (in real time, a minute at least) for the writer's thread to catch up; fails the
/// test when it does not. This waits on another thread's progress, not on the clock: its
/// SQLite commits may take seconds on a machine busy with other builds.
#[track_caller]
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let (_keep, idle) = mpsc::channel::<()>();
    for _ in 0..12_000 {
        if done() {
            return;
        }
        let _ = idle.recv_timeout(Duration::from_millis(5));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn the_writer_writes_a_thousand_events_in_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    let config = AnalyticsWriterConfig {
        batch_size: 100,
        flush_interval: Duration::from_secs(3600),
        ..AnalyticsWriterConfig::default()
    };
    let writer = quiet_writer(&path, &clock, config);
    let start = at("2026-11-23T00:00:00Z");
    for idx in 0..1_050 {
        assert!(writer.record(event_at(start + TimeDelta::seconds(idx), &format!("e{idx}"))));
    }
    // Ten full batches go on their own; the last 50 wait for the interval, which never
    // comes on the manual clock.
    eventually("ten batches written", || writer.written() == 1_000);
    assert_eq!(writer.pending(), 50);
    let reader = Analytics::open(&path).expect("reader");
    assert_eq!(reader.len().expect("len"), 1_000);
    writer.flush().expect("flush");
    assert_eq!(reader.len().expect("len"), 1_050);
    assert_eq!((writer.written(), writer.pending(), writer.dropped()), (1_050, 0, 0));
}

#[test]
fn the_interval_writes_a_partial_batch_on_the_writers_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    let config = AnalyticsWriterConfig {
        batch_size: 100,
        flush_interval: Duration::from_millis(20),
        ..AnalyticsWriterConfig::default()
    };
    let writer = quiet_writer(&path, &clock, config);
    for idx in 0..5 {
        assert!(writer.record(event_at(at("2026-11-23T00:00:00Z"), &format!("e{idx}"))));
    }
    assert_eq!(writer.written(), 0, "not due on the manual clock");
    // The interval counts from when the thread takes the first event, which may be after
    // any one advance: keep the clock moving until the batch is written.
    eventually("the partial batch written", || {
        clock.advance(Duration::from_millis(20));
        writer.written() == 5
    });
    assert_eq!(Analytics::open(&path).expect("reader").len().expect("len"), 5);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    // Nothing is written until a flush: the queue fills up.
    let config = AnalyticsWriterConfig {
        capacity: 100,
        batch_size: 1_000,
        flush_interval: Duration::from_secs(3600),
        ..AnalyticsWriterConfig::default()
    };
    let writer = quiet_writer(&path, &clock, config);
    let time = at("2026-11-23T00:00:00Z");
    let accepted: Vec<bool> =
        (0..150).map(|idx| writer.record(event_at(time, &format!("e{idx}")))).collect();
    assert!(accepted[..100].iter().all(|&ok| ok), "the first 100 fit");
    assert!(accepted[100..].iter().all(|&ok| !ok), "the next 50 are dropped");
    assert_eq!((writer.dropped(), writer.pending()), (50, 100));

    writer.flush().expect("flush");
    let reader = Analytics::open(&path).expect("reader");
    let ids: BTreeSet<String> = reader
        .events(time, time + TimeDelta::seconds(1))
        .expect("events")
        .into_iter()
        .map(|event| event.request_id)
        .collect();
    assert_eq!(ids, (0..100).map(|idx| format!("e{idx}")).collect());
    // Room again once written.
    assert!(writer.record(event_at(time, "after")));
    writer.flush().expect("flush");
    assert_eq!(reader.len().expect("len"), 101);
    assert_eq!(writer.dropped(), 50);
}

#[test]
fn a_failed_write_is_counted_and_retried_without_losing_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-11-24T01:00:00Z"));
    let config = AnalyticsWriterConfig {
        batch_size: 1_000,
        flush_interval: Duration::from_secs(3600),
        ..AnalyticsWriterConfig::default()
    };
    let writer = quiet_writer(&path, &clock, config);
    writer.flush().expect("the start's retention ran");
    // Take the table away under the writer: its next write fails.
    let raw = Connection::open(&path).expect("raw");
    raw.execute_batch("DROP TABLE analytics_event").expect("drop table");
    let time = at("2026-11-23T00:00:00Z");
    for idx in 0..3 {
        assert!(writer.record(event_at(time, &format!("e{idx}"))));
    }
    let error = writer.flush().expect_err("no table");
    assert!(matches!(error, StoreError::Write { what: "analytics events", .. }), "{error:?}");
    assert_eq!((writer.write_errors(), writer.pending(), writer.written()), (1, 3, 0));

    raw.execute_batch(MIGRATIONS[2].sql).expect("table back");
    raw.execute_batch(MIGRATIONS[3].sql).expect("with its cost_usd column");
    let tags = MIGRATIONS.iter().find(|migration| migration.name == "analytics tags");
    raw.execute_batch(tags.expect("the tags migration").sql).expect("and its tags column");
    writer.flush().expect("flush");
    assert_eq!((writer.write_errors(), writer.pending(), writer.written()), (1, 0, 3));
    assert_eq!(Analytics::open(&path).expect("reader").len().expect("len"), 3);
}

#[test]
fn a_non_finite_measure_is_stored_as_zero_or_unknown_not_refused() {
    let mut analytics = Analytics::open_in_memory().expect("opens");
    let time = at("2026-11-23T00:00:00Z");
    let mut event = event_at(time, "nan");
    event.latency_ms = f64::NAN;
    event.cost = Some(f64::INFINITY);
    analytics.insert_batch(&[event, event_at(time, "fine")]).expect("inserts both");
    let stored = analytics.events(time, time + TimeDelta::seconds(1)).expect("events");
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].latency_ms, stored[0].cost), (0.0, None));
}

#[test]
fn a_version_2_file_is_upgraded_keeping_quota_and_scores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let clock = ManualClock::starting_at(at("2026-01-15T18:00:00Z"));

    // Real quota and score state, saved through the real stores.
    let ledger = MemoryLedger::new(Arc::new(clock.clone()), QuotaConfig::default());
    let invalid = Candidate::new("gemini", "g3", "gemini-2.5-flash");
    ledger.register(&invalid);
    let error =
        ProviderError::new(ErrorKind::InvalidKey, "gemini", "API_KEY_INVALID").with_status(400);
    ledger.record_error_now(&invalid, &error);
    let scorer = AdaptiveScorer::new(Arc::new(clock.clone()));
    scorer.record(&invalid, Outcome::Success { latency: Duration::from_millis(300), tokens: 10 });
    let (quota_saved, scores_saved) = {
        let mut store = SqliteStore::open(&path).expect("opens");
        LedgerStore::save(&mut store, &ledger.export(true)).expect("quota saved");
        store.save_from(&scorer).expect("scores saved");
        let quota = LedgerStore::load(&mut store).expect("quota");
        let scores = StatsStore::load(&mut store).expect("scores").expect("a snapshot");
        (quota, scores)
    };
    assert_eq!(quota_saved.keys.len(), 1, "the invalid key was saved");

    // Make it exactly what a version-2 build left: the v3 table gone, the version back to 2.
    let raw = Connection::open(&path).expect("raw");
    raw.execute_batch(
        "DROP TABLE analytics_event; DROP TABLE spend_day; DROP TABLE admin_disabled_key;
         DROP TABLE admin_reset; DROP TABLE quota_learned; DROP TABLE key_lifecycle;
         DROP TABLE audit_log; PRAGMA user_version = 2",
    )
    .expect("downgrade");
    let reference = Connection::open_in_memory().expect("reference");
    for migration in &MIGRATIONS[..2] {
        reference.execute_batch(migration.sql).expect("v1 and v2");
    }
    let schema = |conn: &Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .expect("query");
        stmt.query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("schema")
    };
    assert_eq!(schema(&raw), schema(&reference), "a genuine version-2 file");
    drop(raw);

    let mut analytics = Analytics::open(&path).expect("upgrades");
    analytics.insert_batch(&scripted_run()).expect("inserts");
    let (start, end) = day_23();
    assert_eq!(analytics.usage(start, end, None).expect("usage").keys.len(), 5);

    let mut store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.schema_version().expect("version"), newest());
    assert_eq!(LedgerStore::load(&mut store).expect("quota"), quota_saved);
    assert_eq!(StatsStore::load(&mut store).expect("scores"), Some(scores_saved));
}

#[test]
fn a_damaged_row_is_a_typed_error_and_extreme_dates_do_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let analytics = analytics_with(&path, &scripted_run());
    let raw = Connection::open(&path).expect("raw");
    raw.execute(
        "UPDATE analytics_event SET prompt_tokens = -5 WHERE request_id = 'r2' AND kind = 'attempt'",
        [],
    )
    .expect("damage a row");
    let (start, end) = day_23();
    match analytics.usage(start, end, None) {
        Err(StoreError::Damaged { what, detail }) => {
            assert_eq!(what, "analytics_event");
            assert!(detail.contains("-5"), "{detail}");
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    // The other reports do not read tokens and still answer.
    assert_eq!(analytics.errors(start, end).expect("errors").errors.len(), 3);

    assert!(analytics.hourly(NaiveDate::MAX).expect("last day").hours.is_empty());
    assert!(analytics.hourly(NaiveDate::MIN).expect("first day").hours.is_empty());
    let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    assert_eq!(analytics.errors(first, last).expect("all time").errors.len(), 3);
}

fn newest() -> i64 {
    i64::try_from(MIGRATIONS.len()).expect("fits")
}

#[test]
fn a_version_3_file_upgrades_keeping_its_rows_and_their_costs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    // What a version-3 build left: its three migrations and a day of rows with a cost column.
    let raw = Connection::open(&path).expect("raw");
    for migration in &MIGRATIONS[..3] {
        raw.execute_batch(migration.sql).expect("v1 to v3");
    }
    raw.pragma_update(None, "user_version", 3).expect("version 3");
    let v3_insert = "INSERT INTO analytics_event (at_ms, kind, request_id, client, route,
            provider, key_id, model, success, error_class, quota_error, status, latency_ms,
            prompt_tokens, completion_tokens, cost)
         VALUES (?1, ?2, ?3, 'ci-bot', 'default', 'groq', 'groq-2', 'm', 1, NULL, 0, 200, 10.0,
                 3, 4, ?4)";
    for (kind, cost) in [("attempt", 0.25), ("request", 0.25)] {
        raw.execute(v3_insert, rusqlite::params![ms("2026-11-23T10:00:00Z"), kind, "old", cost])
            .expect("v3 row");
    }
    drop(raw);

    let mut analytics = Analytics::open(&path).expect("upgrades");
    let (start, end) = day_23();
    let old = analytics.events(start, end).expect("events");
    assert_eq!(old.len(), 2, "the rows survive");
    assert!(old.iter().all(|event| event.cost == Some(0.25)), "{old:?}");
    // New rows: a streamed request whose attempt's cost was not known, its request's was.
    let mut stream =
        request("new", "2026-11-23T11:00:00Z", Some("web"), &[ok("groq/groq-2", 5.0, (1, 1), 0.0)]);
    stream[0].cost = None;
    stream[1].cost = Some(0.5);
    analytics.insert_batch(&stream).expect("inserts");
    let usage = analytics.usage(start, end, None).expect("usage");
    assert_eq!(
        usage.keys,
        [KeyUsage {
            cost: 0.25,
            uncosted: 1,
            served_cost: 0.75,
            ..key_row("groq/groq-2", 2, 2, 7.5, 0, (4, 5), 0.0)
        }]
    );
    assert_eq!(usage.clients, [client_row("ci-bot", 1, 1, 0.25), client_row("web", 1, 1, 0.5)]);
    let store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.schema_version().expect("version"), newest());
}

#[test]
fn a_request_of_unknown_cost_is_counted_as_uncosted_not_as_free() {
    let mut analytics = Analytics::open_in_memory().expect("opens");
    let mut events =
        request("r", "2026-11-23T11:00:00Z", Some("web"), &[ok("groq/groq-1", 5.0, (1, 1), 0.0)]);
    for event in &mut events {
        event.cost = None;
    }
    analytics.insert_batch(&events).expect("inserts");
    let (start, end) = day_23();
    let stored = analytics.events(start, end).expect("events");
    assert!(stored.iter().all(|event| event.cost.is_none()), "{stored:?}");
    let usage = analytics.usage(start, end, None).expect("usage");
    assert_eq!(
        usage.keys,
        [KeyUsage { uncosted: 1, ..key_row("groq/groq-1", 1, 1, 5.0, 0, (1, 1), 0.0) }]
    );
    assert_eq!(usage.clients, [ClientUsage { uncosted: 1, ..client_row("web", 1, 1, 0.0) }]);
}

fn ms(text: &str) -> i64 {
    at(text).timestamp_millis()
}
