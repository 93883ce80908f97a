//! The OpenAI Chat Completions wire format, with the flavours of the providers that speak it:
//! OpenAI itself, Groq (its headers count requests per day and tokens per minute, its
//! too-large requests are 413s), Mistral (its own header names and bodies) and OpenRouter
//! (its bodies, its keep-alive comments).

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::wire::{
    ChatSummary, Failure, Operation, Reply, StreamFrames, Unit, Window, WindowReading, WireFormat,
    WireResponse, bearer, format_go_duration,
};

/// Which provider's words the OpenAI format uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// OpenAI: `x-ratelimit-*` over the current (per-minute) windows.
    OpenAi,
    /// Groq: `x-ratelimit-*-requests` per day, `*-tokens` per minute; 413 for a request
    /// larger than the per-minute token limit; `x_groq` in bodies.
    Groq,
    /// Mistral: `x-ratelimit-*-req-minute` / `-tokens-minute` headers, its own error bodies.
    Mistral,
    /// OpenRouter: numeric error codes, 402 for billing, keep-alive comment lines.
    OpenRouter,
    /// Gemini's OpenAI-compatible surface (`/v1beta/openai`): OpenAI's requests and answers
    /// with Bearer keys, but every error is a JSON list holding one Gemini `google.rpc.Status`
    /// (a 429's delay only in its message, `Please retry in 37.4s.`, and in
    /// `RetryInfo.retryDelay`) and no header says anything of limits.
    GeminiOpenAi,
}

/// The OpenAI Chat Completions format in one flavour.
#[derive(Clone, Copy, Debug)]
pub struct OpenAiWire {
    flavor: Flavor,
}

impl OpenAiWire {
    /// OpenAI's own words.
    pub fn openai() -> Self {
        Self { flavor: Flavor::OpenAi }
    }

    /// A flavour.
    pub fn new(flavor: Flavor) -> Self {
        Self { flavor }
    }

    fn error_body(&self, message: &str, kind: &str, code: Option<&str>, status: u16) -> Value {
        match self.flavor {
            Flavor::OpenRouter => json!({"error": {"message": message, "code": status}}),
            Flavor::Mistral => json!({
                "object": "error", "message": message, "type": kind, "param": null,
                "code": code,
            }),
            Flavor::OpenAi | Flavor::Groq | Flavor::GeminiOpenAi => json!({
                "error": {"message": message, "type": kind, "param": null, "code": code}
            }),
        }
    }

    fn organization(&self) -> &'static str {
        match self.flavor {
            Flavor::Groq => "`org_mock`",
            Flavor::OpenAi | Flavor::Mistral | Flavor::OpenRouter | Flavor::GeminiOpenAi => {
                "org-mock"
            }
        }
    }
}

impl WireFormat for OpenAiWire {
    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::OpenAi => "openai",
            Flavor::Groq => "groq",
            Flavor::Mistral => "mistral",
            Flavor::OpenRouter => "openrouter",
            Flavor::GeminiOpenAi => "gemini-openai",
        }
    }

    fn base_path(&self) -> &'static str {
        match self.flavor {
            Flavor::GeminiOpenAi => "/v1beta/openai",
            Flavor::OpenAi | Flavor::Groq | Flavor::Mistral | Flavor::OpenRouter => "/v1",
        }
    }

    fn operation(&self, method: &Method, path: &str) -> Option<Operation> {
        if *method == Method::POST && path.ends_with("/chat/completions") {
            Some(Operation::Chat)
        } else if *method == Method::GET && path.ends_with("/models") {
            Some(Operation::ListModels)
        } else {
            None
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
            .ok_or("you must provide a model parameter")?
            .to_owned();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|messages| !messages.is_empty())
            .ok_or("'messages' must contain at least one message")?;
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let include_usage =
            body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        if self.flavor == Flavor::Mistral && body.get("stream_options").is_some() {
            return Err("stream_options: Extra inputs are not permitted".to_owned());
        }
        let mut prompt_text = String::new();
        let mut last_user_text = String::new();
        for message in messages {
            let role =
                message.get("role").and_then(Value::as_str).ok_or("a message has no role")?;
            let text = content_text(message.get("content"));
            if role == "user" {
                last_user_text.clone_from(&text);
            }
            prompt_text.push_str(&text);
        }
        if let Some(tools) = body.get("tools") {
            prompt_text.push_str(&tools.to_string());
        }
        let max_tokens = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|field| body.get(*field).and_then(Value::as_u64))
            .map(|max| u32::try_from(max).unwrap_or(u32::MAX));
        Ok(ChatSummary {
            model,
            stream,
            // Groq, Mistral and OpenRouter send usage at the end of every stream.
            stream_usage: include_usage
                || matches!(self.flavor, Flavor::Groq | Flavor::OpenRouter | Flavor::Mistral),
            prompt_text,
            last_user_text,
            max_tokens,
            reasoning: body.get("reasoning_effort").is_some_and(|effort| !effort.is_null()),
        })
    }

    fn chat_body(&self, _summary: &ChatSummary, reply: &Reply) -> Value {
        let mut message = json!({"role": "assistant", "content": reply.text});
        if !reply.tool_calls.is_empty() {
            message["content"] = Value::Null;
            message["tool_calls"] = reply
                .tool_calls
                .iter()
                .map(|call| {
                    json!({"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments}})
                })
                .collect();
        }
        let mut body = json!({
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [{"index": 0, "message": message, "logprobs": null,
                         "finish_reason": finish_reason(reply)}],
            "usage": usage(reply),
            "system_fingerprint": "fp_mock",
        });
        if self.flavor == Flavor::Groq {
            body["x_groq"] = json!({"id": format!("req_{}", reply.id)});
        }
        body
    }

    fn stream_frames(&self, summary: &ChatSummary, reply: &Reply) -> StreamFrames {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": reply.id, "object": "chat.completion.chunk", "created": reply.created,
                "model": reply.model, "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        let mut events: Vec<Value> = Vec::with_capacity(reply.pieces.len() + 4);
        events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        for piece in &reply.pieces {
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
        for (index, call) in reply.tool_calls.iter().enumerate() {
            // The arguments arrive in two fragments, as real streams split them.
            let split = call.arguments.char_indices().nth(call.arguments.chars().count() / 2);
            let (head, tail) = call.arguments.split_at(split.map_or(0, |(at, _)| at));
            events.push(chunk(
                json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                       "function": {"name": call.name, "arguments": head}}]}),
                Value::Null,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": tail}}]}),
                Value::Null,
            ));
        }
        let mut last = chunk(json!({}), json!(finish_reason(reply)));
        if self.flavor == Flavor::Groq {
            last["x_groq"] = json!({"id": format!("req_{}", reply.id), "usage": usage(reply)});
        }
        if self.flavor == Flavor::Mistral {
            // Mistral puts usage on its last content chunk, not on a chunk of its own.
            last["usage"] = usage(reply);
        }
        events.push(last);
        if summary.stream_usage && self.flavor != Flavor::Mistral {
            let mut usage_chunk = chunk(json!({}), Value::Null);
            usage_chunk["choices"] = json!([]);
            usage_chunk["usage"] = usage(reply);
            events.push(usage_chunk);
        }
        let mut frames = Vec::with_capacity(events.len() + 2);
        if self.flavor == Flavor::OpenRouter {
            frames.push(Bytes::from_static(b": OPENROUTER PROCESSING\n\n"));
        }
        frames.extend(events.iter().map(|event| Bytes::from(format!("data: {event}\n\n"))));
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        StreamFrames { content_type: "text/event-stream", frames }
    }

    fn models_body(&self, models: &[String]) -> Value {
        let data: Vec<Value> = models
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}))
            .collect();
        json!({"object": "list", "data": data})
    }

    fn failure(&self, failure: &Failure, model: Option<&str>) -> WireResponse {
        if self.flavor == Flavor::GeminiOpenAi {
            return gemini_listed(failure, model);
        }
        let model = model.unwrap_or("unknown");
        match failure {
            Failure::RateLimited { window, unit, limit, used, requested, retry_after } => {
                let response = match self.flavor {
                    Flavor::Mistral => WireResponse::json(
                        StatusCode::TOO_MANY_REQUESTS,
                        &self.error_body("Rate limit exceeded", "rate_limited", Some("1300"), 429),
                    ),
                    Flavor::OpenRouter => {
                        let message = match window {
                            Window::Day => {
                                "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day"
                            }
                            Window::Minute => "Rate limit exceeded: free-models-per-min.",
                        };
                        WireResponse::json(
                            StatusCode::TOO_MANY_REQUESTS,
                            &json!({"error": {"message": message, "code": 429}}),
                        )
                    }
                    Flavor::OpenAi | Flavor::Groq | Flavor::GeminiOpenAi => {
                        let what = match (unit, window) {
                            (Unit::Requests, Window::Minute) => "requests per min (RPM)",
                            (Unit::Tokens, Window::Minute) => "tokens per min (TPM)",
                            (Unit::Requests, Window::Day) => "requests per day (RPD)",
                            (Unit::Tokens, Window::Day) => "tokens per day (TPD)",
                        };
                        let what = if self.flavor == Flavor::Groq {
                            what.replace("per min ", "per minute ")
                        } else {
                            what.to_owned()
                        };
                        let subject = if self.flavor == Flavor::Groq {
                            format!("model `{model}`")
                        } else {
                            model.to_owned()
                        };
                        let message = format!(
                            "Rate limit reached for {subject} in organization {} on {what}: \
                             Limit {limit}, Used {used}, Requested {requested}. Please try again \
                             in {}. Visit https://platform.openai.com/account/rate-limits to \
                             learn more.",
                            self.organization(),
                            format_go_duration(*retry_after),
                        );
                        let kind = match unit {
                            Unit::Requests => "requests",
                            Unit::Tokens => "tokens",
                        };
                        WireResponse::json(
                            StatusCode::TOO_MANY_REQUESTS,
                            &self.error_body(&message, kind, Some("rate_limit_exceeded"), 429),
                        )
                    }
                };
                with_retry_after(response, self.flavor, *retry_after)
            }
            Failure::RequestTooLarge { limit, requested } => {
                let message = format!(
                    "Request too large for {model} in organization {} on tokens per min (TPM): \
                     Limit {limit}, Requested {requested}. The input or output tokens must be \
                     reduced in order to run successfully.",
                    self.organization()
                );
                let status = match self.flavor {
                    Flavor::Groq => StatusCode::PAYLOAD_TOO_LARGE,
                    Flavor::OpenAi | Flavor::Mistral | Flavor::OpenRouter | Flavor::GeminiOpenAi => {
                        StatusCode::TOO_MANY_REQUESTS
                    }
                };
                WireResponse::json(
                    status,
                    &self.error_body(
                        &message,
                        "tokens",
                        Some("rate_limit_exceeded"),
                        status.as_u16(),
                    ),
                )
            }
            Failure::BillingStopped => match self.flavor {
                Flavor::OpenRouter => WireResponse::json(
                    StatusCode::PAYMENT_REQUIRED,
                    &self.error_body(
                        "Insufficient credits. Add more using https://openrouter.ai/credits",
                        "",
                        None,
                        402,
                    ),
                ),
                Flavor::OpenAi | Flavor::Groq | Flavor::Mistral | Flavor::GeminiOpenAi => {
                    WireResponse::json(
                    StatusCode::TOO_MANY_REQUESTS,
                    &self.error_body(
                        "You exceeded your current quota, please check your plan and billing \
                         details. For more information on this error, read the docs: \
                         https://platform.openai.com/docs/guides/error-codes/api-errors.",
                        "insufficient_quota",
                        Some("insufficient_quota"),
                        429,
                    ),
                    )
                }
            },
            Failure::InvalidKey { sent } => {
                let body = match self.flavor {
                    Flavor::Groq => self.error_body(
                        "Invalid API Key",
                        "invalid_request_error",
                        Some("invalid_api_key"),
                        401,
                    ),
                    Flavor::Mistral => {
                        json!({"message": "Unauthorized", "request_id": "mock0000000000000000"})
                    }
                    Flavor::OpenRouter => self.error_body("User not found.", "", None, 401),
                    Flavor::OpenAi | Flavor::GeminiOpenAi => {
                        let message = match sent {
                            Some(sent) => format!(
                                "Incorrect API key provided: {}. You can find your API key at \
                                 https://platform.openai.com/account/api-keys.",
                                masked(sent)
                            ),
                            None => "You didn't provide an API key. You need to provide your API \
                                     key in an Authorization header using Bearer auth."
                                .to_owned(),
                        };
                        self.error_body(
                            &message,
                            "invalid_request_error",
                            Some("invalid_api_key"),
                            401,
                        )
                    }
                };
                WireResponse::json(StatusCode::UNAUTHORIZED, &body)
            }
            Failure::PermissionDenied => WireResponse::json(
                StatusCode::FORBIDDEN,
                &self.error_body(
                    "Country, region, or territory not supported",
                    "request_forbidden",
                    Some("unsupported_country_region_territory"),
                    403,
                ),
            ),
            Failure::ModelNotFound { model } => match self.flavor {
                Flavor::Mistral => WireResponse::json(
                    StatusCode::BAD_REQUEST,
                    &self.error_body(
                        &format!("Invalid model: {model}"),
                        "invalid_model",
                        Some("1500"),
                        400,
                    ),
                ),
                Flavor::OpenAi | Flavor::Groq | Flavor::OpenRouter | Flavor::GeminiOpenAi => {
                    WireResponse::json(
                    StatusCode::NOT_FOUND,
                    &self.error_body(
                        &format!(
                            "The model `{model}` does not exist or you do not have access to it."
                        ),
                        "invalid_request_error",
                        Some("model_not_found"),
                        404,
                    ),
                    )
                }
            },
            Failure::ContextTooLong { max, requested } => {
                let message = format!(
                    "This model's maximum context length is {max} tokens. However, your messages \
                     resulted in {requested} tokens. Please reduce the length of the messages."
                );
                let mut body = self.error_body(
                    &message,
                    "invalid_request_error",
                    Some("context_length_exceeded"),
                    400,
                );
                if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
                    error.insert("param".to_owned(), json!("messages"));
                }
                WireResponse::json(StatusCode::BAD_REQUEST, &body)
            }
            Failure::BadRequest { message } => match self.flavor {
                // Mistral validates bodies with a 422 listing each problem.
                Flavor::Mistral => WireResponse::json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}),
                ),
                Flavor::OpenAi | Flavor::Groq | Flavor::OpenRouter | Flavor::GeminiOpenAi => {
                    WireResponse::json(
                        StatusCode::BAD_REQUEST,
                        &self.error_body(message, "invalid_request_error", None, 400),
                    )
                }
            },
            Failure::Overloaded => WireResponse::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &self.error_body(
                    "The server is overloaded or not ready yet.",
                    "service_unavailable_error",
                    Some("server_is_overloaded"),
                    503,
                ),
            ),
            Failure::ServerError { status } => WireResponse::json(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &self.error_body(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                    *status,
                ),
            ),
        }
    }

    fn limit_headers(&self, readings: &[WindowReading], headers: &mut HeaderMap) {
        let find = |unit: Unit, windows: &[Window]| {
            windows.iter().find_map(|window| {
                readings.iter().find(|reading| reading.unit == unit && reading.window == *window)
            })
        };
        let mut put = |name: String, value: String| {
            if let (Ok(name), Ok(value)) =
                (axum::http::HeaderName::try_from(name), axum::http::HeaderValue::try_from(value))
            {
                headers.insert(name, value);
            }
        };
        match self.flavor {
            // Gemini sends no rate-limit header on any surface.
            Flavor::GeminiOpenAi => {}
            Flavor::Mistral => {
                for reading in readings.iter().filter(|reading| reading.window == Window::Minute) {
                    let unit = match reading.unit {
                        Unit::Requests => "req",
                        Unit::Tokens => "tokens",
                    };
                    put(format!("x-ratelimit-limit-{unit}-minute"), reading.limit.to_string());
                    put(
                        format!("x-ratelimit-remaining-{unit}-minute"),
                        reading.remaining.to_string(),
                    );
                }
            }
            Flavor::OpenAi | Flavor::Groq | Flavor::OpenRouter => {
                // Groq's request headers count the day and its token headers the minute;
                // OpenAI's count the current (per-minute) windows.
                let (requests, tokens) = match self.flavor {
                    Flavor::Groq => (
                        find(Unit::Requests, &[Window::Day]),
                        find(Unit::Tokens, &[Window::Minute]),
                    ),
                    Flavor::OpenAi
                    | Flavor::Mistral
                    | Flavor::OpenRouter
                    | Flavor::GeminiOpenAi => (
                        find(Unit::Requests, &[Window::Minute, Window::Day]),
                        find(Unit::Tokens, &[Window::Minute, Window::Day]),
                    ),
                };
                for (reading, unit) in [(requests, "requests"), (tokens, "tokens")] {
                    if let Some(reading) = reading {
                        put(format!("x-ratelimit-limit-{unit}"), reading.limit.to_string());
                        put(format!("x-ratelimit-remaining-{unit}"), reading.remaining.to_string());
                        put(
                            format!("x-ratelimit-reset-{unit}"),
                            format_go_duration(reading.reset_after),
                        );
                    }
                }
            }
        }
    }
}

fn with_retry_after(response: WireResponse, flavor: Flavor, retry_after: Duration) -> WireResponse {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let response = response.with_header("retry-after", seconds);
    match flavor {
        // OpenAI's SDK honours the millisecond header first; Groq sends seconds only.
        Flavor::OpenAi => response.with_header("retry-after-ms", retry_after.as_millis()),
        Flavor::Groq | Flavor::Mistral | Flavor::OpenRouter | Flavor::GeminiOpenAi => response,
    }
}

/// A failure as Gemini's OpenAI-compatible surface answers it: Gemini's own status, body and
/// (absent) headers, the body wrapped in a one-element list.
fn gemini_listed(failure: &Failure, model: Option<&str>) -> WireResponse {
    let mut response = crate::gemini::GeminiWire.failure(failure, model);
    if let Ok(body) = serde_json::from_slice::<Value>(&response.body) {
        response.body = Bytes::from(Value::Array(vec![body]).to_string());
    }
    response
}

/// OpenAI's way of showing a wrong key: the first few and the last four characters.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(8))
}

fn finish_reason(reply: &Reply) -> &'static str {
    match reply.finish_reason {
        switchyard_core::FinishReason::Stop | switchyard_core::FinishReason::Other(_) => "stop",
        switchyard_core::FinishReason::Length => "length",
        switchyard_core::FinishReason::ToolCalls => "tool_calls",
        switchyard_core::FinishReason::ContentFilter => "content_filter",
    }
}

fn usage(reply: &Reply) -> Value {
    let mut usage = json!({
        "prompt_tokens": reply.usage.prompt_tokens,
        "completion_tokens": reply.usage.completion_tokens,
        "total_tokens": reply.usage.total_tokens,
    });
    if let Some(reasoning_tokens) = reply.usage.reasoning_tokens {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": reasoning_tokens});
    }
    usage
}

/// The text of a message's `content`: a string, or the text parts of an array.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .concat(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_key_is_shown_masked() {
        assert_eq!(masked("sk-proj-abcdefgh1234"), "sk-********1234");
        assert_eq!(masked("short"), "*****");
    }

    #[test]
    fn groq_headers_count_requests_per_day_and_tokens_per_minute() {
        let at = chrono::DateTime::UNIX_EPOCH;
        let reading = |window, unit, remaining| WindowReading {
            window,
            unit,
            limit: 100,
            remaining,
            reset_after: Duration::from_secs(360),
            reset_at: at,
        };
        let readings = [
            reading(Window::Minute, Unit::Requests, 1),
            reading(Window::Minute, Unit::Tokens, 2),
            reading(Window::Day, Unit::Requests, 3),
        ];
        let mut headers = HeaderMap::new();
        OpenAiWire::new(Flavor::Groq).limit_headers(&readings, &mut headers);
        assert_eq!(headers["x-ratelimit-remaining-requests"], "3");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "2");
        assert_eq!(headers["x-ratelimit-reset-tokens"], "6m0s");
        let mut headers = HeaderMap::new();
        OpenAiWire::openai().limit_headers(&readings, &mut headers);
        assert_eq!(headers["x-ratelimit-remaining-requests"], "1");
    }
}
