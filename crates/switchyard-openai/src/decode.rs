//! The Chat Completions JSON → `ChatResponse`, `ChatChunk` and `ModelInfo`, as pure
//! functions. Every shape the OpenAI-family providers send is read: `content` as a string,
//! an array of parts or null; tool-call `arguments` as a string or (Mistral) an object;
//! usage at `usage` or (Groq streams) `x_groq.usage`; an `error` object inside a 200 body
//! (OpenRouter) reported as [`DecodeError::Upstream`].

use serde_json::Value;
use switchyard_core::{ChatChunk, ChatResponse, FinishReason, ModelInfo, ToolCall, ToolCallDelta};

use crate::classify::{WireError, parse_error_value};
use crate::wire::{Answer, Content, Scalar, Usage, owned};

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

/// Reads a body as a typed [`Answer`], or the error report it holds.
fn parse_answer(bytes: &[u8]) -> Result<Answer<'_>, DecodeError> {
    let answer: Answer<'_> = serde_json::from_slice(bytes)
        .map_err(|error| DecodeError::Malformed(format!("body is not JSON: {error}")))?;
    if answer.error.as_ref().is_some_and(|error| error.0) {
        // The rare path: an error report, read by the same code as error bodies.
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| DecodeError::Malformed(format!("body is not JSON: {error}")))?;
        return Err(DecodeError::Upstream(parse_error_value(&value)));
    }
    Ok(answer)
}

/// Reads a non-streamed answer, in one pass over the bytes into borrowing structs.
///
/// # Errors
/// [`DecodeError::Malformed`] for anything that is not an answer, [`DecodeError::Upstream`]
/// for an error object.
pub fn decode_response(bytes: &[u8]) -> Result<ChatResponse, DecodeError> {
    let answer = parse_answer(bytes)?;
    let choice = answer
        .choices
        .and_then(|choices| choices.0)
        .and_then(|choices| choices.into_iter().next())
        .ok_or_else(|| DecodeError::Malformed("the answer has no choices".to_owned()))?;
    let message = choice
        .message
        .ok_or_else(|| DecodeError::Malformed("the choice has no message".to_owned()))?;
    let mut text = message.content.map(Content::into_text).unwrap_or_default();
    let mut finish_reason = choice.finish_reason.as_ref().and_then(Scalar::as_str).map(finish);
    if let Some(refusal) = message.refusal.as_ref().and_then(Scalar::as_str) {
        // A refusal is the model declining on content grounds: say so in the reason and
        // keep its words as the text when there is no other.
        if text.is_empty() {
            text = refusal.to_owned();
        }
        finish_reason = Some(FinishReason::ContentFilter);
    }
    let tool_calls = message
        .tool_calls
        .and_then(|calls| calls.0)
        .unwrap_or_default()
        .into_iter()
        .map(|call| {
            let function = call.function.unwrap_or_default();
            ToolCall {
                id: call.id.and_then(Scalar::into_string).unwrap_or_default(),
                name: function.name.and_then(Scalar::into_string).unwrap_or_default(),
                arguments: arguments_text(function.arguments),
            }
        })
        .collect();
    Ok(ChatResponse {
        id: owned(answer.id.as_ref()),
        model: owned(answer.model.as_ref()).unwrap_or_default(),
        text,
        tool_calls,
        finish_reason,
        usage: answer.usage.as_ref().and_then(usage).unwrap_or_default(),
        system_fingerprint: owned(answer.system_fingerprint.as_ref()),
        created: answer.created.as_ref().and_then(Scalar::as_i64),
    })
}

/// Reads one stream event's `data` (not `[DONE]`), in one pass into borrowing structs.
///
/// # Errors
/// As [`decode_response`].
pub fn decode_chunk(data: &str) -> Result<ChatChunk, DecodeError> {
    let answer = parse_answer(data.as_bytes())?;
    let x_groq = answer.x_groq.unwrap_or_default();
    if let Some(message) = x_groq.error.as_ref().and_then(Scalar::as_str) {
        // Groq stops a stream early by naming why in `x_groq.error`.
        return Err(DecodeError::Upstream(WireError {
            message: message.to_owned(),
            ..WireError::default()
        }));
    }
    let choices = answer
        .choices
        .and_then(|choices| choices.0)
        .ok_or_else(|| DecodeError::Malformed("the chunk has no choices".to_owned()))?;
    let mut chunk = ChatChunk {
        id: owned(answer.id.as_ref()),
        model: owned(answer.model.as_ref()),
        usage: answer
            .usage
            .as_ref()
            .and_then(usage)
            .or_else(|| x_groq.usage.as_ref().and_then(usage)),
        system_fingerprint: owned(answer.system_fingerprint.as_ref()),
        ..ChatChunk::default()
    };
    if let Some(choice) = choices.into_iter().next() {
        let delta = choice.delta.unwrap_or_default();
        chunk.text = delta.content.map(Content::into_text).unwrap_or_default();
        if let Some(calls) = delta.tool_calls.and_then(|calls| calls.0) {
            chunk.tool_calls = calls
                .into_iter()
                .enumerate()
                .map(|(position, call)| {
                    let function = call.function.unwrap_or_default();
                    ToolCallDelta {
                        index: call
                            .index
                            .as_ref()
                            .and_then(Scalar::as_u64)
                            .and_then(|index| u32::try_from(index).ok())
                            .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX)),
                        id: call.id.and_then(Scalar::into_string),
                        name: function.name.and_then(Scalar::into_string),
                        arguments: arguments_text(function.arguments),
                    }
                })
                .collect();
        }
        chunk.finish_reason = choice.finish_reason.as_ref().and_then(Scalar::as_str).map(finish);
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

fn arguments_text(arguments: Option<Value>) -> String {
    match arguments {
        Some(Value::String(text)) => text,
        Some(Value::Null) | None => String::new(),
        Some(object) => object.to_string(),
    }
}

/// Token counts, when `usage` is an object.
fn usage(usage: &Usage<'_>) -> Option<switchyard_core::Usage> {
    if !usage.is_object {
        return None;
    }
    let count = |field: Option<&Scalar<'_>>| {
        field.and_then(Scalar::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let prompt = count(usage.prompt_tokens.as_ref()).unwrap_or(0);
    let completion = count(usage.completion_tokens.as_ref()).unwrap_or(0);
    Some(switchyard_core::Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: count(usage.total_tokens.as_ref())
            .unwrap_or(prompt.saturating_add(completion)),
        // Part of the completion, so never more than it.
        reasoning_tokens: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|details| count(details.reasoning_tokens.as_ref()))
            .map(|reasoning| reasoning.min(completion)),
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
        assert_eq!(response.usage, switchyard_core::Usage::new(9, 2));
        assert_eq!(response.created, Some(1_741_570_283));
    }

    #[test]
    fn reasoning_tokens_are_read_plain_and_from_the_last_stream_chunk() {
        let body = json!({"choices":[{"message":{"content":"4"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":12,"completion_tokens":70,"total_tokens":82,
            "completion_tokens_details":{"reasoning_tokens":64,"audio_tokens":0}}});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.usage.reasoning_tokens, Some(64));
        assert_eq!(response.usage.completion_tokens, 70);
        let last = json!({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":70,
            "total_tokens":82,"completion_tokens_details":{"reasoning_tokens":64}}});
        let chunk = decode_chunk(&last.to_string()).expect("decodes");
        assert_eq!(chunk.usage.and_then(|usage| usage.reasoning_tokens), Some(64));
        // A count beyond the completion it is part of is cut to it; none reported is `None`.
        let inflated = json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":5,
            "completion_tokens_details":{"reasoning_tokens":9000}}});
        let chunk = decode_chunk(&inflated.to_string()).expect("decodes");
        assert_eq!(chunk.usage.and_then(|usage| usage.reasoning_tokens), Some(5));
        let none = json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":5}});
        let chunk = decode_chunk(&none.to_string()).expect("decodes");
        assert_eq!(chunk.usage.map(|usage| usage.reasoning_tokens), Some(None));
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
    fn fields_of_the_wrong_type_read_as_absent_not_as_a_failure() {
        let body = json!({"id": 7, "model": ["m"], "created": -3, "system_fingerprint": null,
            "choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"},
                {"type": "image_url", "text": "no"}, 5], "tool_calls": {"not": "a list"}},
                "finish_reason": 1}],
            "usage": {"prompt_tokens": -1, "completion_tokens": 99999999999u64}});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!((response.id, response.model.as_str()), (None, ""));
        assert_eq!(response.created, Some(-3));
        assert_eq!(response.text, "ab");
        assert!(response.tool_calls.is_empty());
        assert_eq!(response.finish_reason, None);
        assert_eq!(response.usage, switchyard_core::Usage::new(0, u32::MAX));
        let null_message = json!({"choices": [{"message": null}]});
        let response = decode_response(null_message.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.text, "");
        for body in [json!({"choices": {}}), json!([1]), json!({"choices": [{}]})] {
            let error = decode_response(body.to_string().as_bytes()).expect_err("no answer");
            assert!(matches!(error, DecodeError::Malformed(_)), "{body}");
        }
        let escaped = decode_chunk(r#"{"choices":[{"delta":{"content":"a\nb\u00e9"}}]}"#);
        assert_eq!(escaped.expect("decodes").text, "a\nbé");
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
        assert_eq!(chunk.usage, Some(switchyard_core::Usage::new(3, 4)));
        assert_eq!(chunk.tool_calls[0].index, 1);
        assert_eq!(chunk.tool_calls[0].name.as_deref(), Some("f"));
        assert_eq!(chunk.tool_calls[0].arguments, "{\"a");
        let stopped = decode_chunk(r#"{"choices":[],"x_groq":{"error":"over capacity"}}"#);
        assert!(matches!(stopped, Err(DecodeError::Upstream(_))));
    }
}
