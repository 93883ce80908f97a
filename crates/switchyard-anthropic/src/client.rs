//! The [`Provider`] over HTTP: `POST /v1/messages` (plain and streamed) and `GET /v1/models`.
//!
//! Every failure leaves here as a [`ProviderError`] naming the provider, key id and model,
//! with Anthropic's message passed through [`Credential::redact`]: an echoed key never
//! reaches an error.

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use switchyard_core::http::{
    Adapter, Attempt, ClientSettings, Dialect, ErrorReport, Limits, Wire, endpoints,
};
use switchyard_core::{
    Call, ChatReply, ChatStream, Credential, ModelId, ModelInfo, Protocol, ProviderError,
    ProviderId, RateLimitSnapshot,
};

use crate::AnthropicError;
use crate::config::AnthropicConfig;
use crate::decode::{StreamDecoder, decode_response};
use crate::encode::encode_request;
use crate::error::{error_from_response, rate_limits_from_headers};
use crate::wire::ModelsPage;

/// An Anthropic Messages upstream: the shared [`Adapter`] speaking [`Messages`].
pub type Anthropic = Adapter<Messages>;

/// The Messages dialect: its endpoints and version header, checked once.
#[derive(Clone, Debug)]
pub struct Messages {
    messages_url: reqwest::Url,
    models_url: reqwest::Url,
    version: HeaderValue,
}

// ProviderError is what the Provider trait returns; boxing it in the request builders would
// only unbox it again.
#[expect(clippy::result_large_err, reason = "the Provider trait's error, returned as it is")]
impl Messages {
    /// A request to `url` with the key and version headers.
    fn request(
        &self,
        adapter: &Anthropic,
        method: reqwest::Method,
        url: &reqwest::Url,
        attempt: &Attempt,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert("x-api-key", attempt.key_header("")?);
        headers.insert("anthropic-version", self.version.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(adapter.upstream().http().request(method, url.clone()).headers(headers))
    }

    /// The encoded call: its attempt, its request, and the tool that carries a JSON answer.
    fn post(
        &self,
        adapter: &Anthropic,
        call: &Call<'_>,
        stream: bool,
    ) -> Result<(Attempt, reqwest::RequestBuilder, Option<String>), ProviderError> {
        let attempt = adapter.attempt(call.model, call.credential);
        let request = self.request(adapter, reqwest::Method::POST, &self.messages_url, &attempt)?;
        let max_tokens = adapter.config().default_max_tokens;
        let encoded = encode_request(call.request, call.model.as_str(), max_tokens, stream)
            .map_err(|error| attempt.error(error))?;
        Ok((attempt, request.body(encoded.body.to_string()), encoded.answer_tool))
    }
}

/// How Anthropic reports limits and failures.
struct Reports;

impl Wire for Reports {
    fn rate_limits(&self, headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitSnapshot {
        rate_limits_from_headers(headers, now)
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        headers.get("request-id").and_then(|value| value.to_str().ok()).map(str::to_owned)
    }

    fn error(&self, attempt: &Attempt, report: ErrorReport<'_>) -> ProviderError {
        let ErrorReport { status, body, rate_limits, request_id, now } = report;
        let mut error = error_from_response(attempt.provider(), status, body, rate_limits, now);
        error.upstream_request_id = error.upstream_request_id.or(request_id);
        error
    }
}

impl Dialect for Messages {
    type Config = AnthropicConfig;
    type Error = AnthropicError;
    const PROTOCOL: Protocol = Protocol::Anthropic;

    /// Refuses a base URL that is not http(s), or a version that is no header value.
    fn prepare(config: &AnthropicConfig) -> Result<Self, AnthropicError> {
        let urls = endpoints(&config.base_url, ["/v1/messages", "/v1/models"]);
        let version = HeaderValue::from_str(&config.version).ok();
        let (Some([messages_url, models_url]), Some(version)) = (urls, version) else {
            return Err(AnthropicError::BaseUrl {
                id: config.id.clone(),
                url: config.base_url.clone(),
            });
        };
        Ok(Self { messages_url, models_url, version })
    }

    fn id(config: &AnthropicConfig) -> &ProviderId {
        &config.id
    }

    fn client_settings(config: &AnthropicConfig) -> ClientSettings {
        ClientSettings { connect_timeout: config.connect_timeout, ..ClientSettings::default() }
    }

    fn limits(config: &AnthropicConfig) -> Limits {
        let (timeout, body, line) = (config.timeout, config.max_body_bytes, config.max_line_bytes);
        Limits { timeout, stream_idle_timeout: timeout, max_body_bytes: body, max_line_bytes: line }
    }

    fn client_error(_: &AnthropicConfig, error: reqwest::Error) -> AnthropicError {
        AnthropicError::Client(error)
    }

    async fn chat(&self, adapter: &Anthropic, call: Call<'_>) -> Result<ChatReply, ProviderError> {
        let (attempt, request, answer_tool) = self.post(adapter, &call, false)?;
        let fetched = adapter.upstream().fetch(request, &attempt, &Reports).await?;
        let response = decode_response(&fetched.body, answer_tool.as_deref())
            .map_err(|error| attempt.error(error))?;
        Ok(fetched.reply(response))
    }

    async fn chat_stream(
        &self,
        adapter: &Anthropic,
        call: Call<'_>,
    ) -> Result<ChatStream, ProviderError> {
        let (attempt, request, answer_tool) = self.post(adapter, &call, true)?;
        let answer = adapter.upstream().open(request, &attempt, &Reports).await?;
        Ok(adapter.upstream().sse(answer, StreamDecoder::new(answer_tool), attempt))
    }

    async fn list_models(
        &self,
        adapter: &Anthropic,
        credential: Option<&Credential>,
    ) -> Result<Vec<ModelInfo>, ProviderError> {
        let attempt = adapter.attempt(&ModelId::new(""), credential);
        let mut models = Vec::new();
        let mut after_id: Option<String> = None;
        // Anthropic lists fewer than a hundred models; the bound only stops a server that
        // keeps saying `has_more`.
        for _ in 0..50 {
            let mut query = vec![("limit", "1000".to_owned())];
            if let Some(after_id) = &after_id {
                query.push(("after_id", after_id.clone()));
            }
            let request =
                self.request(adapter, reqwest::Method::GET, &self.models_url, &attempt)?;
            let fetched =
                adapter.upstream().fetch(request.query(&query), &attempt, &Reports).await?;
            let page: ModelsPage = serde_json::from_slice(&fetched.body).map_err(|source| {
                attempt.error(AnthropicError::Malformed { what: "model list", source })
            })?;
            models.extend(page.data.into_iter().map(|model| ModelInfo {
                id: ModelId::new(model.id),
                owned_by: Some("anthropic".into()),
                context_window: model.max_input_tokens,
            }));
            match (page.has_more, page.last_id) {
                (true, Some(last_id)) => after_id = Some(last_id),
                (true, None) | (false, _) => break,
            }
        }
        Ok(models)
    }
}
