//! Messages API answers → [`ChatResponse`] and [`ChatChunk`]s. Pure: the HTTP layer hands
//! in bodies and event payloads.
//!
//! A streamed answer folds (with [`switchyard_core::StreamAccumulator`]) into the same
//! response its plain twin decodes to: same text, same tool calls, same usage. A call of the
//! answer tool (JSON output, see [`crate::encode`]) is the answer's text in both.

use switchyard_core::ProviderError;
use switchyard_core::bounded::SseEvent;
use switchyard_core::http::{Attempt, Frames};
use switchyard_core::{ChatChunk, ChatResponse, FinishReason, ToolCall, ToolCallDelta, Usage};

use crate::AnthropicError;
use crate::error::classify;
use crate::wire::{BlockDelta, ContentBlock, ErrorBody, MessagesResponse, StreamEvent, WireUsage};

/// Decodes a non-streamed answer. `answer_tool` is [`crate::Encoded::answer_tool`].
///
/// # Errors
/// [`AnthropicError::InStream`] for an error body sent with a 2xx status,
/// [`AnthropicError::Malformed`] for anything else that is not a message.
pub fn decode_response(
    body: &[u8],
    answer_tool: Option<&str>,
) -> Result<ChatResponse, AnthropicError> {
    let message: MessagesResponse = serde_json::from_slice(body).map_err(|source| {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(error) => in_stream_error(&error.error.kind, error.error.message),
            Err(_) => AnthropicError::Malformed { what: "message", source },
        }
    })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            ContentBlock::Text { text: part } => text.push_str(&part),
            ContentBlock::ToolUse { name, input, .. } if Some(name.as_str()) == answer_tool => {
                text.push_str(&input.to_string());
            }
            ContentBlock::ToolUse { id, name, input } => {
                tool_calls.push(ToolCall { id, name, arguments: input.to_string() });
            }
            ContentBlock::Image { .. }
            | ContentBlock::ToolResult { .. }
            | ContentBlock::Unknown => {}
        }
    }
    let finish_reason =
        message.stop_reason.as_deref().map(|reason| finish_reason(reason, !tool_calls.is_empty()));
    Ok(ChatResponse {
        id: message.id,
        model: message.model,
        text,
        tool_calls,
        finish_reason,
        usage: usage(message.usage.prompt_tokens(), message.usage.output_tokens),
        system_fingerprint: None,
        created: None,
    })
}

/// Anthropic's `stop_reason` in the shared vocabulary. A `tool_use` stop with no real tool
/// call was the answer tool: a finished JSON answer.
pub fn finish_reason(stop_reason: &str, has_tool_calls: bool) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" if has_tool_calls => FinishReason::ToolCalls,
        "tool_use" => FinishReason::Stop,
        // The context window ran out while answering: a length stop, like `max_tokens`.
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> Usage {
    Usage::new(prompt_tokens, completion_tokens)
}

fn in_stream_error(error_type: &str, message: String) -> AnthropicError {
    AnthropicError::InStream { kind: classify(error_type, None, &message), message }
}

/// What a content block of the stream is, by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    /// A real tool call: its index among the answer's calls, and whether any argument
    /// fragment came (one with none is `{}`, as the plain answer's `input` would print).
    Tool {
        call_idx: u32,
        has_arguments: bool,
    },
    /// The answer tool: its input is the answer's text.
    Answer {
        has_text: bool,
    },
    Other,
}

/// The most content blocks one answer may open. Real answers have a handful; the bound keeps
/// a hostile stream from growing the decoder's block table without end.
pub const MAX_BLOCKS: usize = 4096;

/// Turns the payloads of a Messages stream, in order, into chunks.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    answer_tool: Option<String>,
    blocks: Vec<(u32, Block)>,
    n_tool_calls: u32,
    usage: WireUsage,
    stopped: bool,
}

impl StreamDecoder {
    /// A decoder for an answer whose JSON output comes as a call of `answer_tool`.
    pub fn new(answer_tool: Option<String>) -> Self {
        Self { answer_tool, ..Self::default() }
    }

    /// Reads one event's `data`. Returns the chunk it carries, if any (pings, block stops and
    /// unknown events carry none).
    ///
    /// # Errors
    /// [`AnthropicError::InStream`] for an `error` event, [`AnthropicError::Malformed`] for
    /// data that is not a Messages event.
    pub fn push(&mut self, data: &str) -> Result<Option<ChatChunk>, AnthropicError> {
        let event: StreamEvent = serde_json::from_str(data)
            .map_err(|source| AnthropicError::Malformed { what: "stream event", source })?;
        if self.stopped {
            return Ok(None);
        }
        Ok(match event {
            StreamEvent::MessageStart { message } => {
                self.usage = message.usage;
                Some(ChatChunk {
                    id: message.id,
                    model: Some(message.model),
                    usage: Some(self.current_usage()),
                    ..ChatChunk::default()
                })
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                if self.blocks.len() >= MAX_BLOCKS && self.block(index).is_none() {
                    return Err(AnthropicError::TooManyBlocks { limit: MAX_BLOCKS });
                }
                self.start_block(index, content_block)
            }
            StreamEvent::ContentBlockDelta { index, delta } => self.delta(index, delta),
            StreamEvent::ContentBlockStop { index } => self.stop_block(index),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.output_tokens = usage.output_tokens;
                    if let Some(input_tokens) = usage.input_tokens {
                        self.usage.input_tokens = input_tokens;
                    }
                    if usage.cache_creation_input_tokens.is_some() {
                        self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                    }
                    if usage.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                    }
                }
                Some(ChatChunk {
                    finish_reason: delta
                        .stop_reason
                        .as_deref()
                        .map(|reason| finish_reason(reason, self.n_tool_calls > 0)),
                    usage: Some(self.current_usage()),
                    ..ChatChunk::default()
                })
            }
            StreamEvent::MessageStop => {
                self.stopped = true;
                None
            }
            StreamEvent::Ping | StreamEvent::Unknown => None,
            StreamEvent::Error { error } => {
                return Err(in_stream_error(&error.kind, error.message));
            }
        })
    }

    /// Whether `message_stop` has arrived: the answer is complete.
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// Checks the stream ended properly, once the body has ended.
    ///
    /// # Errors
    /// [`AnthropicError::Cut`] when no `message_stop` came.
    pub fn finish(&self) -> Result<(), AnthropicError> {
        if self.stopped { Ok(()) } else { Err(AnthropicError::Cut) }
    }

    fn current_usage(&self) -> Usage {
        usage(self.usage.prompt_tokens(), self.usage.output_tokens)
    }

    fn block(&mut self, index: u32) -> Option<&mut Block> {
        self.blocks.iter_mut().find(|(at, _)| *at == index).map(|(_, block)| block)
    }

    fn start_block(&mut self, index: u32, content_block: ContentBlock) -> Option<ChatChunk> {
        let (block, chunk) = match content_block {
            ContentBlock::Text { text } => (
                Block::Text,
                (!text.is_empty()).then(|| ChatChunk { text, ..ChatChunk::default() }),
            ),
            ContentBlock::ToolUse { name, .. } if Some(&name) == self.answer_tool.as_ref() => {
                (Block::Answer { has_text: false }, None)
            }
            ContentBlock::ToolUse { id, name, .. } => {
                let call_idx = self.n_tool_calls;
                self.n_tool_calls = self.n_tool_calls.saturating_add(1);
                let delta = ToolCallDelta {
                    index: call_idx,
                    id: Some(id),
                    name: Some(name),
                    arguments: String::new(),
                };
                (
                    Block::Tool { call_idx, has_arguments: false },
                    Some(ChatChunk { tool_calls: vec![delta], ..ChatChunk::default() }),
                )
            }
            ContentBlock::Image { .. }
            | ContentBlock::ToolResult { .. }
            | ContentBlock::Unknown => (Block::Other, None),
        };
        match self.block(index) {
            Some(known) => *known = block,
            None => self.blocks.push((index, block)),
        }
        chunk
    }

    fn delta(&mut self, index: u32, delta: BlockDelta) -> Option<ChatChunk> {
        let block = self.block(index)?;
        match (block, delta) {
            (Block::Text, BlockDelta::TextDelta { text }) => {
                Some(ChatChunk { text, ..ChatChunk::default() })
            }
            (
                Block::Tool { call_idx, has_arguments },
                BlockDelta::InputJsonDelta { partial_json },
            ) => {
                *has_arguments |= !partial_json.is_empty();
                let delta = ToolCallDelta {
                    index: *call_idx,
                    arguments: partial_json,
                    ..ToolCallDelta::default()
                };
                Some(ChatChunk { tool_calls: vec![delta], ..ChatChunk::default() })
            }
            (Block::Answer { has_text }, BlockDelta::InputJsonDelta { partial_json }) => {
                *has_text |= !partial_json.is_empty();
                Some(ChatChunk { text: partial_json, ..ChatChunk::default() })
            }
            (Block::Text | Block::Tool { .. } | Block::Answer { .. } | Block::Other, _) => None,
        }
    }

    /// A tool call or answer without a single fragment had `input: {}`: say so, as the plain
    /// answer would.
    fn stop_block(&mut self, index: u32) -> Option<ChatChunk> {
        match *self.block(index)? {
            Block::Tool { call_idx, has_arguments: false } => {
                let delta = ToolCallDelta {
                    index: call_idx,
                    arguments: "{}".into(),
                    ..ToolCallDelta::default()
                };
                Some(ChatChunk { tool_calls: vec![delta], ..ChatChunk::default() })
            }
            Block::Answer { has_text: false } => {
                Some(ChatChunk { text: "{}".into(), ..ChatChunk::default() })
            }
            Block::Text | Block::Tool { .. } | Block::Answer { .. } | Block::Other => None,
        }
    }
}

// The client drives this decoder through the shared stream driver.
impl Frames<SseEvent> for StreamDecoder {
    fn push(
        &mut self,
        event: SseEvent,
        attempt: &Attempt,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        StreamDecoder::push(self, &event.data).map_err(|error| attempt.error(error))
    }

    fn is_done(&self) -> bool {
        self.is_complete()
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

    const PLAIN: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5",
        "content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

    fn events(
        payloads: &[serde_json::Value],
        answer_tool: Option<&str>,
    ) -> Result<ChatResponse, AnthropicError> {
        let mut decoder = StreamDecoder::new(answer_tool.map(str::to_owned));
        let mut accumulator = StreamAccumulator::new();
        for payload in payloads {
            if let Some(chunk) = decoder.push(&payload.to_string())? {
                accumulator.push(&chunk);
            }
        }
        decoder.finish()?;
        Ok(accumulator.finish())
    }

    fn start(input_tokens: u32) -> serde_json::Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
    }

    #[test]
    fn a_plain_answer_decodes() {
        let response = decode_response(PLAIN.as_bytes(), None).expect("decodes");
        assert_eq!(response.text, "Hello!");
        assert_eq!(response.model, "claude-sonnet-4-5");
        assert_eq!(response.id.as_deref(), Some("msg_01XFDUDYJgAACzvnptvVoYEL"));
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
        assert_eq!(response.usage, Usage::new(12, 6));
    }

    #[test]
    fn thinking_is_left_out_of_the_text_and_counted_only_as_output() {
        // Anthropic bills thinking as output and gives no separate count of it.
        let body = json!({"id": "m", "model": "c", "stop_reason": "end_turn", "content": [
                {"type": "thinking", "thinking": "2 and 2...", "signature": "EqQB"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "4"}],
            "usage": {"input_tokens": 20, "output_tokens": 300}});
        let response = decode_response(body.to_string().as_bytes(), None).expect("decodes");
        assert_eq!(response.text, "4");
        assert_eq!(response.usage, Usage::new(20, 300));
        assert_eq!(response.usage.reasoning_tokens, None);
    }

    #[test]
    fn cache_tokens_count_as_input() {
        let body = json!({"id": "m", "model": "c", "content": [], "stop_reason": "max_tokens",
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100}});
        let response = decode_response(body.to_string().as_bytes(), None).expect("decodes");
        assert_eq!(response.usage, Usage::new(115, 3));
        assert_eq!(response.finish_reason, Some(FinishReason::Length));
    }

    #[test]
    fn the_streamed_twin_reassembles_to_the_same_answer() {
        let streamed = events(
            &[
                start(12),
                json!({"type": "ping"}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo!"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 6}}),
                json!({"type": "some_future_event", "x": 1}),
                json!({"type": "message_stop"}),
            ],
            None,
        )
        .expect("decodes");
        let mut plain = decode_response(PLAIN.as_bytes(), None).expect("decodes");
        plain.id = Some("msg_1".into());
        assert_eq!(streamed, plain);
    }

    #[test]
    fn tool_use_streams_as_call_fragments() {
        let body = json!({"id": "msg_1", "model": "claude-sonnet-4-5", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}}],
            "usage": {"input_tokens": 30, "output_tokens": 20}});
        let plain = decode_response(body.to_string().as_bytes(), None).expect("decodes");
        assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(plain.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(plain.tool_calls[1].arguments, "{}");
        let streamed = events(
            &[
                start(30),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {}}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
                json!({"type": "content_block_stop", "index": 1}),
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "time", "input": {}}}),
                json!({"type": "content_block_stop", "index": 2}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
                json!({"type": "message_stop"}),
            ],
            None,
        )
        .expect("decodes");
        assert_eq!(streamed, plain);
    }

    #[test]
    fn the_answer_tool_is_text_plain_and_streamed() {
        let body = json!({"id": "msg_1", "model": "c", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "number", "input": {"n": 7}}],
            "usage": {"input_tokens": 5, "output_tokens": 4}});
        let plain = decode_response(body.to_string().as_bytes(), Some("number")).expect("decodes");
        assert_eq!(plain.text, r#"{"n":7}"#);
        assert!(plain.tool_calls.is_empty());
        assert_eq!(plain.finish_reason, Some(FinishReason::Stop));
        let streamed = events(
            &[
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "c", "content": [], "usage": {"input_tokens": 5, "output_tokens": 0}}}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_x", "name": "number", "input": {}}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"n\""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ":7}"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
                json!({"type": "message_stop"}),
            ],
            Some("number"),
        )
        .expect("decodes");
        assert_eq!(streamed, plain);
    }

    #[test]
    fn an_error_event_is_classified() {
        let error = events(
            &[start(3), json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})],
            None,
        )
        .expect_err("fails");
        assert_eq!(error.kind(), ErrorKind::Overloaded);
        assert!(error.to_string().contains("Overloaded"), "{error}");
    }

    #[test]
    fn a_stream_without_message_stop_is_cut() {
        let error = events(
            &[start(3), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}})],
            None,
        )
        .expect_err("cut");
        assert!(matches!(error, AnthropicError::Cut));
        assert_eq!(error.kind(), ErrorKind::Network);
    }

    #[test]
    fn garbage_is_malformed() {
        let mut decoder = StreamDecoder::new(None);
        let error = decoder.push("{not json").expect_err("malformed");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        let error = decode_response(b"<html>", None).expect_err("malformed");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
        let error = decode_response(
            br#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
            None,
        )
        .expect_err("error body");
        assert_eq!(error.kind(), ErrorKind::ServerError);
    }

    #[test]
    fn stop_reasons_map() {
        assert_eq!(finish_reason("stop_sequence", false), FinishReason::Stop);
        assert_eq!(finish_reason("refusal", false), FinishReason::ContentFilter);
        assert_eq!(finish_reason("model_context_window_exceeded", false), FinishReason::Length);
        assert_eq!(finish_reason("pause_turn", false), FinishReason::Other("pause_turn".into()));
    }

    #[test]
    fn a_stream_opening_blocks_without_end_is_cut_off_at_max_blocks() {
        let mut decoder = StreamDecoder::new(None);
        decoder.push(&start(1).to_string()).expect("a start");
        let block = |index: usize| {
            json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}})
            .to_string()
        };
        for index in 0..MAX_BLOCKS {
            decoder.push(&block(index)).expect("within the bound");
        }
        decoder.push(&block(0)).expect("a known index replaces its block");
        let error = decoder.push(&block(MAX_BLOCKS)).expect_err("over the bound");
        assert!(matches!(error, AnthropicError::TooManyBlocks { limit: MAX_BLOCKS }), "{error}");
        assert_eq!(error.kind(), ErrorKind::MalformedResponse);
    }
}
