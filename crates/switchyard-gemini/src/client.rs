//! The [`Provider`] over HTTP: `models/{model}:generateContent`,
//! `models/{model}:streamGenerateContent?alt=sse`, the `models` listing, and embeddings
//! (`:embedContent`, `:batchEmbedContents`).
//!
//! The key travels in the `x-goog-api-key` header, never in the URL, so no URL this adapter
//! builds (and no transport error quoting one) holds a secret. Gemini's messages are passed
//! through [`Credential::redact`] before they become errors.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use switchyard_core::http::{Adapter, Attempt, ClientSettings, Dialect, Limits, endpoints};
use switchyard_core::retry_wire::RetryAfterWire;
use switchyard_core::{
    Call, ChatReply, ChatStream, Credential, EmbedCall, EmbedReply, EmbedResponse, ErrorKind,
    ModelId, ModelInfo, Protocol, ProviderError, ProviderId, Usage,
};

use crate::GeminiError;
use crate::config::GeminiConfig;
use crate::decode::{StreamDecoder, decode_response};
use crate::embed::{MAX_BATCH, decode_embed_response, encode_embed_request};
use crate::encode::encode_request;
use crate::error::error_from_response;
use crate::wire::ModelsPage;

/// A Gemini (Generative Language API, API-key auth) upstream: the shared [`Adapter`]
/// speaking [`GenerateContent`].
pub type Gemini = Adapter<GenerateContent>;

/// The `generateContent` dialect: its API root, checked once.
#[derive(Clone, Debug)]
pub struct GenerateContent {
    /// `{base}/{version}/`, which model paths are joined to.
    api_url: String,
    models_url: reqwest::Url,
}

// ProviderError is what the Provider trait returns; boxing it in the request builders would
// only unbox it again.
#[expect(clippy::result_large_err, reason = "the Provider trait's error, returned as it is")]
impl GenerateContent {
    /// A request to `url` with the key header.
    fn request(
        adapter: &Gemini,
        method: reqwest::Method,
        url: &str,
        attempt: &Attempt,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("x-goog-api-key", attempt.key_header("")?);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(adapter.upstream().http().request(method, url).headers(headers))
    }

    /// `POST models/{model}:{method}` with the encoded request; a model given as `models/x`
    /// is not doubled.
    fn post(
        &self,
        adapter: &Gemini,
        call: &Call<'_>,
        method: &str,
    ) -> Result<(Attempt, reqwest::RequestBuilder), ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let model = call.model.as_str();
        let model = model.strip_prefix("models/").unwrap_or(model);
        let url = format!("{}models/{model}:{method}", self.api_url);
        let request = Self::request(adapter, reqwest::Method::POST, &url, &attempt)?;
        let body = encode_request(call.request).map_err(|error| attempt.error(error))?;
        Ok((attempt, request.body(body.to_string())))
    }
}

/// How Gemini reports failures: it sends no rate-limit headers of its own, but a proxy in
/// front may send `retry-after`.
const REPORTS: RetryAfterWire = RetryAfterWire::new(error_from_response);

impl Dialect for GenerateContent {
    type Config = GeminiConfig;
    type Error = GeminiError;
    const PROTOCOL: Protocol = Protocol::Gemini;

    /// Refuses a base URL that is not http(s).
    fn prepare(config: &GeminiConfig) -> Result<Self, GeminiError> {
        let version = config.api_version.trim_matches('/');
        let api_url = format!("{}/{version}/", config.base_url.trim_end_matches('/'));
        match endpoints(&api_url, ["/models"]) {
            Some([models_url]) => Ok(Self { api_url, models_url }),
            None => {
                Err(GeminiError::BaseUrl { id: config.id.clone(), url: config.base_url.clone() })
            }
        }
    }

    fn id(config: &GeminiConfig) -> &ProviderId {
        &config.id
    }

    fn client_settings(config: &GeminiConfig) -> ClientSettings {
        ClientSettings { connect_timeout: config.connect_timeout, ..ClientSettings::default() }
    }

    fn limits(config: &GeminiConfig) -> Limits {
        Limits {
            timeout: config.timeout,
            // A silent stream is bounded like a whole call: thinking models pause long.
            stream_idle_timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
            max_line_bytes: config.max_line_bytes,
        }
    }

    fn client_error(_: &GeminiConfig, error: reqwest::Error) -> GeminiError {
        GeminiError::Client(error)
    }

    async fn chat(&self, adapter: &Gemini, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, "generateContent")?;
        let fetched = adapter.upstream().fetch(request, &attempt, &REPORTS).await?;
        let response = decode_response(&fetched.body).map_err(|error| attempt.error(error))?;
        Ok(fetched.reply(response))
    }

    async fn chat_stream(
        &self,
        adapter: &Gemini,
        call: Call<'_>,
    ) -> Result<ChatStream, ProviderError> {
        let (attempt, request) = self.post(adapter, &call, "streamGenerateContent")?;
        let request = request.query(&[("alt", "sse")]);
        let answer = adapter.upstream().open(request, &attempt, &REPORTS).await?;
        Ok(adapter.upstream().sse(answer, StreamDecoder::new(), attempt))
    }

    /// `models/{model}:embedContent` for one input, `:batchEmbedContents` for several.
    async fn embed(
        &self,
        adapter: &Gemini,
        call: EmbedCall<'_>,
    ) -> Result<EmbedReply, ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let model = call.model.as_str();
        let model = model.strip_prefix("models/").unwrap_or(model);
        let request = call.request;
        let mut vectors = Vec::with_capacity(request.inputs.len());
        let mut last = None;
        // NOTE: a request of more than MAX_BATCH texts makes several upstream calls on the
        // one admission: Gemini counts each against the key's requests a minute.
        for inputs in request.inputs.chunks(MAX_BATCH) {
            let (method, body) = encode_embed_request(inputs, request.dimensions, model);
            let url = format!("{}models/{model}:{method}", self.api_url);
            let http = Self::request(adapter, reqwest::Method::POST, &url, &attempt)?;
            let fetched =
                adapter.upstream().fetch(http.body(body.to_string()), &attempt, &REPORTS).await?;
            match decode_embed_response(&fetched.body, method, inputs.len()) {
                Ok(batch) => vectors.extend(batch),
                Err((kind, message)) => return Err(fetched.unreadable(&attempt, kind, message)),
            }
            last = Some(fetched);
        }
        let fetched =
            last.ok_or_else(|| attempt.fail(ErrorKind::BadRequest, "no input to embed"))?;
        let usage = Usage::new(request.estimated_tokens(), 0);
        Ok(fetched.embed_reply(EmbedResponse { model: model.to_owned(), vectors, usage }))
    }

    async fn list_models(
        &self,
        adapter: &Gemini,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = adapter.attempt(&ModelId::new(""), credential);
        let mut models = Vec::new();
        let mut page_token: Option<String> = None;
        // Gemini lists some fifty models; the bound only stops a server that keeps paging.
        for _ in 0..50 {
            let mut query = vec![("pageSize", "1000".to_owned())];
            if let Some(page_token) = &page_token {
                query.push(("pageToken", page_token.clone()));
            }
            let url = self.models_url.as_str();
            let request = Self::request(adapter, reqwest::Method::GET, url, &attempt)?;
            let fetched =
                adapter.upstream().fetch(request.query(&query), &attempt, &REPORTS).await?;
            let page: ModelsPage = serde_json::from_slice(&fetched.body).map_err(|source| {
                attempt.error(GeminiError::Malformed { what: "model list", source })
            })?;
            models.extend(
                page.models
                    .into_iter()
                    .filter(|model| {
                        model.supported_generation_methods.iter().any(|m| m == "generateContent")
                    })
                    .map(|model| ModelInfo {
                        id: ModelId::new(model.name.strip_prefix("models/").unwrap_or(&model.name)),
                        owned_by: Some("google".into()),
                        context_window: model.input_token_limit,
                    }),
            );
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) => page_token = Some(token),
                None => break,
            }
        }
        Ok(models)
    }
}
