//! A scenario file (`sim/<name>.toml`), plain data: the providers with their keys, limits,
//! latency, price and faults; the demand; what the router is told. `docs/sim.md` documents
//! every field.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// One scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    /// Set from the file name.
    #[serde(skip)]
    pub(crate) name: String,
    /// One line on what it shows.
    pub(crate) description: String,
    /// Seeds the arrivals, request sizes, the mocks' latency draws and the router.
    pub(crate) seed: u64,
    pub(crate) demand: Demand,
    pub(crate) router: RouterSpec,
    #[serde(rename = "provider")]
    pub(crate) providers: Vec<ProviderSpec>,
    /// Acceptance targets checked on every run of the scenario (PASS/MISS in the report).
    #[serde(default)]
    pub(crate) targets: Option<Targets>,
}

/// What a run must show to pass (issue 21's targets for a day whose limits nobody declared).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Targets {
    /// The least share of requests served.
    pub(crate) goodput: f64,
    /// The least free requests served, as a share of the oracle's.
    pub(crate) free_vs_oracle: f64,
    /// The most cost, as a multiple of the oracle's.
    pub(crate) cost_vs_oracle: f64,
    /// The most upstream 429s for one quota unit (a key, or a declared group) and one of its
    /// limits: 1 is the 429 that teaches the limit.
    pub(crate) max_429s_per_unit_limit: u64,
}

/// The client side: who sends what, when.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Demand {
    /// Mean arrivals a second (Poisson, from the seed).
    pub(crate) rate_per_sec: f64,
    /// How long arrivals go on.
    pub(crate) duration_secs: f64,
    /// At most this many client requests in flight; an arrival beyond it queues client-side
    /// (its latency counts from its arrival).
    pub(crate) concurrency: usize,
    /// The prompt's length in words, drawn uniformly from this range.
    pub(crate) prompt_words: [u32; 2],
    /// `max_tokens` of every request.
    pub(crate) max_tokens: u32,
    /// Each request's deadline.
    pub(crate) deadline_secs: f64,
}

/// What the router is told and how its route is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSpec {
    /// Whether the providers' limits are declared to the ledger (otherwise it learns them
    /// from headers and 429s only).
    pub(crate) declare_limits: bool,
    /// Whether quota groups are declared to the ledger.
    #[serde(default = "yes")]
    pub(crate) declare_groups: bool,
    /// Whether prices are told to the router.
    #[serde(default = "yes")]
    pub(crate) tell_prices: bool,
    /// The route's strategy (`adaptive`, `least-loaded`, ...).
    pub(crate) strategy: String,
    /// `cost` (wait for a free key within the deadline) or `latency` (pay now).
    pub(crate) prefer: String,
    /// The bounded wait when every candidate is out (0: answer at once).
    #[serde(default)]
    pub(crate) max_wait_secs: f64,
    /// How the demand reaches the router, unless `--via` says otherwise.
    #[serde(default)]
    pub(crate) via: Via,
}

/// How the demand reaches the router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Via {
    /// The router in the simulator's process, called as a library.
    #[default]
    Router,
    /// The release `switchyard serve`, configured by a generated `switchyard.toml`, over HTTP.
    Gateway,
}

impl Via {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Gateway => "gateway",
        }
    }
}

fn yes() -> bool {
    true
}

/// One upstream provider (one mock server).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderSpec {
    pub(crate) name: String,
    #[serde(default = "default_model")]
    pub(crate) model: String,
    /// How many keys: `<name>-1` .. `<name>-<keys>`.
    pub(crate) keys: u32,
    /// Latency of a served call, uniform in this range.
    pub(crate) latency_ms: [u64; 2],
    #[serde(default)]
    pub(crate) price: PriceSpec,
    /// Limits of each quota unit: a key, or a group of keys sharing one quota.
    #[serde(default)]
    pub(crate) limits: Vec<LimitSpec>,
    /// Keys (by number, from 1) that share one quota; a key in no group is its own.
    #[serde(default)]
    pub(crate) groups: Vec<Vec<u32>>,
    #[serde(default)]
    pub(crate) faults: Vec<FaultSpec>,
    /// How its keys' answers carry retry hints.
    #[serde(default)]
    pub(crate) hints: Hints,
}

/// Retry hints as a provider gives them (`providers.md`), each rendered by the mock in that
/// provider's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Hints {
    /// OpenAI: `retry-after-ms`, `retry-after`, `x-ratelimit-*` over the current window, the
    /// delay in the 429's message.
    #[default]
    Openai,
    /// Groq: `retry-after` in whole seconds on a 429, the delay in the message; its
    /// `x-ratelimit-*-requests` count only the day, so a minute limit shows in no header.
    Groq,
    /// Gemini's OpenAI-compatible endpoint: no header at all; the 429 is a list-shaped Gemini
    /// error, its delay in the message (`Please retry in 37.4s.`) and in `RetryInfo`.
    GeminiOpenai,
    /// No hint anywhere: OpenRouter's `Rate limit exceeded: free-models-per-min.` without the
    /// optional `retry-after` and without rate-limit headers.
    None,
}

fn default_model() -> String {
    "model".to_owned()
}

/// A price; all zero is free.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceSpec {
    #[serde(default)]
    pub(crate) per_request: f64,
    #[serde(default)]
    pub(crate) input_per_mtok: f64,
    #[serde(default)]
    pub(crate) output_per_mtok: f64,
}

impl PriceSpec {
    pub(crate) fn is_free(&self) -> bool {
        self.per_request == 0.0 && self.input_per_mtok == 0.0 && self.output_per_mtok == 0.0
    }

    pub(crate) fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.per_request
            + self.input_per_mtok * prompt_tokens as f64 / 1e6
            + self.output_per_mtok * completion_tokens as f64 / 1e6
    }
}

/// One limit of a quota unit.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitSpec {
    #[serde(default)]
    pub(crate) unit: LimitUnit,
    pub(crate) amount: u64,
    pub(crate) per_secs: f64,
    #[serde(default)]
    pub(crate) kind: WindowKind,
    /// For a fixed window: where its boundaries fall after the start.
    #[serde(default)]
    pub(crate) offset_secs: f64,
    /// Named a daily limit in the upstream's refusals.
    #[serde(default)]
    pub(crate) day: bool,
}

impl LimitSpec {
    pub(crate) fn length(&self) -> Duration {
        Duration::from_secs_f64(self.per_secs)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LimitUnit {
    #[default]
    Requests,
    Tokens,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WindowKind {
    #[default]
    Sliding,
    Fixed,
}

/// Something that goes wrong at a scheduled time.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum FaultSpec {
    /// Key number `key` is revoked `at_secs` into the run.
    Revoke { key: u32, at_secs: f64 },
    /// Every call is `extra_ms` slower between the two times.
    Slow { from_secs: f64, until_secs: f64, extra_ms: u64 },
    /// Calls answer 500 with this probability between the two times.
    ServerErrors { from_secs: f64, until_secs: f64, probability: f64 },
}

impl Scenario {
    /// Reads and checks `path`.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut scenario: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        scenario.name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .context("a scenario file name is UTF-8")?
            .to_owned();
        scenario.check().with_context(|| format!("checking {}", path.display()))?;
        Ok(scenario)
    }

    fn check(&self) -> Result<()> {
        let demand = &self.demand;
        if !(demand.rate_per_sec > 0.0 && demand.duration_secs > 0.0) {
            bail!("demand needs a positive rate and duration");
        }
        if demand.concurrency == 0 || demand.prompt_words[0] > demand.prompt_words[1] {
            bail!("demand needs a concurrency and an ordered prompt_words range");
        }
        if self.providers.is_empty() {
            bail!("no provider");
        }
        if !matches!(self.router.prefer.as_str(), "cost" | "latency") {
            bail!("router.prefer is \"cost\" or \"latency\", not {:?}", self.router.prefer);
        }
        for provider in &self.providers {
            if provider.keys == 0 || provider.latency_ms[0] > provider.latency_ms[1] {
                bail!("provider {} needs keys and an ordered latency range", provider.name);
            }
            for limit in &provider.limits {
                if limit.amount == 0 || limit.per_secs <= 0.0 {
                    bail!("provider {}: a limit needs an amount and a window", provider.name);
                }
            }
            let mut seen = Vec::new();
            for key in provider.groups.iter().flatten() {
                if *key == 0 || *key > provider.keys || seen.contains(key) {
                    bail!("provider {}: group key {key} is unknown or twice", provider.name);
                }
                seen.push(*key);
            }
            for fault in &provider.faults {
                if let FaultSpec::Revoke { key, .. } = fault
                    && (*key == 0 || *key > provider.keys)
                {
                    bail!("provider {}: revoked key {key} is unknown", provider.name);
                }
            }
        }
        Ok(())
    }
}

impl Scenario {
    /// The same scenario with every scheduled time (fixed window boundaries, faults,
    /// revocations) moved `lead_secs` earlier: where they fall for demand that started that
    /// long after the mocks.
    pub(crate) fn shifted(&self, lead_secs: f64) -> Self {
        let mut shifted = self.clone();
        for provider in &mut shifted.providers {
            for limit in &mut provider.limits {
                limit.offset_secs -= lead_secs;
            }
            for fault in &mut provider.faults {
                match fault {
                    FaultSpec::Revoke { at_secs, .. } => *at_secs -= lead_secs,
                    FaultSpec::Slow { from_secs, until_secs, .. }
                    | FaultSpec::ServerErrors { from_secs, until_secs, .. } => {
                        *from_secs -= lead_secs;
                        *until_secs -= lead_secs;
                    }
                }
            }
        }
        shifted
    }
}

impl ProviderSpec {
    /// The id of key number `n` (from 1).
    pub(crate) fn key_id(&self, n: u32) -> String {
        format!("{}-{n}", self.name)
    }

    /// The quota units: each group, then each key in no group, as key numbers.
    pub(crate) fn units(&self) -> Vec<Vec<u32>> {
        let mut units: Vec<Vec<u32>> = self.groups.clone();
        for n in 1..=self.keys {
            if !self.groups.iter().flatten().any(|&key| key == n) {
                units.push(vec![n]);
            }
        }
        units
    }

    /// Whether key `n` shares a quota group with other keys.
    pub(crate) fn grouped(&self, n: u32) -> bool {
        self.groups.iter().flatten().any(|&key| key == n)
    }

    /// When key `n` is revoked, if it is.
    pub(crate) fn revoked_at(&self, n: u32) -> Option<f64> {
        self.faults.iter().find_map(|fault| match *fault {
            FaultSpec::Revoke { key, at_secs } if key == n => Some(at_secs),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_loads_and_the_gateway_ones_can_be_configured() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim");
        let mut n_gateway = 0;
        for entry in std::fs::read_dir(&dir).expect("sim/") {
            let path = entry.expect("an entry").path();
            if path.extension().is_none_or(|ext| ext != "toml") {
                continue;
            }
            let scenario = Scenario::load(&path).expect("a valid scenario");
            if scenario.router.via == Via::Gateway {
                n_gateway += 1;
                let urls = vec![String::new(); scenario.providers.len()];
                for declare_limits in [true, false] {
                    let mut scenario = scenario.clone();
                    scenario.router.declare_limits = declare_limits;
                    let config = crate::sim::gateway::config(&scenario, &urls);
                    assert!(config.is_ok(), "{}: {config:?}", path.display());
                }
            }
        }
        assert!(n_gateway >= 3, "the gateway scenarios are shipped");
    }

    #[test]
    fn a_shift_moves_fixed_boundaries_faults_and_revocations_earlier() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/faults-revoked-and-degrading.toml"),
        )
        .expect("a shipped scenario");
        let scenario: Scenario = toml::from_str(&text).expect("parses");
        let shifted = scenario.shifted(0.5);
        assert_eq!(shifted.providers[0].revoked_at(2), Some(7.5));
        let FaultSpec::Slow { from_secs, until_secs, .. } = shifted.providers[1].faults[0] else {
            panic!("the gemini provider's first fault is a slow span");
        };
        assert_eq!((from_secs, until_secs), (9.5, 15.5));
        assert_eq!(shifted.providers[0].limits[0].offset_secs, -0.5);
    }
}
