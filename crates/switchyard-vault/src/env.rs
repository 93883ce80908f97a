//! [`EnvSource`]: the key conventions real setups already use, read from environment
//! variables and a `.env` file.
//!
//! | variable | provider |
//! |---|---|
//! | `GEMINI_KEYS="k1,k2,k3"` | `gemini` |
//! | `GEMINI_API_KEY`, `GOOGLE_AI_API_KEY` | `gemini` |
//! | `GROQ_API_KEY` | `groq` |
//! | `OPENAI_API_KEY` | `openai` |
//! | `ANTHROPIC_API_KEY`, `CLAUDE_API_KEY` | `anthropic` |
//! | `MISTRAL_API_KEY` | `mistral` |
//! | `OPENROUTER_API_KEY` | `openrouter` |
//!
//! Every single-key variable may also be numbered, `GROQ_API_KEY_1` .. `GROQ_API_KEY_n`
//! (the plain name first, then by number; gaps are fine). A variable set both in the process
//! and in `.env` takes the process's value, as `dotenv` tools do. The source takes its
//! variables as a list, so tests never touch the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use switchyard_core::{Credential, Fingerprint, KeyId, ProviderId};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::check::{FormatWarning, check_format};
use crate::source::{Duplicate, KeySource, Merged, Seen, SourcedKey};

/// How a variable holds keys.
#[derive(Clone, Copy)]
enum Shape {
    /// A comma-separated list in one variable.
    List,
    /// One key, under the plain name or a numbered one.
    Numbered,
}

/// The conventions, in the order keys are reported.
const CONVENTIONS: &[(&str, &str, Shape)] = &[
    ("GEMINI_KEYS", "gemini", Shape::List),
    ("GEMINI_API_KEY", "gemini", Shape::Numbered),
    ("GOOGLE_AI_API_KEY", "gemini", Shape::Numbered),
    ("GROQ_API_KEY", "groq", Shape::Numbered),
    ("OPENAI_API_KEY", "openai", Shape::Numbered),
    ("ANTHROPIC_API_KEY", "anthropic", Shape::Numbered),
    ("CLAUDE_API_KEY", "anthropic", Shape::Numbered),
    ("MISTRAL_API_KEY", "mistral", Shape::Numbered),
    ("OPENROUTER_API_KEY", "openrouter", Shape::Numbered),
];

/// One variable's value and whether it came from `.env`.
struct Value {
    text: Zeroizing<String>,
    from_dotenv: bool,
}

/// Keys from environment variables (and optionally a `.env` file).
pub struct EnvSource {
    vars: BTreeMap<String, Value>,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSource").field("variables", &self.vars.keys()).finish()
    }
}

/// What a scan of the environment found.
#[derive(Clone, Debug, Default)]
pub struct EnvScan {
    /// The distinct keys, in convention order.
    pub keys: Vec<SourcedKey>,
    /// Keys found again under another variable (or twice in one list), dropped.
    pub duplicates: Vec<Duplicate>,
    /// Keys that failed their provider's format check (kept).
    pub warnings: Vec<FormatWarning>,
}

impl EnvSource {
    /// A source over the given variables. Pass `std::env::vars()` for the process's.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(name, text)| {
                (name.into(), Value { text: Zeroizing::new(text.into()), from_dotenv: false })
            })
            .collect();
        Self { vars }
    }

    /// A source over the given variables and the `.env` file at `dotenv` (if there is one);
    /// a variable in both takes the value given here.
    ///
    /// # Errors
    /// [`VaultError::DotEnv`] when the file exists but cannot be read or parsed.
    pub fn with_dotenv<K, V>(
        vars: impl IntoIterator<Item = (K, V)>,
        dotenv: &Path,
    ) -> Result<Self, VaultError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut source = Self::from_vars(vars);
        if !dotenv.exists() {
            return Ok(source);
        }
        let dotenv_error = |reason: String| VaultError::DotEnv { path: dotenv.to_owned(), reason };
        let lines =
            dotenvy::from_path_iter(dotenv).map_err(|error| dotenv_error(describe(&error)))?;
        for line in lines {
            let (name, text) = line.map_err(|error| dotenv_error(describe(&error)))?;
            source
                .vars
                .entry(name)
                .or_insert(Value { text: Zeroizing::new(text), from_dotenv: true });
        }
        Ok(source)
    }

    /// The process's environment and the `.env` file in the working directory.
    ///
    /// # Errors
    /// As [`EnvSource::with_dotenv`].
    pub fn from_process() -> Result<Self, VaultError> {
        // Variables that are not UTF-8 cannot be keys; skipping them beats failing.
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Self::with_dotenv(vars, Path::new(".env"))
    }

    /// Finds every key, drops repeats, checks formats.
    pub fn scan(&self) -> EnvScan {
        let mut merged = Merged::default();
        let mut seen = Seen::default();
        for (base, provider, shape) in CONVENTIONS {
            let provider = ProviderId::new(provider);
            for (origin, secret) in self.matches(base, *shape) {
                let id = KeyId::new(format!("{provider}-env-{}", Fingerprint::of(&secret)));
                let key = SourcedKey {
                    provider: provider.clone(),
                    credential: Credential::new(id, secret.as_str()),
                    origin,
                };
                seen.offer(key, &mut merged);
            }
        }
        let warnings = merged
            .keys
            .iter()
            .filter_map(|key| check_format(&key.provider, key.credential.expose_secret()))
            .collect();
        EnvScan { keys: disambiguate(merged.keys), duplicates: merged.duplicates, warnings }
    }

    /// The keys under one convention, with their origins, in report order.
    fn matches(&self, base: &str, shape: Shape) -> Vec<(String, Zeroizing<String>)> {
        let mut found = Vec::new();
        match shape {
            Shape::List => {
                if let Some(value) = self.vars.get(base) {
                    let items =
                        value.text.split(',').map(str::trim).filter(|item| !item.is_empty());
                    for (position, item) in items.enumerate() {
                        let origin = origin(&format!("{base}[{}]", position + 1), value);
                        found.push((origin, Zeroizing::new(item.to_owned())));
                    }
                }
            }
            Shape::Numbered => {
                let mut numbered: Vec<(Option<u64>, &String, &Value)> = self
                    .vars
                    .iter()
                    .filter_map(|(name, value)| Some((number(base, name)?, name, value)))
                    .collect();
                // `None` (the plain name) sorts before every number.
                numbered.sort_by_key(|(number, _, _)| *number);
                for (_, name, value) in numbered {
                    let text = value.text.trim();
                    if !text.is_empty() {
                        found.push((origin(name, value), Zeroizing::new(text.to_owned())));
                    }
                }
            }
        }
        found
    }
}

impl KeySource for EnvSource {
    fn describe(&self) -> String {
        "environment".to_owned()
    }

    fn keys(&self) -> Result<Vec<SourcedKey>, VaultError> {
        Ok(self.scan().keys)
    }
}

/// `Some(None)` for the plain name, `Some(Some(n))` for `<base>_<n>`, `None` otherwise.
fn number(base: &str, name: &str) -> Option<Option<u64>> {
    let rest = name.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(None);
    }
    let digits = rest.strip_prefix('_')?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Some)
}

fn origin(name: &str, value: &Value) -> String {
    if value.from_dotenv { format!("{name} (.env)") } else { name.to_owned() }
}

/// Two different secrets can share a 32-bit fingerprint, and so an id: number the later ones.
fn disambiguate(keys: Vec<SourcedKey>) -> Vec<SourcedKey> {
    let mut taken = std::collections::HashSet::new();
    keys.into_iter()
        .map(|key| {
            let base = key.credential.id().clone();
            let mut id = base.clone();
            let mut suffix = 2;
            while !taken.insert(id.clone()) {
                id = KeyId::new(format!("{base}-{suffix}"));
                suffix += 1;
            }
            if id == base {
                key
            } else {
                SourcedKey {
                    credential: Credential::new(id, key.credential.expose_secret()),
                    ..key
                }
            }
        })
        .collect()
}

/// A `dotenvy` error without the line it failed on: that line may be `KEY=<secret>`.
fn describe(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(_, index) => {
            format!(
                "a line does not parse near character {index} (line not shown: it may hold a secret)"
            )
        }
        dotenvy::Error::Io(io) => io.to_string(),
        // `EnvVar`: names a missing variable in a substitution, never a value.
        other => other.to_string(),
    }
}
