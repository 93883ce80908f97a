//! Embeddings through the router: [`Router::embed`] takes the chat path's cascade as it is
//! (route resolution, routing rules, ranking, key choice, quota admission, the cascade on 429,
//! 5xx and invalid keys, budgets, the attempt and request events), with an embedding call in
//! place of the chat call. The cascade admits by a chat request; a stand-in carries the
//! inputs' text, the tags, and `max_tokens = 0`: an embedding is charged its input tokens at
//! the input price, and generates nothing. Answers are never cached.

use std::time::Duration;

use serde::Serialize;
use switchyard_core::{
    Candidate, ChatRequest, EmbedReply, EmbedRequest, EmbedResponse, Fingerprint,
};

use crate::attempt::Served;
use crate::cascade;
use crate::config::RequestOptions;
use crate::error::RouterError;
use crate::router::Router;
use crate::trace::Trace;

/// A served embedding request.
#[derive(Clone, Debug, Serialize)]
pub struct EmbedAnswer {
    /// The request's id (given by the caller, or made by the router).
    pub request_id: String,
    /// The vectors, one per input in order, and the input tokens.
    pub response: EmbedResponse,
    /// The candidate that served it.
    pub served_by: Candidate,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// How many attempts the request took.
    pub n_attempts: u32,
    /// Time spent in the router itself, excluding the upstream calls and backoff sleeps
    /// (serialized in milliseconds, as a chat answer's).
    #[serde(serialize_with = "crate::trace::millis")]
    pub overhead: Duration,
    /// What the router did.
    pub trace: Trace,
    /// What the answer cost in dollars, from its input tokens and its model's input price;
    /// `None` when the price is unknown.
    pub cost: Option<f64>,
}

impl Router {
    /// Embeds `request`'s inputs through `route` (a route's name, or `provider/model`).
    ///
    /// # Errors
    /// [`RouterError`]: why nothing could serve, typed. A target whose provider embeds
    /// nothing fails as a missing model, and the cascade moves to the next.
    pub async fn embed(
        &self,
        route: &str,
        request: &EmbedRequest,
    ) -> Result<EmbedAnswer, RouterError> {
        self.embed_with(route, request, RequestOptions::default()).await
    }

    /// As [`embed`](Self::embed), with per-call options (the cache option is ignored).
    ///
    /// # Errors
    /// [`RouterError`]: why nothing could serve, typed.
    pub async fn embed_with(
        &self,
        route: &str,
        request: &EmbedRequest,
        options: RequestOptions,
    ) -> Result<EmbedAnswer, RouterError> {
        let inner = self.inner().as_ref();
        let stand_in = stand_in(request);
        let routed = cascade::run(inner, route, &stand_in, &options, |slot| async move {
            let EmbedReply { response, rate_limits, upstream_request_id } =
                slot.provider().embed(slot.embed_call(request)).await?;
            let usage = Some(response.usage);
            Ok(Served { value: response, rate_limits, upstream_request_id, usage })
        })
        .await?;
        let usage = routed.value.usage;
        let settled = routed.settle(inner, usage).await;
        Ok(EmbedAnswer {
            request_id: settled.request_id,
            response: settled.value,
            served_by: settled.served_by,
            fingerprint: settled.fingerprint,
            n_attempts: settled.n_attempts,
            overhead: settled.overhead,
            trace: settled.trace,
            cost: settled.cost,
        })
    }
}

/// The chat request the cascade admits an embedding by: the inputs' text (so the estimate is
/// the chat path's, bytes / 4 plus a message's 4 tokens), no output, the request's tags.
fn stand_in(request: &EmbedRequest) -> ChatRequest {
    let mut text = String::with_capacity(request.inputs.iter().map(String::len).sum());
    for input in &request.inputs {
        text.push_str(input);
    }
    let mut stand_in = ChatRequest::from_user(text).with_max_tokens(0);
    stand_in.tags.clone_from(&request.tags);
    stand_in
}

#[cfg(test)]
mod tests {
    use switchyard_quota::Estimate;

    use super::*;

    #[test]
    fn the_stand_in_costs_the_inputs_and_generates_nothing() {
        let mut request = EmbedRequest::new(["abcd".repeat(10), "efgh".repeat(5)]);
        request.tags = vec!["provider:gemini".into()];
        let stand_in = stand_in(&request);
        assert_eq!(Estimate::of(&stand_in, 1024), Estimate::new(15 + 4, 0));
        assert_eq!(stand_in.tags, request.tags);
        assert!(!stand_in.has_image());
    }

    #[test]
    fn an_answer_shows_its_overhead_in_milliseconds_as_a_chat_answer_does() {
        let answer = EmbedAnswer {
            request_id: "req_1".into(),
            response: EmbedResponse {
                model: "m".into(),
                vectors: vec![vec![0.5]],
                usage: switchyard_core::Usage::new(3, 0),
            },
            served_by: Candidate {
                provider: "gemini".into(),
                key: "g1".into(),
                model: "text-embedding-004".into(),
            },
            fingerprint: switchyard_core::Fingerprint::of("secret"),
            n_attempts: 1,
            overhead: Duration::from_micros(2_500),
            trace: Trace::default(),
            cost: None,
        };
        let json = serde_json::to_value(&answer).expect("serializes");
        assert_eq!(json["overhead"], 2);
    }
}
