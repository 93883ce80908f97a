//! `switchyard stats` against a real gateway with its analytics log (SQLite): usage per key,
//! the hourly pattern and the errors by class, as tables.

mod cli_gateway;

use cli_gateway::{TOKEN, start, switchyard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_hours_and_errors_come_from_the_analytics_log() {
    let gateway = start(&["bad_1", "good_1"], true).await;
    for _ in 0..3 {
        assert_eq!(gateway.chat().await, 200);
    }
    gateway.events.analytics().expect("analytics on").flush().expect("events written");
    let output = switchyard(vec![
        "stats".into(),
        "--url".into(),
        gateway.base.clone(),
        "--admin-token".into(),
        TOKEN.into(),
        "--since".into(),
        "1h".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Usage: good_1 served the three requests; bad_1 was tried once and found invalid.
    let usage = stdout.split("hourly pattern").next().expect("usage part");
    let good = usage.lines().find(|line| line.contains("| good_1")).expect("good_1 usage");
    let cells: Vec<&str> = good.split('|').map(str::trim).collect();
    assert_eq!(&cells[1..6], ["groq", "good_1", "3", "3", "0"], "{good}");
    let bad = usage.lines().find(|line| line.contains("| bad_1")).expect("bad_1 usage");
    let cells: Vec<&str> = bad.split('|').map(str::trim).collect();
    assert_eq!(&cells[1..6], ["groq", "bad_1", "1", "0", "1"], "{bad}");
    // The hourly pattern has this hour.
    let hourly = stdout.split("hourly pattern").nth(1).expect("hourly part");
    let hour = hourly.lines().find(|line| line.contains("| good_1")).expect("good_1 hour");
    let cells: Vec<&str> = hour.split('|').map(str::trim).collect();
    assert_eq!(&cells[2..7], ["groq", "good_1", "3", "3", "0"], "{hour}");
    // Errors by class name the invalid key.
    let errors = stdout.split("errors by class").nth(1).expect("errors part");
    let row = errors.lines().find(|line| line.contains("invalid_key")).expect("invalid_key row");
    assert!(row.contains("groq/bad_1"), "{row}");

    // A bad --since is refused before anything is asked.
    let output = switchyard(vec!["stats".into(), "--since".into(), "3y".into()]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown unit"));
}
