//! The client side of the gateway's admin API (`/work/notes/admin-api.md`, `docs/cli.md`):
//! the JSON `status`, `stats` and the demo read, and a small HTTP client that sends the
//! admin token. Fields the gateway may leave out default, so a newer gateway with more
//! fields still reads.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A bearer token given on the command line or in the environment: a secret, so its
/// `Debug` (and the parsed arguments' `Debug`) never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    /// The token itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

/// Why an admin call failed; `status` exits 2 with this on standard error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminApiError {
    /// Nothing answered at the URL.
    #[error("cannot reach the gateway at {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// 401: the token is missing or wrong.
    #[error(
        "the gateway refused the admin token (401 {code}); pass --admin-token or set SWITCHYARD_ADMIN_TOKEN"
    )]
    Unauthorized {
        /// The error code the gateway gave.
        code: String,
    },
    /// 404 `ADMIN_DISABLED`: the gateway has no admin token configured.
    #[error("the gateway's admin API is off: set [server] admin_token in its configuration")]
    Disabled,
    /// Any other non-success answer.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The gateway's error message, or the body.
        message: String,
    },
    /// The body is not the JSON the contract describes.
    #[error("{url} answered JSON this version cannot read: {source}")]
    Decode {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// Calls the admin API of one gateway.
#[derive(Clone)]
pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<Token>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: only whether one is set.
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the gateway at `base` (`http://127.0.0.1:8080`), sending `token`.
    pub(crate) fn new(base: &str, token: Option<Token>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("invariant: a client without custom TLS settings builds");
        Self { http, base: base.trim_end_matches('/').to_owned(), token }
    }

    /// `GET path` read as `T`.
    ///
    /// # Errors
    /// [`AdminApiError`], by what went wrong.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AdminApiError> {
        let url = format!("{}{path}", self.base);
        let request = self.authorized(self.http.get(&url));
        Self::read(url, request).await
    }

    /// `POST path` with a JSON body, the answer read as `T`.
    ///
    /// # Errors
    /// [`AdminApiError`], by what went wrong.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, AdminApiError> {
        let url = format!("{}{path}", self.base);
        let request = self.authorized(self.http.post(&url).json(body));
        Self::read(url, request).await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn read<T: DeserializeOwned>(
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<T, AdminApiError> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(source) => return Err(AdminApiError::Unreachable { url, source }),
        };
        let status = response.status();
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map_err(|source| AdminApiError::Decode { url, source });
        }
        let text = response.text().await.unwrap_or_default();
        let error: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let code = error.as_ref().map(|body| body.error.code.clone()).unwrap_or_default();
        let message = error.map_or(text, |body| body.error.message);
        match status.as_u16() {
            401 => Err(AdminApiError::Unauthorized { code }),
            404 if code == "ADMIN_DISABLED" => Err(AdminApiError::Disabled),
            other => Err(AdminApiError::Status { url, status: other, message }),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: String,
}

/// `GET /admin/status`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StatusView {
    /// When the view was made.
    pub(crate) generated_at: String,
    /// `healthy`, `degraded` or `down`.
    pub(crate) health: String,
    /// Each route and whether it can serve.
    pub(crate) routes: Vec<RouteView>,
    /// Each provider with its keys.
    pub(crate) providers: Vec<ProviderView>,
    /// What needs attention.
    pub(crate) alerts: Vec<AlertView>,
}

/// One route of the status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RouteView {
    /// Its name.
    pub(crate) name: String,
    /// Whether some candidate can serve now.
    pub(crate) can_serve: bool,
    /// Its candidates.
    pub(crate) candidates: u32,
    /// Those available now.
    pub(crate) available: u32,
}

/// One provider of the status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProviderView {
    /// Its name.
    pub(crate) name: String,
    /// `AVAILABLE`, `PARTIAL_QUOTA`, ...
    pub(crate) status: String,
    /// The zone its resets are counted in.
    pub(crate) time_zone: Option<String>,
    /// Its keys.
    pub(crate) keys: Vec<KeyView>,
}

/// One key of the status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KeyView {
    /// Its id.
    pub(crate) id: String,
    /// Its fingerprint.
    pub(crate) fingerprint: String,
    /// The worst state over its models.
    pub(crate) state: String,
    /// Why, when not available.
    pub(crate) reason: Option<String>,
    /// When it comes back, in the provider's zone.
    pub(crate) until: Option<String>,
    /// The same instant in UTC.
    pub(crate) until_utc: Option<String>,
    /// Its models.
    pub(crate) models: Vec<ModelView>,
}

/// One model of one key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ModelView {
    /// The model.
    pub(crate) model: String,
    /// Its state.
    pub(crate) state: String,
    /// Why, when not available.
    pub(crate) reason: Option<String>,
    /// When it comes back, in the provider's zone.
    pub(crate) until: Option<String>,
    /// The circuit breaker: `closed`, `open`, `half_open`.
    pub(crate) circuit: Option<String>,
    /// The learned score.
    pub(crate) score: Option<f64>,
    /// Its quota windows.
    pub(crate) limits: Vec<LimitView>,
}

/// One quota window of one key and model.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LimitView {
    /// `requests/day`, ...
    pub(crate) name: String,
    /// Spent in the window.
    pub(crate) used: Option<u64>,
    /// The window's size.
    pub(crate) limit: Option<u64>,
    /// Left.
    pub(crate) remaining: Option<u64>,
    /// When it resets, in the provider's zone.
    pub(crate) resets_at: Option<String>,
}

/// One alert of the status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AlertView {
    /// `provider_down`, `key_low_success`, `no_route`.
    pub(crate) kind: String,
    /// In words.
    pub(crate) message: String,
}

/// `GET /admin/analytics/usage`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UsageView {
    /// The window's start.
    pub(crate) start: String,
    /// Its end.
    pub(crate) end: String,
    /// Per key.
    pub(crate) keys: Vec<KeyUsageView>,
    /// Per named client.
    pub(crate) clients: Vec<ClientUsageView>,
}

/// One key's usage.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KeyUsageView {
    /// The provider.
    pub(crate) provider: String,
    /// The key id.
    pub(crate) key: String,
    /// Attempts made with it.
    pub(crate) requests: u64,
    /// Of which served.
    pub(crate) successes: u64,
    /// Of which failed.
    pub(crate) failures: u64,
    /// Mean latency.
    pub(crate) avg_latency_ms: Option<f64>,
    /// 429s and spent windows.
    pub(crate) quota_errors: u64,
    /// Prompt tokens.
    pub(crate) prompt_tokens: u64,
    /// Completion tokens.
    pub(crate) completion_tokens: u64,
    /// Dollars.
    pub(crate) cost: f64,
}

/// One client's usage.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ClientUsageView {
    /// Its name.
    pub(crate) client: String,
    /// Requests.
    pub(crate) requests: u64,
    /// Served.
    pub(crate) successes: u64,
    /// Dollars.
    pub(crate) cost: f64,
}

/// `GET /admin/analytics/hourly`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HourlyView {
    /// The UTC day.
    pub(crate) date: String,
    /// One row per hour and key.
    pub(crate) hours: Vec<HourView>,
}

/// One hour of one key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HourView {
    /// The hour's start.
    pub(crate) hour: String,
    /// The provider.
    pub(crate) provider: String,
    /// The key.
    pub(crate) key: String,
    /// Attempts.
    pub(crate) requests: u64,
    /// Served.
    pub(crate) successes: u64,
    /// Failed.
    pub(crate) failures: u64,
    /// Mean latency.
    pub(crate) avg_latency_ms: Option<f64>,
}

/// `GET /admin/analytics/errors`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorsView {
    /// The window's start.
    pub(crate) start: String,
    /// Its end.
    pub(crate) end: String,
    /// One row per error class.
    pub(crate) errors: Vec<ErrorClassView>,
}

/// One error class.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorClassView {
    /// `rate_limited`, `invalid_key`, ...
    pub(crate) class: String,
    /// How many.
    pub(crate) count: u64,
    /// `provider/key` of the keys that met it.
    pub(crate) keys: Vec<String>,
}
