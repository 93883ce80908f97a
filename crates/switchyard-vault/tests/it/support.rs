//! Shared helpers: a low-iteration config on a manual clock, a vault in a temporary
//! directory, realistic secrets.

use std::path::PathBuf;
use std::sync::Arc;

use switchyard_core::ManualClock;
use switchyard_vault::{Passphrase, Vault, VaultConfig};
use tempfile::TempDir;

/// Low enough that a derivation takes about a millisecond.
pub(crate) const TEST_ITERATIONS: u32 = 1_000;
pub(crate) const PASSPHRASE: &str = "integration test passphrase";

pub(crate) fn config() -> VaultConfig {
    config_on(&ManualClock::default())
}

pub(crate) fn config_on(clock: &ManualClock) -> VaultConfig {
    VaultConfig::insecure_for_tests(TEST_ITERATIONS, Arc::new(clock.clone()))
}

pub(crate) fn passphrase(text: &str) -> Passphrase {
    Passphrase::try_new(text).expect("non-empty passphrase")
}

/// A temporary directory with an empty vault in it.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) path: PathBuf,
    pub(crate) vault: Vault,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.vault");
    let vault = Vault::create(&path, passphrase(PASSPHRASE), config()).expect("create vault");
    Fixture { dir, path, vault }
}

pub(crate) fn open(path: &std::path::Path) -> Vault {
    Vault::open(path, passphrase(PASSPHRASE), config()).expect("vault opens")
}

/// A secret shaped like `provider`'s keys, unique per `n` and `tag`, with a marker that a
/// leak check can search for.
pub(crate) fn secret(provider: &str, tag: &str, n: usize) -> String {
    let body = format!("{tag}{n:06}LEAKMARK");
    match provider {
        "gemini" => format!("AIza{body:x<35}").chars().take(39).collect(),
        "groq" => format!("gsk_{body}"),
        "openai" => format!("sk-proj-{body}"),
        "anthropic" => format!("sk-ant-api03-{body}"),
        "openrouter" => format!("sk-or-v1-{body}"),
        _ => format!("{provider}-{body}"),
    }
}
