//! How Ollama says something failed, read into the one [`ErrorKind`] vocabulary.
//!
//! Ollama's errors are `{"error": "<message>"}` with a status, or the same object as an
//! NDJSON line after a 200. There is no error code, so the status decides and the message
//! settles what the status leaves open. A local Ollama has no keys and no quotas; Ollama's
//! cloud models add 401/403 and 429.

use chrono::{DateTime, Utc};
use switchyard_core::bounded::snippet;
use switchyard_core::hints::{StatedHints, settle};
use switchyard_core::http::AdapterError;
use switchyard_core::{ErrorKind, LimitScope, ProviderError, ProviderId, RateLimitSnapshot};

use crate::wire::ChatLine;

/// How much of an unreadable error body is quoted in the message.
const BODY_SNIPPET_CHARS: usize = 300;

/// A failure of this adapter before or after the HTTP exchange: a request it will not send,
/// an answer it cannot read, a stream that broke.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    /// The request uses something Ollama cannot take, and dropping it would change the
    /// answer's meaning.
    #[error("request refused before sending to ollama: {0}")]
    Refused(String),
    /// A body or line that is not what `/api/chat` sends.
    #[error("unreadable {what} from ollama")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The stream ended before a line with `"done": true`: the connection was cut.
    #[error("ollama stream ended before its done line")]
    Cut,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for ollama")]
    Client(#[source] reqwest::Error),
    /// The configured base URL is not an `http://` or `https://` URL (or the configuration
    /// holds a value no header may).
    #[error("provider {id}: base URL {url:?} is not an http(s) URL")]
    BaseUrl {
        /// The provider.
        id: ProviderId,
        /// The URL given.
        url: String,
    },
    /// Ollama reported a failure in a 2xx body or mid-stream (`{"error": ...}`).
    #[error("{kind} reported by ollama: {message}")]
    InStream {
        /// The classification of the message.
        kind: ErrorKind,
        /// Ollama's words.
        message: String,
    },
}

impl OllamaError {
    /// The failure in the shared vocabulary.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(_) => ErrorKind::BadRequest,
            // Configuration: no other attempt fixes it; the operator must.
            Self::BaseUrl { .. } => ErrorKind::BadRequest,
            Self::Malformed { .. } => ErrorKind::MalformedResponse,
            Self::Cut | Self::Client(_) => ErrorKind::Network,
            Self::InStream { kind, .. } => *kind,
        }
    }
}

// Classified by its kind: `Classify` comes with `AdapterError`.
impl AdapterError for OllamaError {
    fn kind(&self) -> ErrorKind {
        OllamaError::kind(self)
    }
}

/// Classifies an Ollama error message with the status it came with (`None` mid-stream).
pub fn classify(status: Option<u16>, message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    // `model 'x' not found` and `model "x" not found, try pulling it first`.
    let model_missing = lower.contains("model") && lower.contains("not found");
    match status {
        Some(404) => ErrorKind::ModelNotFound,
        _ if model_missing => ErrorKind::ModelNotFound,
        // `server busy, please try again.  maximum pending requests exceeded`.
        Some(503) => ErrorKind::Overloaded,
        _ if lower.contains("server busy") => ErrorKind::Overloaded,
        Some(429) => ErrorKind::RateLimited { scope: LimitScope::Unknown },
        Some(401) => ErrorKind::InvalidKey,
        Some(402) => ErrorKind::BillingStopped,
        Some(403) => ErrorKind::PermissionDenied,
        Some(408 | 504) => ErrorKind::Timeout,
        Some(400 | 422) if lower.contains("context length") => ErrorKind::ContextTooLong,
        Some(400 | 413 | 422) => ErrorKind::BadRequest,
        // A runner that died mid-answer (out of memory, a crash) reports after the 200.
        Some(500..=599) | None => ErrorKind::ServerError,
        Some(_) => ErrorKind::MalformedResponse,
    }
}

/// The error of a non-2xx response; a 429's delay and window are settled from its headers and
/// its message by [`switchyard_core::hints::settle`] (`now` reads an HTTP date or a reset
/// instant).
pub fn error_from_response(
    provider: &ProviderId,
    status: u16,
    body: &[u8],
    rate_limits: RateLimitSnapshot,
    now: DateTime<Utc>,
) -> ProviderError {
    let message = match serde_json::from_slice::<ChatLine>(body) {
        Ok(ChatLine { error: Some(message), .. }) => message,
        Ok(_) | Err(_) => snippet(&String::from_utf8_lossy(body), BODY_SNIPPET_CHARS),
    };
    let stated = StatedHints::from_message(&message, now);
    let mut error = ProviderError::new(classify(Some(status), &message), provider.clone(), message)
        .with_status(status)
        .with_retry_after(rate_limits.retry_after);
    error.rate_limits = rate_limits;
    settle(error, &stated, now)
}

/// The `retry-after-ms` and `retry-after` headers, which Ollama's cloud (or a proxy) may send.
pub use switchyard_core::retry_wire::retry_after_headers as rate_limits_from_headers;

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn kind_of(status: u16, body: &str) -> ErrorKind {
        error_from_response(
            &ProviderId::new("ollama"),
            status,
            body.as_bytes(),
            RateLimitSnapshot::default(),
            DateTime::<Utc>::UNIX_EPOCH,
        )
        .kind
    }

    #[test]
    fn each_documented_error_gets_its_kind() {
        let cases = [
            (404, r#"{"error":"model 'llama3.2' not found"}"#, ErrorKind::ModelNotFound),
            (
                404,
                r#"{"error":"model \"llama3.2\" not found, try pulling it first"}"#,
                ErrorKind::ModelNotFound,
            ),
            (
                503,
                r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
                ErrorKind::Overloaded,
            ),
            (400, r#"{"error":"invalid options: num_predict"}"#, ErrorKind::BadRequest),
            (
                429,
                r#"{"error":"you have reached your hourly usage limit"}"#,
                ErrorKind::RateLimited { scope: LimitScope::Unknown },
            ),
            (401, r#"{"error":"unauthorized"}"#, ErrorKind::InvalidKey),
            (
                500,
                r#"{"error":"llama runner process has terminated: signal: killed"}"#,
                ErrorKind::ServerError,
            ),
            (502, "Bad Gateway", ErrorKind::ServerError),
        ];
        for (status, body, kind) in cases {
            assert_eq!(kind_of(status, body), kind, "{status} {body}");
        }
    }

    #[test]
    fn mid_stream_messages_are_read_without_a_status() {
        assert_eq!(classify(None, "model 'x' not found"), ErrorKind::ModelNotFound);
        assert_eq!(classify(None, "server busy, please try again."), ErrorKind::Overloaded);
        assert_eq!(
            classify(None, "an error was encountered while running the model"),
            ErrorKind::ServerError
        );
    }

    #[test]
    fn the_message_is_ollamas_own() {
        let error = error_from_response(
            &ProviderId::new("local"),
            404,
            br#"{"error":"model 'llama3.2' not found"}"#,
            RateLimitSnapshot::default(),
            DateTime::<Utc>::UNIX_EPOCH,
        );
        assert_eq!(error.message, "model 'llama3.2' not found");
        assert_eq!(error.status, Some(404));
    }
}
