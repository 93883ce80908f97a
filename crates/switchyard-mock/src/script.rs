//! What a test scripts, protocol-independent: keys and their quotas, latency, faults and the
//! answers the mock gives. Every format obeys the same script.

use std::time::Duration;

use rand::Rng;
use switchyard_core::{KeyId, ToolCall};

use crate::wire::{Failure, Unit, Window};

/// Per-key quotas: requests and tokens per minute and per day. `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Requests per sliding minute.
    pub requests_per_minute: Option<u64>,
    /// Requests per calendar day in the mock's time zone.
    pub requests_per_day: Option<u64>,
    /// Tokens (prompt + completion) per sliding minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per calendar day.
    pub tokens_per_day: Option<u64>,
}

/// A quota window of any length, beyond the per-minute and per-day ones of [`Quotas`]: a
/// simulation compresses a minute into seconds and a day into a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowQuota {
    /// What it counts.
    pub unit: Unit,
    /// How much per window.
    pub limit: u64,
    /// The window's length.
    pub length: Duration,
    /// Sliding or fixed.
    pub kind: WindowKind,
    /// How a refusal and the rate-limit headers name it: a minute limit or a daily one.
    pub scope: Window,
}

/// How a [`WindowQuota`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Each charge counts until it is `length` old.
    Sliding,
    /// Counts start again at fixed boundaries: the mock's start plus `offset`, then every
    /// `length` (a provider whose windows are not aligned with the client's clock).
    Fixed {
        /// Where the boundaries fall after the mock starts.
        offset: Duration,
    },
}

impl WindowQuota {
    /// `limit` requests in any sliding window of `length`.
    pub fn requests_sliding(limit: u64, length: Duration) -> Self {
        Self {
            unit: Unit::Requests,
            limit,
            length,
            kind: WindowKind::Sliding,
            scope: Self::scope_of(length),
        }
    }

    /// `limit` requests per fixed window of `length`, the first boundary `offset` after start.
    pub fn requests_fixed(limit: u64, length: Duration, offset: Duration) -> Self {
        Self { kind: WindowKind::Fixed { offset }, ..Self::requests_sliding(limit, length) }
    }

    /// The same window counting tokens (prompt and completion together).
    #[must_use]
    pub fn in_tokens(mut self) -> Self {
        self.unit = Unit::Tokens;
        self
    }

    /// The same window, named a daily limit in refusals and headers.
    #[must_use]
    pub fn as_day(mut self) -> Self {
        self.scope = Window::Day;
        self
    }

    /// Up to five minutes is a minute limit, longer a daily one.
    fn scope_of(length: Duration) -> Window {
        if length <= Duration::from_secs(300) { Window::Minute } else { Window::Day }
    }
}

/// Which retry hints a key's answers carry in their headers. Providers differ: OpenAI sends
/// `retry-after-ms`, `retry-after` and `x-ratelimit-*`; Groq's request headers count the day;
/// Gemini and OpenRouter's free tier send no header at all. The body always stays as the wire
/// format writes it, so a format whose 429 body names no time (OpenRouter's, Mistral's) with
/// [`HintStyle::NoHeaders`] is a key that gives no hint at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HintStyle {
    /// Every header the format sends (the default).
    #[default]
    AsFormat,
    /// `retry-after` (and `retry-after-ms`) where the format sends it, no rate-limit header on
    /// any answer.
    RetryAfterOnly,
    /// No hint in any header: no `retry-after`, `retry-after-ms` nor rate-limit header.
    NoHeaders,
}

impl HintStyle {
    /// Removes from `headers` what this style does not send.
    pub(crate) fn apply(self, headers: &mut axum::http::HeaderMap) {
        let drop_retry = match self {
            Self::AsFormat => return,
            Self::RetryAfterOnly => false,
            Self::NoHeaders => true,
        };
        let unwanted: Vec<axum::http::HeaderName> = headers
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.starts_with("x-ratelimit-")
                    || name.starts_with("anthropic-ratelimit-")
                    || (drop_retry && (name == "retry-after" || name == "retry-after-ms"))
            })
            .cloned()
            .collect();
        for name in unwanted {
            headers.remove(name);
        }
    }
}

/// One key the mock knows: its secret, the id the log and counters name it by, whether it is
/// valid, and its quotas.
#[derive(Clone, Debug)]
pub struct KeyScript {
    pub(crate) id: KeyId,
    pub(crate) secret: String,
    pub(crate) valid: bool,
    pub(crate) revoke_after: Option<u64>,
    pub(crate) quotas: Quotas,
    pub(crate) billing_stopped: bool,
    pub(crate) group: Option<String>,
    pub(crate) windows: Vec<WindowQuota>,
    pub(crate) revoked_at: Option<Duration>,
    pub(crate) hints: HintStyle,
}

impl KeyScript {
    /// A valid key without limits.
    pub fn valid(id: impl Into<KeyId>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            valid: true,
            revoke_after: None,
            quotas: Quotas::default(),
            billing_stopped: false,
            group: None,
            windows: Vec::new(),
            revoked_at: None,
            hints: HintStyle::AsFormat,
        }
    }

    /// A key the upstream knows to be wrong: every call answers the format's invalid-key
    /// error. (An unknown secret is answered the same way; scripting it names it in the log.)
    pub fn invalid(id: impl Into<KeyId>, secret: impl Into<String>) -> Self {
        Self { valid: false, ..Self::valid(id, secret) }
    }

    /// Serves `n_calls` calls, then is revoked: every later call is an invalid key.
    #[must_use]
    pub fn revoked_after(mut self, n_calls: u64) -> Self {
        self.revoke_after = Some(n_calls);
        self
    }

    /// Is revoked `after` the mock starts (on its clock): every later call is an invalid key.
    #[must_use]
    pub fn revoked_at(mut self, after: Duration) -> Self {
        self.revoked_at = Some(after);
        self
    }

    /// Adds a quota window of any length, sliding or fixed, on top of [`Quotas`].
    #[must_use]
    pub fn window(mut self, window: WindowQuota) -> Self {
        self.windows.push(window);
        self
    }

    /// Which retry hints its answers carry in their headers (all the format sends, by
    /// default).
    #[must_use]
    pub fn hints(mut self, hints: HintStyle) -> Self {
        self.hints = hints;
        self
    }

    /// An account out of credit: every call answers the format's billing error.
    #[must_use]
    pub fn billing_stopped(mut self) -> Self {
        self.billing_stopped = true;
        self
    }

    /// Limits requests per sliding minute.
    #[must_use]
    pub fn requests_per_minute(mut self, limit: u64) -> Self {
        self.quotas.requests_per_minute = Some(limit);
        self
    }

    /// Limits requests per calendar day.
    #[must_use]
    pub fn requests_per_day(mut self, limit: u64) -> Self {
        self.quotas.requests_per_day = Some(limit);
        self
    }

    /// Limits tokens per sliding minute.
    #[must_use]
    pub fn tokens_per_minute(mut self, limit: u64) -> Self {
        self.quotas.tokens_per_minute = Some(limit);
        self
    }

    /// Limits tokens per calendar day.
    #[must_use]
    pub fn tokens_per_day(mut self, limit: u64) -> Self {
        self.quotas.tokens_per_day = Some(limit);
        self
    }

    /// All quotas at once.
    #[must_use]
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Shares the quotas of a group (an organisation: Groq, Gemini and OpenAI count limits
    /// per organisation or project, so its keys run out together). The group's quotas are
    /// set with [`MockBuilder::group`](crate::MockBuilder::group); the key's own still apply.
    #[must_use]
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

/// How long the mock takes to answer a served call, slept through its clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Latency {
    /// At once.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between two bounds.
    Uniform {
        /// The shortest.
        min: Duration,
        /// The longest.
        max: Duration,
    },
    /// Log-normal around a median, the long-tailed shape real upstream latencies have.
    LogNormal {
        /// The median.
        median: Duration,
        /// The spread of the underlying normal (0.5 is a moderate tail).
        sigma: f64,
    },
}

impl Latency {
    /// Draws one latency.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Self::None => Duration::ZERO,
            Self::Fixed(latency) => latency,
            Self::Uniform { min, max } => {
                if max <= min {
                    min
                } else {
                    min + (max - min).mul_f64(rng.random::<f64>())
                }
            }
            Self::LogNormal { median, sigma } => {
                // Box-Muller: two uniforms give one standard normal.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let factor = (sigma * normal).exp();
                Duration::try_from_secs_f64(median.as_secs_f64() * factor).unwrap_or(median)
            }
        }
    }
}

/// What a served call answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReplyScript {
    /// `You said: <last user message>` (the default): tests can tell answers apart.
    #[default]
    Echo,
    /// This text.
    Text(String),
    /// These tool calls, no text.
    ToolCalls(Vec<ToolCall>),
}

/// An injected failure, applied before the key and quota checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers this failure in the format's real words (a 500, an overload, a 403, ...).
    Fail(Failure),
    /// Never answers; the client's timeout must fire.
    Hang,
    /// Serves the call as scripted, but this much later (slept on the mock's clock, on top
    /// of the latency): a slow upstream rather than a dead one.
    Slow(Duration),
    /// Drops the connection without a response (the client sees a reset or an early EOF).
    Reset,
    /// Answers 200 with a body (or a stream frame) that cannot be parsed.
    Malformed,
    /// Sends the first `after_frames` whole frames of a stream, then drops the connection
    /// (the cut falls on a frame boundary; [`Fault::CutMidFrame`] cuts inside one); a plain
    /// answer is cut after half its body.
    CutStream {
        /// Frames sent before the cut.
        after_frames: usize,
    },
    /// Sends the first `after_frames` whole frames of a stream, then the first half of the
    /// next frame's bytes (inside its JSON, not on a frame boundary), then drops the
    /// connection: a stream cut mid-token. A plain answer is cut after half its body, as
    /// with [`Fault::CutStream`].
    CutMidFrame {
        /// Whole frames sent before the cut one.
        after_frames: usize,
    },
    /// Answers 200 with a well-formed answer whose text is `bytes` bytes long, written in
    /// 64 KiB chunks without holding it in memory: an upstream that never stops talking.
    /// A stream gets its usual frames with one huge text frame among them.
    HugeBody {
        /// The length of the answer's text.
        bytes: u64,
    },
    /// Answers 200 and streams text frames forever, one every stream interval (or every
    /// [`ENDLESS_PACE`](crate::ENDLESS_PACE) when none is scripted), until the client goes
    /// away; a plain answer opens its JSON and then sends whitespace forever at that pace.
    EndlessStream,
    /// Answers 200 with a stream that turns to garbage after its first frame: a frame of
    /// broken JSON, one of bytes that are not UTF-8, one of control characters, then a line
    /// of [`GARBAGE_LINE_BYTES`](crate::GARBAGE_LINE_BYTES) bytes with no newline, then the
    /// body ends. A plain answer gets the same bytes as its body.
    GarbageStream,
    /// Answers exactly this: a body a test wants to see classified as it is.
    Raw {
        /// The status.
        status: u16,
        /// The `content-type`.
        content_type: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
}

impl Fault {
    /// A 500 in the format's words.
    pub fn server_error() -> Self {
        Self::Fail(Failure::ServerError { status: 500 })
    }

    /// An overload in the format's words (503 for OpenAI, 529 for Anthropic).
    pub fn overloaded() -> Self {
        Self::Fail(Failure::Overloaded)
    }

    /// A raw JSON answer.
    pub fn raw_json(status: u16, body: impl Into<String>) -> Self {
        Self::Raw {
            status,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A short label for the log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Fail(failure) => failure.label(),
            Self::Hang => "hang",
            Self::Slow(_) => "slow",
            Self::Reset => "reset",
            Self::Malformed => "malformed",
            Self::CutStream { .. } => "cut_stream",
            Self::CutMidFrame { .. } => "cut_mid_frame",
            Self::HugeBody { .. } => "huge_body",
            Self::EndlessStream => "endless_stream",
            Self::GarbageStream => "garbage_stream",
            Self::Raw { .. } => "raw",
        }
    }
}

/// When a fault fires: which calls it applies to and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub(crate) fault: Fault,
    pub(crate) key: Option<KeyId>,
    pub(crate) model: Option<String>,
    pub(crate) remaining: Option<u64>,
    pub(crate) probability: f64,
    pub(crate) active: Option<(Duration, Duration)>,
}

impl FaultRule {
    /// The fault on the next matching call only.
    pub fn once(fault: Fault) -> Self {
        Self::times(fault, 1)
    }

    /// The fault on the next `n` matching calls.
    pub fn times(fault: Fault, n: u64) -> Self {
        Self { fault, key: None, model: None, remaining: Some(n), probability: 1.0, active: None }
    }

    /// The fault on every matching call until the rules are cleared.
    pub fn always(fault: Fault) -> Self {
        Self { fault, key: None, model: None, remaining: None, probability: 1.0, active: None }
    }

    /// Only calls made with this key (by its scripted id).
    #[must_use]
    pub fn for_key(mut self, key: impl Into<KeyId>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Only calls asking for this model.
    #[must_use]
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Fires only from `from` to `until` after the mock starts, on its clock (a provider slow
    /// for a while, a burst of 5xx).
    #[must_use]
    pub fn between(mut self, from: Duration, until: Duration) -> Self {
        self.active = Some((from, until));
        self
    }

    /// Fires on a matching call with this probability (drawn from the mock's seeded RNG).
    #[must_use]
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability.clamp(0.0, 1.0);
        self
    }
}
