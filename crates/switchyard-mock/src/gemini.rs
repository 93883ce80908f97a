//! The Gemini (Generative Language API) wire format: `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` with `x-goog-api-key` (or `?key=`), answers as
//! candidates with parts, a stream of whole responses ended by the body's end, errors as
//! `google.rpc.Status` with typed details: `QuotaFailure` whose quota id says per minute or
//! per day, `RetryInfo` with the delay, `ErrorInfo` `API_KEY_INVALID` on a 400. Gemini sends
//! no rate-limit headers.

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};
use switchyard_core::FinishReason;

use crate::wire::{
    ChatSummary, Failure, Operation, Reply, StreamFrames, Unit, Window, WindowReading, WireFormat,
    WireResponse,
};

/// Gemini's API. Its base URL is the mock's address (clients add `/v1beta/...`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GeminiWire;

impl GeminiWire {
    fn status(code: u16, status: &str, message: &str, details: Vec<Value>) -> WireResponse {
        let mut error = json!({"code": code, "message": message, "status": status});
        if !details.is_empty() {
            error["details"] = Value::Array(details);
        }
        WireResponse::json(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({"error": error}),
        )
    }

    /// Gemini's 429: the quota named by window and unit in `QuotaFailure`, the delay in
    /// `RetryInfo` and at the end of the message. A zero limit says `limit: 0`.
    fn exhausted(
        window: Window,
        unit: Unit,
        limit: u64,
        model: &str,
        retry_after: Duration,
    ) -> WireResponse {
        let (metric, quota_id) = match (window, unit) {
            (Window::Minute, Unit::Requests) => (
                "generate_content_free_tier_requests",
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            ),
            (Window::Minute, Unit::Tokens) => (
                "generate_content_free_tier_input_token_count",
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            ),
            (Window::Day, Unit::Requests) => (
                "generate_content_free_tier_requests",
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            ),
            (Window::Day, Unit::Tokens) => (
                "generate_content_free_tier_input_token_count",
                "GenerateContentInputTokensPerModelPerDay-FreeTier",
            ),
        };
        let seconds = retry_after.as_secs_f64();
        let message = format!(
            "You exceeded your current quota, please check your plan and billing details. For \
             more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. \
             To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded \
             for metric: generativelanguage.googleapis.com/{metric}, limit: {limit}, model: \
             {model}\nPlease retry in {seconds}s."
        );
        Self::status(
            429,
            "RESOURCE_EXHAUSTED",
            &message,
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": format!("generativelanguage.googleapis.com/{metric}"),
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": limit.to_string()}]}),
                json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                       "retryDelay": format!("{}s", retry_after.as_secs())}),
            ],
        )
    }
}

impl WireFormat for GeminiWire {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn base_path(&self) -> &'static str {
        ""
    }

    fn operation(&self, method: &Method, path: &str) -> Option<Operation> {
        let rest = path.strip_prefix("/v1beta/").or_else(|| path.strip_prefix("/v1/"))?;
        if *method == Method::GET && rest == "models" {
            return Some(Operation::ListModels);
        }
        let (_, method_name) = rest.strip_prefix("models/")?.split_once(':')?;
        match (method, method_name) {
            (&Method::POST, "generateContent") => Some(Operation::Chat),
            (&Method::POST, "streamGenerateContent") => Some(Operation::ChatStream),
            _ => None,
        }
    }

    fn credential(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        let header = headers.get("x-goog-api-key").and_then(|value| value.to_str().ok());
        let from_query =
            || query?.split('&').find_map(|pair| pair.strip_prefix("key=")).map(str::to_owned);
        header.map(str::to_owned).or_else(from_query).filter(|key| !key.trim().is_empty())
    }

    fn parse_chat(
        &self,
        operation: Operation,
        path: &str,
        body: &Value,
    ) -> Result<ChatSummary, String> {
        let model = path
            .split_once("/models/")
            .and_then(|(_, rest)| rest.split_once(':'))
            .map(|(model, _)| model.to_owned())
            .ok_or("* GenerateContentRequest.model: unexpected model name format")?;
        let contents = body
            .get("contents")
            .and_then(Value::as_array)
            .filter(|contents| !contents.is_empty())
            .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
        let mut prompt_text =
            body.pointer("/systemInstruction/parts").map(parts_text).unwrap_or_default();
        let mut last_user_text = String::new();
        for content in contents {
            let role = content.get("role").and_then(Value::as_str).unwrap_or("user");
            if !matches!(role, "user" | "model") {
                return Err(format!("Please use a valid role: user, model. Got role: {role}"));
            }
            let text = content.get("parts").map(parts_text).unwrap_or_default();
            if role == "user" {
                last_user_text.clone_from(&text);
            }
            prompt_text.push_str(&text);
        }
        if let Some(tools) = body.get("tools") {
            prompt_text.push_str(&tools.to_string());
        }
        let max_tokens = body
            .pointer("/generationConfig/maxOutputTokens")
            .and_then(Value::as_u64)
            .map(|max| u32::try_from(max).unwrap_or(u32::MAX));
        Ok(ChatSummary {
            model,
            stream: operation == Operation::ChatStream,
            stream_usage: true,
            prompt_text,
            last_user_text,
            max_tokens,
            reasoning: body
                .pointer("/generationConfig/thinkingConfig/thinkingBudget")
                .and_then(Value::as_i64)
                .is_some_and(|budget| budget != 0),
        })
    }

    fn chat_body(&self, _summary: &ChatSummary, reply: &Reply) -> Value {
        let mut parts = Vec::new();
        if !reply.text.is_empty() || reply.tool_calls.is_empty() {
            parts.push(json!({"text": reply.text}));
        }
        parts.extend(function_calls(reply));
        response(reply, parts, Some(finish_reason(reply)), reply.usage.completion_tokens)
    }

    fn stream_frames(&self, _summary: &ChatSummary, reply: &Reply) -> StreamFrames {
        // Each chunk is a whole response holding only the new parts, with running usage; the
        // last carries the finish reason. No end marker: the body simply ends.
        let mut chunks: Vec<Vec<Value>> =
            reply.pieces.iter().map(|piece| vec![json!({"text": piece})]).collect();
        let calls = function_calls(reply);
        if !calls.is_empty() {
            chunks.push(calls);
        }
        if chunks.is_empty() {
            chunks.push(vec![json!({"text": ""})]);
        }
        let n_chunks = chunks.len();
        let frames = chunks
            .into_iter()
            .enumerate()
            .map(|(chunk_idx, parts)| {
                let last = chunk_idx + 1 == n_chunks;
                let completion_tokens = if last {
                    reply.usage.completion_tokens
                } else {
                    u32::try_from(chunk_idx + 1).unwrap_or(u32::MAX)
                };
                let chunk =
                    response(reply, parts, last.then(|| finish_reason(reply)), completion_tokens);
                // Google ends its lines with CRLF.
                Bytes::from(format!("data: {chunk}\r\n\r\n"))
            })
            .collect();
        StreamFrames { content_type: "text/event-stream", frames }
    }

    fn models_body(&self, models: &[String]) -> Value {
        let listed: Vec<Value> = models
            .iter()
            .map(|id| {
                json!({"name": format!("models/{id}"), "version": "001", "displayName": id,
                       "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
                       "supportedGenerationMethods": ["generateContent", "countTokens"]})
            })
            .chain(std::iter::once(json!({
                // Listed by Gemini too, but not a chat model: clients filter it out.
                "name": "models/text-embedding-004", "version": "004",
                "inputTokenLimit": 2048, "outputTokenLimit": 1,
                "supportedGenerationMethods": ["embedContent"]})))
            .collect();
        json!({"models": listed})
    }

    fn failure(&self, failure: &Failure, model: Option<&str>) -> WireResponse {
        let model = model.unwrap_or("unknown");
        match failure {
            Failure::RateLimited { window, unit, limit, retry_after, .. } => {
                Self::exhausted(*window, *unit, *limit, model, *retry_after)
            }
            // A request over the per-minute token limit is one more 429 for Gemini.
            Failure::RequestTooLarge { limit, .. } => Self::exhausted(
                Window::Minute,
                Unit::Tokens,
                *limit,
                model,
                Duration::from_secs(60),
            ),
            // Gemini has no billing error: a key whose tier has no quota for a model is told
            // `limit: 0`.
            Failure::BillingStopped => {
                Self::exhausted(Window::Day, Unit::Requests, 0, model, Duration::from_secs(20))
            }
            Failure::InvalidKey { sent: Some(_) } => {
                let message = "API key not valid. Please pass a valid API key.";
                Self::status(
                    400,
                    "INVALID_ARGUMENT",
                    message,
                    vec![
                        json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                               "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                               "metadata": {"service": "generativelanguage.googleapis.com"}}),
                        json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                               "locale": "en-US", "message": message}),
                    ],
                )
            }
            Failure::InvalidKey { sent: None } => Self::status(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
                Vec::new(),
            ),
            Failure::PermissionDenied => Self::status(
                403,
                "PERMISSION_DENIED",
                "Your API key was reported as leaked. Please use another API key.",
                Vec::new(),
            ),
            Failure::ModelNotFound { model } => Self::status(
                404,
                "NOT_FOUND",
                &format!(
                    "models/{model} is not found for API version v1beta, or is not supported \
                     for generateContent. Call ListModels to see the list of available models \
                     and their supported methods."
                ),
                Vec::new(),
            ),
            Failure::ContextTooLong { max, requested } => Self::status(
                400,
                "INVALID_ARGUMENT",
                &format!(
                    "The input token count ({requested}) exceeds the maximum number of tokens \
                     allowed ({max})."
                ),
                Vec::new(),
            ),
            Failure::BadRequest { message } => {
                Self::status(400, "INVALID_ARGUMENT", message, Vec::new())
            }
            Failure::Overloaded => Self::status(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
                Vec::new(),
            ),
            Failure::ServerError { status } => Self::status(
                *status,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
                Vec::new(),
            ),
        }
    }

    fn limit_headers(&self, _readings: &[WindowReading], _headers: &mut HeaderMap) {
        // Gemini sends no rate-limit headers.
    }
}

/// A response object with the given parts.
fn response(
    reply: &Reply,
    parts: Vec<Value>,
    finish: Option<&str>,
    completion_tokens: u32,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let created = DateTime::from_timestamp(reply.created, 0).unwrap_or_default();
    let mut usage = json!({"promptTokenCount": reply.usage.prompt_tokens,
                          "candidatesTokenCount": completion_tokens,
                          "totalTokenCount": reply.usage.prompt_tokens + completion_tokens,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.usage.prompt_tokens}]});
    // Gemini counts the thinking apart from the candidates; the thinking is done before the
    // first chunk, so every chunk carries it.
    if let Some(thoughts) = reply.usage.reasoning_tokens {
        let answer_so_far = completion_tokens.saturating_sub(thoughts);
        let answer_tokens = if finish.is_some() { answer_so_far } else { completion_tokens };
        usage["candidatesTokenCount"] = json!(answer_tokens);
        usage["thoughtsTokenCount"] = json!(thoughts);
        usage["totalTokenCount"] = json!(reply.usage.prompt_tokens + answer_tokens + thoughts);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": reply.model,
        "responseId": reply.id.trim_start_matches("chatcmpl-"),
        "createTime": created.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

/// The reply's calls as `functionCall` parts; Gemini gives calls no id.
fn function_calls(reply: &Reply) -> Vec<Value> {
    reply
        .tool_calls
        .iter()
        .map(|call| {
            let args = match serde_json::from_str::<Value>(&call.arguments) {
                Ok(object @ Value::Object(_)) => object,
                Ok(_) | Err(_) => json!({}),
            };
            json!({"functionCall": {"name": call.name, "args": args}})
        })
        .collect()
}

fn finish_reason(reply: &Reply) -> &'static str {
    match reply.finish_reason {
        // Gemini has no tool-call reason: a turn that calls functions ends with STOP.
        FinishReason::Stop | FinishReason::ToolCalls => "STOP",
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        FinishReason::Other(_) => "OTHER",
    }
}

/// The text of a `parts` array: text parts, and function responses as JSON.
fn parts_text(parts: &Value) -> String {
    parts
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|part| {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        text.to_owned()
                    } else if let Some(response) = part.get("functionResponse") {
                        response.to_string()
                    } else if let Some(call) = part.get("functionCall") {
                        call.to_string()
                    } else {
                        String::new()
                    }
                })
                .collect::<Vec<_>>()
                .concat()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Usage;

    #[test]
    fn routes_read_the_model_and_method_from_the_path() {
        let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
        assert_eq!(GeminiWire.operation(&Method::POST, path), Some(Operation::ChatStream));
        assert_eq!(
            GeminiWire.operation(&Method::POST, "/v1beta/models/x:generateContent"),
            Some(Operation::Chat)
        );
        assert_eq!(
            GeminiWire.operation(&Method::GET, "/v1beta/models"),
            Some(Operation::ListModels)
        );
        assert_eq!(GeminiWire.operation(&Method::POST, "/v1beta/models/x:countTokens"), None);
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                          "generationConfig": {"maxOutputTokens": 7}});
        let summary = GeminiWire.parse_chat(Operation::ChatStream, path, &body).expect("parses");
        assert_eq!(
            (summary.model.as_str(), summary.stream, summary.max_tokens),
            ("gemini-2.5-flash", true, Some(7))
        );
    }

    #[test]
    fn the_key_comes_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            GeminiWire.credential(&headers, Some("alt=sse&key=AIza1")).as_deref(),
            Some("AIza1")
        );
        headers.insert("x-goog-api-key", "AIza2".parse().expect("header"));
        assert_eq!(GeminiWire.credential(&headers, None).as_deref(), Some("AIza2"));
    }

    #[test]
    fn a_429_says_its_window_through_the_quota_id() {
        for (window, quota_id) in [
            (Window::Minute, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            (Window::Day, "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        ] {
            let failure = Failure::RateLimited {
                window,
                unit: Unit::Requests,
                limit: 15,
                used: 15,
                requested: 1,
                retry_after: Duration::from_secs(37),
            };
            let response = GeminiWire.failure(&failure, Some("gemini-2.5-flash"));
            assert_eq!(response.status.as_u16(), 429);
            let body: Value = serde_json::from_slice(&response.body).expect("json");
            assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
            assert_eq!(body["error"]["details"][0]["violations"][0]["quotaId"], quota_id);
            assert_eq!(body["error"]["details"][2]["retryDelay"], "37s");
            assert!(response.headers.is_empty(), "gemini sends no headers");
        }
    }

    #[test]
    fn the_last_stream_chunk_finishes_with_the_full_usage() {
        let reply = Reply {
            id: "chatcmpl-mock-1".into(),
            model: "gemini-mock".into(),
            created: 0,
            text: "a b".into(),
            pieces: vec!["a".into(), " b".into()],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::new(4, 2),
        };
        let frames = GeminiWire.stream_frames(&ChatSummary::default(), &reply).frames;
        assert_eq!(frames.len(), 2);
        let last = String::from_utf8_lossy(&frames[1]);
        assert!(last.ends_with("\r\n\r\n"));
        let chunk: Value =
            serde_json::from_str(last.trim().trim_start_matches("data: ")).expect("json");
        assert_eq!(chunk["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunk["usageMetadata"]["candidatesTokenCount"], 2);
        assert_eq!(chunk["usageMetadata"]["totalTokenCount"], 6);
    }

    #[test]
    fn thinking_is_counted_apart_from_the_candidates() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                          "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}});
        let path = "/v1beta/models/gemini-2.5-flash:generateContent";
        let summary = GeminiWire.parse_chat(Operation::Chat, path, &body).expect("parses");
        assert!(summary.reasoning);
        let off = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                         "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}});
        assert!(!GeminiWire.parse_chat(Operation::Chat, path, &off).expect("parses").reasoning);
        let mut usage = Usage::new(4, 2 + 24);
        usage.reasoning_tokens = Some(24);
        let reply = Reply {
            id: "chatcmpl-mock-2".into(),
            model: "gemini-mock".into(),
            created: 0,
            text: "a b".into(),
            pieces: vec!["a".into(), " b".into()],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage,
        };
        let plain = GeminiWire.chat_body(&summary, &reply);
        let metadata = &plain["usageMetadata"];
        assert_eq!(
            (&metadata["candidatesTokenCount"], &metadata["thoughtsTokenCount"]),
            (&json!(2), &json!(24))
        );
        assert_eq!(metadata["totalTokenCount"], 30);
        let frames = GeminiWire.stream_frames(&summary, &reply).frames;
        let first = String::from_utf8_lossy(&frames[0]);
        let chunk: Value =
            serde_json::from_str(first.trim().trim_start_matches("data: ")).expect("json");
        assert_eq!(chunk["usageMetadata"]["candidatesTokenCount"], 1, "the answer so far");
        assert_eq!(chunk["usageMetadata"]["thoughtsTokenCount"], 24);
    }
}
