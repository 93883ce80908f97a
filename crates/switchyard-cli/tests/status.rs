//! `switchyard status` against a real gateway (in this process, over loopback) in each of
//! its three states, and against one it cannot ask: the table and the exit code.

mod cli_gateway;

use cli_gateway::{TOKEN, start, switchyard};

fn args(base: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["status".to_owned(), "--url".to_owned(), base.to_owned()];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_gateway_exits_0_with_every_key_available() {
    let gateway = start(&["good_1", "good_2"], false).await;
    assert_eq!(gateway.chat().await, 200);
    let output = switchyard(args(&gateway.base, &["--admin-token", TOKEN])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("gateway health: healthy"), "{stdout}");
    let key_rows: Vec<&str> = stdout.lines().filter(|line| line.starts_with("| groq")).collect();
    assert_eq!(key_rows.len(), 2, "{stdout}");
    assert!(key_rows.iter().all(|row| row.contains("| available ")), "{stdout}");
    assert!(stdout.contains("good_1 ("), "keys are shown with their fingerprint:\n{stdout}");
    assert!(!stdout.contains("gsk-"), "no secret:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_key_found_makes_it_degraded_and_exit_1() {
    let gateway = start(&["bad_1", "good_1"], false).await;
    // The priority route tries bad_1 first, finds it invalid and serves with good_1.
    assert_eq!(gateway.chat().await, 200);
    assert_eq!(gateway.mock.counts("bad_1").expect("counted").refused, 1);
    let output = switchyard(args(&gateway.base, &["--admin-token", TOKEN])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("gateway health: degraded"), "{stdout}");
    let bad = stdout.lines().find(|line| line.contains("bad_1 (")).expect("bad_1 row");
    assert!(bad.contains("invalid"), "{bad}");
    let good = stdout.lines().find(|line| line.contains("good_1 (")).expect("good_1 row");
    assert!(good.contains("| available "), "{good}");

    // The same through the token from the environment, as JSON.
    let output = tokio::task::spawn_blocking({
        let base = gateway.base.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["status", "--json", "--url", &base])
                .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("joined");
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["health"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_cannot_serve_is_down_and_exit_2() {
    let gateway = start(&["bad_1"], false).await;
    assert_ne!(gateway.chat().await, 200);
    let output = switchyard(args(&gateway.base, &["--admin-token", TOKEN])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.starts_with("gateway health: down"), "{stdout}");
    let route = stdout.lines().find(|line| line.starts_with("| default")).expect("route row");
    assert!(route.contains("FAIL"), "{route}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_no_gateway_exits_2_with_the_reason() {
    let gateway = start(&["good_1"], false).await;
    let output = switchyard(args(&gateway.base, &["--admin-token", "wrong"])).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused the admin token (401"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the token is not echoed: {stderr}");

    // A port nothing listens on: bind one, note it, close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let output = switchyard(args(&closed, &["--admin-token", TOKEN])).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the gateway at"), "{stderr}");
}
