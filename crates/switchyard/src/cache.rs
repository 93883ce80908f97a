//! The response cache: an answer to the same normalized request on the same route, served
//! again without an upstream call and without touching any quota.
//!
//! Opt-in (per route, per request) and bounded twice: by size (bytes of request and answer,
//! evicted by moka's TinyLFU policy) and by age on the router's [`Clock`], so a test on a
//! `ManualClock` sees entries expire when it advances. The key is a hash of the route and the
//! request with its tags removed (tags steer routing, not the answer); the whole normalized
//! request is kept with the entry and compared on a hit, so a hash collision is a miss, never
//! someone else's answer.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::{Candidate, ChatRequest, ChatResponse, Fingerprint};

/// How big and how old cached answers may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most bytes of requests and answers kept (default 64 MiB).
    pub max_bytes: u64,
    /// How long an answer stays fresh, on the router's clock (default 10 minutes).
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_bytes: 64 << 20, ttl: Duration::from_secs(600) }
    }
}

/// One cached answer.
pub(crate) struct Entry {
    /// The normalized request with its route, compared on a hit.
    normalized: String,
    pub(crate) response: ChatResponse,
    pub(crate) served_by: Candidate,
    pub(crate) fingerprint: Fingerprint,
    stored_at: Instant,
}

/// The key of a request on a route: its hash, and the text the hash was taken of.
pub(crate) struct CacheKey {
    hash: u64,
    normalized: String,
}

pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<u64, Arc<Entry>>,
    ttl: Duration,
}

impl ResponseCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_, entry: &Arc<Entry>| {
                let bytes = entry.normalized.len() + entry.response.text.len() + 256;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self { entries, ttl: config.ttl }
    }

    /// The key of `request` on `route`; `None` when the request cannot be serialized (it
    /// then simply is not cached).
    pub(crate) fn key(route: &str, request: &ChatRequest) -> Option<CacheKey> {
        let mut value = serde_json::to_value(request).ok()?;
        if let Some(fields) = value.as_object_mut() {
            fields.remove("tags");
        }
        let normalized = format!("{route}\n{value}");
        // A fixed-key hasher: the same request hashes the same in every process.
        let mut hasher =
            std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
        hasher.write(normalized.as_bytes());
        Some(CacheKey { hash: hasher.finish(), normalized })
    }

    /// A fresh answer to exactly this request, if one is kept.
    pub(crate) fn get(&self, key: &CacheKey, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(&key.hash)?;
        if now.saturating_duration_since(entry.stored_at) >= self.ttl {
            self.entries.invalidate(&key.hash);
            return None;
        }
        (entry.normalized == key.normalized).then_some(entry)
    }

    pub(crate) fn insert(
        &self,
        key: CacheKey,
        response: &ChatResponse,
        served_by: &Candidate,
        fingerprint: Fingerprint,
        now: Instant,
    ) {
        let entry = Entry {
            normalized: key.normalized,
            response: response.clone(),
            served_by: served_by.clone(),
            fingerprint,
            stored_at: now,
        };
        self.entries.insert(key.hash, Arc::new(entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_do_not_change_the_key_and_the_route_does() {
        let plain = ChatRequest::from_user("hi");
        let mut tagged = plain.clone();
        tagged.tags.push("team:search".into());
        let a = ResponseCache::key("r", &plain).expect("key");
        let b = ResponseCache::key("r", &tagged).expect("key");
        let c = ResponseCache::key("other", &plain).expect("key");
        assert_eq!((a.hash, &a.normalized), (b.hash, &b.normalized));
        assert_ne!(a.hash, c.hash);
        let longer = ResponseCache::key("r", &plain.clone().with_max_tokens(9)).expect("key");
        assert_ne!(a.hash, longer.hash);
    }
}
