//! What the cache holds: entries, the shelf of them that reloads share, and the store
//! one policy sees. Only finished answers are put on the shelf.

use std::hash::RandomState;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::Key;
use crate::canonical::{complete, replay, ChatResponse};
use crate::config::{CachePolicy, Target};
use crate::failover::stream::encode;
use crate::http::sse;

/// A cached answer and where it came from.
#[derive(Debug)]
pub struct Entry {
    pub answer: ChatResponse,
    /// The provider's name and the target's model, for the x-understudy headers.
    pub provider: String,
    pub model: String,
    pub(super) stored: Instant,
}

impl Entry {
    pub fn json(&self) -> Vec<u8> {
        // Serialising our own types cannot fail.
        serde_json::to_vec(&self.answer).unwrap_or_default()
    }

    /// The answer as a whole SSE body, `[DONE]` included.
    pub fn sse(&self, include_usage: bool) -> Bytes {
        let mut out = BytesMut::new();
        for chunk in replay(&self.answer, include_usage) {
            encode(&chunk, &mut out);
        }
        out.extend_from_slice(sse::DONE);
        out.freeze()
    }
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
    pub(super) fn insert(&self, key: Key, answer: ChatResponse, target: &Target) {
        if !complete(&answer) {
            return;
        }
        self.shelf.entries.insert(
            key,
            Arc::new(Entry {
                answer,
                provider: target.provider.name.clone(),
                model: target.model.clone(),
                stored: Instant::now(),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::{answer, base, policy, req, target};
    use crate::cache::AnswerCache;
    use crate::canonical::testing::streamed_tool_answer;
    use crate::canonical::Assembler;
    use crate::config::CacheMode;

    #[test]
    fn an_entry_streams_as_one_sse_body() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = a.finish().unwrap();
        let body = Entry {
            answer,
            provider: "p".into(),
            model: "m".into(),
            stored: Instant::now(),
        }
        .sse(false);
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.starts_with("data: {") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
    }

    #[test]
    fn unfinished_answers_are_not_stored() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let mut a = answer("cut");
        a.choices[0].finish_reason = None;
        cache.lookup("default", &r).store(&a, &target());
        assert!(cache.lookup("default", &r).fresh().is_none());
    }
}
