//! The one embedding request and reply every adapter that embeds maps to and from its wire
//! format (OpenAI's `/embeddings`, Gemini's `embedContent`/`batchEmbedContents`, Ollama's
//! `/api/embed`), and the typed refusal of a provider that embeds nothing.

use serde::{Deserialize, Serialize};

use crate::{Credential, ErrorKind, ModelId, ProviderError, ProviderId, RateLimitSnapshot, Usage};

/// Texts to embed, in order; the reply has one vector per input, in the same order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// The texts.
    pub inputs: Vec<String>,
    /// The vectors' length, for models that can shorten them (OpenAI's `dimensions`,
    /// Gemini's `outputDimensionality`, Ollama's `dimensions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Routing tags, as a chat request's (`provider:<id>` pins a provider).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl EmbedRequest {
    /// A request embedding `inputs`.
    pub fn new<S: Into<String>>(inputs: impl IntoIterator<Item = S>) -> Self {
        Self { inputs: inputs.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// The input tokens by the router's estimate: bytes / 4, rounded up, per input. Bytes
    /// overcount non-Latin text, which errs on the safe side; the quota is settled with what
    /// the provider reports.
    pub fn estimated_tokens(&self) -> u32 {
        let tokens: usize = self.inputs.iter().map(|input| input.len().div_ceil(4)).sum();
        u32::try_from(tokens).unwrap_or(u32::MAX)
    }
}

/// The vectors, one per input in the order given, with the input tokens counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The model that answered, as the provider names it (empty when it does not say).
    pub model: String,
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens in `prompt_tokens` (and `total_tokens`); nothing is generated.
    pub usage: Usage,
}

/// A complete embedding answer with what the response said about the key's limits.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedReply {
    /// The answer.
    pub response: EmbedResponse,
    /// The rate-limit headers.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's own request id.
    pub upstream_request_id: Option<String>,
}

/// One embedding attempt's inputs: what to embed, with which model, with which key.
#[derive(Clone, Copy, Debug)]
pub struct EmbedCall<'a> {
    /// The request.
    pub request: &'a EmbedRequest,
    /// The provider's model name.
    pub model: &'a ModelId,
    /// The key; `None` for a provider that needs none.
    pub credential: Option<&'a Credential>,
}

impl<'a> EmbedCall<'a> {
    /// An embedding call of `request` on `model` with `credential`.
    pub fn new(
        request: &'a EmbedRequest,
        model: &'a ModelId,
        credential: Option<&'a Credential>,
    ) -> Self {
        Self { request, model, credential }
    }
}

/// The answer of a provider that embeds nothing: a [`ErrorKind::ModelNotFound`] for the
/// call's model, so the router rules this target out and tries the next model, and the key
/// is not blamed (its quota, state and circuit are untouched).
pub fn embeddings_unsupported(provider: &ProviderId, call: &EmbedCall<'_>) -> ProviderError {
    let message = format!("provider {provider} does not serve embeddings");
    ProviderError::new(ErrorKind::ModelNotFound, provider.clone(), message)
        .for_attempt(call.model, call.credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_bytes_over_four_per_input() {
        let request = EmbedRequest::new(["abcd", "abcde", ""]);
        assert_eq!(request.estimated_tokens(), 1 + 2);
    }

    #[test]
    fn unsupported_is_a_model_problem_not_the_keys() {
        let request = EmbedRequest::new(["x"]);
        let model = ModelId::new("claude-x");
        let credential = Credential::new("a-1", "sk-ant-SECRET");
        let call = EmbedCall::new(&request, &model, Some(&credential));
        let error = embeddings_unsupported(&ProviderId::new("anthropic"), &call);
        assert_eq!(error.kind, ErrorKind::ModelNotFound);
        assert!(!error.kind.is_key_problem());
        assert_eq!(error.model, Some(model));
        assert!(!format!("{error:?}{error}").contains("SECRET"));
    }
}
