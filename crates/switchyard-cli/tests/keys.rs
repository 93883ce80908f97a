//! `switchyard keys` end to end: the real binary, a real vault in a temporary directory, the
//! passphrase through the environment, keys through stdin.
#![cfg(test)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use switchyard_core::SystemClock;
use switchyard_vault::{Passphrase, Vault, VaultConfig};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const PASSPHRASE: &str = "cli test passphrase";
const GROQ_KEY: &str = "gsk_CLItest0000000000SECRETMARK";
const GEMINI_KEY: &str = "AIzaCLItest0000000000000000SECRETMARK00";

/// A temporary working directory and a vault path inside it.
struct Shell {
    dir: TempDir,
    vault: PathBuf,
}

/// What a run of the binary printed and how it ended.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    #[track_caller]
    fn failed(self) -> Self {
        assert_eq!(self.code, Some(1), "expected failure: {self:#?}");
        assert!(self.error().starts_with("error: "), "{self:#?}");
        self
    }

    /// The last line of stderr: the error, after any warnings.
    fn error(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }

    #[track_caller]
    fn assert_no_secret(&self) {
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains("SECRETMARK"), "a secret was printed: {self:#?}");
            assert!(!text.contains(PASSPHRASE), "the passphrase was printed: {self:#?}");
        }
    }
}

impl Shell {
    /// No vault yet: the first `keys add` creates one with the real iteration count.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = dir.path().join("data").join("keys.vault");
        Self { dir, vault }
    }

    /// A vault made through the library's test constructor (1,000 iterations), so that
    /// tests running the binary many times stay fast; the binary keeps the file's count.
    fn with_fast_vault() -> Self {
        let shell = Self::new();
        let config = VaultConfig::insecure_for_tests(1_000, Arc::new(SystemClock));
        let passphrase = Passphrase::try_new(PASSPHRASE).expect("non-empty");
        Vault::create(&shell.vault, passphrase, config).expect("create vault");
        shell
    }

    /// `switchyard keys ...` with a clean environment: only the vault path and passphrase.
    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .current_dir(self.dir.path())
            .env("SWITCHYARD_VAULT", &self.vault)
            .env("SWITCHYARD_VAULT_PASSPHRASE", PASSPHRASE)
            .arg("keys");
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(), args, "")
    }

    fn add(&self, provider: &str, secret: &str) -> Run {
        run(self.command(), &["add", "--provider", provider], &format!("{secret}\n"))
    }

    fn vault_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.vault).expect("read vault")
    }
}

fn run(mut command: Command, args: &[&str], stdin: &str) -> Run {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard");
    let written = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    // A command that fails before reading its input closes the pipe early; that is fine.
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {error}");
    }
    let Output { status, stdout, stderr } = child.wait_with_output().expect("wait");
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

fn iterations_in_header(path: &Path) -> u32 {
    let bytes = std::fs::read(path).expect("read vault");
    u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"))
}

#[test]
fn add_list_disable_enable_remove_from_a_shell() {
    let shell = Shell::new();
    let first = shell.add("groq", GROQ_KEY).ok();
    assert!(first.stdout.starts_with("added groq-1 ("), "{first:#?}");
    assert!(first.stderr.contains("created vault"), "{first:#?}");
    assert_eq!(
        iterations_in_header(&shell.vault),
        600_000,
        "the binary creates real-strength vaults"
    );

    let labelled = run(
        shell.command(),
        &["add", "--provider", "gemini", "--label", "team laptop", "--tag", "free", "--tag", "eu"],
        GEMINI_KEY,
    )
    .ok();
    assert!(labelled.stdout.starts_with("added gemini-1 ("), "{labelled:#?}");
    assert!(labelled.stderr.is_empty(), "a well-formed key gets no warning: {labelled:#?}");

    let list = shell.run(&["list"]).ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{list:#?}");
    assert!(lines[0].starts_with("ID"), "{list:#?}");
    assert!(lines[1].starts_with("groq-1") && lines[1].contains("enabled"), "{list:#?}");
    assert!(lines[2].contains("team laptop") && lines[2].ends_with("free,eu"), "{list:#?}");
    let fingerprint = switchyard_core::Fingerprint::of(GROQ_KEY).to_string();
    assert!(lines[1].contains(&fingerprint), "{list:#?}");

    let json = shell.run(&["list", "--json"]).ok();
    let keys: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(keys.as_array().expect("array").len(), 2);
    assert_eq!(keys[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(keys[1]["tags"], serde_json::json!(["free", "eu"]));
    assert!(keys[0].get("secret").is_none());

    assert_eq!(shell.run(&["disable", "groq-1"]).ok().stdout, "disabled groq-1\n");
    assert_eq!(shell.run(&["disable", "groq-1"]).ok().stdout, "groq-1 was already disabled\n");
    assert!(shell.run(&["list"]).ok().stdout.lines().nth(1).expect("row").contains("disabled"));
    assert_eq!(shell.run(&["enable", "groq-1"]).ok().stdout, "enabled groq-1\n");
    let removed = shell.run(&["remove", "gemini-1"]).ok();
    assert!(removed.stdout.starts_with("removed gemini-1 ("), "{removed:#?}");
    let again = shell.run(&["remove", "gemini-1"]).failed();
    assert_eq!(again.error(), "error: no key gemini-1 in the vault");
    let list = shell.run(&["list"]).ok();
    assert_eq!(list.stdout.lines().count(), 2, "{list:#?}");

    // A label cannot break the table or restyle the terminal.
    let odd = run(
        shell.command(),
        &["add", "--provider", "mistral", "--label", "two\nlines \u{1b}[31mred"],
        "mistral-SECRETMARK",
    )
    .ok();
    let list = shell.run(&["list"]).ok();
    assert_eq!(list.stdout.lines().count(), 3, "{list:#?}");
    assert!(list.stdout.contains("two?lines ?[31mred"), "{list:#?}");
    odd.assert_no_secret();

    let duplicate = shell.add("groq", GROQ_KEY).failed();
    assert!(duplicate.stderr.contains("already in the vault as groq-1"), "{duplicate:#?}");

    for run in [first, labelled, list, json, removed, again, duplicate] {
        run.assert_no_secret();
    }
    let raw = shell.vault_bytes();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("SECRETMARK") && !raw.contains("team laptop"), "clear text in the vault");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&shell.vault).expect("vault").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn a_misshapen_key_is_stored_with_a_warning() {
    let shell = Shell::with_fast_vault();
    let run = shell.add("gemini", "AIzaSECRETMARKtooshort").ok();
    assert!(run.stdout.starts_with("added gemini-1"), "{run:#?}");
    assert!(
        run.stderr.contains("may be mistyped: gemini keys are 39 characters long, this one is 22"),
        "{run:#?}"
    );
    run.assert_no_secret();
}

#[test]
fn the_key_comes_from_stdin_one_line_only() {
    let shell = Shell::with_fast_vault();
    let empty = run(shell.command(), &["add", "--provider", "groq"], "\n  \n").failed();
    assert_eq!(empty.error(), "error: no key on standard input");
    let two = run(shell.command(), &["add", "--provider", "groq"], "gsk_a\ngsk_b\n").failed();
    assert!(two.stderr.contains("standard input holds 2 lines"), "{two:#?}");
    let bad = run(shell.command(), &["add", "--provider", "Groq Cloud"], "gsk_a\n").failed();
    assert!(bad.stderr.contains("invalid provider name \"Groq Cloud\""), "{bad:#?}");
    assert!(shell.run(&["list"]).ok().stdout.starts_with("no keys in"));

    // Bad input fails before a vault is created.
    let fresh = Shell::new();
    run(fresh.command(), &["add", "--provider", "groq"], "").failed();
    run(fresh.command(), &["add", "--provider", "Groq Cloud"], "gsk_a\n").failed();
    assert!(!fresh.vault.exists(), "a failed add created a vault");
}

#[test]
fn a_wrong_passphrase_fails_and_leaves_the_file_untouched() {
    let shell = Shell::with_fast_vault();
    shell.add("groq", GROQ_KEY).ok();
    let before = shell.vault_bytes();
    for args in [&["list"][..], &["disable", "groq-1"], &["remove", "groq-1"], &["passwd"]] {
        let mut command = shell.command();
        command.env("SWITCHYARD_VAULT_PASSPHRASE", "not the passphrase");
        command.env("SWITCHYARD_VAULT_NEW_PASSPHRASE", "whatever");
        let run = run(command, args, "").failed();
        assert!(run.error().starts_with("error: wrong passphrase or damaged vault"), "{run:#?}");
        assert!(run.stderr.contains(&format!("backup: {}.bak", shell.vault.display())), "{run:#?}");
        run.assert_no_secret();
    }
    let mut command = shell.command();
    command.env("SWITCHYARD_VAULT_PASSPHRASE", "not the passphrase");
    run(command, &["add", "--provider", "groq"], "gsk_other\n").failed();
    assert_eq!(shell.vault_bytes(), before, "a failed command rewrote the vault");
}

#[test]
fn a_damaged_vault_is_reported_with_its_backup_and_not_rewritten() {
    let shell = Shell::with_fast_vault();
    shell.add("groq", GROQ_KEY).ok();
    let mut damaged = shell.vault_bytes();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    std::fs::write(&shell.vault, &damaged).expect("damage");
    let list = shell.run(&["list"]).failed();
    assert!(list.stderr.contains("wrong passphrase or damaged vault"), "{list:#?}");
    assert!(list.stderr.contains(".bak"), "{list:#?}");
    shell.add("groq", "gsk_another").failed();
    assert_eq!(shell.vault_bytes(), damaged);

    // The backup it names opens: the version before the last write.
    let backup = run(
        {
            let mut command = shell.command();
            command.env("SWITCHYARD_VAULT", format!("{}.bak", shell.vault.display()));
            command
        },
        &["list"],
        "",
    )
    .ok();
    assert!(backup.stdout.starts_with("no keys in"), "{backup:#?}");
}

#[test]
fn each_kind_of_wrong_file_has_its_own_message() {
    let shell = Shell::with_fast_vault();
    let vault = shell.vault.display().to_string();
    let cases: [(&[u8], String); 4] = [
        (b"", format!("error: vault file {vault} is empty")),
        (b"{\"keys\": []}", format!("error: {vault} is not a switchyard vault file")),
        (
            b"SWYVAULT\x00\x09rest-of-a-future-file",
            format!("error: vault {vault} has format version 9"),
        ),
        (b"SWYVAULT\x00\x01short", format!("error: vault file {vault} is truncated: 15 bytes")),
    ];
    for (content, expected) in cases {
        std::fs::write(&shell.vault, content).expect("write");
        let run = shell.run(&["list"]).failed();
        assert!(run.error().starts_with(&expected), "{expected}: {run:#?}");
        assert_eq!(std::fs::read(&shell.vault).expect("read"), content);
    }
    std::fs::remove_file(&shell.vault).expect("remove");
    let missing = shell.run(&["list"]).failed();
    assert_eq!(missing.error(), format!("error: no vault at {vault}"));
    std::fs::create_dir(&shell.vault).expect("mkdir");
    let directory = shell.run(&["list"]).failed();
    assert_eq!(directory.error(), format!("error: {vault} is a directory, not a vault file"));
    let add = shell.add("groq", GROQ_KEY).failed();
    assert!(add.stderr.contains("is a directory, not a vault file"), "{add:#?}");
}

#[cfg(unix)]
#[test]
fn no_write_permission_has_its_own_message() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    let shell = Shell::with_fast_vault();
    shell.add("groq", GROQ_KEY).ok();
    let dir = shell.vault.parent().expect("dir").to_owned();
    let before = shell.vault_bytes();
    let mut command = shell.command();

    let probe = shell.dir.path().join("probe");
    std::fs::write(&probe, b"").expect("probe");
    let root = std::fs::metadata(&probe).expect("probe").uid() == 0;
    if root {
        // Root ignores file modes, so run the binary as `nobody`: it owns the vault (it
        // can read it) but not the directory (it cannot replace it) nor the lock file.
        const NOBODY: u32 = 65_534;
        for path in [shell.dir.path(), &dir] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::os::unix::fs::chown(&shell.vault, Some(NOBODY), Some(NOBODY)).expect("chown");
        command.uid(NOBODY).gid(NOBODY);
    } else {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    }
    let run = run(command, &["disable", "groq-1"], "").failed();
    assert!(
        run.error().starts_with(&format!(
            "error: cannot write the vault: no write permission in {}",
            dir.display()
        )),
        "{run:#?}"
    );
    assert!(run.stderr.contains("ermission denied"), "the OS cause is kept: {run:#?}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod back");
    assert_eq!(shell.vault_bytes(), before);
}

#[test]
fn the_passphrase_comes_from_a_keyfile_the_environment_or_nowhere() {
    let shell = Shell::with_fast_vault();
    shell.add("groq", GROQ_KEY).ok();
    let keyfile = shell.dir.path().join("passphrase.txt");
    std::fs::write(&keyfile, format!("{PASSPHRASE}\n")).expect("keyfile");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    // The flag, with a wrong passphrase in the environment: the key file wins.
    let mut command = shell.command();
    command.env("SWITCHYARD_VAULT_PASSPHRASE", "wrong");
    let by_flag = run(command, &["list", "--keyfile", keyfile.to_str().expect("utf-8")], "").ok();
    assert!(by_flag.stdout.contains("groq-1"), "{by_flag:#?}");

    let mut command = shell.command();
    command.env_remove("SWITCHYARD_VAULT_PASSPHRASE").env("SWITCHYARD_VAULT_KEYFILE", &keyfile);
    assert!(run(command, &["list"], "").ok().stdout.contains("groq-1"));

    // No source and no terminal: fail at once, never hang on a prompt.
    let mut command = shell.command();
    command.env_remove("SWITCHYARD_VAULT_PASSPHRASE");
    let nowhere = run(command, &["list"], "").failed();
    assert!(
        nowhere.error().starts_with("error: no vault passphrase: set SWITCHYARD_VAULT_PASSPHRASE"),
        "{nowhere:#?}"
    );

    // A passphrase is never an argument.
    let refused = shell.run(&["list", "--passphrase", PASSPHRASE]);
    assert_eq!(refused.code, Some(2), "{refused:#?}");

    let missing = shell.run(&["list", "--keyfile", "/nonexistent/keyfile"]).failed();
    assert!(
        missing.error().starts_with("error: cannot read key file /nonexistent/keyfile"),
        "{missing:#?}"
    );
}

#[test]
fn passwd_changes_the_passphrase_and_raises_the_iteration_count() {
    let shell = Shell::with_fast_vault();
    shell.add("groq", GROQ_KEY).ok();
    let weak = shell.run(&["list"]).ok();
    assert!(
        weak.stderr.contains("uses 1000 PBKDF2 iterations, fewer than the recommended 600000"),
        "{weak:#?}"
    );

    let mut command = shell.command();
    command.env("SWITCHYARD_VAULT_NEW_PASSPHRASE", "the new passphrase");
    let changed = run(command, &["passwd"], "").ok();
    assert!(changed.stdout.contains("passphrase changed"), "{changed:#?}");
    assert!(changed.stdout.contains("600000 PBKDF2 iterations"), "{changed:#?}");
    assert_eq!(iterations_in_header(&shell.vault), 600_000);

    let old = shell.run(&["list"]).failed();
    assert!(old.stderr.contains("wrong passphrase or damaged vault"), "{old:#?}");
    let mut command = shell.command();
    command.env("SWITCHYARD_VAULT_PASSPHRASE", "the new passphrase");
    let new = run(command, &["list"], "").ok();
    assert!(new.stdout.contains("groq-1"), "{new:#?}");
    assert!(new.stderr.is_empty(), "no weak-count warning any more: {new:#?}");

    let mut command = shell.command();
    command.env("SWITCHYARD_VAULT_PASSPHRASE", "the new passphrase");
    let no_new = run(command, &["passwd"], "").failed();
    assert!(
        no_new.stderr.contains("no new passphrase: set SWITCHYARD_VAULT_NEW_PASSPHRASE"),
        "{no_new:#?}"
    );
}

#[test]
fn import_env_copies_environment_and_dotenv_keys_once() {
    let shell = Shell::with_fast_vault();
    std::fs::write(
        shell.dir.path().join(".env"),
        "OPENAI_API_KEY=sk-proj-dotenvSECRETMARK\nGROQ_API_KEY=gsk_overridden_by_process\n",
    )
    .expect("write .env");
    let import = |dry_run: bool| {
        let mut command = shell.command();
        command
            .env("GEMINI_KEYS", format!("{GEMINI_KEY},AIzaSECRETMARKshort"))
            .env("GROQ_API_KEY", GROQ_KEY)
            .env("GROQ_API_KEY_2", GROQ_KEY)
            .env("CLAUDE_API_KEY", "sk-ant-api03-SECRETMARK");
        let args: &[&str] = if dry_run { &["import-env", "--dry-run"] } else { &["import-env"] };
        run(command, args, "").ok()
    };

    let dry = import(true);
    assert_eq!(
        dry.stdout.lines().filter(|line| line.starts_with("would import")).count(),
        5,
        "{dry:#?}"
    );
    assert!(shell.run(&["list"]).ok().stdout.starts_with("no keys in"), "a dry run wrote");

    let first = import(false);
    assert!(first.stdout.contains("skipped GROQ_API_KEY_2: same key"), "{first:#?}");
    assert!(first.stdout.contains("from OPENAI_API_KEY (.env)"), "{first:#?}");
    assert!(
        first
            .stdout
            .ends_with("5 imported, 0 already in the vault, 1 duplicates in the environment\n"),
        "{first:#?}"
    );
    assert!(first.stderr.contains("gemini keys are 39 characters long"), "{first:#?}");

    let second = import(false);
    assert!(
        second
            .stdout
            .ends_with("0 imported, 5 already in the vault, 1 duplicates in the environment\n"),
        "{second:#?}"
    );

    let list = shell.run(&["list", "--json"]).ok();
    let keys: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    let labels: Vec<&str> = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|key| key["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        [
            "from GEMINI_KEYS[1]",
            "from GEMINI_KEYS[2]",
            "from GROQ_API_KEY",
            "from OPENAI_API_KEY (.env)",
            "from CLAUDE_API_KEY"
        ]
    );
    for run in [dry, first, second, list] {
        run.assert_no_secret();
    }
}

#[test]
fn two_processes_adding_at_once_lose_no_key() {
    const PER_WRITER: usize = 8;
    let shell = Shell::with_fast_vault();
    std::thread::scope(|scope| {
        for writer in ["a", "b"] {
            let shell = &shell;
            scope.spawn(move || {
                for n in 0..PER_WRITER {
                    shell.add("groq", &format!("gsk_{writer}{n:03}_SECRETMARK")).ok();
                }
            });
        }
    });
    let list = shell.run(&["list", "--json"]).ok();
    let keys: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    let mut ids: Vec<String> = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|key| key["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort_by_key(|id| id.trim_start_matches("groq-").parse::<usize>().expect("number"));
    let expected: Vec<String> = (1..=2 * PER_WRITER).map(|n| format!("groq-{n}")).collect();
    assert_eq!(ids, expected, "a process's key was lost or two keys share an id");
}

#[test]
fn the_vault_path_follows_flag_variable_and_data_directory() {
    let shell = Shell::new();
    let path_with = |vars: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(BIN);
        command.env_clear().args(["keys", "path"]).args(args);
        for (name, value) in vars {
            command.env(name, value);
        }
        run(command, &[], "").ok().stdout
    };
    assert_eq!(
        path_with(&[("HOME", "/home/u")], &[]),
        "/home/u/.local/share/switchyard/keys.vault\n"
    );
    assert_eq!(
        path_with(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/xdg")], &[]),
        "/xdg/switchyard/keys.vault\n"
    );
    assert_eq!(
        path_with(&[("HOME", "/home/u"), ("SWITCHYARD_DATA_DIR", "/srv/sy")], &[]),
        "/srv/sy/keys.vault\n"
    );
    assert_eq!(path_with(&[("SWITCHYARD_VAULT", "/v/env.vault")], &[]), "/v/env.vault\n");
    assert_eq!(
        path_with(&[("SWITCHYARD_VAULT", "/v/env.vault")], &["--vault", "/v/flag.vault"]),
        "/v/flag.vault\n"
    );
    let mut command = Command::new(BIN);
    command.env_clear().args(["keys", "path"]);
    let nowhere = run(command, &[], "").failed();
    assert!(nowhere.stderr.contains("cannot find a data directory"), "{nowhere:#?}");

    // The first add creates the data directory, private to its owner.
    let mut command = shell.command();
    command
        .env_remove("SWITCHYARD_VAULT")
        .env("SWITCHYARD_DATA_DIR", shell.dir.path().join("fresh"));
    run(command, &["add", "--provider", "groq"], GROQ_KEY).ok();
    assert!(shell.dir.path().join("fresh").join("keys.vault").is_file());
}

/// A configuration with two groq keys (`groq-1`, `groq-2`), a vault-only provider and a
/// state file, next to the vault.
fn write_config(shell: &Shell) -> PathBuf {
    let config = shell.dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "[state]\npath = \"state.db\"\n\n\
         [[providers]]\nname = \"groq\"\nkind = \"openai\"\npreset = \"groq\"\n\
         keys = [\"gsk_config_a_SECRETMARK\", \"gsk_config_b_SECRETMARK\"]\nmodels = [\"llama\"]\n\n\
         [[providers]]\nname = \"gemini\"\nkind = \"gemini\"\nmodels = [\"flash\"]\n\n\
         [[routes]]\nname = \"default\"\ntargets = [\"groq/llama\"]\n",
    )
    .expect("write config");
    config
}

#[test]
fn keys_stats_import_then_export_round_trips_in_the_users_shape() {
    let shell = Shell::new();
    let config = write_config(&shell);
    let config = config.to_str().expect("utf-8 path");
    let users = serde_json::json!({ "providers": {
        "groq_key1": { "models": { "llama": {
            "successCount": 30, "failCount": 2, "avgResponseTime": 945.5, "qualityScore": 0.8,
            "totalTokensUsed": 3000, "lastSuccess": "2026-01-15T12:00:29Z", "lastError": null,
            "status": "healthy" } } },
        "groq_key2": { "models": { "llama": { "successCount": 1, "failCount": 9 } } },
        "gemini_key4": { "models": { "flash": { "successCount": 5, "failCount": 0 } } }
    }});
    let file = shell.dir.path().join("apiStats.json");
    std::fs::write(&file, users.to_string()).expect("write");
    let imported =
        shell.run(&["stats", "--config", config, "--import", file.to_str().expect("utf-8")]).ok();
    assert!(imported.stdout.contains("imported 3 model entries"), "{imported:#?}");

    // The priors are the state file's score snapshot, under switchyard's key ids.
    let mut store =
        switchyard_store::SqliteStore::open(shell.dir.path().join("state.db")).expect("state");
    let snapshot = switchyard_score::StatsStore::load(&mut store).expect("load").expect("saved");
    let saved = serde_json::to_value(&snapshot).expect("json");
    let groq_2 = &saved["providers"]["groq"]["keys"]["groq-2"]["models"]["llama"];
    assert_eq!(groq_2["failCount"], 9, "{saved}");
    assert_eq!(
        saved["providers"]["gemini"]["keys"]["gemini-4"]["models"]["flash"]["successCount"],
        5
    );

    let out = shell.dir.path().join("out.json");
    let exported =
        shell.run(&["stats", "--config", config, "--export", out.to_str().expect("utf-8")]).ok();
    assert!(exported.stdout.contains("exported 3 key(s)"), "{exported:#?}");
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("json");
    for (name, model) in [("groq_key1", "llama"), ("groq_key2", "llama"), ("gemini_key4", "flash")]
    {
        for field in
            ["successCount", "failCount", "avgResponseTime", "qualityScore", "totalTokensUsed"]
        {
            let given = &users["providers"][name]["models"][model][field];
            if !given.is_null() {
                assert_eq!(
                    &back["providers"][name]["models"][model][field], given,
                    "{name}.{field}"
                );
            }
        }
    }
    // And the export imports again to the same snapshot.
    shell.run(&["stats", "--config", config, "--import", out.to_str().expect("utf-8")]).ok();
    let again = switchyard_score::StatsStore::load(&mut store).expect("load").expect("saved");
    assert_eq!(serde_json::to_value(&again).expect("json"), saved);
    for run in [imported, exported] {
        run.assert_no_secret();
    }
}

#[test]
fn keys_stats_refuses_a_file_in_another_shape_naming_what_is_wrong() {
    let shell = Shell::new();
    let config = write_config(&shell);
    let config = config.to_str().expect("utf-8 path");
    let file = shell.dir.path().join("apiStats.json");
    for (content, expected) in [
        (
            "{\"version\": 1, \"providers\": {\"groq\": {\"keys\": {}}}}",
            "this is switchyard's own score snapshot",
        ),
        ("{\"stats\": []}", "no \"providers\" object"),
        ("[1, 2", "not JSON"),
        (
            "{\"providers\": {\"mistral_key1\": {\"models\": {}}}}",
            "provider mistral is not configured",
        ),
        (
            "{\"providers\": {\"groq_key1\": {\"models\": {\"llama\": {\"successCount\": \"many\"}}}}}",
            "providers.groq_key1.models.llama.successCount: expected a whole number",
        ),
    ] {
        std::fs::write(&file, content).expect("write");
        let refused = shell
            .run(&["stats", "--config", config, "--import", file.to_str().expect("utf-8")])
            .failed();
        assert!(refused.error().contains(expected), "{content}: {refused:#?}");
        assert!(refused.error().contains("apiStats.json"), "the file is named: {refused:#?}");
    }
    assert!(
        !shell.dir.path().join("state.db").exists() || {
            let mut store = switchyard_store::SqliteStore::open(shell.dir.path().join("state.db"))
                .expect("state");
            switchyard_score::StatsStore::load(&mut store).expect("load").is_none()
        },
        "a refused file writes nothing"
    );
    let neither = shell.run(&["stats", "--config", config]);
    assert_eq!(neither.code, Some(2), "--import or --export is required: {neither:#?}");
}

#[test]
fn keys_list_shows_age_and_rotation_and_vault_changes_are_audited() {
    let shell = Shell::with_fast_vault();
    let state = shell.dir.path().join("state.db");
    let state_arg = state.to_str().expect("utf-8");
    run(
        shell.command(),
        &["--state", state_arg, "add", "--provider", "groq"],
        &format!("{GROQ_KEY}\n"),
    )
    .ok();
    run(shell.command(), &["--state", state_arg, "disable", "groq-1"], "").ok();
    // A key only the configuration holds, as the gateway registered it.
    let mut store = switchyard_store::SqliteStore::open(&state).expect("state");
    let seen = switchyard_store::KeySeen {
        provider: "openai".into(),
        key: "openai-1".into(),
        fingerprint: "0a1b2c3d".to_owned(),
        created: None,
    };
    let now = switchyard_core::Clock::utc(&switchyard_core::SystemClock);
    store.register_keys(&[seen], now - chrono::TimeDelta::days(40)).expect("register");

    let list = shell.run(&["--state", state_arg, "list", "--rotate-after-days", "30"]).ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].contains("AGE") && lines[0].contains("ROTATION"), "{list:#?}");
    let groq = lines.iter().find(|line| line.starts_with("groq-1")).expect("groq-1 row");
    assert!(groq.contains(" 0d ") && groq.contains("in 29d"), "{groq}");
    let openai = lines.iter().find(|line| line.starts_with("openai-1")).expect("configured row");
    assert!(
        openai.contains("configured") && openai.contains("40d") && openai.contains("due"),
        "{openai}"
    );
    let json =
        shell.run(&["--state", state_arg, "list", "--json", "--rotate-after-days", "30"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(rows[0]["age_days"], 0);
    assert!(rows[0]["rotation_due"].is_string(), "{rows}");

    let audit = store.audit(None, 10).expect("audit");
    let actions: Vec<&str> = audit.iter().map(|record| record.entry.action.as_str()).collect();
    assert_eq!(actions, ["vault-add", "vault-disable", "vault-list", "vault-list"]);
    let shown = shell.run(&["--state", state_arg, "audit", "--limit", "2"]).ok();
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{shown:#?}");
    assert!(lines[0].contains("cli vault-list"), "{shown:#?}");
    let all = shell.run(&["--state", state_arg, "audit"]).ok();
    assert!(
        all.stdout.lines().next().is_some_and(|line| line.contains("cli vault-add groq/groq-1 (")),
        "{all:#?}"
    );
    let none = run(shell.command(), &["audit"], "").failed();
    assert!(none.error().contains("no state file"), "{none:#?}");
    assert_eq!(audit[0].entry.actor, "cli");
    assert_eq!(audit[0].entry.key.as_ref().map(|key| key.as_str()), Some("groq-1"));
    assert!(audit[0].entry.fingerprint.is_some());
    assert!(!format!("{audit:?}").contains("SECRETMARK"), "a secret in the audit log");
    list.assert_no_secret();
}
