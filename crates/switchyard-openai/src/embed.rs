//! The wire of `POST {base}/embeddings`, for every preset: the request as OpenAI's Embeddings
//! API takes it (`input` as an array of strings, `encoding_format: "float"`, `dimensions` when
//! asked) and the answer's `data[].embedding` put back in input order. The call itself is the
//! client's (`client.rs`), whose failures are classified by the chat path's own error
//! decoding (status, body, `x-ratelimit-*` and `retry-after`).

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_core::{EmbedRequest, EmbedResponse, Usage};

use crate::decode::DecodeError;
use crate::parse_error_body;

/// The body of an embeddings request for `model`.
pub fn encode_embed_request(request: &EmbedRequest, model: &str) -> Value {
    let mut body = json!({"model": model, "input": request.inputs, "encoding_format": "float"});
    if let Some(dimensions) = request.dimensions {
        body["dimensions"] = json!(dimensions);
    }
    body
}

#[derive(Deserialize)]
struct Wire {
    data: Vec<Item>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
}

/// Reads an embeddings answer for `request`: one vector per input, put in input order by
/// `index`. Without usage, the input tokens are the request's estimate.
///
/// # Errors
/// [`DecodeError::Upstream`] for an error report in a 200 body, [`DecodeError::Malformed`]
/// for anything else that is not one vector per input.
pub fn decode_embed_response(
    body: &[u8],
    request: &EmbedRequest,
) -> Result<EmbedResponse, DecodeError> {
    let wire: Wire = match serde_json::from_slice(body) {
        Ok(wire) => wire,
        Err(error) => {
            return Err(match parse_error_body(body) {
                Some(wire) => DecodeError::Upstream(wire),
                None => DecodeError::Malformed(format!("unreadable embeddings answer: {error}")),
            });
        }
    };
    let n_inputs = request.inputs.len();
    if wire.data.len() != n_inputs {
        let message = format!("{} vectors for {n_inputs} inputs", wire.data.len());
        return Err(DecodeError::Malformed(message));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n_inputs];
    for (position, item) in wire.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => {
                return Err(DecodeError::Malformed(format!(
                    "vector index {index} repeated or out of range"
                )));
            }
        }
    }
    let vectors = vectors.into_iter().flatten().collect();
    let input_tokens =
        wire.usage.map_or_else(|| request.estimated_tokens(), |usage| usage.prompt_tokens);
    Ok(EmbedResponse { model: wire.model, vectors, usage: Usage::new(input_tokens, 0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_in_input_order_with_usage() {
        let request = EmbedRequest::new(["a", "b"]);
        let body = br#"{"object":"list","model":"m","usage":{"prompt_tokens":7,"total_tokens":7},
            "data":[{"index":1,"embedding":[2.0]},{"index":0,"embedding":[1.0,0.5]}]}"#;
        let response = decode_embed_response(body, &request).expect("decoded");
        assert_eq!(response.vectors, vec![vec![1.0, 0.5], vec![2.0]]);
        assert_eq!(response.usage, Usage::new(7, 0));
        assert_eq!(response.model, "m");
    }

    #[test]
    fn a_missing_vector_or_an_error_body_is_refused() {
        let request = EmbedRequest::new(["a", "b"]);
        let short = br#"{"data":[{"index":0,"embedding":[1.0]}]}"#;
        assert!(matches!(decode_embed_response(short, &request), Err(DecodeError::Malformed(_))));
        let twice = br#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#;
        assert!(matches!(decode_embed_response(twice, &request), Err(DecodeError::Malformed(_))));
        let error = br#"{"error":{"message":"rate limited","type":"rate_limit_exceeded"}}"#;
        assert!(matches!(decode_embed_response(error, &request), Err(DecodeError::Upstream(_))));
    }

    #[test]
    fn dimensions_are_sent_only_when_asked() {
        let mut request = EmbedRequest::new(["a"]);
        assert!(encode_embed_request(&request, "m").get("dimensions").is_none());
        request.dimensions = Some(256);
        let body = encode_embed_request(&request, "m");
        assert_eq!(body["dimensions"], 256);
        assert_eq!(body["input"], json!(["a"]));
        assert_eq!(body["encoding_format"], "float");
    }
}
