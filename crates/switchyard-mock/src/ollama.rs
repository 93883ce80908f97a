//! Ollama's native wire format: `POST /api/chat` (streaming unless `"stream": false`, as
//! NDJSON lines ending with a `"done": true` line that carries the counts), `GET /api/tags`,
//! errors as `{"error": "<message>"}` (404 for a missing model, 503 "server busy"). A local
//! Ollama takes no key: start the mock with `accept_unknown_keys()` for keyless calls.

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};
use switchyard_core::FinishReason;

use crate::wire::{
    ChatSummary, Failure, Operation, Reply, StreamFrames, WindowReading, WireFormat, WireResponse,
    bearer,
};

/// Ollama's native API. Its base URL is the mock's address (clients add `/api/...`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OllamaWire;

fn error(status: StatusCode, message: &str) -> WireResponse {
    WireResponse::json(status, &json!({"error": message}))
}

impl WireFormat for OllamaWire {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn base_path(&self) -> &'static str {
        ""
    }

    fn operation(&self, method: &Method, path: &str) -> Option<Operation> {
        match (method, path) {
            (&Method::POST, "/api/chat") => Some(Operation::Chat),
            (&Method::GET, "/api/tags") => Some(Operation::ListModels),
            _ => None,
        }
    }

    fn credential(&self, headers: &HeaderMap, _query: Option<&str>) -> Option<String> {
        bearer(headers)
    }

    fn parse_chat(
        &self,
        _operation: Operation,
        _path: &str,
        body: &Value,
    ) -> Result<ChatSummary, String> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.is_empty())
            .ok_or("model is required")?;
        let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut prompt_text = String::new();
        let mut last_user_text = String::new();
        for message in &messages {
            let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
            if !matches!(role, "system" | "user" | "assistant" | "tool") {
                return Err(format!("invalid role: {role}"));
            }
            let text = message.get("content").and_then(Value::as_str).unwrap_or_default();
            if role == "user" {
                text.clone_into(&mut last_user_text);
            }
            prompt_text.push_str(text);
            if let Some(calls) = message.get("tool_calls") {
                prompt_text.push_str(&calls.to_string());
            }
        }
        if let Some(tools) = body.get("tools") {
            prompt_text.push_str(&tools.to_string());
        }
        // `num_predict` -1 (and -2) mean no limit.
        let max_tokens = body
            .pointer("/options/num_predict")
            .and_then(Value::as_i64)
            .filter(|max| *max >= 0)
            .map(|max| u32::try_from(max).unwrap_or(u32::MAX));
        Ok(ChatSummary {
            model: model.to_owned(),
            // Ollama streams unless told not to.
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(true),
            stream_usage: true,
            prompt_text,
            last_user_text,
            max_tokens,
            // Ollama's switch; it counts the thinking inside `eval_count`, with no split.
            reasoning: body.get("think") == Some(&Value::Bool(true)),
        })
    }

    fn chat_body(&self, _summary: &ChatSummary, reply: &Reply) -> Value {
        let mut body = line(reply, message(&reply.text), true);
        if !reply.tool_calls.is_empty() {
            body["message"]["tool_calls"] = tool_calls(reply);
        }
        body
    }

    fn stream_frames(&self, _summary: &ChatSummary, reply: &Reply) -> StreamFrames {
        let mut lines: Vec<Value> =
            reply.pieces.iter().map(|piece| line(reply, message(piece), false)).collect();
        if !reply.tool_calls.is_empty() {
            let mut calls = line(reply, message(""), false);
            calls["message"]["tool_calls"] = tool_calls(reply);
            lines.push(calls);
        }
        lines.push(line(reply, message(""), true));
        let frames = lines.iter().map(|line| Bytes::from(format!("{line}\n"))).collect();
        StreamFrames { content_type: "application/x-ndjson", frames }
    }

    fn models_body(&self, models: &[String]) -> Value {
        let listed: Vec<Value> = models
            .iter()
            .map(|name| {
                json!({"name": name, "model": name, "modified_at": "2025-05-01T10:00:00.000000Z",
                       "size": 2_019_393_189_u64,
                       "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                       "details": {"parent_model": "", "format": "gguf", "family": "llama",
                                   "families": ["llama"], "parameter_size": "3.2B",
                                   "quantization_level": "Q4_K_M"}})
            })
            .collect();
        json!({"models": listed})
    }

    fn failure(&self, failure: &Failure, _model: Option<&str>) -> WireResponse {
        match failure {
            // Only Ollama's cloud models have quotas.
            Failure::RateLimited { .. } | Failure::RequestTooLarge { .. } => error(
                StatusCode::TOO_MANY_REQUESTS,
                "you have reached your hourly usage limit, please upgrade to continue",
            ),
            // Ollama documents no billing error; the mock answers as most HTTP APIs do.
            Failure::BillingStopped => error(StatusCode::PAYMENT_REQUIRED, "payment required"),
            Failure::InvalidKey { .. } => error(StatusCode::UNAUTHORIZED, "unauthorized"),
            Failure::PermissionDenied => error(StatusCode::FORBIDDEN, "forbidden"),
            Failure::ModelNotFound { model } => {
                error(StatusCode::NOT_FOUND, &format!("model '{model}' not found"))
            }
            Failure::ContextTooLong { .. } => {
                error(StatusCode::BAD_REQUEST, "the input length exceeds the context length")
            }
            Failure::BadRequest { message } => error(StatusCode::BAD_REQUEST, message),
            Failure::Overloaded => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy, please try again.  maximum pending requests exceeded",
            ),
            Failure::ServerError { status } => error(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "llama runner process has terminated: exit status 2",
            ),
        }
    }

    fn limit_headers(&self, _readings: &[WindowReading], _headers: &mut HeaderMap) {
        // Ollama sends no rate-limit headers.
    }

    fn malformed_frame(&self) -> Bytes {
        Bytes::from_static(b"{\"model\": \"mock\", \"message\": {\"content\": \n")
    }

    fn malformed_body(&self) -> Bytes {
        Bytes::from_static(b"{\"model\": \"mock\", \"message\": {\"role\": \"assistant\", \"cont")
    }
}

fn message(content: &str) -> Value {
    json!({"role": "assistant", "content": content})
}

/// One response object; the done one carries the stop reason, counts and durations
/// (nanoseconds).
fn line(reply: &Reply, message: Value, done: bool) -> Value {
    let created = DateTime::from_timestamp(reply.created, 0).unwrap_or_default();
    let mut line = json!({
        "model": reply.model,
        "created_at": created.to_rfc3339_opts(SecondsFormat::Micros, true),
        "message": message,
        "done": done,
    });
    if done {
        let done_reason = match reply.finish_reason {
            FinishReason::Length => "length",
            FinishReason::Stop
            | FinishReason::ToolCalls
            | FinishReason::ContentFilter
            | FinishReason::Other(_) => "stop",
        };
        line["done_reason"] = json!(done_reason);
        line["total_duration"] = json!(5_191_566_416_u64);
        line["load_duration"] = json!(2_154_458);
        line["prompt_eval_count"] = json!(reply.usage.prompt_tokens);
        line["prompt_eval_duration"] = json!(383_809_000);
        line["eval_count"] = json!(reply.usage.completion_tokens);
        line["eval_duration"] = json!(4_799_921_000_u64);
    }
    line
}

/// The reply's calls in Ollama's shape: arguments as an object, no id.
fn tool_calls(reply: &Reply) -> Value {
    reply
        .tool_calls
        .iter()
        .map(|call| {
            let arguments = match serde_json::from_str::<Value>(&call.arguments) {
                Ok(object @ Value::Object(_)) => object,
                Ok(_) | Err(_) => json!({}),
            };
            json!({"function": {"name": call.name, "arguments": arguments}})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Usage;

    fn reply() -> Reply {
        Reply {
            id: "chatcmpl-mock-1".into(),
            model: "llama3.2".into(),
            created: 1_702_390_423,
            text: "Hi there".into(),
            pieces: vec!["Hi".into(), " there".into()],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(26, 2),
        }
    }

    #[test]
    fn streaming_is_the_default() {
        let body = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}],
                          "options": {"num_predict": -1}});
        let summary = OllamaWire.parse_chat(Operation::Chat, "/api/chat", &body).expect("parses");
        assert!(summary.stream);
        assert_eq!(summary.max_tokens, None);
        let error = OllamaWire
            .parse_chat(Operation::Chat, "/api/chat", &json!({"messages": []}))
            .expect_err("no model");
        assert_eq!(error, "model is required");
    }

    #[test]
    fn the_stream_is_ndjson_ending_with_a_done_line() {
        let frames = OllamaWire.stream_frames(&ChatSummary::default(), &reply());
        assert_eq!(frames.content_type, "application/x-ndjson");
        assert_eq!(frames.frames.len(), 3);
        let last: Value = serde_json::from_slice(&frames.frames[2]).expect("json");
        assert_eq!(
            (
                last["done"].as_bool(),
                last["eval_count"].as_u64(),
                last["prompt_eval_count"].as_u64()
            ),
            (Some(true), Some(2), Some(26))
        );
        assert!(frames.frames.iter().all(|frame| frame.ends_with(b"\n")));
        let body = OllamaWire.chat_body(&ChatSummary::default(), &reply());
        assert_eq!(body["message"], json!({"role": "assistant", "content": "Hi there"}));
        assert_eq!(body["created_at"], "2023-12-12T14:13:43.000000Z");
    }

    #[test]
    fn errors_are_bare_messages() {
        let response = OllamaWire.failure(&Failure::ModelNotFound { model: "llama9".into() }, None);
        assert_eq!(response.status.as_u16(), 404);
        assert_eq!(&response.body[..], br#"{"error":"model 'llama9' not found"}"#);
        assert_eq!(OllamaWire.failure(&Failure::Overloaded, None).status.as_u16(), 503);
    }
}
