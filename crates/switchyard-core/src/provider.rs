//! The boundary every adapter implements: one chat call, one streamed chat call and a model
//! listing, given a request, a model and a credential; and an embedding call, which a
//! provider that embeds nothing answers with a typed refusal by default.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::embed::embeddings_unsupported;
use crate::{
    ChatChunk, ChatRequest, ChatResponse, Credential, EmbedCall, EmbedReply, ModelId,
    ProviderError, ProviderId, RateLimitSnapshot,
};

/// The wire protocol an adapter speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenAI Chat Completions (also Groq, Mistral, OpenRouter, vLLM, llama.cpp, LM Studio,
    /// Ollama's `/v1`).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// Ollama's native `/api/chat`.
    Ollama,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Ollama => "ollama",
        })
    }
}

/// One attempt's inputs: what to ask, of which model, with which key.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The request.
    pub request: &'a ChatRequest,
    /// The provider's model name.
    pub model: &'a ModelId,
    /// The key; `None` for a provider that needs none (a local Ollama).
    pub credential: Option<&'a Credential>,
}

impl<'a> Call<'a> {
    /// A call of `request` on `model` with `credential`.
    pub fn new(
        request: &'a ChatRequest,
        model: &'a ModelId,
        credential: Option<&'a Credential>,
    ) -> Self {
        Self { request, model, credential }
    }
}

/// A complete answer with what the response said about the key's limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    /// The answer.
    pub response: ChatResponse,
    /// The rate-limit headers.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's own request id (`x-request-id`, `request-id`), for logs.
    pub upstream_request_id: Option<String>,
}

/// The chunks of a streamed answer. A failure after the first chunk arrives as an `Err` item
/// (a cut connection, an error event, garbage), after which the stream ends.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// A streamed answer whose headers have arrived.
pub struct ChatStream {
    /// The rate-limit headers of the response.
    pub rate_limits: RateLimitSnapshot,
    /// The upstream's own request id.
    pub upstream_request_id: Option<String>,
    /// The chunks.
    pub chunks: ChunkStream,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("rate_limits", &self.rate_limits)
            .field("upstream_request_id", &self.upstream_request_id)
            .finish_non_exhaustive()
    }
}

/// A model a provider lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name, as calls name it.
    pub id: ModelId,
    /// Who owns it, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Its context window in tokens, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
}

/// One configured upstream. The facade holds `Arc<dyn Provider>`.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's configured name.
    fn id(&self) -> &ProviderId;

    /// The wire protocol it speaks.
    fn protocol(&self) -> Protocol;

    /// Sends one chat request and waits for the whole answer.
    ///
    /// # Errors
    /// Any failure, classified: see [`ProviderError`].
    async fn chat(&self, call: Call<'_>) -> Result<ChatReply, ProviderError>;

    /// Sends one chat request and returns the answer's chunks as they arrive.
    ///
    /// # Errors
    /// A failure before the first chunk (an error status, a refused connection); later
    /// failures arrive inside the stream.
    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError>;

    /// Lists the models the key may use.
    ///
    /// # Errors
    /// Any failure, classified.
    async fn list_models(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError>;

    /// Embeds the call's texts, one vector per input. A provider that embeds nothing keeps
    /// this default: a [`ModelNotFound`](crate::ErrorKind::ModelNotFound) error, so the router
    /// skips the target without blaming the key.
    ///
    /// # Errors
    /// Any failure, classified.
    async fn embed(&self, call: EmbedCall<'_>) -> Result<EmbedReply, ProviderError> {
        Err(embeddings_unsupported(self.id(), &call))
    }
}

fn _object_safe(_: &dyn Provider) {}
