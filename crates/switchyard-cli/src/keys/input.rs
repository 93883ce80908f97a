//! Where `switchyard keys` gets what it must never take as an argument: the vault
//! passphrase (environment, key file or no-echo prompt) and the API key to add (stdin or a
//! no-echo prompt); and where the vault lives by default.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use switchyard_vault::{Passphrase, VaultError};
use zeroize::Zeroizing;

/// The passphrase, when no key file is given.
pub(crate) const PASSPHRASE_VAR: &str = "SWITCHYARD_VAULT_PASSPHRASE";
/// The new passphrase for `keys passwd`.
pub(crate) const NEW_PASSPHRASE_VAR: &str = "SWITCHYARD_VAULT_NEW_PASSPHRASE";
/// Overrides the data directory (and so the default vault path).
pub(crate) const DATA_DIR_VAR: &str = "SWITCHYARD_DATA_DIR";
/// The vault's file name inside the data directory.
pub(crate) const VAULT_FILE_NAME: &str = "keys.vault";

/// Failures of the keys commands that are not the vault's own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeysError {
    /// The vault library refused.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Nothing to take a passphrase from.
    #[error(
        "no vault passphrase: set {PASSPHRASE_VAR}, pass --keyfile (or set \
         SWITCHYARD_VAULT_KEYFILE), or run in a terminal to be asked"
    )]
    NoPassphrase,
    /// Nothing to take the new passphrase of `keys passwd` from.
    #[error("no new passphrase: set {NEW_PASSPHRASE_VAR} or run in a terminal to be asked")]
    NoNewPassphrase,
    /// A passphrase variable holds bytes that are not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// The two entries of a new passphrase differ.
    #[error("the passphrases do not match")]
    Mismatch,
    /// The terminal prompt failed.
    #[error("cannot read from the terminal")]
    Prompt(#[source] std::io::Error),
    /// Standard input could not be read.
    #[error("cannot read the key from standard input")]
    Stdin(#[source] std::io::Error),
    /// The state file given with `--state` cannot be read.
    #[error("cannot read the state file {0}")]
    State(String),
    /// Standard input held no key.
    #[error("no key on standard input")]
    NoKey,
    /// Standard input held several lines.
    #[error(
        "standard input holds {0} lines; give one key per `keys add` (or use `keys import-env`)"
    )]
    ManyKeys(usize),
    /// No way to find a default vault path.
    #[error(
        "cannot find a data directory for the vault: set SWITCHYARD_VAULT, pass --vault, or set {DATA_DIR_VAR}"
    )]
    NoDataDir,
}

/// Whether a prompt can reach a person: prompts go to the terminal, and stderr being one
/// is the sign that someone is watching (stdin may be a pipe carrying the key).
fn can_prompt() -> bool {
    std::io::stderr().is_terminal()
}

fn prompt(text: &str) -> Result<Zeroizing<String>, KeysError> {
    rpassword::prompt_password(text).map(Zeroizing::new).map_err(KeysError::Prompt)
}

/// Asks twice for a passphrase that is about to seal something.
fn prompt_new(text: &str) -> Result<Passphrase, KeysError> {
    let first = prompt(text)?;
    let second = prompt("Repeat it: ")?;
    if first != second {
        return Err(KeysError::Mismatch);
    }
    Ok(Passphrase::try_new(first.as_bytes())?)
}

fn from_var(var: &'static str) -> Result<Option<Passphrase>, KeysError> {
    match std::env::var(var) {
        Ok(value) => Ok(Some(Passphrase::try_new(Zeroizing::new(value).as_bytes())?)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(KeysError::NotUnicode(var)),
    }
}

/// The vault passphrase: the key file if one is given, else `SWITCHYARD_VAULT_PASSPHRASE`,
/// else a prompt (twice when `creating`).
pub(crate) fn passphrase(keyfile: Option<&Path>, creating: bool) -> Result<Passphrase, KeysError> {
    if let Some(keyfile) = keyfile {
        warn_if_shared(keyfile);
        return Ok(Passphrase::from_keyfile(keyfile)?);
    }
    if let Some(passphrase) = from_var(PASSPHRASE_VAR)? {
        return Ok(passphrase);
    }
    if !can_prompt() {
        return Err(KeysError::NoPassphrase);
    }
    if creating {
        eprintln!("No vault yet; choose a passphrase for the new one.");
        prompt_new("New vault passphrase: ")
    } else {
        Ok(Passphrase::try_new(prompt("Vault passphrase: ")?.as_bytes())?)
    }
}

/// The new passphrase for `keys passwd`.
pub(crate) fn new_passphrase() -> Result<Passphrase, KeysError> {
    if let Some(passphrase) = from_var(NEW_PASSPHRASE_VAR)? {
        return Ok(passphrase);
    }
    if !can_prompt() {
        return Err(KeysError::NoNewPassphrase);
    }
    prompt_new("New vault passphrase: ")
}

/// A key file anyone else can read is a passphrase anyone else can read.
fn warn_if_shared(keyfile: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(keyfile) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: key file {} can be read by other users (mode {mode:o}); \
                     `chmod 600` it",
                    keyfile.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = keyfile;
}

/// The API key to add: standard input when it is not a terminal (one line, surrounding
/// whitespace dropped), else a no-echo prompt.
pub(crate) fn secret(provider: &str) -> Result<Zeroizing<String>, KeysError> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        prompt(&format!("{provider} API key (not shown): "))?
    } else {
        let mut text = Zeroizing::new(String::new());
        stdin.lock().read_to_string(&mut text).map_err(KeysError::Stdin)?;
        text
    };
    let lines = text.lines().filter(|line| !line.trim().is_empty()).count();
    match lines {
        0 => Err(KeysError::NoKey),
        1 => Ok(Zeroizing::new(text.trim().to_owned())),
        many => Err(KeysError::ManyKeys(many)),
    }
}

/// The vault path when neither `--vault` nor `SWITCHYARD_VAULT` is given:
/// `keys.vault` in the data directory, which is `$SWITCHYARD_DATA_DIR`, else
/// `$XDG_DATA_HOME/switchyard`, else `~/.local/share/switchyard` (on macOS
/// `~/Library/Application Support/switchyard`, on Windows `%APPDATA%\switchyard`).
pub(crate) fn default_vault_path() -> Result<PathBuf, KeysError> {
    data_dir().map(|dir| dir.join(VAULT_FILE_NAME)).ok_or(KeysError::NoDataDir)
}

fn data_dir() -> Option<PathBuf> {
    let var =
        |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(DATA_DIR_VAR) {
        return Some(dir);
    }
    if cfg!(windows) {
        return var("APPDATA").map(|dir| dir.join("switchyard"));
    }
    if let Some(xdg) = var("XDG_DATA_HOME").filter(|dir| dir.is_absolute()) {
        return Some(xdg.join("switchyard"));
    }
    let home = var("HOME")?;
    if cfg!(target_os = "macos") {
        return Some(home.join("Library/Application Support/switchyard"));
    }
    Some(home.join(".local/share/switchyard"))
}
