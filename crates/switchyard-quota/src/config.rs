//! The ledger's configuration, plain data: which limits apply to which provider and model,
//! which keys share a quota group, when a provider's day ends and how long a 429 without a
//! stated delay cools a group. Presets for the free tiers are in [`crate::presets`].

use std::time::Duration;

use chrono_tz::Tz;
use switchyard_core::{Candidate, KeyId, ModelId, ProviderId};

use crate::limit::Limit;

/// Everything the ledger needs to know before the first request.
#[derive(Clone, Debug)]
pub struct QuotaConfig {
    /// Limits and day boundaries per provider.
    pub providers: Vec<ProviderQuota>,
    /// Keys declared to share one quota (a Gemini project, a Groq organization). A key not
    /// declared here is its own group.
    pub groups: Vec<QuotaGroup>,
    /// Cooldowns for successive 429s that state no retry delay; the last one repeats.
    pub backoff: Vec<Duration>,
    /// How long after admission a provider may receive (and count) a call: a sliding window
    /// counts an admission made this close to the end of one of its slots in the next slot,
    /// so the capacity never returns here before it returns at the provider (default 20 ms).
    pub transit: Duration,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            groups: Vec::new(),
            backoff: default_backoff(),
            transit: DEFAULT_TRANSIT,
        }
    }
}

/// The default [`QuotaConfig::transit`]: a loopback or same-region call reaches its provider
/// well within it.
pub const DEFAULT_TRANSIT: Duration = Duration::from_millis(20);

/// The default cooldowns after successive 429s without a retry delay: 90 s, 120 s, 180 s.
pub fn default_backoff() -> Vec<Duration> {
    vec![Duration::from_secs(90), Duration::from_secs(120), Duration::from_secs(180)]
}

/// One provider's limits.
#[derive(Clone, Debug)]
pub struct ProviderQuota {
    /// The provider, by its configured name.
    pub provider: ProviderId,
    /// When this provider's "day" ends, for a 429 that says the daily quota is spent.
    pub day: DayBoundary,
    /// Limits per model or set of models; the first that matches a model applies.
    pub models: Vec<ModelQuota>,
}

/// When a provider's daily quota comes back after it is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayBoundary {
    /// At the next midnight in this zone (Gemini: America/Los_Angeles; OpenRouter: UTC).
    Midnight(Tz),
    /// The daily count is a rolling bucket (Groq, OpenAI): the provider's retry delay says
    /// when; without one, the backoff schedule applies.
    Rolling,
}

/// Limits for the models a [`ModelMatch`] selects.
#[derive(Clone, Debug)]
pub struct ModelQuota {
    /// Which models.
    pub models: ModelMatch,
    /// Whether all matching models draw on one shared quota (OpenRouter's free models share
    /// one daily counter) instead of one quota per model (Groq, Gemini).
    pub shared: bool,
    /// The limits.
    pub limits: Vec<Limit>,
    /// At most this many attempts in flight at once.
    pub max_concurrent: Option<u32>,
}

impl ModelQuota {
    /// One model's own limits.
    pub fn model(model: impl Into<ModelId>, limits: Vec<Limit>) -> Self {
        Self {
            models: ModelMatch::Exact(model.into()),
            shared: false,
            limits,
            max_concurrent: None,
        }
    }

    /// The same limits for every model, each counted on its own.
    pub fn every_model(limits: Vec<Limit>) -> Self {
        Self { models: ModelMatch::Any, shared: false, limits, max_concurrent: None }
    }

    /// The name of the counter a model draws on: the model itself, or the shared pool.
    pub fn pool(&self, model: &ModelId) -> ModelId {
        if self.shared { ModelId::new(self.models.label()) } else { model.clone() }
    }
}

/// A set of models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelMatch {
    /// One model.
    Exact(ModelId),
    /// Models whose name ends so (`:free`).
    Suffix(String),
    /// Every model.
    Any,
}

impl ModelMatch {
    /// Whether `model` is in the set.
    pub fn matches(&self, model: &str) -> bool {
        match self {
            Self::Exact(exact) => exact.as_str() == model,
            Self::Suffix(suffix) => model.ends_with(suffix.as_str()),
            Self::Any => true,
        }
    }

    /// The set as text: `llama-3.1-8b-instant`, `*:free`, `*`.
    pub fn label(&self) -> String {
        match self {
            Self::Exact(model) => model.to_string(),
            Self::Suffix(suffix) => format!("*{suffix}"),
            Self::Any => "*".to_owned(),
        }
    }
}

/// Keys that share one quota.
#[derive(Clone, Debug)]
pub struct QuotaGroup {
    /// The group's name (a project or organization id).
    pub name: String,
    /// The provider the keys belong to.
    pub provider: ProviderId,
    /// The member keys.
    pub keys: Vec<KeyId>,
}

/// Where a candidate's counts live: the provider, the quota group and the pool (the model,
/// or a shared pool of models), with the rule that sets its limits.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// The quota group.
    pub group: String,
    /// The model or shared pool counted.
    pub pool: ModelId,
    /// The limits, if any rule matches.
    pub rule: Option<&'a ModelQuota>,
    /// The provider's day boundary.
    pub day: DayBoundary,
}

impl QuotaConfig {
    /// The quota group of `key` at `provider`: its declared group, or the key itself.
    pub fn group_of(&self, provider: &ProviderId, key: &KeyId) -> String {
        self.groups
            .iter()
            .find(|group| &group.provider == provider && group.keys.contains(key))
            .map_or_else(|| format!("key:{key}"), |group| format!("group:{}", group.name))
    }

    /// The keys sharing `key`'s quota group, itself included.
    pub fn group_members(&self, provider: &ProviderId, key: &KeyId) -> Vec<KeyId> {
        self.groups
            .iter()
            .find(|group| &group.provider == provider && group.keys.contains(key))
            .map_or_else(|| vec![key.clone()], |group| group.keys.clone())
    }

    /// The provider's configuration.
    pub fn provider(&self, provider: &ProviderId) -> Option<&ProviderQuota> {
        self.providers.iter().find(|quota| &quota.provider == provider)
    }

    /// Where `candidate` is counted.
    pub fn place(&self, candidate: &Candidate) -> Placement<'_> {
        let quota = self.provider(&candidate.provider);
        let rule = quota.and_then(|quota| {
            quota.models.iter().find(|rule| rule.models.matches(candidate.model.as_str()))
        });
        Placement {
            group: self.group_of(&candidate.provider, &candidate.key),
            pool: rule.map_or_else(|| candidate.model.clone(), |rule| rule.pool(&candidate.model)),
            rule,
            day: quota.map_or(DayBoundary::Midnight(chrono_tz::UTC), |quota| quota.day),
        }
    }

    /// The rule that set the limits of a stored pool, for restoring counts after a restart.
    pub fn rule_for_pool(&self, provider: &ProviderId, pool: &str) -> Option<&ModelQuota> {
        self.provider(provider)?.models.iter().find(|rule| {
            if rule.shared { rule.models.label() == pool } else { rule.models.matches(pool) }
        })
    }

    /// The cooldown for the `strike`-th successive 429 without a stated delay (0-based).
    pub fn backoff_for(&self, strike: u32) -> Duration {
        let idx = usize::try_from(strike).unwrap_or(usize::MAX);
        self.backoff
            .get(idx)
            .or_else(|| self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_escalates_then_repeats_the_last_step() {
        let config = QuotaConfig::default();
        let secs: Vec<u64> = (0..5).map(|strike| config.backoff_for(strike).as_secs()).collect();
        assert_eq!(secs, [90, 120, 180, 180, 180]);
    }

    #[test]
    fn undeclared_keys_are_their_own_group_and_declared_ones_share() {
        let config = QuotaConfig {
            groups: vec![QuotaGroup {
                name: "proj-1".into(),
                provider: "gemini".into(),
                keys: vec!["g1".into(), "g2".into()],
            }],
            ..QuotaConfig::default()
        };
        let gemini = ProviderId::new("gemini");
        assert_eq!(config.group_of(&gemini, &"g1".into()), config.group_of(&gemini, &"g2".into()));
        assert_ne!(config.group_of(&gemini, &"g1".into()), config.group_of(&gemini, &"g3".into()));
        assert_ne!(
            config.group_of(&"groq".into(), &"g1".into()),
            config.group_of(&gemini, &"g1".into()),
            "a group belongs to one provider"
        );
    }
}
