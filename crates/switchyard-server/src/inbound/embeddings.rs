//! `POST /v1/embeddings`: OpenAI's Embeddings request (`input` as a string or an array of
//! strings, `encoding_format` float or base64, `dimensions`; `user` is ignored) routed through
//! [`Router::embed_with`](switchyard::Router::embed_with) with the routes, keys, quotas,
//! cascade, budgets, client tokens and route permissions of the chat endpoint, answered in
//! OpenAI's shape (`object: "list"`, `data[].embedding`, `usage`) with the same
//! `x-switchyard-*` headers, metrics and errors.
//!
//! Token-id inputs (arrays of integers) are refused with a 400: no provider behind the
//! gateway shares OpenAI's tokenizer. At most [`MAX_INPUTS`] texts a request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::{EmbedAnswer, EmbedRequest, RequestOptions};

use crate::error::ServerError;
use crate::wire::WireError;
use crate::{
    CACHE, Gateway, admit_client, clients, insert_trace, read_request, served_headers, ui,
    wants_trace,
};

/// The most texts one request may embed (OpenAI's own limit).
pub(crate) const MAX_INPUTS: usize = 2048;

/// The longest vector a client may ask for.
const MAX_DIMENSIONS: u64 = 65_536;

/// How the vectors are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// Arrays of numbers.
    Float,
    /// Little-endian f32 bytes in standard base64, as OpenAI sends them.
    Base64,
}

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<Value>,
}

/// A request, read.
#[derive(Debug)]
struct Parsed {
    model: String,
    request: EmbedRequest,
    encoding: Encoding,
}

fn bad(message: impl Into<String>) -> WireError {
    WireError(crate::wire::shortened(message.into()))
}

fn parse(body: &[u8]) -> Result<Parsed, WireError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|error| bad(format!("invalid JSON body: {error}")))?;
    let model =
        body.model.filter(|model| !model.is_empty()).ok_or_else(|| bad("model is required"))?;
    let inputs = match body.input {
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) => {
            if items.len() > MAX_INPUTS {
                return Err(bad(format!(
                    "input has {} items; at most {MAX_INPUTS} may be embedded in one request",
                    items.len()
                )));
            }
            let mut inputs = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(text) => inputs.push(text),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(bad(
                            "token-id inputs are not supported by this gateway: send input as a string or an array of strings",
                        ));
                    }
                    _ => return Err(bad("input must be a string or an array of strings")),
                }
            }
            inputs
        }
        Some(_) => return Err(bad("input must be a string or an array of strings")),
        None => return Err(bad("input is required")),
    };
    if inputs.is_empty() {
        return Err(bad("input must not be empty"));
    }
    if inputs.iter().any(String::is_empty) {
        return Err(bad("input must not contain empty strings"));
    }
    let encoding = match body.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(bad(format!("encoding_format {other:?} is not one of float, base64")));
        }
    };
    let dimensions = match body.dimensions {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n @ 1..=MAX_DIMENSIONS) => u32::try_from(n).ok(),
            _ => return Err(bad(format!("dimensions must be an integer in 1..={MAX_DIMENSIONS}"))),
        },
    };
    let request = EmbedRequest { inputs, dimensions, tags: Vec::new() };
    Ok(Parsed { model, request, encoding })
}

/// `bytes` in standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (position, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if position <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The answer in OpenAI's shape.
fn list(answer: &EmbedAnswer, encoding: Encoding) -> Value {
    let data: Vec<Value> = answer
        .response
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match encoding {
                Encoding::Float => json!(vector),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64(&bytes))
                }
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let model = if answer.response.model.is_empty() {
        answer.served_by.model.as_str()
    } else {
        answer.response.model.as_str()
    };
    let tokens = answer.response.usage.prompt_tokens;
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// Serves `POST /v1/embeddings`.
pub(crate) async fn embeddings(State(gateway): State<Gateway>, request: Request) -> Response {
    let (headers, request_id, identity, body) = match read_request(&gateway, request).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    match answer(&gateway, &identity, &headers, &body, request_id).await {
        Ok(response) => response,
        Err(error) => {
            let trace = match &error {
                ServerError::Router { source, .. } if wants_trace(&headers) => {
                    source.trace().cloned()
                }
                _ => None,
            };
            let mut response = error.into_response();
            if let Some(trace) = trace {
                insert_trace(response.headers_mut(), &trace);
            }
            response
        }
    }
}

async fn answer(
    gateway: &Gateway,
    identity: &clients::Identity,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    request_id: String,
) -> Result<Response, ServerError> {
    let Parsed { model, mut request, encoding } = parse(body)?;
    let router = gateway.router();
    let asked = super::options::ClientOptions::read(headers, &router)?;
    admit_client(gateway, identity, &model)?;
    let shared = &gateway.shared;
    let options = RequestOptions {
        request_id: Some(request_id.clone()),
        client: identity.name().map(Arc::from),
        timeout: asked.timeout(shared.config.load().request_timeout),
        trace: wants_trace(headers),
        max_wait: asked.max_wait,
        cache: None,
    };
    let want_trace = options.trace;
    request.tags = asked.tags;
    let (clock, metrics) = (&shared.clock, &shared.metrics);
    let started = clock.now();
    let labels = shared.labels.load_full();
    let route = labels.route(&model);
    let answer = router.embed_with(&model, &request, options).await.map_err(|source| {
        metrics.failed(&labels, &route, source.code(), source.trace());
        let failed = ui::Outcome::Failed(source.code());
        shared.ui.record(clock.utc(), &request_id, &route, source.trace(), &failed);
        ServerError::Router { source, now: clock.utc() }
    })?;
    let elapsed = clock.now().saturating_duration_since(started);
    let target = labels.target(&route, &answer.served_by);
    metrics.answered(&labels, &target, &answer.trace, false, elapsed, answer.overhead);
    let served = ui::Outcome::Served { cost: answer.cost, stream: false };
    shared.ui.record(clock.utc(), &request_id, &route, Some(&answer.trace), &served);
    metrics.tokens(&target, answer.response.usage);
    if let Some(dollars) = answer.cost {
        metrics.cost(&target, dollars);
        if let Some(client) = &identity.client {
            shared.meters.spend(client, dollars, clock.utc());
        }
    }
    let n_attempts = usize::try_from(answer.n_attempts).unwrap_or(usize::MAX);
    let mut response_headers =
        served_headers(&answer.served_by, answer.fingerprint, n_attempts, Some(answer.overhead));
    // Embeddings are never served from the cache.
    response_headers.insert(CACHE, HeaderValue::from_static("miss"));
    if want_trace {
        insert_trace(&mut response_headers, &answer.trace);
    }
    Ok((response_headers, axum::Json(list(&answer, encoding))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&1.0_f32.to_le_bytes()), "AACAPw==");
    }

    #[track_caller]
    fn refused(body: &str, says: &str) {
        let WireError(message) = parse(body.as_bytes()).expect_err("refused");
        assert!(message.contains(says), "{message}");
    }

    #[test]
    fn requests_are_read_and_bad_ones_refused_with_a_reason() {
        let parsed = parse(
            br#"{"model":"m","input":"one","user":"u","dimensions":64,"encoding_format":"base64"}"#,
        )
        .expect("read");
        assert_eq!(parsed.request.inputs, ["one"]);
        assert_eq!(parsed.request.dimensions, Some(64));
        assert_eq!(parsed.encoding, Encoding::Base64);
        refused(r#"{"model":"m","input":[1,2,3]}"#, "token-id inputs");
        refused(r#"{"model":"m","input":[[1,2]]}"#, "token-id inputs");
        refused(r#"{"model":"m","input":[]}"#, "must not be empty");
        refused(r#"{"model":"m","input":["a",""]}"#, "empty strings");
        refused(r#"{"input":"a"}"#, "model is required");
        refused(r#"{"model":"m","input":"a","encoding_format":"int8"}"#, "encoding_format");
        refused(r#"{"model":"m","input":"a","dimensions":0}"#, "dimensions");
        let many =
            serde_json::to_string(&json!({"model": "m", "input": vec!["x"; MAX_INPUTS + 1]}))
                .expect("JSON");
        refused(&many, "at most 2048");
    }
}
