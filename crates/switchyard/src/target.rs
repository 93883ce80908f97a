//! Route targets: `provider/model`, where the provider is the text before the first `/`, so
//! model ids that contain slashes (`groq/openai/gpt-oss-120b`,
//! `openrouter/anthropic/claude-sonnet-4.5:free`) keep them.

use std::fmt;
use std::str::FromStr;

use switchyard_core::{ModelId, Protocol, ProviderId};

/// A provider and one of its models, as a route names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The provider's configured name.
    pub provider: ProviderId,
    /// The provider's model name.
    pub model: ModelId,
}

/// A target that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No `/` between provider and model.
    #[error("target {0:?} names no model: write it as provider/model")]
    NoModel(String),
    /// Nothing before the `/`.
    #[error("target {0:?} names no provider: write it as provider/model")]
    NoProvider(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (provider, model) =
            text.split_once('/').ok_or_else(|| TargetError::NoModel(text.to_owned()))?;
        if provider.is_empty() {
            return Err(TargetError::NoProvider(text.to_owned()));
        }
        if model.is_empty() {
            return Err(TargetError::NoModel(text.to_owned()));
        }
        Ok(Self { provider: ProviderId::new(provider), model: ModelId::new(model) })
    }
}

impl Target {
    /// The one name of this target's upstream model for a provider speaking `protocol`:
    /// Gemini accepts `models/x` and `x` for the same model, so the prefix is dropped and a
    /// per-model limit or price cannot be walked around by spelling the name the other way.
    #[must_use]
    pub fn canonical(self, protocol: Protocol) -> Self {
        match protocol {
            Protocol::Gemini => match self.model.as_str().strip_prefix("models/") {
                Some(bare) if !bare.is_empty() => {
                    Self { model: ModelId::new(bare), provider: self.provider }
                }
                _ => self,
            },
            Protocol::OpenAi | Protocol::Anthropic | Protocol::Ollama => self,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, provider: &str, model: &str) {
        let target: Target = text.parse().expect("parses");
        assert_eq!((target.provider.as_str(), target.model.as_str()), (provider, model));
        assert_eq!(target.to_string(), text.trim());
    }

    #[test]
    fn provider_is_the_text_before_the_first_slash() {
        check("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile");
        check("groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b");
        check(
            "openrouter/anthropic/claude-sonnet-4.5:free",
            "openrouter",
            "anthropic/claude-sonnet-4.5:free",
        );
        check(" gemini/gemini-2.0-flash ", "gemini", "gemini-2.0-flash");
    }

    #[test]
    fn gemini_names_drop_the_models_prefix_once() {
        let target: Target = "gemini/models/gemini-2.0-flash".parse().expect("parses");
        assert_eq!(
            target.clone().canonical(Protocol::Gemini).to_string(),
            "gemini/gemini-2.0-flash"
        );
        assert_eq!(target.clone().canonical(Protocol::OpenAi), target);
        let bare: Target = "gemini/models/".parse().expect("parses");
        assert_eq!(bare.clone().canonical(Protocol::Gemini), bare);
    }

    #[test]
    fn malformed_targets_say_what_is_missing() {
        assert_eq!("gpt-4o".parse::<Target>(), Err(TargetError::NoModel("gpt-4o".into())));
        assert_eq!("/gpt-4o".parse::<Target>(), Err(TargetError::NoProvider("/gpt-4o".into())));
        assert_eq!("groq/".parse::<Target>(), Err(TargetError::NoModel("groq/".into())));
    }
}
