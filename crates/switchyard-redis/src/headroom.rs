//! What this process last learnt of each quota bucket's headroom, so the shared ledger can
//! answer [`QuotaLedger::headroom`](switchyard_quota::QuotaLedger::headroom) without a round
//! trip: the admission script returns what each declared limit has left after the admission
//! it made, and a provider's headers, when they state a limit, say what is left of it.
//!
//! A figure stands until the window it was counted in has passed (by then everything it
//! counted has left that window) or, for a header or a refusal, until the reset it named.
//! Between readings a bucket only gains room from its windows sliding and loses it to other
//! processes' admissions, so the figure is this process's latest view, not the shared truth.

use std::collections::HashMap;

use parking_lot::Mutex;
use switchyard_core::{Candidate, LimitReading, LimitScope, LimitUnit};

/// At most this many buckets (and four times as many candidates) are remembered. Buckets
/// and candidates come from the configuration, not from clients; the bound only keeps a
/// misconfiguration from growing the cache without end. Past it, new ones answer `None`.
const MAX_BUCKETS: usize = 4096;

/// One figure: the fraction left, and until when (Unix ms on the ledger's clock) it stands.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Figure {
    left: f64,
    until_ms: i64,
}

/// The figures of one bucket.
#[derive(Debug, Default)]
struct Bucket {
    /// One per declared limit, in configuration order (`None` until first counted).
    declared: Vec<Option<Figure>>,
    /// One per limit a header stated, by unit and scope.
    stated: Vec<(LimitUnit, LimitScope, Figure)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each candidate's bucket name.
    lanes: HashMap<Candidate, String>,
    buckets: HashMap<String, Bucket>,
}

/// The cache. `parking_lot::Mutex`: nothing awaits while it is held, and each use is a
/// lookup or two.
#[derive(Debug, Default)]
pub(crate) struct HeadroomCache {
    inner: Mutex<Inner>,
}

/// A fraction in millionths from a script, as a fraction in 0.0..=1.0.
pub(crate) fn from_ppm(ppm: i64) -> f64 {
    ppm.clamp(0, 1_000_000) as f64 / 1_000_000.0
}

impl HeadroomCache {
    /// Runs `update` on `candidate`'s bucket `base` (which has `n_limits` declared limits),
    /// unless the cache is full.
    fn with_bucket(
        &self,
        candidate: &Candidate,
        base: &str,
        n_limits: usize,
        update: impl FnOnce(&mut Bucket),
    ) {
        let mut inner = self.inner.lock();
        if !inner.buckets.contains_key(base) {
            if inner.buckets.len() >= MAX_BUCKETS {
                return;
            }
            inner.buckets.insert(base.to_owned(), Bucket::default());
        }
        if !inner.lanes.contains_key(candidate) {
            if inner.lanes.len() >= 4 * MAX_BUCKETS {
                return;
            }
            inner.lanes.insert(candidate.clone(), base.to_owned());
        }
        let bucket = inner.buckets.get_mut(base).expect("invariant: inserted above");
        bucket.declared.resize(n_limits, None);
        update(bucket);
    }

    /// After an admission: `left[m]` of declared limit `m` is left, standing until
    /// `until_ms[m]`.
    pub(crate) fn admitted(&self, candidate: &Candidate, base: &str, figures: &[(f64, i64)]) {
        self.with_bucket(candidate, base, figures.len(), |bucket| {
            for (slot, &(left, until_ms)) in bucket.declared.iter_mut().zip(figures) {
                *slot = Some(Figure { left, until_ms });
            }
        });
    }

    /// After a refusal by declared limit `idx` (of `n_limits`): nothing is left of it until
    /// `until_ms`.
    pub(crate) fn refused(
        &self,
        candidate: &Candidate,
        base: &str,
        n_limits: usize,
        idx: usize,
        until_ms: i64,
    ) {
        self.with_bucket(candidate, base, n_limits, |bucket| {
            if let Some(slot) = bucket.declared.get_mut(idx) {
                *slot = Some(Figure { left: 0.0, until_ms });
            }
        });
    }

    /// A header's `reading`, standing until `until_ms` (its reset, clamped by the caller). A
    /// reading that states no limit, or no remaining count, says nothing of headroom.
    pub(crate) fn stated(
        &self,
        candidate: &Candidate,
        base: &str,
        n_limits: usize,
        reading: &LimitReading,
        until_ms: i64,
    ) {
        let (Some(remaining), Some(limit)) = (reading.remaining, reading.limit) else { return };
        if limit == 0 {
            return;
        }
        let (unit, scope) = (reading.unit, reading.scope);
        let figure = Figure { left: remaining.min(limit) as f64 / limit as f64, until_ms };
        self.with_bucket(candidate, base, n_limits, |bucket| {
            match bucket.stated.iter_mut().find(|(u, s, _)| *u == unit && *s == scope) {
                Some(entry) => entry.2 = figure,
                None => bucket.stated.push((unit, scope, figure)),
            }
        });
    }

    /// The least fraction left among `candidate`'s figures standing at `now_ms`; `None` when
    /// none stands.
    pub(crate) fn headroom(&self, candidate: &Candidate, now_ms: i64) -> Option<f64> {
        let inner = self.inner.lock();
        let bucket = inner.buckets.get(inner.lanes.get(candidate)?)?;
        bucket
            .declared
            .iter()
            .flatten()
            .chain(bucket.stated.iter().map(|(_, _, figure)| figure))
            .filter(|figure| now_ms < figure.until_ms)
            .map(|figure| figure.left)
            .reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Candidate {
        Candidate::new("p", name, "m")
    }

    fn reading(unit: LimitUnit, remaining: u64, limit: Option<u64>) -> LimitReading {
        LimitReading {
            unit,
            scope: LimitScope::Minute,
            remaining: Some(remaining),
            limit,
            reset: None,
        }
    }

    #[test]
    fn the_least_standing_figure_wins() {
        let cache = HeadroomCache::default();
        assert_eq!(cache.headroom(&key("a"), 0), None);
        cache.admitted(&key("a"), "p:a:m", &[(0.9, 100), (0.5, 50)]);
        assert_eq!(cache.headroom(&key("a"), 10), Some(0.5));
        assert_eq!(cache.headroom(&key("a"), 60), Some(0.9), "the 50 ms figure has passed");
        assert_eq!(cache.headroom(&key("a"), 100), None, "every figure has passed");
        cache.stated(&key("a"), "p:a:m", 2, &reading(LimitUnit::Requests, 3, Some(4)), 200);
        assert_eq!(cache.headroom(&key("a"), 150), Some(0.75));
        cache.refused(&key("a"), "p:a:m", 2, 1, 180);
        assert_eq!(cache.headroom(&key("a"), 150), Some(0.0));
    }

    #[test]
    fn keys_of_one_bucket_read_the_same_figures() {
        let cache = HeadroomCache::default();
        cache.admitted(&key("a"), "p:g:m", &[(0.25, 100)]);
        cache.admitted(&key("b"), "p:g:m", &[(0.5, 100)]);
        assert_eq!(cache.headroom(&key("a"), 0), Some(0.5), "b's admission is the latest");
    }

    #[test]
    fn a_full_cache_takes_no_new_bucket() {
        let cache = HeadroomCache::default();
        for idx in 0..MAX_BUCKETS {
            cache.admitted(&key(&idx.to_string()), &idx.to_string(), &[(0.5, 100)]);
        }
        cache.admitted(&key("late"), "late", &[(0.5, 100)]);
        assert_eq!(cache.headroom(&key("late"), 0), None);
        assert_eq!(cache.headroom(&key("0"), 0), Some(0.5));
    }

    #[test]
    fn a_header_stating_no_limit_is_no_figure() {
        let cache = HeadroomCache::default();
        cache.stated(&key("a"), "p:a:m", 0, &reading(LimitUnit::Tokens, 5, Some(0)), 100);
        cache.stated(&key("a"), "p:a:m", 0, &reading(LimitUnit::Tokens, 5, None), 100);
        assert_eq!(cache.headroom(&key("a"), 0), None);
    }
}
