//! `switchyard keys reset` against a real gateway (in this process, over loopback): a key the
//! ledger holds out as invalid is back after the reset, an unknown provider exits 2.

mod cli_gateway;

use cli_gateway::{TOKEN, start, switchyard};

fn args(base: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["keys", "reset", "--url", base, "--admin-token", TOKEN].map(str::to_owned).to_vec();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reset_brings_back_an_invalid_key_and_refuses_an_unknown_provider() {
    let gateway = start(&["bad_1", "good_1"], false).await;
    assert_eq!(gateway.chat().await, 200);
    assert_eq!(gateway.mock.counts("bad_1").expect("counted").refused, 1);

    let output = switchyard(args(&gateway.base, &["--provider", "nope"])).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");

    let output = switchyard(args(&gateway.base, &["--provider", "groq"])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("reset groq/bad_1 ("), "{stdout}");
    assert!(stdout.contains("2 key(s) reset"), "{stdout}");
    assert!(!stdout.contains("gsk-") && !stdout.contains("sk-mock"), "no secret:\n{stdout}");

    // Back in rotation: the priority route tries bad_1 again before good_1 serves.
    assert_eq!(gateway.chat().await, 200);
    assert_eq!(gateway.mock.counts("bad_1").expect("counted").refused, 2);
}
