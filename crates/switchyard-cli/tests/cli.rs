//! The command line itself: every command answers `--help`, the vault commands are listed
//! with the others, and completion scripts name every command.

use std::process::Command;

fn switchyard(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("the binary runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

const COMMANDS: [&str; 7] = ["demo", "keys", "serve", "status", "stats", "batch", "completions"];

#[test]
fn every_command_has_help_and_the_top_level_help_lists_them() {
    let (ok, help) = switchyard(&["--help"]);
    assert!(ok, "{help}");
    for command in COMMANDS {
        assert!(
            help.lines().any(|line| line.trim_start().starts_with(command)),
            "{command}:\n{help}"
        );
        let (ok, text) = switchyard(&[command, "--help"]);
        assert!(ok, "{command} --help failed");
        assert!(text.contains("Usage: switchyard"), "{command}:\n{text}");
    }
    let (ok, keys) = switchyard(&["keys", "--help"]);
    assert!(ok);
    for sub in
        ["add", "list", "remove", "disable", "enable", "import-env", "passwd", "path", "test"]
    {
        assert!(keys.lines().any(|line| line.trim_start().starts_with(sub)), "keys {sub}:\n{keys}");
        let (ok, text) = switchyard(&["keys", sub, "--help"]);
        assert!(ok && text.contains("Usage: switchyard keys"), "keys {sub} --help:\n{text}");
    }
    let (_, test) = switchyard(&["keys", "test", "--help"]);
    for flag in ["--config", "--json", "--url", "--admin-token", "--concurrency"] {
        assert!(test.contains(flag), "keys test {flag}:\n{test}");
    }
    let (_, batch) = switchyard(&["batch", "--help"]);
    for flag in ["--input", "--output", "--config", "--url", "--route", "--max-concurrent"] {
        assert!(batch.contains(flag), "batch {flag}:\n{batch}");
    }
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script) = switchyard(&["completions", shell]);
        assert!(ok, "{shell}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
        assert!(script.contains("import-env"), "{shell} completion lacks the vault commands");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid value 'tcsh'"));
}
