//! `kill -9` loses exactly the changes made after the last save: a real child process is
//! killed with SIGKILL between a save and the next one. Quota counts and the day's spend
//! alike.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::America::Los_Angeles;
use switchyard_core::{Candidate, ManualClock, Usage};
use switchyard_core::{SpendDay, SpendStore};
use switchyard_quota::{
    DayBoundary, Estimate, LedgerStore, Limit, MemoryLedger, ModelQuota, ProviderQuota,
    QuotaConfig, WriteBehind,
};
use switchyard_store::{SqliteSpendStore, SqliteStore};

const CHILD_DB: &str = "SWITCHYARD_KILL9_CHILD_DB";
const TEST_NAME: &str = "kill9::counts_saved_before_a_kill_9_survive_it";

fn clock() -> ManualClock {
    ManualClock::starting_at(DateTime::from_timestamp(1_768_500_000, 0).expect("date"))
}

fn ledger(clock: &ManualClock) -> Arc<MemoryLedger> {
    let config = QuotaConfig {
        providers: vec![ProviderQuota {
            provider: "gemini".into(),
            day: DayBoundary::Midnight(Los_Angeles),
            models: vec![ModelQuota::every_model(vec![Limit::requests_per_day(
                1_000,
                Los_Angeles,
            )])],
        }],
        ..QuotaConfig::default()
    };
    Arc::new(MemoryLedger::new(Arc::new(clock.clone()), config))
}

fn candidate() -> Candidate {
    Candidate::new("gemini", "g1", "gemini-2.5-flash")
}

fn day_spend(usd: f64) -> SpendDay {
    SpendDay {
        day: Some(chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("date")),
        per_route: [("default".to_owned(), usd)].into(),
        per_provider: [("gemini".to_owned(), usd)].into(),
    }
}

fn spend(ledger: &MemoryLedger, n: usize) {
    for _ in 0..n {
        let permit = ledger.try_admit(&candidate(), Estimate::new(10, 0)).expect("admitted");
        ledger.settle_now(permit, &Usage::new(10, 0));
    }
}

/// The child: 5 requests saved, 3 more not, then it waits to be killed.
fn child(path: &str) -> ! {
    let clock = clock();
    let ledger = ledger(&clock);
    // An hour's interval: only the explicit flush saves before the kill.
    let writer = WriteBehind::start(
        Arc::clone(&ledger),
        SqliteStore::open(path).expect("open"),
        Duration::from_secs(3600),
    )
    .expect("writer");
    spend(&ledger, 5);
    writer.flush().expect("saved");
    // The budgets' write-behind saves the day's spend into the same file.
    let spend_store = SqliteSpendStore::open(path).expect("spend store");
    spend_store.save(&day_spend(1.5)).expect("spend saved");
    println!("SAVED");
    spend(&ledger, 3);
    println!("UNSAVED");
    let mut line = String::new();
    drop(std::io::stdin().read_line(&mut line));
    // The parent kills this process before it gets here; if it does not, the parent's
    // assertion on the count fails because `writer` saves at drop.
    drop(writer);
    std::process::exit(0)
}

#[test]
fn counts_saved_before_a_kill_9_survive_it() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        child(&path);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let mut process = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = process.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("child output");
        let done = line.contains("UNSAVED");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(seen.iter().any(|line| line.contains("SAVED")), "{seen:?}");
    process.kill().expect("SIGKILL");
    let status = process.wait().expect("reaped");
    assert!(!status.success(), "killed, not exited: {status:?}");
    if let Some(mut stdin) = process.stdin.take() {
        drop(stdin.write_all(b"\n"));
    }

    let clock = clock();
    let after = ledger(&clock);
    after.restore(&SqliteStore::open(&path).expect("reopen after the kill").load().expect("load"));
    after.register(&candidate());
    let used = after.summary_now(&"gemini".into()).keys[0].limits[0].used;
    assert_eq!(used, 5, "the saved 5 survive; the 3 made after the last save are lost");
    let spent =
        SqliteSpendStore::open(&path).expect("reopen").load(day_spend(0.0).day.expect("day"));
    assert_eq!(spent.expect("spend loads"), day_spend(1.5), "the saved spend survives");
}
