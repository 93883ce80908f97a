//! Without Redis: a typed error within the timeouts, or the local ledger if so configured.

use std::sync::Arc;

use switchyard_core::ManualClock;
use switchyard_quota::{Estimate, Limit, QuotaError, QuotaLedger};
use switchyard_redis::{OnUnavailable, RedisLedger, RedisLedgerError};

use crate::support::*;

/// A loopback port with nothing listening: bound, then closed.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("redis://127.0.0.1:{port}/0")
}

fn backend_error(error: QuotaError) -> RedisLedgerError {
    match error {
        QuotaError::Backend { backend: "redis", source } => {
            *source.downcast::<RedisLedgerError>().expect("a RedisLedgerError inside")
        }
        other => panic!("expected a backend error, got {other}"),
    }
}

#[tokio::test]
async fn unreachable_redis_fails_closed_with_a_typed_error() {
    let clock = ManualClock::default();
    let ledger = RedisLedger::new(
        &closed_port_url(),
        config(vec![Limit::per_minute(10)]),
        Arc::new(clock),
        options("unused", OnUnavailable::FailClosed),
    )
    .expect("ledger");
    let error = ledger.admit(&candidate("k"), Estimate::new(1, 0)).await.expect_err("fails closed");
    let error = backend_error(error);
    assert!(error.is_unavailable(), "{error:?}");
    assert!(matches!(error, RedisLedgerError::Unreachable { op: "connect", .. }), "{error:?}");
    assert!(!error.to_string().contains("127.0.0.1"), "no URL in the message: {error}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    // Accepts connections and never replies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let clock = ManualClock::default();
    let ledger = RedisLedger::new(
        &format!("redis://127.0.0.1:{port}/0"),
        config(vec![Limit::per_minute(10)]),
        Arc::new(clock),
        options("unused", OnUnavailable::FailClosed),
    )
    .expect("ledger");
    let error = backend_error(
        ledger.admit(&candidate("k"), Estimate::new(1, 0)).await.expect_err("times out"),
    );
    assert!(matches!(error, RedisLedgerError::Timeout { .. }), "{error:?}");
    silent.abort();
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_local_ledger_when_configured() {
    let clock = ManualClock::default();
    let ledger = RedisLedger::new(
        &closed_port_url(),
        config(vec![Limit::per_minute(2)]),
        Arc::new(clock.clone()),
        options("unused", OnUnavailable::UseLocal),
    )
    .expect("ledger");
    let key = candidate("k");
    let first = ledger.admit(&key, Estimate::new(1, 0)).await.expect("local admits");
    let _second = ledger.admit(&key, Estimate::new(1, 0)).await.expect("local admits");
    let refused = ledger.admit(&key, Estimate::new(1, 0)).await.expect_err("the local limit holds");
    assert!(refused.refusal().is_some(), "{refused}");
    ledger.release(first).await.expect("a local permit is released locally");
    assert!(ledger.admit(&key, Estimate::new(1, 0)).await.is_ok());
    assert_eq!(ledger.local().summary_now(&"p".into()).keys[0].limits[0].used, 2);
}

#[tokio::test]
async fn a_bad_url_is_a_typed_error() {
    let error = RedisLedger::new(
        "not a url",
        config(vec![]),
        Arc::new(ManualClock::default()),
        options("unused", OnUnavailable::FailClosed),
    )
    .expect_err("bad url");
    assert!(matches!(error, RedisLedgerError::Url { .. }), "{error:?}");
}

#[tokio::test]
async fn the_test_server_is_reachable() {
    let clock = ManualClock::default();
    let prefix = fresh_prefix("ping").await;
    ledger(&clock, &prefix, config(vec![])).ping().await.expect("the test redis answers");
}

#[tokio::test]
async fn a_password_in_the_url_never_reaches_an_error() {
    let secret = "s3cret-pass-phrase";
    let clock = ManualClock::default();
    for url in [
        format!("redis://:{secret}@127.0.0.1:notaport/0"),
        format!("rediss+bad://:{secret}@127.0.0.1/0"),
    ] {
        let built = RedisLedger::new(
            &url,
            config(vec![]),
            Arc::new(clock.clone()),
            options("unused", OnUnavailable::FailClosed),
        );
        {
            let error = built.expect_err("a malformed url");
            let mut texts = vec![format!("{error}"), format!("{error:?}")];
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                texts.push(format!("{cause} {cause:?}"));
                source = cause.source();
            }
            for text in texts {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }
    let url = format!("redis://:{secret}@{}", closed_port_url().trim_start_matches("redis://"));
    let ledger = RedisLedger::new(
        &url,
        config(vec![]),
        Arc::new(clock),
        options("unused", OnUnavailable::FailClosed),
    )
    .expect("a well-formed url");
    assert!(!format!("{ledger:?}").contains(secret));
    let error = ledger.admit(&candidate("k"), Estimate::new(1, 0)).await.expect_err("unreachable");
    let mut texts = vec![format!("{error}"), format!("{error:?}")];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        texts.push(format!("{cause} {cause:?}"));
        source = cause.source();
    }
    for text in texts {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn after_a_failure_calls_skip_redis_until_the_retry_time() {
    let clock = ManualClock::default();
    let ledger = RedisLedger::new(
        &closed_port_url(),
        config(vec![Limit::per_minute(10)]),
        Arc::new(clock.clone()),
        options("unused", OnUnavailable::FailClosed),
    )
    .expect("ledger");
    let key = candidate("k");
    let first = backend_error(ledger.admit(&key, Estimate::new(1, 0)).await.expect_err("down"));
    assert!(matches!(first, RedisLedgerError::Unreachable { .. }), "{first:?}");
    clock.advance(std::time::Duration::from_millis(400));
    let second = backend_error(ledger.admit(&key, Estimate::new(1, 0)).await.expect_err("down"));
    assert!(
        matches!(second, RedisLedgerError::Down { retry_in } if retry_in == std::time::Duration::from_millis(600)),
        "{second:?}"
    );
    assert!(second.is_unavailable());
    clock.advance(std::time::Duration::from_millis(600));
    let third = backend_error(ledger.admit(&key, Estimate::new(1, 0)).await.expect_err("down"));
    assert!(matches!(third, RedisLedgerError::Unreachable { .. }), "tried again: {third:?}");
}
