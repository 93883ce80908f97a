//! The Anthropic Messages wire format: `POST /v1/messages` with `x-api-key`, answers as
//! content blocks or as named server-sent events, errors as `{"type":"error","error":{...}}`
//! with Anthropic's types and statuses (529 for overload), and the `anthropic-ratelimit-*`
//! headers with RFC 3339 reset times.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use chrono::SecondsFormat;
use serde_json::{Value, json};
use switchyard_core::FinishReason;

use crate::wire::{
    ChatSummary, Failure, Operation, Reply, StreamFrames, Unit, Window, WindowReading, WireFormat,
    WireResponse,
};

/// Anthropic's Messages API. Its base URL is the mock's address (clients add `/v1/...`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnthropicWire;

impl AnthropicWire {
    fn error(status: StatusCode, kind: &str, message: &str) -> WireResponse {
        WireResponse::json(
            status,
            &json!({"type": "error", "error": {"type": kind, "message": message},
                    "request_id": "req_mock0000000000000000000"}),
        )
    }
}

impl WireFormat for AnthropicWire {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn base_path(&self) -> &'static str {
        ""
    }

    fn operation(&self, method: &Method, path: &str) -> Option<Operation> {
        if *method == Method::POST && path == "/v1/messages" {
            Some(Operation::Chat)
        } else if *method == Method::GET && path == "/v1/models" {
            Some(Operation::ListModels)
        } else {
            None
        }
    }

    fn credential(&self, headers: &HeaderMap, _query: Option<&str>) -> Option<String> {
        let key = headers.get("x-api-key")?.to_str().ok()?.trim();
        (!key.is_empty()).then(|| key.to_owned())
    }

    fn parse_chat(
        &self,
        _operation: Operation,
        _path: &str,
        body: &Value,
    ) -> Result<ChatSummary, String> {
        let model = body.get("model").and_then(Value::as_str).ok_or("model: Field required")?;
        let max_tokens =
            body.get("max_tokens").and_then(Value::as_u64).ok_or("max_tokens: Field required")?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|messages| !messages.is_empty())
            .ok_or("messages: at least one message is required")?;
        let mut prompt_text = body.get("system").map(content_text).unwrap_or_default();
        let mut last_user_text = String::new();
        for message in messages {
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .ok_or("messages: Field required: role")?;
            if !matches!(role, "user" | "assistant") {
                return Err(format!(
                    "messages: Input tag '{role}' found using 'role' does not match any of the expected tags: 'user', 'assistant'"
                ));
            }
            let text = message.get("content").map(content_text).unwrap_or_default();
            if role == "user" {
                last_user_text.clone_from(&text);
            }
            prompt_text.push_str(&text);
        }
        if let Some(tools) = body.get("tools") {
            prompt_text.push_str(&tools.to_string());
        }
        let reasoning = thinking(body, max_tokens)?;
        Ok(ChatSummary {
            model: model.to_owned(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            stream_usage: true,
            prompt_text,
            last_user_text,
            max_tokens: Some(u32::try_from(max_tokens).unwrap_or(u32::MAX)),
            reasoning,
        })
    }

    fn chat_body(&self, _summary: &ChatSummary, reply: &Reply) -> Value {
        let mut content = Vec::new();
        if !reply.text.is_empty() || reply.tool_calls.is_empty() {
            content.push(json!({"type": "text", "text": reply.text}));
        }
        for call in &reply.tool_calls {
            content.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                                "input": arguments(&call.arguments)}));
        }
        json!({
            "id": message_id(reply), "type": "message", "role": "assistant", "model": reply.model,
            "content": content, "stop_reason": stop_reason(reply), "stop_sequence": null,
            "usage": {"input_tokens": reply.usage.prompt_tokens,
                      "output_tokens": reply.usage.completion_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        })
    }

    fn stream_frames(&self, _summary: &ChatSummary, reply: &Reply) -> StreamFrames {
        let mut events: Vec<(&str, Value)> = Vec::with_capacity(reply.pieces.len() + 8);
        events.push((
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(reply), "type": "message", "role": "assistant",
                "model": reply.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": reply.usage.prompt_tokens, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ));
        events.push(("ping", json!({"type": "ping"})));
        let mut index = 0;
        if !reply.text.is_empty() || reply.tool_calls.is_empty() {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}}),
            ));
            for piece in &reply.pieces {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
        }
        for call in &reply.tool_calls {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
            ));
            // Anthropic streams the input as JSON text in fragments; the first is empty.
            let input = arguments(&call.arguments).to_string();
            let split = input.char_indices().nth(input.chars().count() / 2).map_or(0, |(at, _)| at);
            let (head, tail) = input.split_at(split);
            for fragment in ["", head, tail] {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": fragment}}),
                ));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
        }
        events.push((
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop_reason(reply), "stop_sequence": null},
                   "usage": {"output_tokens": reply.usage.completion_tokens}}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
        let frames = events
            .into_iter()
            .map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
            .collect();
        StreamFrames { content_type: "text/event-stream", frames }
    }

    fn models_body(&self, models: &[String]) -> Value {
        let data: Vec<Value> = models
            .iter()
            .map(|id| {
                json!({"type": "model", "id": id, "display_name": id,
                             "created_at": "2025-02-19T00:00:00Z"})
            })
            .collect();
        json!({"data": data, "has_more": false, "first_id": models.first(), "last_id": models.last()})
    }

    fn failure(&self, failure: &Failure, _model: Option<&str>) -> WireResponse {
        match failure {
            Failure::RateLimited { window, unit, limit, retry_after, .. } => {
                let what = match unit {
                    Unit::Requests => "requests",
                    Unit::Tokens => "tokens",
                };
                // Anthropic has no daily windows; a scripted day quota still answers in its
                // only 429 words.
                let per = match window {
                    Window::Minute => "minute",
                    Window::Day => "day",
                };
                let message = format!(
                    "This request would exceed the rate limit for your organization \
                     (00000000-0000-0000-0000-000000000000) of {limit} {what} per {per}. For \
                     details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can \
                     see the response headers for current usage. Please reduce the prompt length \
                     or the maximum tokens requested, or try again later."
                );
                Self::error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", &message)
                    .with_header("retry-after", whole_seconds(*retry_after))
            }
            Failure::RequestTooLarge { limit, .. } => Self::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                &format!(
                    "This request would exceed the rate limit for your organization \
                     (00000000-0000-0000-0000-000000000000) of {limit} input tokens per minute. \
                     Please reduce the prompt length or the maximum tokens requested."
                ),
            ),
            Failure::BillingStopped => Self::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans \
                 & Billing to upgrade or purchase credits.",
            ),
            Failure::InvalidKey { sent: Some(_) } => {
                Self::error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key")
            }
            Failure::InvalidKey { sent: None } => Self::error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            ),
            Failure::PermissionDenied => Self::error(
                StatusCode::FORBIDDEN,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            Failure::ModelNotFound { model } => {
                Self::error(StatusCode::NOT_FOUND, "not_found_error", &format!("model: {model}"))
            }
            Failure::ContextTooLong { max, requested } => Self::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("prompt is too long: {requested} tokens > {max} maximum"),
            ),
            Failure::BadRequest { message } => {
                Self::error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            }
            Failure::Overloaded => Self::error(
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "overloaded_error",
                "Overloaded",
            )
            .with_header("x-should-retry", "true"),
            Failure::ServerError { status } => Self::error(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "api_error",
                "Internal server error",
            ),
        }
    }

    fn limit_headers(&self, readings: &[WindowReading], headers: &mut HeaderMap) {
        // Anthropic's buckets are per minute; requests and tokens (input and output together
        // in the mock's one token window).
        for reading in readings.iter().filter(|reading| reading.window == Window::Minute) {
            let bucket = match reading.unit {
                Unit::Requests => "requests",
                Unit::Tokens => "tokens",
            };
            let reset = reading.reset_at.to_rfc3339_opts(SecondsFormat::Secs, true);
            for (field, value) in [
                ("limit", reading.limit.to_string()),
                ("remaining", reading.remaining.to_string()),
                ("reset", reset),
            ] {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(format!("anthropic-ratelimit-{bucket}-{field}")),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

fn message_id(reply: &Reply) -> String {
    format!("msg_{}", reply.id.trim_start_matches("chatcmpl-"))
}

fn stop_reason(reply: &Reply) -> &'static str {
    match reply.finish_reason {
        FinishReason::Stop | FinishReason::Other(_) => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// A tool call's arguments as the object Anthropic's `input` is; text that is not an object
/// becomes `{}`, as a model's broken call would.
fn arguments(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        Ok(_) | Err(_) => json!({}),
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The text of a `system` or `content` field: a string, or the text of its blocks
/// (tool results included).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block.get("type").and_then(Value::as_str) {
                Some("tool_result") => block.get("content").map(content_text).unwrap_or_default(),
                Some("tool_use") => block.get("input").map(Value::to_string).unwrap_or_default(),
                _ => block.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
            })
            .collect::<Vec<_>>()
            .concat(),
        _ => String::new(),
    }
}

/// Whether `thinking` is enabled, refused as Anthropic refuses it: a budget under 1024, not
/// below `max_tokens`, or beside a `temperature`.
fn thinking(body: &Value, max_tokens: u64) -> Result<bool, String> {
    if body.pointer("/thinking/type").and_then(Value::as_str) != Some("enabled") {
        return Ok(false);
    }
    let budget_tokens = body
        .pointer("/thinking/budget_tokens")
        .and_then(Value::as_u64)
        .ok_or("thinking.enabled.budget_tokens: Field required")?;
    if budget_tokens < 1024 {
        return Err(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                .to_owned(),
        );
    }
    if budget_tokens >= max_tokens {
        return Err("`max_tokens` must be greater than `thinking.budget_tokens`".to_owned());
    }
    if body.get("temperature").is_some() {
        return Err("`temperature` may only be set to 1 when thinking is enabled".to_owned());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{ToolCall, Usage};

    fn reply() -> Reply {
        Reply {
            id: "chatcmpl-mock-3".into(),
            model: "claude-mock".into(),
            created: 0,
            text: "Hi there".into(),
            pieces: vec!["Hi".into(), " there".into()],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(5, 2),
        }
    }

    #[test]
    fn a_request_without_max_tokens_is_refused_as_anthropic_does() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let error =
            AnthropicWire.parse_chat(Operation::Chat, "/v1/messages", &body).expect_err("refused");
        assert_eq!(error, "max_tokens: Field required");
        let body = json!({"model": "m", "max_tokens": 9, "system": "sys",
                          "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        let summary =
            AnthropicWire.parse_chat(Operation::Chat, "/v1/messages", &body).expect("parses");
        assert_eq!(
            (summary.max_tokens, summary.last_user_text.as_str(), summary.prompt_text.as_str()),
            (Some(9), "hi", "syshi")
        );
    }

    #[test]
    fn thinking_is_refused_as_anthropic_refuses_it_and_read_when_valid() {
        let parse = |extra: Value| {
            let mut body = json!({"model": "m", "max_tokens": 3000,
                                  "messages": [{"role": "user", "content": "hi"}]});
            for (name, value) in extra.as_object().expect("an object") {
                body[name] = value.clone();
            }
            AnthropicWire.parse_chat(Operation::Chat, "/v1/messages", &body)
        };
        let thinking =
            |budget: u64| json!({"thinking": {"type": "enabled", "budget_tokens": budget}});
        assert!(parse(thinking(2048)).expect("valid").reasoning);
        assert!(!parse(json!({"thinking": {"type": "disabled"}})).expect("valid").reasoning);
        assert!(!parse(json!({})).expect("valid").reasoning);
        let low = parse(thinking(1000)).expect_err("under 1024");
        assert!(low.contains("greater than or equal to 1024"), "{low}");
        let over = parse(thinking(3000)).expect_err("not below max_tokens");
        assert_eq!(over, "`max_tokens` must be greater than `thinking.budget_tokens`");
        let mut warm = thinking(2048);
        warm["temperature"] = json!(0.5);
        assert!(parse(warm).expect_err("with a temperature").contains("temperature"));
    }

    #[test]
    fn the_stream_ends_with_message_stop_and_carries_cumulative_usage() {
        let frames = AnthropicWire.stream_frames(&ChatSummary::default(), &reply()).frames;
        let text: Vec<String> =
            frames.iter().map(|frame| String::from_utf8_lossy(frame).into_owned()).collect();
        assert!(text[0].starts_with("event: message_start\ndata: "), "{}", text[0]);
        assert!(text[0].contains("\"input_tokens\":5"), "{}", text[0]);
        assert!(text.iter().any(|frame| frame.contains("\"text\":\" there\"")));
        assert!(text[text.len() - 2].contains("\"output_tokens\":2"));
        assert_eq!(
            text[text.len() - 1],
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[test]
    fn tool_calls_are_tool_use_blocks() {
        let mut reply = reply();
        reply.text.clear();
        reply.pieces.clear();
        reply.finish_reason = FinishReason::ToolCalls;
        reply.tool_calls.push(ToolCall {
            id: "toolu_1".into(),
            name: "f".into(),
            arguments: r#"{"a":1}"#.into(),
        });
        let body = AnthropicWire.chat_body(&ChatSummary::default(), &reply);
        assert_eq!(
            body["content"],
            json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}])
        );
        assert_eq!(body["stop_reason"], "tool_use");
    }

    #[test]
    fn overload_is_529_and_headers_carry_rfc3339_resets() {
        let response = AnthropicWire.failure(&Failure::Overloaded, None);
        assert_eq!(response.status.as_u16(), 529);
        let reading = WindowReading {
            window: Window::Minute,
            unit: Unit::Requests,
            limit: 50,
            remaining: 49,
            reset_after: Duration::from_secs(60),
            reset_at: chrono::DateTime::from_timestamp(1_768_478_460, 0).expect("date"),
        };
        let mut headers = HeaderMap::new();
        AnthropicWire.limit_headers(&[reading], &mut headers);
        assert_eq!(headers["anthropic-ratelimit-requests-remaining"], "49");
        assert_eq!(headers["anthropic-ratelimit-requests-reset"], "2026-01-15T12:01:00Z");
    }
}
