//! Stored responses shared through the engine, so a conversation started on one
//! replica continues on any other. This replica's memory store stays underneath:
//! every response is kept there too, and it answers while the engine is out of reach
//! (DESIGN §9: a response only the engine holds is then 503 `state_unavailable`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::Value;

use super::{Engine, StateError};
use crate::config::ResponsesPolicy;
use crate::frontdoor::BoxFuture;
use crate::state::responses::{MemoryStore, ResponseStore, StoreError, Stored};

/// The engine this replica shares state through, while `[state] backend = "redis"`.
pub type EngineSlot = Arc<ArcSwapOption<Engine>>;

/// Most ids a replica remembers as kept only here (written while the engine was out
/// of reach); beyond it the oldest are forgotten, as the memory store forgets them.
const MAX_UNSHARED: usize = 100_000;

pub struct SharedResponses {
    local: MemoryStore,
    engine: EngineSlot,
    /// Responses the engine never got: the engine's "not found" is not the last word
    /// on them.
    unshared: Arc<Mutex<HashSet<String>>>,
}

impl SharedResponses {
    pub fn new(engine: EngineSlot) -> SharedResponses {
        SharedResponses {
            local: MemoryStore::default(),
            engine,
            unshared: Arc::default(),
        }
    }

    pub fn local(&self) -> &MemoryStore {
        &self.local
    }

    fn unshared(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        lock(&self.unshared)
    }

    fn is_unshared(&self, id: &str) -> bool {
        self.unshared().contains(id)
    }
}

fn lock(m: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_err(e: StateError) -> StoreError {
    StoreError(e.to_string())
}

/// A response written by another replica an instant ago may still be on its way to
/// the engine: a miss is asked again, briefly, before it is final.
const MISS_RETRIES: [Duration; 2] = [Duration::from_millis(5), Duration::from_millis(25)];

async fn fetch(engine: &Engine, id: &str) -> Result<Option<Stored>, StateError> {
    let key = engine.key("resp", id);
    let mut tries = MISS_RETRIES.iter();
    loop {
        let key = key.clone();
        let found: Option<Vec<u8>> = engine
            .op("read a stored response", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        match found {
            Some(bytes) => {
                return serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    StateError::Engine(format!("a stored response did not parse: {e}"))
                })
            }
            None => match tries.next() {
                Some(d) => tokio::time::sleep(*d).await,
                None => return Ok(None),
            },
        }
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

impl ResponseStore for SharedResponses {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<Stored>>, StoreError>> {
        Box::pin(async move {
            let Some(engine) = self.engine.load_full() else {
                return self.local.get(id).await;
            };
            if self.is_unshared(id) {
                return self.local.get(id).await;
            }
            match fetch(&engine, id).await {
                Ok(found) => Ok(found.map(Arc::new)),
                Err(e) => match self.local.get(id).await? {
                    Some(s) => Ok(Some(s)),
                    None => Err(store_err(e)),
                },
            }
        })
    }

    fn put(
        &self,
        stored: Stored,
        policy: ResponsesPolicy,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let engine = self.engine.load_full();
        let shared = engine.as_ref().map(|_| stored.clone());
        // Kept here at once (the id is usable on this replica the moment the client
        // reads it); the engine's copy follows without holding up the answer.
        let local = self.local.put(stored, policy);
        let (Some(engine), Some(stored)) = (engine, shared) else {
            return local;
        };
        let unshared = self.unshared.clone();
        Box::pin(async move {
            local.await?;
            match write(&engine, &stored, policy.ttl).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let mut set = lock(&unshared);
                    if set.len() >= MAX_UNSHARED {
                        set.clear(); // rare: a long outage under load; they age out anyway
                    }
                    set.insert(stored.id);
                    Err(store_err(e))
                }
            }
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
                    let found = fetch(&engine, &resp).await.map_err(store_err)?;
                    Ok(found
                        .and_then(|s| s.input.into_iter().chain(s.output).find(|i| i["id"] == id)))
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
            self.unshared().remove(id);
            let Some(engine) = self.engine.load_full() else {
                return Ok(here);
            };
            // Deleted everywhere or not at all: with the engine out of reach the
            // other replicas would still serve it, so say so.
            let Some(stored) = fetch(&engine, id).await.map_err(store_err)? else {
                return Ok(here);
            };
            let mut keys = vec![engine.key("resp", id)];
            keys.extend(item_ids(&stored).map(|i| engine.key("item", i)));
            let n: u64 = engine
                .op("delete a stored response", |mut c| async move {
                    redis::cmd("DEL").arg(keys).query_async(&mut c).await
                })
                .await
                .map_err(store_err)?;
            Ok(here || n > 0)
        })
    }
}
