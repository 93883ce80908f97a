//! The providers that speak OpenAI's Chat Completions, and what differs between them: the base
//! URL, the name of the output token limit, the seed field, whether `stream_options` is
//! accepted, what the rate-limit headers count, and extra headers.

use std::time::Duration;

use switchyard_core::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LINE_BYTES, LimitScope, ProviderId};

/// A provider that speaks the OpenAI wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// OpenAI: `max_completion_tokens`; `x-ratelimit-*` count the current (per-minute)
    /// windows.
    OpenAi,
    /// Groq: `max_tokens`; `x-ratelimit-*-requests` count the day, `*-tokens` the minute; a
    /// request larger than the per-minute token limit is a 413.
    Groq,
    /// Mistral: `max_tokens`, `random_seed` instead of `seed`, no `stream_options`; its own
    /// rate-limit header names.
    Mistral,
    /// OpenRouter: `max_tokens`, attribution headers, errors inside 200 bodies, 402 billing.
    OpenRouter,
    /// Any OpenAI-compatible server by base URL (vLLM, llama.cpp, LM Studio, Ollama's `/v1`):
    /// `max_tokens`, which every one of them reads.
    Compatible,
}

impl Preset {
    /// The provider's public base URL; `None` for [`Preset::Compatible`], whose URL the
    /// user gives.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::Groq => Some("https://api.groq.com/openai/v1"),
            Self::Mistral => Some("https://api.mistral.ai/v1"),
            Self::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Self::Compatible => None,
        }
    }

    /// The body field that carries the output token limit.
    pub fn max_tokens_field(self) -> &'static str {
        match self {
            // `max_tokens` is deprecated at OpenAI and refused by its o-series models.
            Self::OpenAi => "max_completion_tokens",
            Self::Groq | Self::Mistral | Self::OpenRouter | Self::Compatible => "max_tokens",
        }
    }

    /// The body field that carries the seed.
    pub fn seed_field(self) -> &'static str {
        match self {
            Self::Mistral => "random_seed",
            Self::OpenAi | Self::Groq | Self::OpenRouter | Self::Compatible => "seed",
        }
    }

    /// Whether streamed requests may ask for a usage chunk with `stream_options`.
    pub fn accepts_stream_options(self) -> bool {
        match self {
            // Mistral refuses the field with a 422; it sends usage on its last chunk anyway.
            Self::Mistral => false,
            Self::OpenAi | Self::Groq | Self::OpenRouter | Self::Compatible => true,
        }
    }

    /// The windows the `x-ratelimit-*-requests` and `x-ratelimit-*-tokens` headers count.
    pub fn header_scopes(self) -> (LimitScope, LimitScope) {
        match self {
            // Groq's rate-limit doc: requests headers are per day, tokens headers per minute.
            Self::Groq => (LimitScope::Day, LimitScope::Minute),
            Self::OpenAi | Self::Mistral | Self::OpenRouter => {
                (LimitScope::Minute, LimitScope::Minute)
            }
            Self::Compatible => (LimitScope::Unknown, LimitScope::Unknown),
        }
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::OpenRouter => "openrouter",
            Self::Compatible => "openai-compatible",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = crate::OpenAiError;

    /// Reads a preset by the name configuration files use: `openai`, `groq`, `mistral`,
    /// `openrouter`, or `openai-compatible` (also `compatible`, `vllm`, `llama.cpp`,
    /// `lmstudio`, `ollama-openai`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "groq" => Ok(Self::Groq),
            "mistral" => Ok(Self::Mistral),
            "openrouter" => Ok(Self::OpenRouter),
            "openai-compatible" | "compatible" | "vllm" | "llama.cpp" | "llamacpp" | "lmstudio"
            | "lm-studio" | "ollama-openai" => Ok(Self::Compatible),
            _ => Err(crate::OpenAiError::UnknownPreset(name.to_owned())),
        }
    }
}

/// OpenRouter's optional app attribution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Sent as `HTTP-Referer`: the app's URL.
    pub referer: Option<String>,
    /// Sent as `X-Title` and `X-OpenRouter-Title` (the newer name): the app's name.
    pub title: Option<String>,
}

/// Everything one OpenAI-format provider needs. Plain data: build it with
/// [`OpenAiConfig::new`] or [`OpenAiConfig::compatible`] and change the public fields.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The provider's configured name (`groq`, `local-llama`).
    pub id: ProviderId,
    /// Which provider's quirks apply.
    pub preset: Preset,
    /// The base URL, without the trailing `/chat/completions`.
    pub base_url: String,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole non-streamed call or model listing.
    pub request_timeout: Duration,
    /// Longest silence on a connection before it counts as a timeout: bounds a stream's
    /// wait for its headers and every gap between its events (a stream as a whole may run
    /// longer than `request_timeout`).
    pub stream_idle_timeout: Duration,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// OpenRouter's attribution headers (ignored by other presets).
    pub attribution: Attribution,
    /// Extra headers sent on every call (`OpenAI-Organization`, `OpenAI-Project`, ...).
    pub headers: Vec<(String, String)>,
    /// The largest plain body read (an answer, a model listing); a longer one is a
    /// `MalformedResponse` and the router moves on. Default
    /// [`DEFAULT_MAX_BODY_BYTES`](switchyard_core::DEFAULT_MAX_BODY_BYTES), 8 MiB.
    pub max_body_bytes: usize,
    /// The longest line, and the largest event, of a stream. Default
    /// [`DEFAULT_MAX_LINE_BYTES`](switchyard_core::DEFAULT_MAX_LINE_BYTES), 1 MiB.
    pub max_line_bytes: usize,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("id", &self.id)
            .field("preset", &self.preset)
            .field("base_url", &self.base_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_line_bytes", &self.max_line_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiConfig {
    /// A named provider at its public URL. For [`Preset::Compatible`] the base URL is empty:
    /// use [`OpenAiConfig::compatible`] instead.
    pub fn new(id: impl Into<ProviderId>, preset: Preset) -> Self {
        Self {
            id: id.into(),
            preset,
            base_url: preset.default_base_url().unwrap_or_default().to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            stream_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 32,
            attribution: Attribution::default(),
            headers: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// Any OpenAI-compatible server at `base_url` (`http://localhost:11434/v1` for Ollama).
    pub fn compatible(id: impl Into<ProviderId>, base_url: impl Into<String>) -> Self {
        Self { base_url: base_url.into(), ..Self::new(id, Preset::Compatible) }
    }

    /// The same provider at another base URL (a proxy, a mock upstream).
    #[must_use]
    pub fn at(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}
