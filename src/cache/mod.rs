//! The exact-match answer cache (DESIGN §6 "Cache and static fallback").
//!
//! A request is cached under a key made of its route and its body with the fields that
//! cannot change the answer left out (`stream` and friends, see `key::IGNORED`), so an
//! answer first given as JSON can be replayed as SSE and the other way round. Streams
//! are recorded chunk by chunk as they go out and assembled into one [`ChatResponse`]
//! once they end with `[DONE]`; a stream that fails or is abandoned is never stored.
//!
//! `key` computes the key, `store` holds the entries; stream assembly and replay are
//! canonical-type work and live in [`crate::canonical`].
//!
//! Embeddings answers share the shelf in a key space of their own. They are
//! deterministic, so every embeddings request is cached while the cache is on,
//! whatever `mode` says about chat.
//!
//! With replicas sharing state (`[state] backend = "redis"`), entries are also kept in
//! the engine and read from it on a local miss (`shared`).
//!
//! Entries are fresh for `ttl`; past it they are kept until `stale_ttl` and served
//! only when every target failed. The store is a bounded `moka` cache that lives in
//! [`App`](crate::App), outside the config snapshot, so it survives reloads.

mod key;
mod shared;
mod store;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::canonical::{ChatChunk, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};
use crate::config::{CachePolicy, Target};
use crate::failover::stream::StreamTap;
use crate::state::redis::responses::EngineSlot;
use crate::state::redis::Engine;
use store::Shelf;

/// Stream assembly and replay are about the canonical types and live there; these
/// paths stay so callers of `cache::{Assembler, replay}` need not change.
pub use crate::canonical::{replay, Assembler};
pub use key::Key;
pub use store::{Cacheable, Entry, Shelved, Store};

/// What `x-understudy-cache` says, and the `result` label of `understudy_cache_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
    Stale,
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
        }
    }
}

/// The cache of the running process: swapped for a new one only when a reload changes
/// its capacity or `stale_ttl`, dropped when a reload turns it off.
#[derive(Default)]
pub struct AnswerCache {
    current: ArcSwapOption<Store>,
    /// The engine the replicas share entries through, while there is one.
    engine: EngineSlot,
}

impl AnswerCache {
    pub fn new(policy: Option<&CachePolicy>) -> AnswerCache {
        let cache = AnswerCache::default();
        cache.apply(policy);
        cache
    }

    /// Shares entries through whatever engine `engine` holds (DESIGN §9).
    pub fn shared_through(mut self, engine: EngineSlot) -> AnswerCache {
        self.engine = engine;
        self
    }

    /// Follows a (re)loaded config. A change of `ttl` or `mode` keeps the entries:
    /// freshness is decided at lookup. A change of `max_entries` or `stale_ttl` starts
    /// empty, since moka fixes both when it is built.
    pub fn apply(&self, policy: Option<&CachePolicy>) {
        let current = self.current.load_full();
        let next = match (policy, current) {
            (None, None) => return,
            (None, Some(_)) => {
                tracing::info!("answer cache turned off; its entries are dropped");
                None
            }
            (Some(p), Some(s)) if s.policy == *p => return,
            (Some(p), Some(s))
                if s.policy.max_entries == p.max_entries && s.policy.stale_ttl == p.stale_ttl =>
            {
                Some(Store {
                    policy: p.clone(),
                    shelf: s.shelf.clone(),
                })
            }
            (Some(p), old) => {
                if old.is_some() {
                    tracing::info!("cache.max_entries or cache.stale_ttl changed; the answer cache starts empty");
                }
                Some(Store {
                    policy: p.clone(),
                    shelf: Shelf::new(p),
                })
            }
        };
        self.current.store(next.map(Arc::new));
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.current.load_full()
    }

    /// What the cache holds for this request (`Lookup::Off` when the cache is off):
    /// this replica's entry, else the shared engine's (read within `[state] timeout`).
    pub async fn lookup(&self, route: &str, req: &ChatRequest) -> Lookup {
        let Some(store) = self.store() else {
            return Lookup::Off;
        };
        if !store.cacheable(req) {
            return Lookup::Pass;
        }
        match key::chat_material(route, req) {
            Some(material) => self.find(store, material).await,
            None => Lookup::Pass,
        }
    }

    /// What the cache holds for this embeddings request.
    pub async fn lookup_embeddings(
        &self,
        route: &str,
        req: &EmbedRequest,
    ) -> Lookup<EmbedResponse> {
        let Some(store) = self.store() else {
            return Lookup::Off;
        };
        match key::embeddings_material(route, req) {
            Some(material) => self.find(store, material).await,
            None => Lookup::Pass,
        }
    }

    async fn find<A: Cacheable>(&self, store: Arc<Store>, material: Vec<u8>) -> Lookup<A> {
        let key = store.key_of(&material);
        let found = store.shelf.entries.get(&key);
        let (fresh, mut stale) = store.age(found.as_ref().and_then(A::unshelve).cloned());
        if let Some(entry) = fresh {
            return Lookup::Fresh(entry);
        }
        let shared = self.engine.load_full().map(|engine| {
            let k = shared::key(&engine, &material);
            (engine, k)
        });
        if let Some((engine, k)) = &shared {
            let (fresh, stale_there) = store.age(shared::fetch::<A>(engine, k).await);
            if let Some(entry) = fresh {
                // Kept here too, so the next lookup on this replica needs no trip.
                store.shelf.entries.insert(key, A::shelve(entry.clone()));
                return Lookup::Fresh(entry);
            }
            stale = stale.or(stale_there);
        }
        Lookup::Miss {
            store,
            key,
            stale,
            shared,
        }
    }
}

#[cfg(test)]
impl AnswerCache {
    /// [`AnswerCache::lookup`] for tests without an engine, where it never waits.
    pub(crate) fn lookup_now(&self, route: &str, req: &ChatRequest) -> Lookup {
        use futures_util::FutureExt;
        self.lookup(route, req)
            .now_or_never()
            .expect("without an engine, a lookup never waits")
    }

    pub(crate) fn lookup_embeddings_now(
        &self,
        route: &str,
        req: &EmbedRequest,
    ) -> Lookup<EmbedResponse> {
        use futures_util::FutureExt;
        self.lookup_embeddings(route, req)
            .now_or_never()
            .expect("without an engine, a lookup never waits")
    }
}

impl Store {
    /// `(fresh, stale)` for an entry by its age; both `None` past `stale_ttl`.
    fn age<A>(&self, found: Option<Arc<Entry<A>>>) -> (Found<A>, Found<A>) {
        match found {
            Some(e) => {
                let age = e.stored.elapsed();
                if age < self.policy.ttl {
                    (Some(e), None)
                } else if age < self.policy.stale_ttl {
                    (None, Some(e))
                } else {
                    (None, None)
                }
            }
            None => (None, None),
        }
    }

    /// Keeps an answer here and, when replicas share state, in the engine.
    fn keep<A: Cacheable>(&self, key: Key, answer: A, target: &Target, shared: &Shared) {
        let Some(entry) = self.insert(key, answer, target) else {
            return;
        };
        if let Some((engine, k)) = shared {
            shared::put(engine.clone(), k.clone(), &*entry, self.policy.stale_ttl);
        }
    }
}

type Found<A> = Option<Arc<Entry<A>>>;

/// The engine and its key for a request, when replicas share state.
type Shared = Option<(Arc<Engine>, String)>;

/// The cache's view of one request.
pub enum Lookup<A = ChatResponse> {
    /// The cache is off: no header, nothing stored.
    Off,
    /// The cache is on but this request is not cached (a temperature other than 0 in
    /// `temperature-zero` mode): it answers `miss` and nothing is stored.
    Pass,
    Fresh(Arc<Entry<A>>),
    /// Not fresh: the answer will be stored; `stale` is what may stand in if every
    /// target fails.
    Miss {
        store: Arc<Store>,
        key: Key,
        stale: Option<Arc<Entry<A>>>,
        shared: Shared,
    },
}

impl<A: Cacheable + Clone> Lookup<A> {
    pub fn fresh(&self) -> Option<&Arc<Entry<A>>> {
        match self {
            Lookup::Fresh(e) => Some(e),
            _ => None,
        }
    }

    pub fn stale(&self) -> Option<&Arc<Entry<A>>> {
        match self {
            Lookup::Miss { stale, .. } => stale.as_ref(),
            _ => None,
        }
    }

    /// Stores a whole (non-streamed) answer.
    pub fn store(&self, answer: &A, target: &Target) {
        if let Lookup::Miss {
            store, key, shared, ..
        } = self
        {
            store.keep(*key, answer.clone(), target, shared);
        }
    }
}

impl Lookup {
    /// A tap that stores the stream's answer if it ends with `[DONE]`.
    pub fn recorder(&self, target: &Arc<Target>) -> Option<Box<dyn StreamTap>> {
        match self {
            Lookup::Miss {
                store, key, shared, ..
            } => Some(Box::new(Recorder {
                store: store.clone(),
                key: *key,
                target: target.clone(),
                parts: Assembler::default(),
                shared: shared.clone(),
            })),
            _ => None,
        }
    }
}

struct Recorder {
    store: Arc<Store>,
    key: Key,
    target: Arc<Target>,
    parts: Assembler,
    shared: Shared,
}

impl StreamTap for Recorder {
    fn chunk(&mut self, chunk: &ChatChunk) {
        self.parts.push(chunk);
    }

    fn done(self: Box<Self>) {
        let Recorder {
            store,
            key,
            target,
            parts,
            shared,
        } = *self;
        if let Some(answer) = parts.finish() {
            store.keep(key, answer, &target, &shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;
    use serde_json::{json, Value};

    use super::*;
    use crate::canonical::testing::streamed_tool_answer;
    use crate::config::CacheMode;

    pub(super) fn req(v: Value) -> ChatRequest {
        ChatRequest::parse(Bytes::from(v.to_string())).unwrap()
    }

    pub(super) fn policy(mode: CacheMode) -> CachePolicy {
        CachePolicy {
            mode,
            max_entries: 100,
            ttl: Duration::from_secs(60),
            stale_ttl: Duration::from_secs(600),
        }
    }

    pub(super) fn target() -> Arc<Target> {
        let env: crate::config::EnvLookup = Arc::new(|_| None);
        let snap = crate::config::from_str(
            "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"p/m-1\"]",
            Path::new("t.toml"),
            &env,
        )
        .unwrap();
        snap.routes[0].targets[0].clone()
    }

    pub(super) fn base() -> Value {
        json!({"model": "default", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]})
    }

    pub(super) fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    pub(super) fn answer(text: &str) -> ChatResponse {
        serde_json::from_value(json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_fresh_then_stale_then_gone() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let l = cache.lookup_now("default", &r);
        assert!(l.fresh().is_none() && l.stale().is_none());
        l.store(&answer("hello"), &target());
        let hit = cache.lookup_now("default", &r);
        let e = hit.fresh().unwrap();
        assert_eq!((e.provider.as_str(), e.model.as_str()), ("p", "m-1"));
        assert_eq!(
            e.answer.choices[0].message.content.as_deref(),
            Some("hello")
        );
        assert!(cache
            .lookup_now("default", &req(with("stream", json!(true))))
            .fresh()
            .is_some());

        tokio::time::advance(Duration::from_secs(61)).await;
        let l = cache.lookup_now("default", &r);
        assert!(l.fresh().is_none());
        assert!(l.stale().is_some(), "past ttl, within stale_ttl");

        tokio::time::advance(Duration::from_secs(600)).await;
        let l = cache.lookup_now("default", &r);
        assert!(l.fresh().is_none() && l.stale().is_none(), "past stale_ttl");
    }

    #[test]
    fn a_recorder_stores_only_a_stream_that_finished() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let t = target();
        // dropped without done(): a stream that failed mid-way
        let mut tap = cache.lookup_now("default", &r).recorder(&t).unwrap();
        for c in streamed_tool_answer() {
            tap.chunk(&c);
        }
        drop(tap);
        assert!(cache.lookup_now("default", &r).fresh().is_none());
        let mut tap = cache.lookup_now("default", &r).recorder(&t).unwrap();
        for c in streamed_tool_answer() {
            tap.chunk(&c);
        }
        tap.done();
        let hit = cache.lookup_now("default", &r);
        let e = hit.fresh().unwrap();
        assert_eq!(
            e.answer.choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
    }

    #[test]
    fn embeddings_are_cached_in_any_mode_unless_too_large() {
        use crate::canonical::{EmbedUsage, Vector};
        let cache = AnswerCache::new(Some(&policy(CacheMode::TemperatureZero)));
        let r = EmbedRequest::parse(Bytes::from_static(br#"{"model":"e","input":"hi"}"#)).unwrap();
        let answer = |dims: usize| EmbedResponse {
            model: "e-1".into(),
            vectors: vec![Vector::Floats(vec![0.5; dims])],
            usage: EmbedUsage::of_prompt(1),
        };
        let l = cache.lookup_embeddings_now("e", &r);
        assert!(
            matches!(l, Lookup::Miss { .. }),
            "deterministic: cached without temperature"
        );
        l.store(&answer(4), &target());
        let hit = cache.lookup_embeddings_now("e", &r);
        let e = hit.fresh().unwrap();
        assert_eq!((e.answer.model.as_str(), e.provider.as_str()), ("e-1", "p"));
        // a chat request never finds it
        assert!(cache.lookup_now("e", &req(base())).fresh().is_none());

        let big =
            EmbedRequest::parse(Bytes::from_static(br#"{"model":"e","input":"big"}"#)).unwrap();
        cache
            .lookup_embeddings_now("e", &big)
            .store(&answer(2 * 1024 * 1024), &target());
        assert!(
            cache.lookup_embeddings_now("e", &big).fresh().is_none(),
            "16 MiB is not kept"
        );
        assert!(matches!(
            AnswerCache::new(None).lookup_embeddings_now("e", &r),
            Lookup::Off
        ));
    }

    #[test]
    fn a_reload_keeps_entries_unless_capacity_or_stale_ttl_change() {
        let p = policy(CacheMode::All);
        let cache = AnswerCache::new(Some(&p));
        let r = req(base());
        cache
            .lookup_now("default", &r)
            .store(&answer("x"), &target());
        let longer_ttl = CachePolicy {
            ttl: Duration::from_secs(120),
            mode: CacheMode::TemperatureZero,
            ..p.clone()
        };
        cache.apply(Some(&longer_ttl));
        assert!(
            cache.lookup_now("default", &r).fresh().is_some(),
            "ttl/mode change keeps entries"
        );
        cache.apply(Some(&CachePolicy {
            max_entries: 5,
            ..longer_ttl
        }));
        assert!(cache.lookup_now("default", &r).fresh().is_none(), "rebuilt");
        cache.apply(None);
        assert!(cache.store().is_none());
    }
}
