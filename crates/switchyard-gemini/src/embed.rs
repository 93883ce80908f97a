//! The wire of Gemini embeddings: `models/{model}:embedContent` for one text,
//! `:batchEmbedContents` for several, at most [`MAX_BATCH`] a call. The call itself is the
//! client's (`client.rs`): the key in the `x-goog-api-key` header as on the chat path, every
//! failure read by the chat path's own error decoding. Gemini reports no token count for
//! embeddings: the input tokens are the request's estimate.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::GeminiError;
use switchyard_core::ErrorKind;

/// The most texts one `batchEmbedContents` call takes (Gemini answers 400 "at most 100
/// requests can be in one batch" to more); a longer request is sent in several calls.
pub const MAX_BATCH: usize = 100;

/// One `EmbedContentRequest` of `text` for `models/{model}`.
fn content(model: &str, text: &str, dimensions: Option<u32>) -> Value {
    let mut request =
        json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
    if let Some(dimensions) = dimensions {
        request["outputDimensionality"] = json!(dimensions);
    }
    request
}

/// The method (`embedContent` for one input, `batchEmbedContents` for several) and its body,
/// for `inputs` (at most [`MAX_BATCH`]) of `model`.
pub fn encode_embed_request(
    inputs: &[String],
    dimensions: Option<u32>,
    model: &str,
) -> (&'static str, Value) {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if let [text] = inputs {
        return ("embedContent", content(model, text, dimensions));
    }
    let requests: Vec<Value> = inputs.iter().map(|text| content(model, text, dimensions)).collect();
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

/// Reads the answer of `method` for `n_inputs` texts: one vector per input, in order.
///
/// # Errors
/// The kind ([`ErrorKind::MalformedResponse`]) and message of a body that is not the method's
/// answer or has another number of vectors than inputs.
pub fn decode_embed_response(
    body: &[u8],
    method: &str,
    n_inputs: usize,
) -> Result<Vec<Vec<f32>>, (ErrorKind, String)> {
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
    if vectors.len() != n_inputs {
        let message = format!("{} vectors for {n_inputs} inputs", vectors.len());
        return Err((ErrorKind::MalformedResponse, message));
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| (*text).to_owned()).collect()
    }

    #[test]
    fn one_input_embeds_content_and_many_go_in_a_batch() {
        let (method, body) =
            encode_embed_request(&texts(&["only"]), Some(8), "models/text-embedding-004");
        assert_eq!(method, "embedContent");
        assert_eq!(body["model"], "models/text-embedding-004");
        assert_eq!(body["content"]["parts"][0]["text"], "only");
        assert_eq!(body["outputDimensionality"], 8);
        let (method, body) = encode_embed_request(&texts(&["a", "b"]), None, "text-embedding-004");
        assert_eq!(method, "batchEmbedContents");
        assert_eq!(body["requests"][1]["content"]["parts"][0]["text"], "b");
        assert!(body["requests"][0].get("outputDimensionality").is_none());
    }

    #[test]
    fn answers_decode_and_a_short_batch_is_malformed() {
        let body = br#"{"embeddings":[{"values":[1.0]},{"values":[2.0,3.0]}]}"#;
        let vectors = decode_embed_response(body, "batchEmbedContents", 2).expect("decoded");
        assert_eq!(vectors, vec![vec![1.0], vec![2.0, 3.0]]);
        let short = br#"{"embeddings":[{"values":[1.0]}]}"#;
        let error = decode_embed_response(short, "batchEmbedContents", 2).expect_err("short");
        assert_eq!(error.0, ErrorKind::MalformedResponse);
        let garbage = decode_embed_response(b"{}", "embedContent", 1).expect_err("garbage");
        assert_eq!(garbage.0, ErrorKind::MalformedResponse);
    }
}
