//! `switchyard keys pin` and `keys unpin` against a real gateway (in this process, over
//! loopback): the pinned key serves first, and unpinning hands the route back to priority.

mod cli_gateway;

use cli_gateway::{TOKEN, start, switchyard};

fn args(command: &[&str], base: &str) -> Vec<String> {
    let mut args: Vec<String> = ["keys"].map(str::to_owned).to_vec();
    args.extend(command.iter().map(|arg| (*arg).to_owned()));
    args.extend(["--url", base, "--admin-token", TOKEN].map(str::to_owned));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pin_sends_requests_to_the_key_and_unpin_ends_it() {
    let gateway = start(&["good_1", "good_2"], false).await;
    let requests = |id: &str| gateway.mock.counts(id).map_or(0, |counts| counts.requests);
    assert_eq!(gateway.chat().await, 200);
    assert_eq!((requests("good_1"), requests("good_2")), (1, 0), "priority: good_1 first");

    let output =
        switchyard(args(&["pin", "groq/good_2", "--for-secs", "600"], &gateway.base)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("pinned groq/good_2 for 600s"), "{stdout}");
    assert_eq!(gateway.chat().await, 200);
    assert_eq!((requests("good_1"), requests("good_2")), (1, 1), "the pinned key serves");

    let output = switchyard(args(&["unpin", "groq/good_2"], &gateway.base)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("unpinned groq/good_2"), "{stdout}");
    assert_eq!(gateway.chat().await, 200);
    assert_eq!((requests("good_1"), requests("good_2")), (2, 1), "priority again");

    let output = switchyard(args(&["pin", "groq/nope", "--for-secs", "60"], &gateway.base)).await;
    assert_eq!(output.status.code(), Some(2), "an unknown key is refused");
    let output = switchyard(args(&["pin", "groq/good_2", "--for-secs", "0"], &gateway.base)).await;
    assert_eq!(output.status.code(), Some(2), "clap refuses a zero pin");
}
