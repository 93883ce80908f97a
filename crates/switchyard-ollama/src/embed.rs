//! The wire of Ollama embeddings, `POST /api/embed` with every input in one call. The call
//! itself is the client's (`client.rs`): the key (when there is one) as a bearer token as on
//! the chat path, every failure read by the chat path's own error decoding. The input tokens
//! are Ollama's `prompt_eval_count`, or the request's estimate.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_core::{EmbedRequest, EmbedResponse, ErrorKind, Usage};

use crate::OllamaError;

/// The body of an `/api/embed` request for `model`.
pub fn encode_embed_request(request: &EmbedRequest, model: &str) -> Value {
    let mut body = json!({"model": model, "input": request.inputs});
    if let Some(dimensions) = request.dimensions {
        body["dimensions"] = json!(dimensions);
    }
    body
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    model: String,
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
}

/// Reads an `/api/embed` answer for `request`: one vector per input, in order.
///
/// # Errors
/// The kind and message of a body that is not one vector per input.
pub fn decode_embed_response(
    body: &[u8],
    request: &EmbedRequest,
) -> Result<EmbedResponse, (ErrorKind, String)> {
    let wire: Wire = serde_json::from_slice(body).map_err(|source| {
        let error = OllamaError::Malformed { what: "embeddings answer", source };
        (ErrorKind::MalformedResponse, error.to_string())
    })?;
    if wire.embeddings.len() != request.inputs.len() {
        let message =
            format!("{} vectors for {} inputs", wire.embeddings.len(), request.inputs.len());
        return Err((ErrorKind::MalformedResponse, message));
    }
    let input_tokens = wire.prompt_eval_count.unwrap_or_else(|| request.estimated_tokens());
    Ok(EmbedResponse {
        model: wire.model,
        vectors: wire.embeddings,
        usage: Usage::new(input_tokens, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_round_trip() {
        let mut request = EmbedRequest::new(["a", "b"]);
        request.dimensions = Some(4);
        let body = encode_embed_request(&request, "nomic-embed-text");
        assert_eq!(
            body,
            json!({"model": "nomic-embed-text", "input": ["a", "b"], "dimensions": 4})
        );
        let answer =
            br#"{"model":"nomic-embed-text","embeddings":[[0.1],[0.2]],"prompt_eval_count":5}"#;
        let response = decode_embed_response(answer, &request).expect("decoded");
        assert_eq!(response.vectors, vec![vec![0.1], vec![0.2]]);
        assert_eq!(response.usage, Usage::new(5, 0));
        let short = br#"{"embeddings":[[0.1]]}"#;
        assert_eq!(
            decode_embed_response(short, &request).expect_err("short").0,
            ErrorKind::MalformedResponse
        );
    }
}
