//! Recent request ids and what served them, for quality feedback: bounded, the oldest are
//! forgotten first.

use std::collections::VecDeque;

use dashmap::DashMap;
use parking_lot::Mutex;
use switchyard_core::Candidate;

/// The longest request id remembered for feedback: ids come from clients (`x-request-id`),
/// and the map holds `recent_requests` of them.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 200;

/// What served each of the last `capacity` requests.
pub(crate) struct RecentRequests {
    capacity: usize,
    map: DashMap<String, Candidate>,
    order: Mutex<VecDeque<String>>,
}

impl RecentRequests {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, map: DashMap::new(), order: Mutex::new(VecDeque::new()) }
    }

    pub(crate) fn insert(&self, request_id: &str, candidate: &Candidate) {
        if self.capacity == 0 || request_id.len() > MAX_REQUEST_ID_LEN {
            return;
        }
        self.map.insert(request_id.to_owned(), candidate.clone());
        // Nothing awaits while this lock is held; it is taken after the answer, off the
        // routing decision.
        let mut order = self.order.lock();
        order.push_back(request_id.to_owned());
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub(crate) fn get(&self, request_id: &str) -> Option<Candidate> {
        self.map.get(request_id).map(|entry| entry.clone())
    }
}
