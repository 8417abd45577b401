//! The Responses store: every response the proxy returned with `store` on, kept under
//! its id for `[responses] ttl`, so `previous_response_id` works whichever provider
//! answers next. The memory backend bounds the total size; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::time::Instant;

use crate::config::ResponsesPolicy;
use crate::frontdoor::BoxFuture;

/// One stored response.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    pub id: String,
    /// The Response object as it was returned (what `GET /v1/responses/{id}` shows).
    pub response: Value,
    /// The whole conversation's input items up to this response, earlier responses'
    /// inputs and outputs included (instructions are not: they are sent each turn).
    pub input: Vec<Value>,
    /// This response's output items.
    pub output: Vec<Value>,
    /// The provider that produced it: reasoning items go back only to it.
    pub provider: String,
}

impl Stored {
    /// Bytes of memory held, for the memory bound: the JSON trees as they sit in
    /// memory (about four times their text; measured by `cargo bench --bench
    /// responses_store`), not their serialized length.
    fn size(&self) -> usize {
        let items: usize = self.input.iter().chain(&self.output).map(heap_size).sum();
        std::mem::size_of::<Stored>()
            + heap_size(&self.response)
            + items
            + self.id.len()
            + self.provider.len()
    }
}

/// What a `serde_json::Value` occupies: its node, plus what hangs off it. Objects are
/// `BTreeMap`s, whose nodes hold room for 11 entries however few are used — most of a
/// small object's cost.
fn heap_size(v: &Value) -> usize {
    NODE + beyond_node(v)
}

const NODE: usize = std::mem::size_of::<Value>();
const BTREE_NODE: usize = 11 * (std::mem::size_of::<String>() + NODE) + 48;

fn beyond_node(v: &Value) -> usize {
    match v {
        Value::String(s) => s.capacity(),
        Value::Array(a) => a.capacity() * NODE + a.iter().map(beyond_node).sum::<usize>(),
        Value::Object(o) => {
            o.len().div_ceil(11).max(1) * BTREE_NODE
                + o.iter()
                    .map(|(k, v)| k.capacity() + beyond_node(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

/// Where stored responses live. Async: a shared engine answers over the network.
pub trait ResponseStore: Send + Sync {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<Stored>>, StoreError>>;
    /// The future owns what it needs (`'static`), so a caller may finish it in the
    /// background; a store that can keep the entry at once does so before returning.
    fn put(
        &self,
        stored: Stored,
        policy: ResponsesPolicy,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
    /// An input or output item of a stored response, by the item's id.
    fn get_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;
    /// `true` when there was one to delete.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

#[derive(Debug, thiserror::Error)]
#[error("response store unavailable: {0}")]
pub struct StoreError(pub String);

struct Entry {
    stored: Arc<Stored>,
    expires: Instant,
    size: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order, for evicting the oldest first.
    order: VecDeque<String>,
    bytes: usize,
    /// Item id → the response holding it (stale when that response is gone).
    items: HashMap<String, String>,
}

/// In-process memory: the default backend.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// The bytes its entries are counted as (what `max_bytes` bounds).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn remove(&mut self, id: &str) -> bool {
        match self.entries.remove(id) {
            Some(e) => {
                self.bytes -= e.size;
                for item in e.stored.input.iter().chain(&e.stored.output) {
                    if let Some(item_id) = item["id"].as_str() {
                        if self.items.get(item_id).is_some_and(|r| r == id) {
                            self.items.remove(item_id);
                        }
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Drops the oldest entries (and any expired or deleted ones at the front)
    /// until `bytes + incoming` fits.
    fn make_room(&mut self, incoming: usize, max: usize, now: Instant) {
        while let Some(id) = self.order.front().cloned() {
            let expired = self.entries.get(&id).is_none_or(|e| e.expires <= now);
            if !expired && self.bytes + incoming <= max {
                break;
            }
            self.order.pop_front();
            self.remove(&id);
        }
    }
}

impl ResponseStore for MemoryStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<Stored>>, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let now = Instant::now();
            match inner.entries.get(id) {
                Some(e) if e.expires > now => Ok(Some(e.stored.clone())),
                Some(_) => {
                    inner.remove(id);
                    Ok(None)
                }
                None => Ok(None),
            }
        })
    }

    fn put(
        &self,
        stored: Stored,
        policy: ResponsesPolicy,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let size = stored.size();
        let max = usize::try_from(policy.max_bytes).unwrap_or(usize::MAX);
        if size > max {
            // Larger than the whole store: keeping it would evict everything.
            tracing::warn!(id = %stored.id, size, max, "response larger than responses.max_bytes; not stored");
            return Box::pin(async { Ok(()) });
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(&stored.id);
        inner.make_room(size, max, now);
        inner.bytes += size;
        inner.order.push_back(stored.id.clone());
        for item in stored.input.iter().chain(&stored.output) {
            if let Some(item_id) = item["id"].as_str() {
                inner.items.insert(item_id.to_string(), stored.id.clone());
            }
        }
        inner.entries.insert(
            stored.id.clone(),
            Entry {
                stored: Arc::new(stored),
                expires: now + policy.ttl,
                size,
            },
        );
        Box::pin(async { Ok(()) })
    }

    fn get_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let Some(response) = inner.items.get(id).cloned() else {
                return Ok(None);
            };
            let now = Instant::now();
            let found = inner
                .entries
                .get(&response)
                .filter(|e| e.expires > now)
                .and_then(|e| {
                    e.stored
                        .input
                        .iter()
                        .chain(&e.stored.output)
                        .find(|i| i["id"] == id)
                        .cloned()
                });
            if found.is_none() {
                inner.items.remove(id);
            }
            Ok(found)
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.lock().remove(id)) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn stored(id: &str, text: &str) -> Stored {
        Stored {
            id: id.into(),
            response: json!({"id": id}),
            input: vec![json!({"type": "message", "role": "user", "content": text})],
            output: Vec::new(),
            provider: "p".into(),
        }
    }

    fn policy(ttl_secs: u64, max_bytes: u64) -> ResponsesPolicy {
        ResponsesPolicy {
            ttl: Duration::from_secs(ttl_secs),
            max_bytes,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_live_for_the_ttl_and_can_be_deleted() {
        let s = MemoryStore::default();
        s.put(stored("resp_a", "hi"), policy(60, 1 << 20))
            .await
            .unwrap();
        assert!(s.get("resp_a").await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.get("resp_a").await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(s.get("resp_a").await.unwrap().is_none(), "expired");
        s.put(stored("resp_b", "hi"), policy(60, 1 << 20))
            .await
            .unwrap();
        assert!(s.delete("resp_b").await.unwrap());
        assert!(!s.delete("resp_b").await.unwrap());
        assert!(s.get("resp_b").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn items_are_found_by_id_until_their_response_goes() {
        let s = MemoryStore::default();
        let mut a = stored("resp_a", "hi");
        a.input[0]["id"] = "msg_in".into();
        a.output
            .push(json!({"id": "msg_out", "type": "message", "role": "assistant"}));
        s.put(a, policy(60, 1 << 20)).await.unwrap();
        assert_eq!(
            s.get_item("msg_out").await.unwrap().unwrap()["role"],
            "assistant"
        );
        assert!(s.get_item("msg_in").await.unwrap().is_some());
        assert!(s.get_item("msg_nope").await.unwrap().is_none());
        s.delete("resp_a").await.unwrap();
        assert!(s.get_item("msg_out").await.unwrap().is_none());
        assert!(
            s.lock().items.is_empty(),
            "the index shrinks with the store"
        );
    }

    #[tokio::test]
    async fn the_oldest_go_first_when_the_bytes_run_out() {
        let s = MemoryStore::default();
        let one = stored("resp_0", &"x".repeat(1000)).size() as u64;
        let p = policy(60, one * 3 + one / 2);
        for i in 0..5 {
            s.put(stored(&format!("resp_{i}"), &"x".repeat(1000)), p)
                .await
                .unwrap();
        }
        let mut kept = Vec::new();
        for i in 0..5 {
            if s.get(&format!("resp_{i}")).await.unwrap().is_some() {
                kept.push(i);
            }
        }
        assert_eq!(kept, [2, 3, 4]);
        assert!(s.lock().bytes as u64 <= p.max_bytes);
        // larger than the whole store: refused, nothing evicted
        s.put(stored("resp_big", &"x".repeat(10_000)), p)
            .await
            .unwrap();
        assert!(s.get("resp_big").await.unwrap().is_none());
        assert!(s.get("resp_4").await.unwrap().is_some());
    }
}
