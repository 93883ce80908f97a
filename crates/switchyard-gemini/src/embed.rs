//! The wire of Gemini embeddings: `models/{model}:embedContent` for one text,
//! `:batchEmbedContents` for several. The call itself is the client's (`client.rs`): the key
//! in the `x-goog-api-key` header as on the chat path, every failure read by the chat path's
//! own error decoding. Gemini reports no token count for embeddings: the input tokens are the
//! request's estimate.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_core::{EmbedRequest, EmbedResponse, ErrorKind, Usage};

use crate::GeminiError;

/// One `EmbedContentRequest` of `text` for `models/{model}`.
fn content(model: &str, text: &str, dimensions: Option<u32>) -> Value {
    let mut request =
        json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
    if let Some(dimensions) = dimensions {
        request["outputDimensionality"] = json!(dimensions);
    }
    request
}

/// The method (`embedContent` for one input, `batchEmbedContents` for several) and its body.
pub fn encode_embed_request(request: &EmbedRequest, model: &str) -> (&'static str, Value) {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if let [text] = request.inputs.as_slice() {
        return ("embedContent", content(model, text, request.dimensions));
    }
    let requests: Vec<Value> =
        request.inputs.iter().map(|text| content(model, text, request.dimensions)).collect();
    ("batchEmbedContents", json!({"requests": requests}))
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct Single {
    embedding: Values,
}

#[derive(Deserialize)]
struct Batch {
    embeddings: Vec<Values>,
}

/// Reads the answer of `method` for `request`: one vector per input, in order.
///
/// # Errors
/// [`GeminiError::Malformed`] for a body that is not the method's answer; a body with another
/// number of vectors than inputs is a [`ErrorKind::MalformedResponse`] too, as the message.
pub fn decode_embed_response(
    body: &[u8],
    method: &str,
    request: &EmbedRequest,
) -> Result<EmbedResponse, (ErrorKind, String)> {
    let malformed = |source: serde_json::Error| {
        let error = GeminiError::Malformed { what: "embeddings answer", source };
        (ErrorKind::MalformedResponse, error.to_string())
    };
    let vectors: Vec<Vec<f32>> = if method == "embedContent" {
        vec![serde_json::from_slice::<Single>(body).map_err(malformed)?.embedding.values]
    } else {
        let batch: Batch = serde_json::from_slice(body).map_err(malformed)?;
        batch.embeddings.into_iter().map(|values| values.values).collect()
    };
    if vectors.len() != request.inputs.len() {
        let message = format!("{} vectors for {} inputs", vectors.len(), request.inputs.len());
        return Err((ErrorKind::MalformedResponse, message));
    }
    let usage = Usage::new(request.estimated_tokens(), 0);
    Ok(EmbedResponse { model: String::new(), vectors, usage })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_input_embeds_content_and_many_go_in_a_batch() {
        let mut request = EmbedRequest::new(["only"]);
        request.dimensions = Some(8);
        let (method, body) = encode_embed_request(&request, "models/text-embedding-004");
        assert_eq!(method, "embedContent");
        assert_eq!(body["model"], "models/text-embedding-004");
        assert_eq!(body["content"]["parts"][0]["text"], "only");
        assert_eq!(body["outputDimensionality"], 8);
        let request = EmbedRequest::new(["a", "b"]);
        let (method, body) = encode_embed_request(&request, "text-embedding-004");
        assert_eq!(method, "batchEmbedContents");
        assert_eq!(body["requests"][1]["content"]["parts"][0]["text"], "b");
        assert!(body["requests"][0].get("outputDimensionality").is_none());
    }

    #[test]
    fn answers_decode_and_a_short_batch_is_malformed() {
        let request = EmbedRequest::new(["abcdefgh", "b"]);
        let body = br#"{"embeddings":[{"values":[1.0]},{"values":[2.0,3.0]}]}"#;
        let response =
            decode_embed_response(body, "batchEmbedContents", &request).expect("decoded");
        assert_eq!(response.vectors, vec![vec![1.0], vec![2.0, 3.0]]);
        assert_eq!(response.usage.prompt_tokens, 3);
        let short = br#"{"embeddings":[{"values":[1.0]}]}"#;
        let error =
            decode_embed_response(short, "batchEmbedContents", &request).expect_err("short");
        assert_eq!(error.0, ErrorKind::MalformedResponse);
        let single = EmbedRequest::new(["x"]);
        let garbage = decode_embed_response(b"{}", "embedContent", &single).expect_err("garbage");
        assert_eq!(garbage.0, ErrorKind::MalformedResponse);
    }
}
