//! Format checks for keys of providers that publish a key shape. A key that fails one is
//! still stored or used: the check catches a key pasted under the wrong provider, or with
//! a character missing, but a provider may change its format before we do.

use std::fmt;

use switchyard_core::{Fingerprint, ProviderId};

/// What is wrong with a key's shape. Never quotes any character of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatProblem {
    /// The key does not start as this provider's keys do.
    WrongPrefix {
        /// The prefix the provider's keys start with.
        expected: &'static str,
    },
    /// The key's length differs from the provider's fixed length.
    WrongLength {
        /// The provider's key length.
        expected: usize,
        /// This key's length.
        found: usize,
    },
    /// The key has the shape of another provider's keys.
    LooksLike {
        /// The provider whose shape it has.
        provider: &'static str,
    },
    /// The key holds whitespace or control characters, usually a paste gone wrong.
    Whitespace,
    /// The key holds a comma or semicolon: probably several keys in one value.
    Separator,
}

/// A key that failed its provider's format check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatWarning {
    /// The provider the key was given for.
    pub provider: ProviderId,
    /// The key's fingerprint, to say which key is meant.
    pub fingerprint: Fingerprint,
    /// What looks wrong.
    pub problem: FormatProblem,
}

impl fmt::Display for FormatWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { provider, fingerprint, problem } = self;
        write!(f, "{provider} key {fingerprint} may be mistyped: ")?;
        match problem {
            FormatProblem::WrongPrefix { expected } => {
                write!(f, "{provider} keys start with `{expected}`")
            }
            FormatProblem::WrongLength { expected, found } => {
                write!(f, "{provider} keys are {expected} characters long, this one is {found}")
            }
            FormatProblem::LooksLike { provider: other } => {
                write!(f, "it has the shape of a {other} key")
            }
            FormatProblem::Whitespace => {
                f.write_str("it contains whitespace or control characters")
            }
            FormatProblem::Separator => {
                f.write_str("it contains a comma or semicolon, as a list of keys would")
            }
        }
    }
}

/// Gemini (Google AI Studio) keys: `AIza` and 35 more characters.
const GEMINI_PREFIX: &str = "AIza";
const GEMINI_LEN: usize = 39;
const OPENAI_PREFIX: &str = "sk-";
const ANTHROPIC_PREFIX: &str = "sk-ant-";
const GROQ_PREFIX: &str = "gsk_";
const OPENROUTER_PREFIX: &str = "sk-or-";

/// Checks `secret` against the published key shape of `provider` (`gemini`, `openai`,
/// `anthropic`, `groq`, `openrouter`); other providers publish none and always pass.
/// Returns the first problem found.
pub fn check_format(provider: &ProviderId, secret: &str) -> Option<FormatWarning> {
    let problem = problem(provider.as_str(), secret)?;
    Some(FormatWarning {
        provider: provider.clone(),
        fingerprint: Fingerprint::of(secret),
        problem,
    })
}

fn problem(provider: &str, secret: &str) -> Option<FormatProblem> {
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(FormatProblem::Whitespace);
    }
    if secret.contains([',', ';']) {
        return Some(FormatProblem::Separator);
    }
    let prefix = |expected: &'static str| {
        (!secret.starts_with(expected)).then_some(FormatProblem::WrongPrefix { expected })
    };
    match provider {
        "gemini" => prefix(GEMINI_PREFIX).or_else(|| {
            let found = secret.chars().count();
            (found != GEMINI_LEN)
                .then_some(FormatProblem::WrongLength { expected: GEMINI_LEN, found })
        }),
        "openai" if secret.starts_with(ANTHROPIC_PREFIX) => {
            Some(FormatProblem::LooksLike { provider: "anthropic" })
        }
        "openai" if secret.starts_with(OPENROUTER_PREFIX) => {
            Some(FormatProblem::LooksLike { provider: "openrouter" })
        }
        "openai" => prefix(OPENAI_PREFIX),
        "anthropic" => prefix(ANTHROPIC_PREFIX),
        "groq" => prefix(GROQ_PREFIX),
        "openrouter" => prefix(OPENROUTER_PREFIX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(provider: &str, secret: &str, expected: Option<FormatProblem>) {
        let warning = check_format(&ProviderId::new(provider), secret);
        assert_eq!(warning.as_ref().map(|warning| &warning.problem), expected.as_ref());
        if let Some(warning) = warning {
            let text = warning.to_string();
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains(&Fingerprint::of(secret).to_string()), "{text}");
        }
    }

    #[test]
    fn well_formed_keys_pass() {
        check("gemini", &format!("AIza{}", "x".repeat(35)), None);
        check("openai", "sk-proj-abcdef0123456789", None);
        check("anthropic", "sk-ant-api03-abcdef", None);
        check("groq", "gsk_abcdef0123456789", None);
        check("openrouter", "sk-or-v1-abcdef", None);
        check("mistral", "anything-goes-here", None);
        check("local-llama", "whatever", None);
    }

    #[test]
    fn misshapen_keys_warn_without_quoting_the_key() {
        check(
            "gemini",
            &format!("AIzb{}", "x".repeat(35)),
            Some(FormatProblem::WrongPrefix { expected: "AIza" }),
        );
        check(
            "gemini",
            &format!("AIza{}", "x".repeat(36)),
            Some(FormatProblem::WrongLength { expected: 39, found: 40 }),
        );
        check("openai", "gsk_0123456789", Some(FormatProblem::WrongPrefix { expected: "sk-" }));
        check(
            "openai",
            "sk-ant-api03-xyz",
            Some(FormatProblem::LooksLike { provider: "anthropic" }),
        );
        check("openai", "sk-or-v1-xyz", Some(FormatProblem::LooksLike { provider: "openrouter" }));
        check("anthropic", "sk-proj-xyz", Some(FormatProblem::WrongPrefix { expected: "sk-ant-" }));
        check("groq", "gsk-0123", Some(FormatProblem::WrongPrefix { expected: "gsk_" }));
        check("openrouter", "sk-0123", Some(FormatProblem::WrongPrefix { expected: "sk-or-" }));
        check("mistral", "two words", Some(FormatProblem::Whitespace));
        check("groq", "gsk_one,gsk_two", Some(FormatProblem::Separator));
    }
}
