//! The Chat Completions JSON → `ChatResponse`, `ChatChunk` and `ModelInfo`, as pure
//! functions. Every shape the OpenAI-family providers send is read: `content` as a string,
//! an array of parts or null; tool-call `arguments` as a string or (Mistral) an object;
//! usage at `usage` or (Groq streams) `x_groq.usage`; an `error` object inside a 200 body
//! (OpenRouter) reported as [`DecodeError::Upstream`].

use serde_json::Value;
use switchyard_core::{
    ChatChunk, ChatResponse, FinishReason, ModelInfo, ToolCall, ToolCallDelta, Usage,
};

use crate::classify::{WireError, parse_error_value};

/// Why a body could not be read as an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum DecodeError {
    /// Not the shape of an answer (not JSON, no `choices`).
    Malformed(String),
    /// The body is an error report (an `error` object), even though the status was 200.
    Upstream(WireError),
}

fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| DecodeError::Malformed(format!("body is not JSON: {error}")))?;
    if value.get("error").is_some_and(|error| !error.is_null()) {
        return Err(DecodeError::Upstream(parse_error_value(&value)));
    }
    Ok(value)
}

/// Reads a non-streamed answer.
///
/// # Errors
/// [`DecodeError::Malformed`] for anything that is not an answer, [`DecodeError::Upstream`]
/// for an error object.
pub fn decode_response(bytes: &[u8]) -> Result<ChatResponse, DecodeError> {
    let value = parse_json(bytes)?;
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| DecodeError::Malformed("the answer has no choices".to_owned()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| DecodeError::Malformed("the choice has no message".to_owned()))?;
    let mut text = content_text(message.get("content"));
    let mut finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(finish);
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        // A refusal is the model declining on content grounds: say so in the reason and
        // keep its words as the text when there is no other.
        if text.is_empty() {
            text = refusal.to_owned();
        }
        finish_reason = Some(FinishReason::ContentFilter);
    }
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|call| ToolCall {
                    id: str_at(call, "id").unwrap_or_default(),
                    name: call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: arguments_text(call.pointer("/function/arguments")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        id: str_at(&value, "id"),
        model: str_at(&value, "model").unwrap_or_default(),
        text,
        tool_calls,
        finish_reason,
        usage: usage(&value).unwrap_or_default(),
        system_fingerprint: str_at(&value, "system_fingerprint"),
        created: value.get("created").and_then(Value::as_i64),
    })
}

/// Reads one stream event's `data` (not `[DONE]`).
///
/// # Errors
/// As [`decode_response`].
pub fn decode_chunk(data: &str) -> Result<ChatChunk, DecodeError> {
    let value = parse_json(data.as_bytes())?;
    if let Some(message) = value.pointer("/x_groq/error").and_then(Value::as_str) {
        // Groq stops a stream early by naming why in `x_groq.error`.
        return Err(DecodeError::Upstream(WireError {
            message: message.to_owned(),
            ..WireError::default()
        }));
    }
    let choices = value
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::Malformed("the chunk has no choices".to_owned()))?;
    let mut chunk = ChatChunk {
        id: str_at(&value, "id"),
        model: str_at(&value, "model"),
        usage: usage(&value).or_else(|| value.get("x_groq").and_then(usage)),
        system_fingerprint: str_at(&value, "system_fingerprint"),
        ..ChatChunk::default()
    };
    if let Some(choice) = choices.first() {
        let delta = choice.get("delta");
        chunk.text = content_text(delta.and_then(|delta| delta.get("content")));
        if let Some(calls) =
            delta.and_then(|delta| delta.get("tool_calls")).and_then(Value::as_array)
        {
            chunk.tool_calls = calls
                .iter()
                .enumerate()
                .map(|(position, call)| ToolCallDelta {
                    index: call
                        .get("index")
                        .and_then(Value::as_u64)
                        .and_then(|index| u32::try_from(index).ok())
                        .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX)),
                    id: str_at(call, "id"),
                    name: call.pointer("/function/name").and_then(Value::as_str).map(str::to_owned),
                    arguments: arguments_text(call.pointer("/function/arguments")),
                })
                .collect();
        }
        chunk.finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(finish);
        if chunk.finish_reason == Some(FinishReason::Other("error".to_owned())) {
            return Err(DecodeError::Upstream(WireError {
                message: "the upstream ended the stream with finish_reason error".to_owned(),
                ..WireError::default()
            }));
        }
    }
    Ok(chunk)
}

/// Reads a model listing: OpenAI's `{"data": [...]}`, with the context window where the
/// provider gives one (`context_window` Groq, `context_length` OpenRouter,
/// `max_context_length` Mistral).
///
/// # Errors
/// As [`decode_response`].
pub fn decode_models(bytes: &[u8]) -> Result<Vec<ModelInfo>, DecodeError> {
    let value = parse_json(bytes)?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::Malformed("the listing has no data".to_owned()))?;
    Ok(data
        .iter()
        .filter_map(|model| {
            let id = model.get("id").and_then(Value::as_str)?;
            let context_window = ["context_window", "context_length", "max_context_length"]
                .iter()
                .find_map(|field| model.get(*field).and_then(Value::as_u64))
                .and_then(|window| u32::try_from(window).ok());
            Some(ModelInfo { id: id.into(), owned_by: str_at(model, "owned_by"), context_window })
        })
        .collect())
}

fn str_at(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn finish(reason: &str) -> FinishReason {
    match reason {
        "stop" | "end_turn" => FinishReason::Stop,
        // Mistral's `model_length`: the model's own context ran out.
        "length" | "model_length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str).is_none_or(|t| t == "text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn arguments_text(arguments: Option<&Value>) -> String {
    match arguments {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(object) => object.to_string(),
    }
}

fn usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    let count = |field: &str| {
        usage.get(field).and_then(Value::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let prompt = count("prompt_tokens").unwrap_or(0);
    let completion = count("completion_tokens").unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: count("total_tokens").unwrap_or(prompt.saturating_add(completion)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_reference_answer() {
        let body = json!({"id":"chatcmpl-B9","object":"chat.completion","created":1741570283,
            "model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant",
            "content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,
            "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,
            "total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}},
            "service_tier":"default"});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.text, "Hello!");
        assert_eq!(response.model, "gpt-4o-2024-08-06");
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
        assert_eq!(response.usage, Usage::new(9, 2));
        assert_eq!(response.created, Some(1_741_570_283));
    }

    #[test]
    fn mistral_object_arguments_and_a_refusal() {
        let body = json!({"choices":[{"message":{"content":null,"tool_calls":[{"id":"c",
            "function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.tool_calls[0].arguments, "{\"a\":1}");
        let refusal = json!({"choices":[{"message":{"content":null,"refusal":"I can't."},
            "finish_reason":"stop"}]});
        let response = decode_response(refusal.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.text, "I can't.");
        assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    }

    #[test]
    fn garbage_and_errors_in_200_bodies() {
        assert!(matches!(decode_response(b"<html>"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_response(b"{}"), Err(DecodeError::Malformed(_))));
        let openrouter = br#"{"error":{"code":502,"message":"Provider returned error"}}"#;
        let Err(DecodeError::Upstream(error)) = decode_response(openrouter) else {
            panic!("an error inside a 200 body is an upstream error");
        };
        assert_eq!(error.status, Some(502));
    }

    #[test]
    fn groq_usage_and_tool_call_deltas_in_chunks() {
        let chunk = decode_chunk(
            r#"{"id":"c","choices":[{"delta":{"tool_calls":[{"index":1,"id":"t","function":{"name":"f","arguments":"{\"a"}}]},"finish_reason":null}],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}"#,
        )
        .expect("decodes");
        assert_eq!(chunk.usage, Some(Usage::new(3, 4)));
        assert_eq!(chunk.tool_calls[0].index, 1);
        assert_eq!(chunk.tool_calls[0].name.as_deref(), Some("f"));
        assert_eq!(chunk.tool_calls[0].arguments, "{\"a");
        let stopped = decode_chunk(r#"{"choices":[],"x_groq":{"error":"over capacity"}}"#);
        assert!(matches!(stopped, Err(DecodeError::Upstream(_))));
    }
}
