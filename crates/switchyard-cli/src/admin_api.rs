//! The client side of the gateway's admin API (`docs/cli.md`): a small HTTP client that
//! sends the admin token. The JSON `status`, `stats` and the demo read is the gateway's own
//! types, [`switchyard_server::api`], so the two sides cannot drift apart.

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

    /// `DELETE path`, the answer read as `T`.
    ///
    /// # Errors
    /// [`AdminApiError`], by what went wrong.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, AdminApiError> {
        let url = format!("{}{path}", self.base);
        let request = self.authorized(self.http.delete(&url));
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

/// The answer of `POST /admin/keys/reset`.
#[derive(Debug, Deserialize)]
pub(crate) struct ResetView {
    /// The keys reset.
    pub(crate) reset: Vec<ResetRow>,
}

/// One key reset: by id and fingerprint, never its secret.
#[derive(Debug, Deserialize)]
pub(crate) struct ResetRow {
    /// The provider.
    pub(crate) provider: String,
    /// The key's id.
    pub(crate) key: String,
    /// The key's fingerprint, when the gateway knows it.
    #[serde(default)]
    pub(crate) fingerprint: Option<String>,
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
