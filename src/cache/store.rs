//! What the cache holds: entries, the shelf of them that reloads share, and the store
//! one policy sees. Only finished answers are put on the shelf.

use std::hash::RandomState;
use std::sync::Arc;

use tokio::time::Instant;

use super::Key;
use crate::canonical::{complete, ChatResponse, EmbedResponse, RECORD_LIMIT};
use crate::config::{CachePolicy, Target};

/// A cached answer and where it came from.
#[derive(Debug)]
pub struct Entry<A = ChatResponse> {
    pub answer: A,
    /// The provider's name and the target's model, for the x-understudy headers.
    pub provider: String,
    pub model: String,
    pub(super) stored: Instant,
}

/// One shelf holds every kind of answer, so `max_entries` bounds them together; each
/// kind has its own key space (see `key`), so a lookup finds only its own kind.
#[derive(Debug, Clone)]
pub enum Shelved {
    Chat(Arc<Entry<ChatResponse>>),
    Embeddings(Arc<Entry<EmbedResponse>>),
}

/// An answer the cache can hold.
pub trait Cacheable: Sized {
    fn shelve(entry: Arc<Entry<Self>>) -> Shelved;
    fn unshelve(shelved: &Shelved) -> Option<&Arc<Entry<Self>>>;
    /// Worth repeating: finished, and not too large to hold.
    fn storable(&self) -> bool;
    /// Its form in the engine replicas share (`super::shared`); `None`: this kind of
    /// answer stays on the replica that got it.
    fn encode(_entry: &Entry<Self>) -> Option<Vec<u8>> {
        None
    }
    fn decode(_bytes: &[u8]) -> Option<Entry<Self>> {
        None
    }
}

impl Cacheable for ChatResponse {
    fn shelve(entry: Arc<Entry<Self>>) -> Shelved {
        Shelved::Chat(entry)
    }

    fn unshelve(shelved: &Shelved) -> Option<&Arc<Entry<Self>>> {
        match shelved {
            Shelved::Chat(e) => Some(e),
            Shelved::Embeddings(_) => None,
        }
    }

    fn storable(&self) -> bool {
        complete(self)
    }

    fn encode(entry: &Entry<Self>) -> Option<Vec<u8>> {
        super::shared::encode(entry)
    }

    fn decode(bytes: &[u8]) -> Option<Entry<Self>> {
        super::shared::decode(bytes)
    }
}

impl Cacheable for EmbedResponse {
    fn shelve(entry: Arc<Entry<Self>>) -> Shelved {
        Shelved::Embeddings(entry)
    }

    fn unshelve(shelved: &Shelved) -> Option<&Arc<Entry<Self>>> {
        match shelved {
            Shelved::Embeddings(e) => Some(e),
            Shelved::Chat(_) => None,
        }
    }

    fn storable(&self) -> bool {
        self.size() <= RECORD_LIMIT
    }
}

/// The entries and the hash keys that address them; shared by every [`Store`] built
/// with the same capacity and `stale_ttl`.
#[derive(Clone)]
pub(super) struct Shelf {
    pub(super) entries: moka::sync::Cache<Key, Shelved>,
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
    /// The entry stored, if the answer was worth keeping.
    pub(super) fn insert<A: Cacheable>(
        &self,
        key: Key,
        answer: A,
        target: &Target,
    ) -> Option<Arc<Entry<A>>> {
        if !answer.storable() {
            return None;
        }
        let entry = Arc::new(Entry {
            answer,
            provider: target.provider.name.clone(),
            model: target.model.clone(),
            stored: Instant::now(),
        });
        self.shelf.entries.insert(key, A::shelve(entry.clone()));
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
