//! Streamed answers: the [`ChatChunk`] every adapter yields, and the [`StreamAccumulator`]
//! that reassembles chunks into the [`ChatResponse`] a plain call would have returned.

use serde::{Deserialize, Serialize};

use crate::{ChatResponse, FinishReason, ToolCall, Usage};

/// A fragment of a tool call in a stream. The first fragment of a call carries its id and
/// name; later ones append to its arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer this fragment belongs to.
    pub index: u32,
    /// The call's id, on its first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name, on its first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// One piece of a streamed answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The upstream's id of the answer, when this chunk carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model that answers, when this chunk names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// More text.
    #[serde(default)]
    pub text: String,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// Why the answer ended, on the last content chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token counts, on the chunk that carries them (usually the last). Counts are
    /// cumulative: a later chunk's usage replaces an earlier one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// OpenAI's `system_fingerprint`, when the chunk carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
}

/// Folds chunks into the answer a plain call would have returned.
#[derive(Clone, Debug, Default)]
pub struct StreamAccumulator {
    response: ChatResponse,
    tool_calls: Vec<(u32, ToolCall)>,
    n_chunks: usize,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        self.n_chunks += 1;
        if self.response.id.is_none() {
            self.response.id.clone_from(&chunk.id);
        }
        if let (true, Some(model)) = (self.response.model.is_empty(), &chunk.model) {
            self.response.model.clone_from(model);
        }
        if self.response.system_fingerprint.is_none() {
            self.response.system_fingerprint.clone_from(&chunk.system_fingerprint);
        }
        self.response.text.push_str(&chunk.text);
        for delta in &chunk.tool_calls {
            // Calls are kept by the index the upstream gave, not at that position: an index
            // of 4 billion from a hostile upstream must not allocate 4 billion calls.
            let at = match self.tool_calls.iter().position(|(index, _)| *index == delta.index) {
                Some(at) => at,
                None => {
                    let call = ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    };
                    self.tool_calls.push((delta.index, call));
                    self.tool_calls.len() - 1
                }
            };
            let call = &mut self.tool_calls[at].1;
            if let Some(id) = &delta.id {
                call.id.clone_from(id);
            }
            if let Some(name) = &delta.name {
                call.name.push_str(name);
            }
            call.arguments.push_str(&delta.arguments);
        }
        if chunk.finish_reason.is_some() {
            self.response.finish_reason.clone_from(&chunk.finish_reason);
        }
        if let Some(usage) = chunk.usage {
            self.response.usage = usage;
        }
    }

    /// How many chunks were added.
    pub fn n_chunks(&self) -> usize {
        self.n_chunks
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.response.text
    }

    /// The answer so far.
    pub fn finish(mut self) -> ChatResponse {
        self.tool_calls.sort_by_key(|(index, _)| *index);
        self.response.tool_calls = self.tool_calls.into_iter().map(|(_, call)| call).collect();
        self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_text_tool_calls_and_usage() {
        let chunks = [
            ChatChunk {
                id: Some("c1".into()),
                model: Some("m".into()),
                text: "Hel".into(),
                ..ChatChunk::default()
            },
            ChatChunk { text: "lo".into(), ..ChatChunk::default() },
            ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some("get".into()),
                    arguments: "{\"a\"".into(),
                }],
                ..ChatChunk::default()
            },
            ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index: 0,
                    arguments: ":1}".into(),
                    ..ToolCallDelta::default()
                }],
                finish_reason: Some(FinishReason::ToolCalls),
                ..ChatChunk::default()
            },
            ChatChunk { usage: Some(Usage::new(3, 2)), ..ChatChunk::default() },
        ];
        let mut accumulator = StreamAccumulator::new();
        for chunk in &chunks {
            accumulator.push(chunk);
        }
        assert_eq!(accumulator.n_chunks(), 5);
        let response = accumulator.finish();
        assert_eq!(response.id.as_deref(), Some("c1"));
        assert_eq!(response.model, "m");
        assert_eq!(response.text, "Hello");
        assert_eq!(
            response.tool_calls,
            vec![ToolCall {
                id: "call_1".into(),
                name: "get".into(),
                arguments: "{\"a\":1}".into()
            }]
        );
        assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(response.usage, Usage::new(3, 2));
    }

    #[test]
    fn a_huge_tool_call_index_allocates_one_call() {
        let mut accumulator = StreamAccumulator::new();
        for index in [u32::MAX, 0] {
            accumulator.push(&ChatChunk {
                tool_calls: vec![ToolCallDelta {
                    index,
                    name: Some(format!("f{index}")),
                    ..ToolCallDelta::default()
                }],
                ..ChatChunk::default()
            });
        }
        let names: Vec<String> =
            accumulator.finish().tool_calls.into_iter().map(|call| call.name).collect();
        assert_eq!(names, ["f0", format!("f{}", u32::MAX).as_str()]);
    }
}
