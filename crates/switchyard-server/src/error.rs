//! Every failure the gateway answers with, mapped to HTTP in one place: OpenAI's error shape
//! (`{"error": {"message", "type", "code"}}`) with the status an OpenAI SDK maps to the right
//! exception, and the router's typed code in `code`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use switchyard::RouterError;

use crate::wire::WireError;

/// Why the gateway did not answer a request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The router could not serve.
    #[error("{source}")]
    Router {
        /// The router's error.
        #[source]
        source: RouterError,
        /// The gateway's clock now, to turn a reset time into `retry-after` seconds.
        now: DateTime<Utc>,
    },
    /// The body is not a chat completion request.
    #[error("{0}")]
    BadRequest(WireError),
    /// The body is not sent as `application/json`.
    #[error("unsupported content type: send the body as `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The body did not arrive within the body-read timeout.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The body is larger than the gateway accepts.
    #[error("the request body is larger than {limit_bytes} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// The body could not be read.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// A gateway without client tokens was reached under a host name that is not its own.
    #[error(
        "this gateway answers requests for its own host name only (set [server] allowed_hosts or client tokens)"
    )]
    HostNotAllowed,
    /// No or a wrong client token.
    #[error("missing or invalid gateway token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The client's token does not cover this route.
    #[error("client {client} may not use route {route}")]
    RouteNotAllowed {
        /// The client's name.
        client: String,
        /// The route asked for.
        route: String,
    },
    /// The client made its requests of the minute.
    #[error("client {client} is over its limit of {limit} requests a minute")]
    ClientRateLimited {
        /// The client's name.
        client: String,
        /// Its limit.
        limit: u32,
        /// When its oldest request of the minute leaves the window.
        retry_after: Duration,
    },
    /// The client spent its budget of the day.
    #[error(
        "client {client} spent its daily budget (${spent:.4} of ${budget:.4}); it starts again at midnight UTC"
    )]
    ClientBudgetExceeded {
        /// The client's name.
        client: String,
        /// Its budget, in dollars.
        budget: f64,
        /// What it spent today.
        spent: f64,
        /// Until the next UTC midnight.
        retry_after: Duration,
    },
    /// The admin API is closed: no admin token is configured.
    #[error("the admin API is disabled: set [server] admin_token to open it")]
    AdminDisabled,
    /// No or a wrong admin token.
    #[error("missing or invalid admin token: send `Authorization: Bearer <admin token>`")]
    AdminUnauthorized,
    /// No admin route has this path.
    #[error("no admin route {0}; see docs/gateway.md")]
    UnknownAdminRoute(String),
    /// No configured key has this id.
    #[error("no key {0} is configured")]
    UnknownKey(String),
    /// The id names keys of several providers.
    #[error("key id {id} is used by several providers ({providers}); name it as provider/key")]
    AmbiguousKey {
        /// The id given.
        id: String,
        /// The providers that have it.
        providers: String,
    },
    /// The router could not do what the operator asked.
    #[error("{0}")]
    Admin(#[source] switchyard::AdminError),
    /// Feedback naming a model no route or declaration of the provider has.
    #[error("no model {model} is configured for provider {provider}")]
    UnknownModel {
        /// The provider named.
        provider: String,
        /// The model named.
        model: String,
    },
    /// The audit log is off: the gateway has no state file.
    #[error("the audit log is disabled: give [state] a path")]
    AuditDisabled,
    /// The audit log could not be read.
    #[error("the audit log cannot be read")]
    Audit(#[source] switchyard_store::StoreError),
    /// Feedback for a request the router does not remember.
    #[error("no recent request {0:?}")]
    UnknownRequest(String),
    /// Feedback outside 0..=1.
    #[error("quality {0} is outside 0..=1")]
    InvalidQuality(f64),
    /// An admin query or body that cannot be used.
    #[error("{0}")]
    InvalidInput(String),
    /// Analytics are off (no store).
    #[error("analytics are disabled: give [state] a path (and leave [analytics] enabled)")]
    AnalyticsDisabled,
    /// The analytics store failed.
    #[error("the analytics store failed")]
    Analytics(#[source] switchyard_store::StoreError),
    /// This gateway cannot reload (it was not started from a configuration file).
    #[error("this gateway has no configuration to reload")]
    ReloadUnavailable,
    /// The new configuration is refused; the running one keeps serving.
    #[error("configuration refused, the running one stays: {0}")]
    ReloadFailed(String),
}

impl From<WireError> for ServerError {
    fn from(error: WireError) -> Self {
        Self::BadRequest(error)
    }
}

impl ServerError {
    /// The typed code sent in the body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Router { source, .. } => source.code(),
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::BodyTimeout => "BODY_READ_TIMEOUT",
            Self::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            Self::BodyUnreadable => "BODY_UNREADABLE",
            Self::HostNotAllowed => "HOST_NOT_ALLOWED",
            Self::Unauthorized => "INVALID_GATEWAY_TOKEN",
            Self::RouteNotAllowed { .. } => "ROUTE_NOT_ALLOWED",
            Self::ClientRateLimited { .. } => "CLIENT_RATE_LIMITED",
            Self::ClientBudgetExceeded { .. } => "CLIENT_BUDGET_EXCEEDED",
            Self::AdminDisabled => "ADMIN_DISABLED",
            Self::AdminUnauthorized => "ADMIN_UNAUTHORIZED",
            Self::UnknownAdminRoute(_) => "UNKNOWN_ADMIN_ROUTE",
            Self::UnknownKey(_) => "UNKNOWN_KEY",
            Self::AmbiguousKey { .. } => "AMBIGUOUS_KEY",
            Self::Admin(switchyard::AdminError::UnknownKey { .. }) => "UNKNOWN_KEY",
            Self::Admin(switchyard::AdminError::Ledger { .. }) => "QUOTA_BACKEND",
            Self::Admin(switchyard::AdminError::UnknownProvider(_)) => "UNKNOWN_PROVIDER",
            Self::UnknownRequest(_) => "UNKNOWN_REQUEST",
            Self::UnknownModel { .. } => "UNKNOWN_MODEL",
            Self::AuditDisabled => "AUDIT_DISABLED",
            Self::Audit(_) => "AUDIT_FAILED",
            Self::InvalidQuality(_) => "INVALID_QUALITY",
            Self::InvalidInput(_) => "INVALID_INPUT",
            Self::AnalyticsDisabled => "ANALYTICS_DISABLED",
            Self::Analytics(_) => "ANALYTICS_FAILED",
            Self::ReloadUnavailable => "RELOAD_UNAVAILABLE",
            Self::ReloadFailed(_) => "RELOAD_FAILED",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Router { source, .. } => match source {
                RouterError::QuotaExceeded { .. }
                | RouterError::PartialQuota { .. }
                | RouterError::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
                RouterError::InvalidKeys { .. }
                | RouterError::QuotaBackend(_)
                | RouterError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
                RouterError::AllProvidersFailed { .. } => StatusCode::BAD_GATEWAY,
                // OpenAI answers a refused prompt with 400 as well.
                RouterError::BadRequest { .. } | RouterError::ContentFiltered { .. } => {
                    StatusCode::BAD_REQUEST
                }
                RouterError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
                // What OpenAI answers for a model that does not exist.
                RouterError::UnknownModel { .. } => StatusCode::NOT_FOUND,
            },
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HostNotAllowed => StatusCode::FORBIDDEN,
            Self::BadRequest(_)
            | Self::BodyUnreadable
            | Self::AmbiguousKey { .. }
            | Self::InvalidQuality(_)
            | Self::InvalidInput(_)
            | Self::ReloadFailed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            Self::RouteNotAllowed { .. } => StatusCode::FORBIDDEN,
            Self::ClientRateLimited { .. } | Self::ClientBudgetExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::AdminDisabled
            | Self::UnknownAdminRoute(_)
            | Self::UnknownKey(_)
            | Self::UnknownRequest(_)
            | Self::UnknownModel { .. }
            | Self::AuditDisabled
            | Self::AnalyticsDisabled
            | Self::ReloadUnavailable => StatusCode::NOT_FOUND,
            Self::Admin(switchyard::AdminError::UnknownKey { .. }) => StatusCode::NOT_FOUND,
            Self::Admin(switchyard::AdminError::Ledger { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Admin(switchyard::AdminError::UnknownProvider(_)) => StatusCode::NOT_FOUND,
            Self::Analytics(_) | Self::Audit(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// Whether the router waited for a candidate to free (bounded wait) before giving up.
    pub fn already_waited(&self) -> bool {
        let Self::Router { source, .. } = self else { return false };
        source.trace().is_some_and(|trace| !trace.waited.is_zero())
    }

    /// Whole seconds until the router expects a retry to succeed, at least 1.
    pub fn retry_after_secs(&self) -> Option<i64> {
        if let Self::ClientRateLimited { retry_after, .. }
        | Self::ClientBudgetExceeded { retry_after, .. } = self
        {
            let secs = i64::try_from(retry_after.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
            return Some(secs.max(1));
        }
        let Self::Router { source, now } = self else { return None };
        let at = source.retry_at()?;
        let millis = (at - *now).num_milliseconds().max(0);
        Some(((millis + 999) / 1000).max(1))
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        // Every variant's message is safe to send: errors name keys by id and fingerprint
        // only, and a client's own mistake is answered in full.
        let body = json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": null,
                "code": self.code(),
            }
        });
        self.respond_with(body)
    }
}

impl ServerError {
    /// The failure answered with `body` (a request format's error shape), its status and
    /// headers (`retry-after`, `x-should-retry`), logged when it is the gateway's.
    pub(crate) fn respond_with(self, body: serde_json::Value) -> Response {
        let status = self.status();
        if status.is_server_error() {
            if let Self::Analytics(source) = &self {
                tracing::error!(code = self.code(), error = %source, "admin request failed");
            } else {
                tracing::warn!(code = self.code(), error = %self, "request failed");
            }
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.already_waited() {
            // OpenAI's SDKs read this header: the gateway has waited for a key already, so
            // their own retries would only multiply the load.
            response.headers_mut().insert(
                HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static("false"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::Trace;

    #[test]
    fn quota_exceeded_is_429_with_retry_after_rounded_up() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").expect("date").to_utc();
        let reset = now + chrono::Duration::milliseconds(2_500);
        let error = ServerError::Router {
            source: RouterError::QuotaExceeded {
                route: "r".into(),
                n_keys: 2,
                earliest_reset: Some(reset),
                trace: Box::default(),
            },
            now,
        };
        assert_eq!(error.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.retry_after_secs(), Some(3));
        assert!(!error.already_waited());
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert!(!response.headers().contains_key("x-should-retry"));
    }

    #[test]
    fn a_router_that_waited_tells_sdks_not_to_retry() {
        let trace = Trace { waited: std::time::Duration::from_secs(2), ..Trace::default() };
        let error = ServerError::Router {
            source: RouterError::PartialQuota {
                route: "r".into(),
                n_busy: 1,
                n_keys: 2,
                next_free: None,
                trace: Box::new(trace),
            },
            now: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert!(error.already_waited());
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["x-should-retry"], "false");
        assert!(!response.headers().contains_key(header::RETRY_AFTER), "no reset known");
    }

    #[test]
    fn statuses_follow_the_issue() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let cases = [
            (
                RouterError::UnknownModel { name: "x".into(), valid: Vec::new(), n_valid: 0 },
                StatusCode::NOT_FOUND,
            ),
            (
                RouterError::InvalidKeys { route: "r".into(), n_keys: 1, trace: Box::default() },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                RouterError::AllProvidersFailed { route: "r".into(), trace: Box::default() },
                StatusCode::BAD_GATEWAY,
            ),
            (
                RouterError::DeadlineExceeded {
                    route: "r".into(),
                    after: std::time::Duration::from_secs(1),
                    trace: Box::default(),
                },
                StatusCode::GATEWAY_TIMEOUT,
            ),
        ];
        for (source, status) in cases {
            let error = ServerError::Router { source, now };
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.retry_after_secs(), None);
        }
        assert_eq!(ServerError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
    }
}
