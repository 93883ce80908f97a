//! Recent request ids and what served them, for quality feedback: bounded, the oldest are
//! forgotten first.
//!
//! Written once per served request, so it takes no lock shared by all requests: the ids sit
//! in a ring of `capacity` places claimed in turn through one atomic counter, each place
//! behind its own lock (two requests contend only when they land on the same place, one lap
//! apart), and the lookup map is sharded. The id is allocated once and shared by the ring and
//! the map.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;
use switchyard_core::Candidate;

/// The longest request id remembered for feedback: ids come from clients (`x-request-id`),
/// and the map holds `recent_requests` of them.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 200;

/// The most requests remembered, whatever the configuration says: the ring's places are
/// reserved when the router is built (a few dozen bytes each).
pub(crate) const MAX_RECENT: usize = 1 << 20;

/// One place of the ring: the id written there and the insert that wrote it.
type Place = Mutex<Option<(Arc<str>, u64)>>;

/// What served each of the last `capacity` requests.
pub(crate) struct RecentRequests {
    /// Ids by place, oldest overwritten first. Empty when nothing is remembered.
    ring: Box<[Place]>,
    /// Inserts so far: the next place is `next % capacity`.
    next: AtomicU64,
    /// Id to what served it, with the insert that wrote it (an id a client reuses is
    /// forgotten only when its latest insert is).
    map: DashMap<Arc<str>, (Candidate, u64)>,
}

impl RecentRequests {
    pub(crate) fn new(capacity: usize) -> Self {
        let ring = (0..capacity.min(MAX_RECENT)).map(|_| Mutex::new(None)).collect();
        Self { ring, next: AtomicU64::new(0), map: DashMap::new() }
    }

    pub(crate) fn insert(&self, request_id: &str, candidate: &Candidate) {
        let capacity = self.ring.len() as u64;
        if capacity == 0 || request_id.len() > MAX_REQUEST_ID_LEN {
            return;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = Arc::from(request_id);
        // The place's lock is held across both map updates, so the id it evicts is removed
        // before another writer of this place can evict the one written now. Nothing awaits
        // while it is held.
        let mut place = self.ring[(seq % capacity) as usize].lock();
        if let Some((old, old_seq)) = place.take() {
            self.map.remove_if(&old, |_, (_, written)| *written == old_seq);
        }
        self.map.insert(Arc::clone(&id), (candidate.clone(), seq));
        *place = Some((id, seq));
    }

    pub(crate) fn get(&self, request_id: &str) -> Option<Candidate> {
        self.map.get(request_id).map(|entry| entry.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: &str) -> Candidate {
        Candidate { provider: "p".into(), key: key.into(), model: "m".into() }
    }

    #[test]
    fn the_oldest_are_forgotten_first() {
        let recent = RecentRequests::new(2);
        for (id, key) in [("a", "k1"), ("b", "k2"), ("c", "k3")] {
            recent.insert(id, &candidate(key));
        }
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("b"), Some(candidate("k2")));
        assert_eq!(recent.get("c"), Some(candidate("k3")));
        assert_eq!(recent.map.len(), 2);
    }

    #[test]
    fn a_reused_id_is_kept_until_its_latest_insert_is_overwritten() {
        let recent = RecentRequests::new(2);
        recent.insert("a", &candidate("k1"));
        recent.insert("a", &candidate("k2"));
        // Overwrites the first "a": the second, newer one stays.
        recent.insert("b", &candidate("k3"));
        assert_eq!(recent.get("a"), Some(candidate("k2")));
        recent.insert("c", &candidate("k4"));
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.map.len(), 2);
    }

    #[test]
    fn nothing_is_kept_without_capacity_or_for_an_overlong_id() {
        let none = RecentRequests::new(0);
        none.insert("a", &candidate("k1"));
        assert_eq!(none.get("a"), None);
        let recent = RecentRequests::new(4);
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        recent.insert(&long, &candidate("k1"));
        assert_eq!(recent.get(&long), None);
    }

    #[test]
    fn concurrent_writers_never_keep_more_than_the_capacity() {
        let recent = Arc::new(RecentRequests::new(64));
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let recent = Arc::clone(&recent);
                std::thread::spawn(move || {
                    for n in 0..1000 {
                        recent.insert(&format!("w{writer}-{n}"), &candidate("k"));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer");
        }
        assert_eq!(recent.map.len(), 64);
        // Every place holds an id the map still knows: no eviction removed a newer entry.
        for place in recent.ring.iter() {
            let (id, _) = place.lock().clone().expect("every place written");
            assert!(recent.get(&id).is_some(), "{id} is remembered");
        }
    }
}
