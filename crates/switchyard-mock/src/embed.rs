//! Embeddings in each wire format the mock speaks that has them: the OpenAI family's
//! `POST {base}/embeddings`, Gemini's `models/{model}:embedContent` and
//! `:batchEmbedContents`, Ollama's `POST /api/embed`. An embedding request goes through the
//! same script as a chat call (keys, faults, per-key quotas charged its input tokens, the
//! log); only its body is read and its answer written here. Vectors are derived from the text
//! alone ([`mock_embedding`]), so a test can compute what it should get.

use axum::http::Method;
use serde_json::{Value, json};
use switchyard_core::Usage;

use crate::wire::{ChatSummary, WireFormat};

/// The vector length when a request names none.
pub const DEFAULT_DIMENSIONS: u32 = 8;

/// The longest vector the mock makes; a request asking for more is refused.
pub const MAX_DIMENSIONS: u32 = 4096;

/// The unit vector of `dimensions` components the mock answers for `text`: a hash of the
/// text, stretched by a mixing sequence, normalised.
pub fn mock_embedding(text: &str, dimensions: u32) -> Vec<f32> {
    // FNV-1a over the bytes, then SplitMix64 for each component.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 53 bits as a fraction in [0, 1), moved to [-1, 1).
            #[expect(clippy::cast_precision_loss, reason = "53 bits fit an f64 exactly")]
            let unit = (z >> 11) as f64 / (1_u64 << 53) as f64;
            unit.mul_add(2.0, -1.0)
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    #[expect(clippy::cast_possible_truncation, reason = "components of a unit vector fit an f32")]
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// Which embedding endpoint was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    OpenAi,
    GeminiOne,
    GeminiBatch,
    Ollama,
}

/// An embedding request, read.
#[derive(Clone, Debug)]
pub(crate) struct EmbedAsk {
    endpoint: Endpoint,
    model: String,
    inputs: Vec<String>,
    dimensions: u32,
}

/// The endpoint `method` and `path` name in `wire`, if an embedding one.
fn endpoint(wire: &dyn WireFormat, method: &Method, path: &str) -> Option<(Endpoint, String)> {
    if *method != Method::POST {
        return None;
    }
    match wire.name() {
        "anthropic" => None,
        "ollama" => (path == "/api/embed").then(|| (Endpoint::Ollama, String::new())),
        "gemini" => {
            let rest = path.strip_prefix("/v1beta/").or_else(|| path.strip_prefix("/v1/"))?;
            let (model, method_name) = rest.strip_prefix("models/")?.split_once(':')?;
            let endpoint = match method_name {
                "embedContent" => Endpoint::GeminiOne,
                "batchEmbedContents" => Endpoint::GeminiBatch,
                _ => return None,
            };
            Some((endpoint, model.to_owned()))
        }
        _ => {
            let expected = format!("{}/embeddings", wire.base_path());
            (path == expected).then(|| (Endpoint::OpenAi, String::new()))
        }
    }
}

/// Reads an embedding request: `None` when the path is no embedding endpoint of `wire`, an
/// `Err` with the message of a 400 when the body is not a request the endpoint takes.
pub(crate) fn parse(
    wire: &dyn WireFormat,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Result<EmbedAsk, String>> {
    let (endpoint, path_model) = endpoint(wire, method, path)?;
    Some(read(endpoint, path_model, body))
}

fn read(endpoint: Endpoint, path_model: String, body: &[u8]) -> Result<EmbedAsk, String> {
    let body: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
    let dimensions = |value: &Value| -> Result<u32, String> {
        match value.as_u64() {
            None if value.is_null() => Ok(DEFAULT_DIMENSIONS),
            Some(n @ 1..) if n <= u64::from(MAX_DIMENSIONS) => {
                Ok(u32::try_from(n).unwrap_or(MAX_DIMENSIONS))
            }
            _ => Err(format!("dimensions must be 1..={MAX_DIMENSIONS}")),
        }
    };
    let text_of = |content: &Value| -> Result<String, String> {
        let parts =
            content.get("parts").and_then(Value::as_array).ok_or("content.parts is required")?;
        Ok(parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect())
    };
    let (model, inputs, dimensions) = match endpoint {
        Endpoint::OpenAi | Endpoint::Ollama => {
            let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
            let inputs = match body.get("input") {
                Some(Value::String(text)) => vec![text.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("input must be strings")?,
                _ => return Err("input is required".to_owned()),
            };
            (model, inputs, dimensions(&body["dimensions"])?)
        }
        Endpoint::GeminiOne => {
            let text = text_of(&body["content"])?;
            (path_model, vec![text], dimensions(&body["outputDimensionality"])?)
        }
        Endpoint::GeminiBatch => {
            let requests =
                body.get("requests").and_then(Value::as_array).ok_or("requests is required")?;
            // Gemini's own bound on one batch.
            if requests.len() > 100 {
                return Err("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch".to_owned());
            }
            let named = format!("models/{path_model}");
            let mut inputs = Vec::with_capacity(requests.len());
            let mut asked = DEFAULT_DIMENSIONS;
            for request in requests {
                // Gemini refuses a batch whose requests name another model than the path.
                if request.get("model").and_then(Value::as_str) != Some(named.as_str()) {
                    return Err(format!("each request's model must be {named}"));
                }
                inputs.push(text_of(&request["content"])?);
                asked = dimensions(&request["outputDimensionality"])?;
            }
            (path_model, inputs, asked)
        }
    };
    if model.is_empty() {
        return Err("model is required".to_owned());
    }
    if inputs.is_empty() {
        return Err("at least one input is required".to_owned());
    }
    Ok(EmbedAsk { endpoint, model, inputs, dimensions })
}

impl EmbedAsk {
    /// What the script sees of it: a call of its model with the inputs as the prompt and no
    /// output, so quotas charge its input tokens.
    pub(crate) fn summary(&self) -> ChatSummary {
        ChatSummary {
            model: self.model.clone(),
            prompt_text: self.inputs.concat(),
            max_tokens: Some(0),
            ..ChatSummary::default()
        }
    }

    /// The answer, in the endpoint's shape, with `usage`'s prompt tokens as input tokens.
    pub(crate) fn body(&self, usage: &Usage) -> Value {
        let vectors = self.inputs.iter().map(|text| mock_embedding(text, self.dimensions));
        let tokens = usage.prompt_tokens;
        match self.endpoint {
            Endpoint::OpenAi => {
                let data: Vec<Value> = vectors
                    .enumerate()
                    .map(|(index, vector)| {
                        json!({"object": "embedding", "index": index, "embedding": vector})
                    })
                    .collect();
                json!({
                    "object": "list", "data": data, "model": self.model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                })
            }
            Endpoint::GeminiOne => {
                let values = vectors.into_iter().next().unwrap_or_default();
                json!({"embedding": {"values": values}})
            }
            Endpoint::GeminiBatch => {
                let embeddings: Vec<Value> =
                    vectors.map(|values| json!({"values": values})).collect();
                json!({"embeddings": embeddings})
            }
            Endpoint::Ollama => {
                let embeddings: Vec<Vec<f32>> = vectors.collect();
                json!({"model": self.model, "embeddings": embeddings, "prompt_eval_count": tokens})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GeminiWire, OllamaWire, OpenAiWire};

    #[test]
    fn vectors_are_unit_length_and_depend_on_the_text_only() {
        let a = mock_embedding("hello", 16);
        assert_eq!(a, mock_embedding("hello", 16));
        assert_ne!(a, mock_embedding("hello!", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(mock_embedding("", 3).len(), 3);
    }

    #[test]
    fn each_wire_reads_its_own_endpoint_only() {
        let post = Method::POST;
        let openai = OpenAiWire::openai();
        let ask = parse(&openai, &post, "/v1/embeddings", br#"{"model":"e","input":"x"}"#);
        assert_eq!(ask.expect("an endpoint").expect("read").inputs, ["x"]);
        assert!(parse(&openai, &post, "/v1/chat/completions", b"{}").is_none());
        let gemini = GeminiWire;
        let batch = br#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"a"}]}},
            {"model":"models/other","content":{"parts":[{"text":"b"}]}}]}"#;
        let refused = parse(&gemini, &post, "/v1beta/models/e:batchEmbedContents", batch);
        assert!(refused.expect("an endpoint").is_err());
        assert!(parse(&gemini, &post, "/v1beta/models/e:generateContent", b"{}").is_none());
        let ollama = OllamaWire;
        let big = br#"{"model":"e","input":["a"],"dimensions":100000}"#;
        assert!(parse(&ollama, &post, "/api/embed", big).expect("an endpoint").is_err());
    }
}
