//! Stored responses shared through the engine, so a conversation started on one
//! replica continues on any other. This replica's memory store stays underneath:
//! every response is kept there too, and it answers while the engine is out of reach
//! (DESIGN §9: a response only the engine holds is then 503 `state_unavailable`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::Value;

use super::{Engine, StateError};
use crate::config::ResponsesPolicy;
use crate::frontdoor::BoxFuture;
use crate::state::responses::{MemoryStore, ResponseStore, StoreError, Stored};

/// The engine this replica shares state through, while `[state] backend = "redis"`.
pub type EngineSlot = Arc<ArcSwapOption<Engine>>;

/// This replica's memory, and the engine when there is one. The engine is asked
/// first (another replica may have continued or deleted the conversation); this
/// replica's own copy answers when the engine does not have it — written while it was
/// out of reach, or lost to a flush or a restart — unless it was deleted (a tombstone
/// says so), and whenever the engine is out of reach.
pub struct SharedResponses {
    local: MemoryStore,
    engine: EngineSlot,
    /// `[responses] ttl` as of the last store, in ms: how long a tombstone must
    /// outlive the copies other replicas keep.
    ttl_ms: AtomicU64,
}

impl SharedResponses {
    pub fn new(engine: EngineSlot) -> SharedResponses {
        SharedResponses {
            local: MemoryStore::default(),
            engine,
            ttl_ms: AtomicU64::new(24 * 3600 * 1000),
        }
    }

    pub fn local(&self) -> &MemoryStore {
        &self.local
    }
}

fn store_err(e: StateError) -> StoreError {
    StoreError(e.to_string())
}

/// A response written by another replica an instant ago may still be on its way to
/// the engine: a miss is asked again, briefly, before it is final.
const MISS_RETRIES: [Duration; 2] = [Duration::from_millis(5), Duration::from_millis(25)];

/// What the engine says of a stored response.
enum Found {
    Stored(Box<Stored>),
    Deleted,
    Missing,
}

async fn fetch(engine: &Engine, id: &str) -> Result<Found, StateError> {
    let (key, tomb) = (engine.key("resp", id), engine.key("deleted", id));
    let (found, deleted): (Option<Vec<u8>>, bool) = engine
        .op("read a stored response", |mut c| async move {
            redis::pipe()
                .get(key)
                .exists(tomb)
                .query_async(&mut c)
                .await
        })
        .await?;
    match (found, deleted) {
        (Some(bytes), _) => serde_json::from_slice(&bytes)
            .map(|s| Found::Stored(Box::new(s)))
            .map_err(|e| StateError::Engine(format!("a stored response did not parse: {e}"))),
        (None, true) => Ok(Found::Deleted),
        (None, false) => Ok(Found::Missing),
    }
}

fn item_ids(stored: &Stored) -> impl Iterator<Item = &str> {
    stored
        .input
        .iter()
        .chain(&stored.output)
        .filter_map(|i| i["id"].as_str())
}

async fn write(engine: &Engine, stored: &Stored, ttl: Duration) -> Result<(), StateError> {
    let body = serde_json::to_vec(stored).map_err(|e| StateError::Engine(e.to_string()))?;
    let ttl_ms = ttl.as_millis().max(1) as u64;
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(engine.key("resp", &stored.id))
        .arg(body)
        .arg("PX")
        .arg(ttl_ms)
        .ignore();
    for item in item_ids(stored) {
        pipe.cmd("SET")
            .arg(engine.key("item", item))
            .arg(&stored.id)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
    }
    engine
        .op("store a response", |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
}

impl SharedResponses {
    async fn get_from(&self, engine: &Engine, id: &str) -> Result<Option<Arc<Stored>>, StoreError> {
        let mut retries = MISS_RETRIES.iter();
        loop {
            match fetch(engine, id).await {
                Ok(Found::Stored(s)) => return Ok(Some(Arc::new(*s))),
                Ok(Found::Deleted) => return Ok(None),
                Ok(Found::Missing) => {
                    if let Some(mine) = self.local.get(id).await? {
                        return Ok(Some(mine));
                    }
                    match retries.next() {
                        Some(d) => tokio::time::sleep(*d).await,
                        None => return Ok(None),
                    }
                }
                Err(e) => {
                    return match self.local.get(id).await? {
                        Some(mine) => Ok(Some(mine)),
                        None => Err(store_err(e)),
                    }
                }
            }
        }
    }
}

impl ResponseStore for SharedResponses {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<Stored>>, StoreError>> {
        Box::pin(async move {
            match self.engine.load_full() {
                Some(engine) => self.get_from(&engine, id).await,
                None => self.local.get(id).await,
            }
        })
    }

    fn put(
        &self,
        stored: Stored,
        policy: ResponsesPolicy,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.ttl_ms
            .store(policy.ttl.as_millis().max(1) as u64, Ordering::Relaxed);
        let engine = self.engine.load_full();
        let shared = engine.as_ref().map(|_| stored.clone());
        // Kept here at once (the id is usable on this replica the moment the client
        // reads it); the engine's copy follows without holding up the answer.
        let local = self.local.put(stored, policy);
        let (Some(engine), Some(stored)) = (engine, shared) else {
            return local;
        };
        Box::pin(async move {
            local.await?;
            write(&engine, &stored, policy.ttl).await.map_err(store_err)
        })
    }

    fn get_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let Some(engine) = self.engine.load_full() else {
                return self.local.get_item(id).await;
            };
            let key = engine.key("item", id);
            let owner: Result<Option<String>, _> = engine
                .op("find a stored item", |mut c| async move {
                    redis::cmd("GET").arg(key).query_async(&mut c).await
                })
                .await;
            match owner {
                Ok(Some(resp)) => {
                    let found = self.get_from(&engine, &resp).await?;
                    Ok(found.and_then(|s| {
                        s.input
                            .iter()
                            .chain(&s.output)
                            .find(|i| i["id"] == id)
                            .cloned()
                    }))
                }
                Ok(None) => self.local.get_item(id).await,
                Err(e) => match self.local.get_item(id).await? {
                    Some(v) => Ok(Some(v)),
                    None => Err(store_err(e)),
                },
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let here = self.local.delete(id).await?;
            let Some(engine) = self.engine.load_full() else {
                return Ok(here);
            };
            // Deleted everywhere or not at all: with the engine out of reach the
            // other replicas would still serve it, so say so (503).
            let found = fetch(&engine, id).await.map_err(store_err)?;
            let mut keys = vec![engine.key("resp", id)];
            if let Found::Stored(s) = &found {
                keys.extend(item_ids(s).map(|i| engine.key("item", i)));
            }
            // The tombstone keeps other replicas' own copies from answering for it.
            let tomb = engine.key("deleted", id);
            let ttl_ms = self.ttl_ms.load(Ordering::Relaxed);
            let n: u64 = engine
                .op("delete a stored response", |mut c| async move {
                    let (n, ()): (u64, ()) = redis::pipe()
                        .del(keys)
                        .cmd("SET")
                        .arg(tomb)
                        .arg(1)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await?;
                    Ok(n)
                })
                .await
                .map_err(store_err)?;
            Ok(here || n > 0)
        })
    }
}
