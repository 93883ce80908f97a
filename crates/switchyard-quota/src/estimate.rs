//! What a request will cost before it runs. The estimate reserves capacity at admission; the
//! permit is settled with the provider's real usage afterwards, so an estimate only has to be
//! safe, not exact.

use serde::{Deserialize, Serialize};
use switchyard_core::ChatRequest;

/// Tokens counted per message for the role and formatting around its text.
const TOKENS_PER_MESSAGE: u64 = 4;

/// An attempt's estimated cost in tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// Input tokens: the prompt's text length in bytes / 4, rounded up, plus 4 a message.
    pub prompt_tokens: u64,
    /// Output tokens: the request's `max_tokens`, or the configured default.
    pub output_tokens: u64,
}

impl Estimate {
    /// An estimate of `prompt_tokens` in and `output_tokens` out.
    pub fn new(prompt_tokens: u64, output_tokens: u64) -> Self {
        Self { prompt_tokens, output_tokens }
    }

    /// Estimates `request`: its text (messages, tool calls, tool definitions) in bytes / 4,
    /// rounded up, plus 4 tokens a message, in; its `max_tokens` (or `default_max_tokens`
    /// when it names none) out. Bytes overcount non-Latin text, which errs on the safe side.
    pub fn of(request: &ChatRequest, default_max_tokens: u32) -> Self {
        let text = u64::try_from(request.text_len()).unwrap_or(u64::MAX);
        let n_messages = u64::try_from(request.messages.len()).unwrap_or(u64::MAX);
        Self {
            prompt_tokens: text.div_ceil(4).saturating_add(n_messages * TOKENS_PER_MESSAGE),
            output_tokens: u64::from(request.max_tokens.unwrap_or(default_max_tokens)),
        }
    }

    /// Input and output together: what a token limit is charged at admission.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chars_over_four_plus_max_tokens() {
        let mut request = ChatRequest::from_user("x".repeat(401));
        assert_eq!(Estimate::of(&request, 1024), Estimate::new(101 + 4, 1024));
        request.max_tokens = Some(50);
        assert_eq!(Estimate::of(&request, 1024).tokens(), 105 + 50);
    }
}
