//! Ids of the things Switchyard routes between. Each is a cheap-to-clone shared string, so a
//! [`Candidate`] can be copied into traces, events and map keys on the hot path without
//! allocating.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Makes an id from any string.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self::new(id)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(Arc::from(id))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// One configured upstream by its name (`groq`, `gemini`, `local-llama`).
    ProviderId
);
id_type!(
    /// One credential by its id (`groq-2`). The id is safe to log; the secret never is.
    KeyId
);
id_type!(
    /// A provider's model name (`llama-3.3-70b-versatile`, `openai/gpt-oss-120b`).
    ModelId
);

/// One (provider, key, model) triple: the unit that is scored, rate-limited and
/// circuit-broken.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// The upstream.
    pub provider: ProviderId,
    /// The credential used on it.
    pub key: KeyId,
    /// The model asked for.
    pub model: ModelId,
}

impl Candidate {
    /// Builds a candidate from its three parts.
    pub fn new(
        provider: impl Into<ProviderId>,
        key: impl Into<KeyId>,
        model: impl Into<ModelId>,
    ) -> Self {
        Self { provider: provider.into(), key: key.into(), model: model.into() }
    }
}

impl fmt::Display for Candidate {
    /// `provider/model [key]`: the provider is the text before the first `/`, so a model id
    /// that contains slashes stays readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} [{}]", self.provider, self.model, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_display_keeps_slashes_in_model_ids() {
        let candidate = Candidate::new("groq", "groq-2", "openai/gpt-oss-120b");
        assert_eq!(candidate.to_string(), "groq/openai/gpt-oss-120b [groq-2]");
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let json = serde_json::to_string(&Candidate::new("gemini", "g1", "gemini-2.0-flash"))
            .expect("serializes");
        assert_eq!(json, r#"{"provider":"gemini","key":"g1","model":"gemini-2.0-flash"}"#);
    }
}
