//! `/api/chat` answers → [`ChatResponse`] and [`ChatChunk`]s. Pure: the HTTP layer hands in
//! bodies and NDJSON lines.
//!
//! A streamed answer is one JSON object per line, each with a `message.content` delta; the
//! last has `"done": true`, the stop reason and the token counts. There is no SSE and no
//! `[DONE]`: a stream whose body ends before its done line was cut. An `{"error": ...}` line
//! is a failure after the 200 status.

use switchyard_core::ProviderError;
use switchyard_core::http::{Attempt, Frames};
use switchyard_core::{ChatChunk, ChatResponse, FinishReason, ToolCall, ToolCallDelta, Usage};

use crate::OllamaError;
use crate::encode::SYNTHETIC_CALL_PREFIX;
use crate::error::classify;
use crate::wire::{ChatLine, WireToolCall};

fn line(data: &[u8], what: &'static str) -> Result<ChatLine, OllamaError> {
    let line: ChatLine =
        serde_json::from_slice(data).map_err(|source| OllamaError::Malformed { what, source })?;
    match line.error {
        Some(message) => Err(OllamaError::InStream { kind: classify(None, &message), message }),
        None => Ok(line),
    }
}

/// Decodes a non-streamed answer.
///
/// # Errors
/// [`OllamaError::InStream`] for an error object, [`OllamaError::Malformed`] for anything that
/// is not an answer.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, OllamaError> {
    let line = line(body, "response")?;
    let message = line.message.unwrap_or_else(|| crate::wire::WireMessage {
        role: crate::wire::WireRole::Assistant,
        content: String::new(),
        images: Vec::new(),
        tool_calls: Vec::new(),
        tool_name: None,
    });
    let tool_calls: Vec<ToolCall> = message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(idx, call)| tool_call(call, idx))
        .collect();
    Ok(ChatResponse {
        id: None,
        model: line.model,
        text: message.content,
        finish_reason: line
            .done_reason
            .as_deref()
            .map(|reason| finish_reason(reason, !tool_calls.is_empty())),
        tool_calls,
        usage: Usage::new(line.prompt_eval_count.unwrap_or(0), line.eval_count.unwrap_or(0)),
        system_fingerprint: None,
        created: line
            .created_at
            .as_deref()
            .and_then(switchyard_core::ratelimit::parse_rfc3339)
            .map(|at| at.timestamp()),
    })
}

fn tool_call(call: WireToolCall, call_idx: usize) -> ToolCall {
    ToolCall {
        id: call.id.unwrap_or_else(|| format!("{SYNTHETIC_CALL_PREFIX}{call_idx}")),
        name: call.function.name,
        arguments: call.function.arguments.to_string(),
    }
}

/// Ollama's `done_reason` in the shared vocabulary. A turn that called tools ends with
/// `stop`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "stop" if has_tool_calls => FinishReason::ToolCalls,
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Turns the NDJSON lines of a streamed `/api/chat` answer, in order, into chunks.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    n_tool_calls: u32,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one line (without its newline). Blank lines carry nothing.
    ///
    /// # Errors
    /// [`OllamaError::InStream`] for an error line, [`OllamaError::Malformed`] for a line that
    /// is not an answer chunk.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<ChatChunk>, OllamaError> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let line = line(data, "stream line")?;
        let mut chunk = ChatChunk { model: Some(line.model), ..ChatChunk::default() };
        if let Some(message) = line.message {
            chunk.text = message.content;
            for call in message.tool_calls {
                let call = tool_call(call, self.n_tool_calls as usize);
                // Ollama sends a call whole, never in fragments.
                chunk.tool_calls.push(ToolCallDelta {
                    index: self.n_tool_calls,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                });
                self.n_tool_calls = self.n_tool_calls.saturating_add(1);
            }
        }
        if line.done {
            self.done = true;
            chunk.finish_reason = line
                .done_reason
                .as_deref()
                .map(|reason| finish_reason(reason, self.n_tool_calls > 0));
            chunk.usage =
                Some(Usage::new(line.prompt_eval_count.unwrap_or(0), line.eval_count.unwrap_or(0)));
        }
        Ok(Some(chunk))
    }

    /// Whether the done line has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Checks the stream ended properly, once the body has ended.
    ///
    /// # Errors
    /// [`OllamaError::Cut`] when no done line came.
    pub fn finish(&self) -> Result<(), OllamaError> {
        if self.done { Ok(()) } else { Err(OllamaError::Cut) }
    }
}

// The client drives this decoder through the shared stream driver.
impl Frames<Vec<u8>> for StreamDecoder {
    fn push(
        &mut self,
        line: Vec<u8>,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        StreamDecoder::push(self, &line).map_err(|error| attempt.error(error))
    }

    fn is_done(&self) -> bool {
        StreamDecoder::is_done(self)
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

    fn stream(lines: &[serde_json::Value]) -> Result<ChatResponse, OllamaError> {
        let mut decoder = StreamDecoder::new();
        let mut accumulator = StreamAccumulator::new();
        for line in lines {
            if let Some(chunk) = decoder.push(line.to_string().as_bytes())? {
                accumulator.push(&chunk);
            }
        }
        decoder.finish()?;
        Ok(accumulator.finish())
    }

    #[test]
    fn a_plain_answer_and_its_streamed_twin_agree() {
        let plain = json!({"model": "llama3.2", "created_at": "2023-12-12T14:13:43.416799Z",
            "message": {"role": "assistant", "content": "Hello! How are you today?"},
            "done": true, "done_reason": "stop", "total_duration": 5_191_566_416_u64, "load_duration": 2_154_458,
            "prompt_eval_count": 26, "prompt_eval_duration": 383_809_000, "eval_count": 298, "eval_duration": 4_799_921_000_u64});
        let plain = decode_response(plain.to_string().as_bytes()).expect("decodes");
        assert_eq!(plain.text, "Hello! How are you today?");
        assert_eq!(plain.usage, Usage::new(26, 298));
        assert_eq!(plain.finish_reason, Some(FinishReason::Stop));
        assert_eq!(plain.created, Some(1_702_390_423));
        let streamed = stream(&[
            json!({"model": "llama3.2", "created_at": "2023-12-12T14:13:43Z", "message": {"role": "assistant", "content": "Hello!"}, "done": false}),
            json!({"model": "llama3.2", "created_at": "2023-12-12T14:13:43Z", "message": {"role": "assistant", "content": " How are you today?"}, "done": false}),
            json!({"model": "llama3.2", "created_at": "2023-12-12T14:13:44Z", "message": {"role": "assistant", "content": ""},
                "done": true, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": 298}),
        ])
        .expect("decodes");
        assert_eq!(
            (&streamed.text, streamed.usage, &streamed.finish_reason),
            (&plain.text, plain.usage, &plain.finish_reason)
        );
        assert_eq!(streamed.model, "llama3.2");
    }

    #[test]
    fn tool_calls_get_ids_plain_and_streamed() {
        let body = json!({"model": "m", "message": {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
            "done": true, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 4});
        let plain = decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            plain.tool_calls,
            vec![ToolCall {
                id: "ollama_call_0".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
        let streamed = stream(&[
            json!({"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]}, "done": false}),
            json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 4}),
        ])
        .expect("decodes");
        assert_eq!(streamed.tool_calls, plain.tool_calls);
        assert_eq!(streamed.finish_reason, plain.finish_reason);
    }

    #[test]
    fn an_error_line_mid_stream_is_an_error() {
        let error = stream(&[
            json!({"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": false}),
            json!({"error": "an error was encountered while running the model: unexpected EOF"}),
        ])
        .expect_err("fails");
        assert_eq!(error.kind(), ErrorKind::ServerError);
        assert!(error.to_string().contains("unexpected EOF"), "{error}");
    }

    #[test]
    fn cuts_and_garbage() {
        let error = stream(&[json!({"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": false})]).expect_err("cut");
        assert!(matches!(error, OllamaError::Cut));
        let mut decoder = StreamDecoder::new();
        assert_eq!(decoder.push(b"  ").expect("blank"), None);
        let error = decoder.push(b"{\"model\": \"m\", \"mess").expect_err("garbage");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        let error = decode_response(b"not json").expect_err("garbage");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
    }

    #[test]
    fn done_reasons_map() {
        assert_eq!(finish_reason("length", false), FinishReason::Length);
        assert_eq!(finish_reason("load", false), FinishReason::Other("load".into()));
    }
}
