//! `generateContent` answers → [`ChatResponse`] and [`ChatChunk`]s. Pure: the HTTP layer
//! hands in bodies and SSE payloads.
//!
//! A streamed answer is a series of whole responses, each holding only new parts; its last
//! chunk carries the `finishReason`, and `usageMetadata` holds running totals, so the last
//! one wins. There is no end marker: a stream that ends before a finish reason was cut.

use serde::Deserialize;
use switchyard_core::ProviderError;
use switchyard_core::bounded::SseEvent;
use switchyard_core::http::{Attempt, Frames};
use switchyard_core::{ChatChunk, ChatResponse, FinishReason, ToolCall, ToolCallDelta, Usage};

use crate::GeminiError;
use crate::encode::{SIGNATURE_MARK, SYNTHETIC_CALL_PREFIX};
use crate::error::classify;
use crate::wire::{GenerateContentResponse, Part, Status, UsageMetadata};

/// A response, or an error body sent where a response was expected.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<Status>,
    #[serde(flatten)]
    response: GenerateContentResponse,
}

fn envelope(data: &[u8], what: &'static str) -> Result<GenerateContentResponse, GeminiError> {
    let envelope: Envelope =
        serde_json::from_slice(data).map_err(|source| GeminiError::Malformed { what, source })?;
    match envelope.error {
        Some(status) => Err(GeminiError::InStream {
            kind: classify(status.code, &status),
            message: status.message,
        }),
        None => Ok(envelope.response),
    }
}

/// Decodes a non-streamed answer.
///
/// # Errors
/// [`GeminiError::Blocked`] when the prompt was blocked (no candidates, a block reason),
/// [`GeminiError::InStream`] for an error body, [`GeminiError::Malformed`] for anything that
/// is not a response, [`GeminiError::NoCandidate`] for a response with nothing in it.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, GeminiError> {
    let response = envelope(body, "response")?;
    blocked(&response)?;
    let Some(candidate) = response.candidates.into_iter().next() else {
        return Err(GeminiError::NoCandidate);
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in candidate.content.map(|content| content.parts).unwrap_or_default() {
        match read_part(part, tool_calls.len()) {
            Piece::Text(part) => text.push_str(&part),
            Piece::Call(call) => tool_calls.push(call),
            Piece::Nothing => {}
        }
    }
    let finish_reason = candidate
        .finish_reason
        .as_deref()
        .map(|reason| finish_reason(reason, !tool_calls.is_empty()));
    Ok(ChatResponse {
        id: response.response_id,
        model: response.model_version.unwrap_or_default(),
        text,
        tool_calls,
        finish_reason,
        usage: response.usage_metadata.map(usage).unwrap_or_default(),
        system_fingerprint: None,
        created: None,
    })
}

/// What one part of an answer adds.
enum Piece {
    Text(String),
    Call(ToolCall),
    /// Thinking, or a part kind this adapter does not read.
    Nothing,
}

/// Reads a part; a function call gets id number `call_idx` when Gemini gave it none.
fn read_part(part: Part, call_idx: usize) -> Piece {
    if let Some(call) = part.function_call {
        let id = call_id(call.id, call_idx, part.thought_signature.as_deref());
        Piece::Call(ToolCall { id, name: call.name, arguments: call.args.to_string() })
    } else if let (Some(text), false) = (part.text, part.thought == Some(true)) {
        Piece::Text(text)
    } else {
        Piece::Nothing
    }
}

/// The id a tool call gets: Gemini's own or `gemini_call_N`, with the thought signature
/// appended after [`SIGNATURE_MARK`] when there is one.
pub fn call_id(id: Option<String>, call_idx: usize, signature: Option<&str>) -> String {
    let mut id = id.unwrap_or_else(|| format!("{SYNTHETIC_CALL_PREFIX}{call_idx}"));
    if let Some(signature) = signature {
        id.push_str(SIGNATURE_MARK);
        id.push_str(signature);
    }
    id
}

fn blocked(response: &GenerateContentResponse) -> Result<(), GeminiError> {
    match (&response.prompt_feedback, response.candidates.is_empty()) {
        (Some(feedback), true) => match &feedback.block_reason {
            Some(reason) => Err(GeminiError::Blocked(reason.clone())),
            None => Ok(()),
        },
        (Some(_) | None, _) => Ok(()),
    }
}

/// Gemini's `finishReason` in the shared vocabulary. Gemini has no tool-call reason: a turn
/// that called functions ends with `STOP`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_tool_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Input counts the prompt and tool-use prompts; output counts the answer and the thinking,
/// both billed as output, and the thinking is also reported apart as reasoning tokens.
pub fn usage(metadata: UsageMetadata) -> Usage {
    let prompt_tokens = metadata
        .prompt_token_count
        .saturating_add(metadata.tool_use_prompt_token_count.unwrap_or(0));
    let completion_tokens =
        metadata.candidates_token_count.saturating_add(metadata.thoughts_token_count.unwrap_or(0));
    let mut usage = Usage::new(prompt_tokens, completion_tokens);
    usage.reasoning_tokens = metadata.thoughts_token_count;
    if let Some(total) = metadata.total_token_count {
        usage.total_tokens = total;
    }
    usage
}

/// Turns the `data:` payloads of a `streamGenerateContent?alt=sse` stream, in order, into
/// chunks.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    n_tool_calls: u32,
    finished: bool,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one payload.
    ///
    /// # Errors
    /// As [`decode_response`], for a chunk that is an error, a block or not a response.
    pub fn push(&mut self, data: &str) -> Result<ChatChunk, GeminiError> {
        let response = envelope(data.as_bytes(), "stream chunk")?;
        blocked(&response)?;
        let mut chunk = ChatChunk {
            id: response.response_id,
            model: response.model_version,
            usage: response.usage_metadata.map(usage),
            ..ChatChunk::default()
        };
        if let Some(candidate) = response.candidates.into_iter().next() {
            for part in candidate.content.map(|content| content.parts).unwrap_or_default() {
                match read_part(part, self.n_tool_calls as usize) {
                    Piece::Text(text) => chunk.text.push_str(&text),
                    // Gemini sends a call whole, never in fragments.
                    Piece::Call(call) => {
                        chunk.tool_calls.push(ToolCallDelta {
                            index: self.n_tool_calls,
                            id: Some(call.id),
                            name: Some(call.name),
                            arguments: call.arguments,
                        });
                        self.n_tool_calls = self.n_tool_calls.saturating_add(1);
                    }
                    Piece::Nothing => {}
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.finished = true;
                chunk.finish_reason = Some(finish_reason(&reason, self.n_tool_calls > 0));
            }
        }
        Ok(chunk)
    }

    /// Checks the stream ended properly, once the body has ended.
    ///
    /// # Errors
    /// [`GeminiError::Cut`] when no chunk carried a finish reason.
    pub fn finish(&self) -> Result<(), GeminiError> {
        if self.finished { Ok(()) } else { Err(GeminiError::Cut) }
    }
}

// The client drives this decoder through the shared stream driver.
impl Frames<SseEvent> for StreamDecoder {
    fn push(
        &mut self,
        event: SseEvent,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        StreamDecoder::push(self, &event.data).map(Some).map_err(|error| attempt.error(error))
    }

    /// A Gemini stream says nothing after its last chunk: it is read to its end.
    fn is_done(&self) -> bool {
        false
    }

    fn finish(&mut self, attempt: &Attempt) -> Result<(), ProviderError> {
        StreamDecoder::finish(self).map_err(|error| attempt.error(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_core::{ErrorKind, StreamAccumulator};

    fn stream(payloads: &[serde_json::Value]) -> Result<ChatResponse, GeminiError> {
        let mut decoder = StreamDecoder::new();
        let mut accumulator = StreamAccumulator::new();
        for payload in payloads {
            accumulator.push(&decoder.push(&payload.to_string())?);
        }
        decoder.finish()?;
        Ok(accumulator.finish())
    }

    #[test]
    fn a_plain_answer_and_its_streamed_twin_agree() {
        let plain = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc123"});
        let plain = decode_response(plain.to_string().as_bytes()).expect("decodes");
        assert_eq!(plain.text, "Hello!");
        assert_eq!(plain.finish_reason, Some(FinishReason::Stop));
        assert_eq!(plain.usage, Usage::new(4, 2));
        assert_eq!(plain.model, "gemini-2.5-flash");
        let streamed = stream(&[
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 5},
                "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo!"}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
                "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}),
        ])
        .expect("decodes");
        assert_eq!(streamed, plain);
    }

    #[test]
    fn thinking_is_left_out_of_the_text_but_counted_as_output() {
        let body = json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}, {"text": "42"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1, "thoughtsTokenCount": 30, "totalTokenCount": 41}});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.text, "42");
        assert_eq!(
            response.usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 31,
                total_tokens: 41,
                reasoning_tokens: Some(30)
            }
        );
    }

    #[test]
    fn the_last_stream_chunk_reports_the_thinking_tokens() {
        let streamed = stream(&[
            json!({"candidates": [{"content": {"parts": [{"text": "4"}]}}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1}}),
            json!({"candidates": [{"content": {"parts": [{"text": "2"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "thoughtsTokenCount": 90, "totalTokenCount": 99}}),
        ])
        .expect("decodes");
        assert_eq!(streamed.text, "42");
        assert_eq!(streamed.usage.reasoning_tokens, Some(90));
        assert_eq!(streamed.usage.completion_tokens, 92);
    }

    #[test]
    fn function_calls_get_ids_and_keep_their_signatures() {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"id": "xyz", "name": "time", "args": {}}}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 9, "totalTokenCount": 29}});
        let plain = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            plain.tool_calls,
            vec![
                ToolCall {
                    id: "gemini_call_0~sig~c2ln".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                },
                ToolCall { id: "xyz".into(), name: "time".into(), arguments: "{}".into() },
            ]
        );
        let streamed = stream(&[
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"id": "xyz", "name": "time", "args": {}}}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 9, "totalTokenCount": 29}}),
        ])
        .expect("decodes");
        assert_eq!(streamed, plain);
    }

    #[test]
    fn safety_stops_and_blocked_prompts() {
        let body = json!({"candidates": [{"finishReason": "SAFETY", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
        let response = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!(response.text, "");
        let blocked = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
        let error = decode_response(blocked.to_string().as_bytes()).expect_err("blocked");
        assert_eq!(error.kind(), ErrorKind::ContentFiltered);
        assert!(error.to_string().contains("PROHIBITED_CONTENT"), "{error}");
        let error = stream(&[blocked]).expect_err("blocked");
        assert_eq!(error.kind(), ErrorKind::ContentFiltered);
    }

    #[test]
    fn errors_cuts_and_garbage() {
        let error = stream(&[json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})])
            .expect_err("cut");
        assert!(matches!(error, GeminiError::Cut));
        assert_eq!(error.kind(), ErrorKind::Network);
        let error = stream(&[json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})])
            .expect_err("error chunk");
        assert_eq!(error.kind(), ErrorKind::Overloaded);
        let error = decode_response(b"{\"candidates\": [").expect_err("garbage");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        let error = decode_response(b"{}").expect_err("empty");
        assert!(matches!(error, GeminiError::NoCandidate));
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason("MAX_TOKENS", false), FinishReason::Length);
        assert_eq!(finish_reason("RECITATION", false), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("MALFORMED_FUNCTION_CALL", true),
            FinishReason::Other("MALFORMED_FUNCTION_CALL".into())
        );
    }
}
