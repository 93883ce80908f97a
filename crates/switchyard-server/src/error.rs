//! Every failure the gateway answers with, mapped to HTTP in one place: OpenAI's error shape
//! (`{"error": {"message", "type", "code"}}`) with the status an OpenAI SDK maps to the right
//! exception, and the router's typed code in `code`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
    /// No or a wrong client token.
    #[error("missing or invalid gateway token: send `Authorization: Bearer <token>`")]
    Unauthorized,
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
            Self::Unauthorized => "INVALID_GATEWAY_TOKEN",
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
                RouterError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            },
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => "invalid_request_error",
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
        let Self::Router { source, now } = self else { return None };
        let at = source.retry_at()?;
        let millis = (at - *now).num_milliseconds().max(0);
        Some(((millis + 999) / 1000).max(1))
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
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
            (RouterError::UnknownRoute("x".into()), StatusCode::NOT_FOUND),
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
