//! The conformance suite every adapter runs against its mock: a plain answer, a streamed
//! answer reassembled to the plain one, each error kind from the provider's real body, the
//! rate-limit headers, a timeout, a malformed body, a cut stream, and the upstream calls
//! counted. The checks panic with a message on failure: they are test helpers.
//!
//! An adapter's test builds a [`Conformance`] from two functions, one making a mock in its
//! format and one making the adapter for a base URL and timeout, then calls the checks:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use switchyard_core::Provider;
//! # use switchyard_mock::{MockUpstream, conformance::Conformance};
//! # async fn run(make_adapter: fn(&str, Duration) -> Arc<dyn Provider>) {
//! let suite = Conformance::new("gpt-mock", MockUpstream::openai, make_adapter);
//! suite.plain_answer().await;
//! suite.stream_matches_plain().await;
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use switchyard_core::{
    Call, ChatReply, ChatRequest, ChatResponse, Credential, ErrorKind, FinishReason, LimitScope,
    Message, ModelId, NextStep, Provider, ProviderError, StreamAccumulator, Tool, ToolCall,
    ToolChoice,
};

use crate::script::{Fault, FaultRule, KeyScript, ReplyScript};
use crate::server::{MockBuilder, MockUpstream};
use crate::wire::{Failure, Unit, Window};

/// The key every check calls with.
pub const KEY_ID: &str = "conformance-key";
/// Its secret.
pub const KEY_SECRET: &str = "sk-conformance-0123456789abcdef";

type MakeMock = Box<dyn Fn() -> MockBuilder + Send + Sync>;
type MakeProvider = Box<dyn Fn(&str, Duration) -> Arc<dyn Provider> + Send + Sync>;
type MakeTuned = Box<dyn Fn(&str, AdapterLimits) -> Arc<dyn Provider> + Send + Sync>;

/// The suite for one adapter.
pub struct Conformance {
    model: ModelId,
    make_mock: MakeMock,
    make_provider: MakeProvider,
    make_tuned: Option<MakeTuned>,
}

/// The limits the hostile checks build an adapter with: `None` keeps the adapter's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterLimits {
    /// The largest plain body.
    pub max_body_bytes: Option<usize>,
    /// The longest stream line.
    pub max_line_bytes: Option<usize>,
}

/// What the hostile checks need to know of one provider's wire: how its answers and stream
/// frames look, so they can be sent huge, cut or garbled.
#[derive(Clone, Copy, Debug)]
pub struct HostileWire {
    /// A plain 200 answer whose text is the argument.
    pub answer_with_text: fn(&str) -> String,
    /// The stream's `content-type`.
    pub stream_content_type: &'static str,
    /// What a stream line that never ends starts with.
    pub endless_line_prefix: &'static str,
    /// A frame of junk: the argument wrapped as one frame.
    pub garbage_frame: fn(&str) -> String,
    /// A stream cut in the middle of a token.
    pub cut_mid_token: &'static str,
    /// What the cut is classified as.
    pub cut_kind: ErrorKind,
    /// A status for a 50 MB error body that is no JSON, its `content-type`, and its kind.
    pub huge_error: (u16, &'static str, ErrorKind),
}

/// Deterministic junk: `len` characters of every kind, newlines and controls included.
pub fn garbage(seed: u64, len: usize) -> String {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let code = u32::try_from(state % 0x800).expect("invariant: below 0x800");
            char::from_u32(code).unwrap_or('\u{fffd}')
        })
        .collect()
}

/// A fault answering with exactly `body`.
pub fn raw(status: u16, content_type: &str, headers: &[(&str, &str)], body: String) -> Fault {
    Fault::Raw {
        status,
        content_type: content_type.to_owned(),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body,
    }
}

#[track_caller]
fn assert_moves_on(error: &ProviderError, kind: ErrorKind) {
    assert_eq!(error.kind, kind, "{error}");
    assert_ne!(switchyard_core::Classify::next_step(error), NextStep::Stop, "{error}");
}

/// The kinds a provider's real bodies for each mock failure must classify as, in OpenAI's
/// words. Adapters whose provider says less (no window in a 429) adjust their copy.
pub fn standard_errors() -> Vec<(Failure, ErrorKind)> {
    let limited = |window, unit| Failure::RateLimited {
        window,
        unit,
        limit: 3,
        used: 3,
        requested: 1,
        retry_after: Duration::from_secs(20),
    };
    vec![
        (
            limited(Window::Minute, Unit::Requests),
            ErrorKind::RateLimited { scope: LimitScope::Minute },
        ),
        (
            limited(Window::Minute, Unit::Tokens),
            ErrorKind::RateLimited { scope: LimitScope::Minute },
        ),
        (limited(Window::Day, Unit::Requests), ErrorKind::RateLimited { scope: LimitScope::Day }),
        (limited(Window::Day, Unit::Tokens), ErrorKind::RateLimited { scope: LimitScope::Day }),
        (Failure::RequestTooLarge { limit: 6000, requested: 12_000 }, ErrorKind::RequestTooLarge),
        (Failure::BillingStopped, ErrorKind::BillingStopped),
        (Failure::InvalidKey { sent: Some(KEY_SECRET.to_owned()) }, ErrorKind::InvalidKey),
        (Failure::PermissionDenied, ErrorKind::PermissionDenied),
        (Failure::ModelNotFound { model: "nope".to_owned() }, ErrorKind::ModelNotFound),
        (Failure::ContextTooLong { max: 8192, requested: 9000 }, ErrorKind::ContextTooLong),
        (Failure::BadRequest { message: "bad field".to_owned() }, ErrorKind::BadRequest),
        (Failure::Overloaded, ErrorKind::Overloaded),
        (Failure::ServerError { status: 500 }, ErrorKind::ServerError),
        (Failure::ServerError { status: 502 }, ErrorKind::ServerError),
    ]
}

impl Conformance {
    /// A suite calling `model`, with mocks from `make_mock` (the suite adds its key) and
    /// adapters from `make_provider(base_url, timeout)`.
    pub fn new(
        model: &str,
        make_mock: impl Fn() -> MockBuilder + Send + Sync + 'static,
        make_provider: impl Fn(&str, Duration) -> Arc<dyn Provider> + Send + Sync + 'static,
    ) -> Self {
        Self {
            model: ModelId::new(model),
            make_mock: Box::new(make_mock),
            make_provider: Box::new(make_provider),
            make_tuned: None,
        }
    }

    /// The same suite, also able to run the hostile checks: `make_tuned(base_url, limits)`
    /// makes an adapter with those limits.
    #[must_use]
    pub fn hostile(
        mut self,
        make_tuned: impl Fn(&str, AdapterLimits) -> Arc<dyn Provider> + Send + Sync + 'static,
    ) -> Self {
        self.make_tuned = Some(Box::new(make_tuned));
        self
    }

    /// The credential the checks use.
    pub fn credential() -> Credential {
        Credential::new(KEY_ID, KEY_SECRET)
    }

    /// Starts a mock with the suite's key (given quotas through `key`) and an adapter for it
    /// with a generous timeout.
    ///
    /// # Panics
    /// When the mock cannot bind.
    pub async fn start(
        &self,
        key: impl FnOnce(KeyScript) -> KeyScript,
    ) -> (MockUpstream, Arc<dyn Provider>) {
        self.start_with_timeout(key, Duration::from_secs(10)).await
    }

    async fn start_with_timeout(
        &self,
        key: impl FnOnce(KeyScript) -> KeyScript,
        timeout: Duration,
    ) -> (MockUpstream, Arc<dyn Provider>) {
        let mock = (self.make_mock)()
            .key(key(KeyScript::valid(KEY_ID, KEY_SECRET)))
            .start()
            .await
            .expect("the mock binds 127.0.0.1:0");
        let provider = (self.make_provider)(&mock.base_url(), timeout);
        (mock, provider)
    }

    /// A request every check sends.
    pub fn request() -> ChatRequest {
        let mut request = ChatRequest::from_user("tell me about switchyards");
        request.messages.insert(0, Message::system("Be brief."));
        request.max_tokens = Some(64);
        request
    }

    async fn chat(&self, provider: &dyn Provider) -> Result<ChatReply, ProviderError> {
        self.chat_with(provider, &Self::request(), &Self::credential()).await
    }

    async fn chat_with(
        &self,
        provider: &dyn Provider,
        request: &ChatRequest,
        credential: &Credential,
    ) -> Result<ChatReply, ProviderError> {
        provider.chat(Call::new(request, &self.model, Some(credential))).await
    }

    /// Streams and reassembles; the first `Err` item ends it.
    async fn stream(
        &self,
        provider: &dyn Provider,
    ) -> Result<(StreamAccumulator, Option<ProviderError>), ProviderError> {
        self.stream_with(provider, &Self::request()).await
    }

    async fn stream_with(
        &self,
        provider: &dyn Provider,
        request: &ChatRequest,
    ) -> Result<(StreamAccumulator, Option<ProviderError>), ProviderError> {
        let credential = Self::credential();
        let mut stream =
            provider.chat_stream(Call::new(request, &self.model, Some(&credential))).await?;
        let mut accumulator = StreamAccumulator::new();
        while let Some(item) = stream.chunks.next().await {
            match item {
                Ok(chunk) => accumulator.push(&chunk),
                Err(error) => return Ok((accumulator, Some(error))),
            }
        }
        Ok((accumulator, None))
    }

    /// A plain call is answered with the mock's echo, its usage and the model, and the mock
    /// saw exactly one call made with the key.
    pub async fn plain_answer(&self) {
        let (mock, provider) = self.start(|key| key).await;
        let reply = self.chat(&*provider).await.expect("a plain answer");
        assert_eq!(reply.response.text, "You said: tell me about switchyards");
        assert_eq!(reply.response.usage.completion_tokens, 6, "one token per word");
        assert!(reply.response.usage.prompt_tokens > 0);
        assert_eq!(reply.response.model, self.model.as_str());
        let counts = mock.counts(KEY_ID).expect("the suite's key");
        assert_eq!((counts.requests, counts.served), (1, 1));
    }

    /// A streamed call reassembles to the same text, finish reason and usage as the plain
    /// one.
    pub async fn stream_matches_plain(&self) {
        let (mock, provider) = self.start(|key| key).await;
        let plain = self.chat(&*provider).await.expect("a plain answer").response;
        let (accumulator, error) = self.stream(&*provider).await.expect("a stream");
        assert!(error.is_none(), "the stream failed: {error:?}");
        assert!(accumulator.n_chunks() > 1, "a stream of one chunk is no stream");
        let streamed = accumulator.finish();
        assert_eq!(streamed.text, plain.text);
        assert_eq!(streamed.finish_reason, plain.finish_reason);
        assert_eq!(streamed.usage, plain.usage);
        assert_eq!(mock.counts(KEY_ID).expect("key").served, 2);
    }

    /// Each failure, in the provider's real words, is classified as `expected`, for plain
    /// and streamed calls, and each call reached the mock once.
    pub async fn error_kinds(&self, cases: &[(Failure, ErrorKind)]) {
        let (mock, provider) = self.start(|key| key).await;
        for (n_done, (failure, expected)) in cases.iter().enumerate() {
            mock.inject(FaultRule::times(Fault::Fail(failure.clone()), 2));
            let plain = self.chat(&*provider).await.expect_err("a failure");
            assert_eq!(plain.kind, *expected, "{failure:?} → {plain}");
            let streamed = self.stream(&*provider).await.expect_err("a failure before the stream");
            assert_eq!(streamed.kind, *expected, "streamed {failure:?} → {streamed}");
            assert_eq!(mock.n_requests(), 2 * (n_done as u64 + 1), "one upstream call per attempt");
        }
    }

    /// A spent per-minute quota: the 429's retry delay and headers reach the error, and the
    /// success before it carried a non-empty snapshot. Only for providers that send
    /// rate-limit headers.
    pub async fn rate_limit_headers(&self) {
        // Some providers' headers show only some windows (Groq: tokens per minute, requests
        // per day): a token window makes every format say something.
        let (mock, provider) =
            self.start(|key| key.requests_per_minute(1).tokens_per_minute(100_000)).await;
        let reply = self.chat(&*provider).await.expect("the first call is served");
        assert!(!reply.rate_limits.is_empty(), "a served call reports its limits");
        let error = self.chat(&*provider).await.expect_err("the second is limited");
        assert_eq!(error.kind, ErrorKind::RateLimited { scope: LimitScope::Minute });
        let retry_after = switchyard_core::Classify::retry_after(&error).expect("a retry delay");
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
        assert_eq!(mock.counts(KEY_ID).expect("key").rate_limited, 1);
    }

    /// A hung upstream is a timeout, plain and streamed, within the adapter's timeout
    /// (real time: this is the HTTP client's own timer).
    pub async fn timeout(&self) {
        let (mock, provider) = self.start_with_timeout(|key| key, Duration::from_millis(300)).await;
        mock.inject(FaultRule::times(Fault::Hang, 2));
        let plain = self.chat(&*provider).await.expect_err("a hang");
        assert_eq!(plain.kind, ErrorKind::Timeout, "{plain}");
        let kind = match self.stream(&*provider).await {
            Err(error) => error.kind,
            Ok((_, Some(error))) => error.kind,
            Ok((_, None)) => panic!("a hung stream ended cleanly"),
        };
        assert_eq!(kind, ErrorKind::Timeout);
    }

    /// A 200 whose body is not JSON is a malformed response, not a panic; in a stream, the
    /// unreadable frame ends it with an `Err` item.
    pub async fn malformed(&self) {
        let (mock, provider) = self.start(|key| key).await;
        mock.inject(FaultRule::times(Fault::Malformed, 2));
        let plain = self.chat(&*provider).await.expect_err("garbage");
        assert_eq!(plain.kind, ErrorKind::MalformedResponse, "{plain}");
        let (_, error) = self.stream(&*provider).await.expect("the stream starts");
        let error = error.expect("the garbage frame is an error item");
        assert_eq!(error.kind, ErrorKind::MalformedResponse, "{error}");
    }

    /// A stream cut after a few frames delivers them, then one `Err` item; a reset
    /// connection is a network error.
    pub async fn cut_stream(&self) {
        let (mock, provider) = self.start(|key| key).await;
        mock.inject(FaultRule::once(Fault::CutStream { after_frames: 3 }));
        let (accumulator, error) = self.stream(&*provider).await.expect("the stream starts");
        let error = error.expect("the cut is an error item");
        assert_eq!(error.kind, ErrorKind::Network, "{error}");
        assert!(accumulator.n_chunks() >= 1, "frames before the cut arrive");
        mock.inject(FaultRule::once(Fault::Reset));
        let reset = self.chat(&*provider).await.expect_err("a reset");
        assert_eq!(reset.kind, ErrorKind::Network, "{reset}");
        assert_eq!(mock.totals().faulted, 2);
    }

    /// A key the upstream does not know is an invalid key, named by its id, and neither the
    /// error's `Display` nor its `Debug` shows the secret.
    pub async fn unknown_key_shows_no_secret(&self) {
        let (mock, provider) = self.start(|key| key).await;
        let secret = "sk-conformance-unknown-SECRET-0000000000";
        let stranger = Credential::new("stranger", secret);
        let error = self
            .chat_with(&*provider, &Self::request(), &stranger)
            .await
            .expect_err("an unknown key is refused");
        assert_eq!(error.kind, ErrorKind::InvalidKey, "{error}");
        assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some("stranger"));
        for text in [format!("{error}"), format!("{error:?}"), format!("{error:#?}")] {
            assert!(!text.contains(secret) && !text.contains("SECRET"), "{text}");
        }
        assert_eq!(mock.unknown_key_counts().refused, 1);
    }

    /// The mock answers with a tool call; plain and streamed answers carry the same call,
    /// and the finish reason says tools were called. Returns the plain answer.
    pub async fn tool_call(&self) -> ChatResponse {
        let call = ToolCall {
            id: "call_conformance_1".to_owned(),
            name: "weather".to_owned(),
            arguments: r#"{"city":"Oslo","unit":"celsius"}"#.to_owned(),
        };
        let mock = (self.make_mock)()
            .key(KeyScript::valid(KEY_ID, KEY_SECRET))
            .reply(ReplyScript::ToolCalls(vec![call.clone()]))
            .start()
            .await
            .expect("the mock binds 127.0.0.1:0");
        let provider = (self.make_provider)(&mock.base_url(), Duration::from_secs(10));
        let mut request = Self::request();
        request.tools.push(Tool {
            name: "weather".to_owned(),
            description: Some("Current weather in a city".to_owned()),
            parameters: serde_json::json!({"type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"]}),
        });
        request.tool_choice = Some(ToolChoice::Function("weather".to_owned()));
        let plain = self
            .chat_with(&*provider, &request, &Self::credential())
            .await
            .expect("a tool call")
            .response;
        assert_eq!(plain.tool_calls.len(), 1, "{plain:?}");
        assert_eq!(plain.tool_calls[0].name, call.name);
        let arguments: serde_json::Value =
            serde_json::from_str(&plain.tool_calls[0].arguments).expect("arguments are JSON");
        assert_eq!(arguments["city"], "Oslo");
        assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
        let (accumulator, error) = self.stream_with(&*provider, &request).await.expect("a stream");
        assert!(error.is_none(), "the stream failed: {error:?}");
        let streamed = accumulator.finish();
        assert_eq!(streamed.tool_calls, plain.tool_calls, "deltas reassemble to the same call");
        assert_eq!(streamed.finish_reason, plain.finish_reason);
        plain
    }

    /// A mock with the suite's key and an adapter with `limits`.
    ///
    /// # Panics
    /// When the suite was not made [`hostile`](Self::hostile), or the mock cannot bind.
    async fn tuned(&self, limits: AdapterLimits) -> (MockUpstream, Arc<dyn Provider>) {
        let make_tuned = self.make_tuned.as_ref().expect("a hostile suite (Conformance::hostile)");
        let mock = (self.make_mock)()
            .key(KeyScript::valid(KEY_ID, KEY_SECRET))
            .start()
            .await
            .expect("the mock binds 127.0.0.1:0");
        let provider = make_tuned(&mock.base_url(), limits);
        (mock, provider)
    }

    /// The error a plain (or streamed) call of `provider` ends with.
    async fn answer_error(&self, provider: &dyn Provider, stream: bool) -> ProviderError {
        let request = ChatRequest::from_user("hi");
        if !stream {
            return self
                .chat_with(provider, &request, &Self::credential())
                .await
                .expect_err("fails");
        }
        match self.stream_with(provider, &request).await {
            Err(error) | Ok((_, Some(error))) => error,
            Ok((_, None)) => panic!("the stream ended cleanly"),
        }
    }

    /// The error `fault` ends a plain (or streamed) call with, on default limits.
    async fn failed(&self, fault: Fault, stream: bool) -> (ProviderError, String) {
        let (mock, provider) = self.tuned(AdapterLimits::default()).await;
        mock.inject(FaultRule::once(fault));
        (self.answer_error(&*provider, stream).await, provider.id().to_string())
    }

    /// A 50 MB answer is refused at the default 8 MiB limit with a typed error that moves on.
    pub async fn huge_answer(&self, wire: &HostileWire) {
        let body = (wire.answer_with_text)(&"a".repeat(50 << 20));
        let (error, id) = self.failed(raw(200, "application/json", &[], body), false).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
        assert_eq!(error.message, format!("the body from {id} is over the limit of 8388608 bytes"));
        assert_eq!(error.key.as_ref().map(|key| key.as_str()), Some(KEY_ID));
    }

    /// The body and line limits are the adapter's configuration; the defaults serve the
    /// mock's answer.
    pub async fn limits_are_configurable(&self) {
        let (_mock, provider) = self.tuned(AdapterLimits::default()).await;
        let request = ChatRequest::from_user("hi");
        let served = self.chat_with(&*provider, &request, &Self::credential()).await;
        assert_eq!(served.expect("served").response.text, "You said: hi");
        let small = AdapterLimits { max_body_bytes: Some(64), ..AdapterLimits::default() };
        let (_mock, provider) = self.tuned(small).await;
        let error = self.answer_error(&*provider, false).await;
        let id = provider.id();
        assert_eq!(error.message, format!("the body from {id} is over the limit of 64 bytes"));
        let narrow = AdapterLimits { max_line_bytes: Some(16), ..AdapterLimits::default() };
        let (_mock, provider) = self.tuned(narrow).await;
        let error = self.answer_error(&*provider, true).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
        let id = provider.id();
        assert_eq!(
            error.message,
            format!("the stream line from {id} is over the limit of 16 bytes")
        );
    }

    /// A 50 MB error body is cut and still classified by its status, its message a snippet.
    pub async fn huge_error_body(&self, wire: &HostileWire) {
        let (status, content_type, kind) = wire.huge_error;
        let (error, _) =
            self.failed(raw(status, content_type, &[], "x".repeat(50 << 20)), false).await;
        assert_eq!(error.kind, kind);
        assert!(
            error.message.len() < 1024,
            "a snippet, not the body: {} bytes",
            error.message.len()
        );
    }

    /// A 2 MiB stream line without a newline is refused at the default 1 MiB line limit.
    pub async fn endless_line(&self, wire: &HostileWire) {
        let body = format!("{}{}", wire.endless_line_prefix, "y".repeat(2 << 20));
        let (error, id) = self.failed(raw(200, wire.stream_content_type, &[], body), true).await;
        assert_moves_on(&error, ErrorKind::MalformedResponse);
        assert_eq!(
            error.message,
            format!("the stream line from {id} is over the limit of 1048576 bytes")
        );
    }

    /// Garbage frames end a stream with a malformed response that moves on.
    pub async fn garbage_frames(&self, wire: &HostileWire) {
        for seed in [1, 2, 3] {
            let body = (wire.garbage_frame)(&garbage(seed, 4096));
            let (error, _) = self.failed(raw(200, wire.stream_content_type, &[], body), true).await;
            assert_moves_on(&error, ErrorKind::MalformedResponse);
        }
    }

    /// A stream cut mid-token delivers the token before the cut (`hel`), then ends with the
    /// wire's kind of failure, which moves on.
    pub async fn cut_mid_token(&self, wire: &HostileWire) {
        let (mock, provider) = self.tuned(AdapterLimits::default()).await;
        let body = wire.cut_mid_token.to_owned();
        mock.inject(FaultRule::once(raw(200, wire.stream_content_type, &[], body)));
        let (accumulator, error) = self
            .stream_with(&*provider, &ChatRequest::from_user("hi"))
            .await
            .expect("the stream starts");
        assert_eq!(accumulator.text(), "hel");
        assert_moves_on(&error.expect("the cut is an error item"), wire.cut_kind);
    }
}

/// Stamps an adapter's conformance tests: each check of [`Conformance`] as one `#[tokio::test]`
/// in the module it is invoked in (the caller's dev-dependencies have `tokio` with `macros`).
///
/// ```text
/// switchyard_mock::conformance_suite! {
///     suite: support::suite(),           // a `Conformance` (made `.hostile(..)` for `hostile:`)
///     errors: standard_errors(),         // the kinds each failure must classify as
///     rate_limit_headers: true,          // whether the provider sends rate-limit headers
///     hostile: support::HOSTILE,         // optional: a `HostileWire`, stamps the hostile checks
/// }
/// ```
#[macro_export]
macro_rules! conformance_suite {
    (
        suite: $suite:expr,
        errors: $errors:expr,
        rate_limit_headers: $headers:tt,
        $(hostile: $hostile:expr,)?
    ) => {
        #[::tokio::test]
        async fn plain_answer() {
            $suite.plain_answer().await;
        }

        #[::tokio::test]
        async fn stream_matches_plain() {
            $suite.stream_matches_plain().await;
        }

        #[::tokio::test]
        async fn every_error_kind() {
            $suite.error_kinds(&$errors).await;
        }

        $crate::conformance_suite!(@headers $headers, $suite);

        #[::tokio::test]
        async fn timeout() {
            $suite.timeout().await;
        }

        #[::tokio::test]
        async fn malformed() {
            $suite.malformed().await;
        }

        #[::tokio::test]
        async fn cut_stream() {
            $suite.cut_stream().await;
        }

        #[::tokio::test]
        async fn unknown_key_shows_no_secret() {
            $suite.unknown_key_shows_no_secret().await;
        }

        #[::tokio::test]
        async fn tool_call() {
            $suite.tool_call().await;
        }

        $($crate::conformance_suite!(@hostile $suite, $hostile);)?
    };
    (@headers true, $suite:expr) => {
        #[::tokio::test]
        async fn rate_limit_headers() {
            $suite.rate_limit_headers().await;
        }
    };
    (@headers false, $suite:expr) => {};
    (@hostile $suite:expr, $hostile:expr) => {
        #[::tokio::test]
        async fn a_50_mb_answer_is_refused_at_the_limit_and_moves_on() {
            $suite.huge_answer(&$hostile).await;
        }

        #[::tokio::test]
        async fn the_limits_are_configurable() {
            $suite.limits_are_configurable().await;
        }

        #[::tokio::test]
        async fn a_50_mb_error_body_is_cut_and_still_classified() {
            $suite.huge_error_body(&$hostile).await;
        }

        #[::tokio::test]
        async fn a_2_mib_stream_line_without_a_newline_is_refused() {
            $suite.endless_line(&$hostile).await;
        }

        #[::tokio::test]
        async fn garbage_instead_of_frames_is_malformed() {
            $suite.garbage_frames(&$hostile).await;
        }

        #[::tokio::test]
        async fn a_stream_cut_mid_token_moves_on() {
            $suite.cut_mid_token(&$hostile).await;
        }
    };
}
