//! What the cache holds: entries, the shelf of them that reloads share, and the store
//! one policy sees. Only finished answers are put on the shelf.

use std::hash::RandomState;
use std::sync::Arc;

use tokio::time::Instant;

use super::Key;
use crate::canonical::{complete, ChatResponse};
use crate::config::{CachePolicy, Target};

/// A cached answer and where it came from.
#[derive(Debug)]
pub struct Entry {
    pub answer: ChatResponse,
    /// The provider's name and the target's model, for the x-understudy headers.
    pub provider: String,
    pub model: String,
    pub(super) stored: Instant,
}

/// The entries and the hash keys that address them; shared by every [`Store`] built
/// with the same capacity and `stale_ttl`.
#[derive(Clone)]
pub(super) struct Shelf {
    pub(super) entries: moka::sync::Cache<Key, Arc<Entry>>,
    pub(super) hash: (RandomState, RandomState),
}

impl Shelf {
    pub(super) fn new(policy: &CachePolicy) -> Shelf {
        Shelf {
            entries: moka::sync::Cache::builder()
                .max_capacity(policy.max_entries)
                .time_to_live(policy.stale_ttl)
                .build(),
            hash: (RandomState::new(), RandomState::new()),
        }
    }
}

/// The cache as one policy sees it.
pub struct Store {
    pub(super) policy: CachePolicy,
    pub(super) shelf: Shelf,
}

impl Store {
    /// The entry stored, if the answer was complete enough to keep.
    pub(super) fn insert(
        &self,
        key: Key,
        answer: ChatResponse,
        target: &Target,
    ) -> Option<Arc<Entry>> {
        if !complete(&answer) {
            return None;
        }
        let entry = Arc::new(Entry {
            answer,
            provider: target.provider.name.clone(),
            model: target.model.clone(),
            stored: Instant::now(),
        });
        self.shelf.entries.insert(key, entry.clone());
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::tests::{answer, base, policy, req, target};
    use crate::cache::AnswerCache;
    use crate::config::CacheMode;

    #[test]
    fn unfinished_answers_are_not_stored() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let mut a = answer("cut");
        a.choices[0].finish_reason = None;
        cache.lookup_now("default", &r).store(&a, &target());
        assert!(cache.lookup_now("default", &r).fresh().is_none());
    }
}
