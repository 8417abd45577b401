//! The exact-match answer cache (DESIGN §6 "Cache and static fallback").
//!
//! A request is cached under a key made of its route and its body with the fields that
//! cannot change the answer left out (`stream` and friends, see [`IGNORED`]), so an
//! answer first given as JSON can be replayed as SSE and the other way round. Streams
//! are recorded chunk by chunk as they go out and assembled into one [`ChatResponse`]
//! once they end with `[DONE]`; a stream that fails or is abandoned is never stored.
//!
//! Entries are fresh for `ttl`; past it they are kept until `stale_ttl` and served
//! only when every target failed. The store is a bounded `moka` cache that lives in
//! [`App`](crate::App), outside the config snapshot, so it survives reloads.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::canonical::{
    ChatChunk, ChatRequest, ChatResponse, Choice, Delta, FunctionCall, FunctionDelta,
    ResponseMessage, ToolCall, ToolCallDelta,
};
use crate::config::{CacheMode, CachePolicy, Target};
use crate::failover::stream::StreamTap;
use crate::frontdoor::chat::encode;
use crate::http::sse;

/// Top-level request fields left out of the key: how the answer is delivered
/// (`stream`, `stream_options`) and bookkeeping the provider does not answer from
/// (`user`, `safety_identifier`: abuse monitoring; `metadata`, `store`: stored
/// completions; `prompt_cache_key`: a routing hint for the provider's prompt cache).
/// Every other field — unknown ones included — is part of the key: a field the proxy
/// does not know might change the answer.
const IGNORED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "prompt_cache_key",
];

/// Answer-level fields copied between streamed chunks and a whole answer.
const ANSWER_EXTRAS: &[&str] = &["system_fingerprint", "service_tier"];

/// A stream whose text grows past this is not recorded: the cache is for answers, not
/// for holding arbitrarily large bodies in memory.
const RECORD_LIMIT: usize = 8 * 1024 * 1024;

/// 128 bits of keyed SipHash over the canonical request. The keys are random per
/// process, so nobody can craft a request that collides with another one's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

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

/// A cached answer and where it came from.
#[derive(Debug)]
pub struct Entry {
    pub answer: ChatResponse,
    /// The provider's name and the target's model, for the x-understudy headers.
    pub provider: String,
    pub model: String,
    stored: Instant,
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
struct Shelf {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    hash: (RandomState, RandomState),
}

impl Shelf {
    fn new(policy: &CachePolicy) -> Shelf {
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
    policy: CachePolicy,
    shelf: Shelf,
}

impl Store {
    fn key(&self, route: &str, req: &ChatRequest) -> Option<Key> {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.raw) else {
            return None;
        };
        let mut buf = Vec::with_capacity(req.raw.len() + route.len() + 1);
        buf.extend_from_slice(route.as_bytes());
        buf.push(0);
        canonical_object(&body, IGNORED, &mut buf);
        let (a, b) = &self.shelf.hash;
        Some(Key(a.hash_one(&buf), b.hash_one(&buf)))
    }

    fn cacheable(&self, req: &ChatRequest) -> bool {
        match self.policy.mode {
            CacheMode::All => true,
            CacheMode::TemperatureZero => req.temperature == Some(0.0),
        }
    }

    fn insert(&self, key: Key, answer: ChatResponse, target: &Target) {
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

/// The cache of the running process: swapped for a new one only when a reload changes
/// its capacity or `stale_ttl`, dropped when a reload turns it off.
#[derive(Default)]
pub struct AnswerCache {
    current: ArcSwapOption<Store>,
}

impl AnswerCache {
    pub fn new(policy: Option<&CachePolicy>) -> AnswerCache {
        let cache = AnswerCache::default();
        cache.apply(policy);
        cache
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

    /// What the cache holds for this request (`Lookup::Off` when the cache is off).
    pub fn lookup(&self, route: &str, req: &ChatRequest) -> Lookup {
        let Some(store) = self.store() else {
            return Lookup::Off;
        };
        if !store.cacheable(req) {
            return Lookup::Pass;
        }
        let Some(key) = store.key(route, req) else {
            return Lookup::Pass;
        };
        let found = store.shelf.entries.get(&key);
        let (fresh, stale) = match found {
            Some(e) => {
                let age = e.stored.elapsed();
                if age < store.policy.ttl {
                    (Some(e), None)
                } else if age < store.policy.stale_ttl {
                    (None, Some(e))
                } else {
                    (None, None)
                }
            }
            None => (None, None),
        };
        if let Some(entry) = fresh {
            return Lookup::Fresh(entry);
        }
        Lookup::Miss { store, key, stale }
    }
}

/// The cache's view of one request.
pub enum Lookup {
    /// The cache is off: no header, nothing stored.
    Off,
    /// The cache is on but this request is not cached (a temperature other than 0 in
    /// `temperature-zero` mode): it answers `miss` and nothing is stored.
    Pass,
    Fresh(Arc<Entry>),
    /// Not fresh: the answer will be stored; `stale` is what may stand in if every
    /// target fails.
    Miss {
        store: Arc<Store>,
        key: Key,
        stale: Option<Arc<Entry>>,
    },
}

impl Lookup {
    pub fn fresh(&self) -> Option<&Arc<Entry>> {
        match self {
            Lookup::Fresh(e) => Some(e),
            _ => None,
        }
    }

    pub fn stale(&self) -> Option<&Arc<Entry>> {
        match self {
            Lookup::Miss { stale, .. } => stale.as_ref(),
            _ => None,
        }
    }

    /// Stores a whole (non-streamed) answer.
    pub fn store(&self, answer: &ChatResponse, target: &Target) {
        if let Lookup::Miss { store, key, .. } = self {
            store.insert(*key, answer.clone(), target);
        }
    }

    /// A tap that stores the stream's answer if it ends with `[DONE]`.
    pub fn recorder(&self, target: &Arc<Target>) -> Option<Box<dyn StreamTap>> {
        match self {
            Lookup::Miss { store, key, .. } => Some(Box::new(Recorder {
                store: store.clone(),
                key: *key,
                target: target.clone(),
                parts: Assembler::default(),
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
        } = *self;
        if let Some(answer) = parts.finish() {
            store.insert(key, answer, &target);
        }
    }
}

/// Only answers that finished are worth repeating.
fn complete(answer: &ChatResponse) -> bool {
    !answer.choices.is_empty() && answer.choices.iter().all(|c| c.finish_reason.is_some())
}

// ---------------------------------------------------------------------------------
// Key: a canonical rendering of the JSON body

/// Writes `obj` with sorted keys, leaving out `skip`; nested objects skip nothing.
fn canonical_object(obj: &Map<String, Value>, skip: &[&str], out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = obj.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        canonical_string(k, out);
        out.push(b':');
        if let Some(v) = obj.get(k) {
            canonical(v, out);
        }
    }
    out.push(b'}');
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => canonical_number(n, out),
        Value::String(s) => canonical_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(obj) => canonical_object(obj, &[], out),
    }
}

fn canonical_string(s: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `0`, `0.0` and `-0.0` are one temperature; `40` and `40.0` one `top_k`.
fn canonical_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = if let Some(i) = n.as_i64() {
        write!(out, "{i}")
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}")
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // Below 2^53 an integral float is exactly that integer.
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            write!(out, "{}", f as i64)
        } else {
            write!(out, "{f:?}")
        }
    };
}

// ---------------------------------------------------------------------------------
// Streams → one answer

#[derive(Default)]
struct CallParts {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChoiceParts {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    /// Text fields the proxy does not model (`reasoning_content`, …), concatenated.
    extra: Map<String, Value>,
    calls: BTreeMap<u32, CallParts>,
    finish_reason: Option<String>,
    logprobs: Option<Map<String, Value>>,
}

/// Assembles streamed chunks into the answer they spell, the way SDKs do: text and
/// argument fragments concatenate, tool calls gather by their `index`.
#[derive(Default)]
pub struct Assembler {
    head: Option<(String, u64, String)>,
    extra: Map<String, Value>,
    choices: BTreeMap<u32, ChoiceParts>,
    usage: Option<crate::canonical::Usage>,
    size: usize,
}

fn append(slot: &mut Option<String>, piece: &str) {
    slot.get_or_insert_with(String::new).push_str(piece);
}

impl Assembler {
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.size > RECORD_LIMIT {
            return;
        }
        if self.head.is_none() && !chunk.id.is_empty() {
            self.head = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        for k in ANSWER_EXTRAS {
            if let Some(v) = chunk.extra.get(*k).filter(|v| !v.is_null()) {
                self.extra.insert((*k).to_string(), v.clone());
            }
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let parts = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if let Some(r) = &d.role {
                parts.role = Some(r.clone());
            }
            if let Some(t) = &d.content {
                self.size += t.len();
                append(&mut parts.content, t);
            }
            if let Some(t) = &d.refusal {
                self.size += t.len();
                append(&mut parts.refusal, t);
            }
            for (k, v) in &d.extra {
                if let Value::String(t) = v {
                    self.size += t.len();
                    match parts.extra.get_mut(k) {
                        Some(Value::String(s)) => s.push_str(t),
                        _ => {
                            parts.extra.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            for t in d.tool_calls.iter().flatten() {
                let call = parts.calls.entry(t.index).or_default();
                if let Some(id) = &t.id {
                    call.id = Some(id.clone());
                }
                if let Some(kind) = &t.kind {
                    call.kind = Some(kind.clone());
                }
                if let Some(f) = &t.function {
                    if let Some(n) = &f.name {
                        call.name.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        self.size += a.len();
                        call.arguments.push_str(a);
                    }
                }
            }
            if let Some(f) = &c.finish_reason {
                parts.finish_reason = Some(f.clone());
            }
            if let Some(Value::Object(lp)) = &c.logprobs {
                let into = parts.logprobs.get_or_insert_with(Map::new);
                for (k, v) in lp {
                    match (into.get_mut(k), v) {
                        (Some(Value::Array(have)), Value::Array(more)) => {
                            have.extend(more.iter().cloned())
                        }
                        (Some(_), Value::Null) => {}
                        _ => {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }

    /// The answer, or `None` when the stream does not add up to one worth repeating
    /// (too large, a choice without finish_reason, a tool call without id or name).
    pub fn finish(self) -> Option<ChatResponse> {
        if self.size > RECORD_LIMIT {
            return None;
        }
        let (id, created, model) = self.head?;
        let mut choices = Vec::with_capacity(self.choices.len());
        for (index, p) in self.choices {
            let mut calls = Vec::with_capacity(p.calls.len());
            for c in p.calls.into_values() {
                if c.name.is_empty() {
                    return None;
                }
                calls.push(ToolCall {
                    id: c.id?,
                    kind: c.kind.unwrap_or_else(|| "function".into()),
                    function: FunctionCall {
                        name: c.name,
                        arguments: c.arguments,
                    },
                });
            }
            choices.push(Choice {
                index,
                message: ResponseMessage {
                    role: p.role.unwrap_or_else(|| "assistant".into()),
                    content: p.content,
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    refusal: p.refusal,
                    extra: p.extra,
                },
                finish_reason: Some(p.finish_reason?),
                logprobs: p.logprobs.map(Value::Object),
                extra: Map::new(),
            });
        }
        let answer = ChatResponse {
            id,
            object: "chat.completion".into(),
            created,
            model,
            choices,
            usage: self.usage,
            extra: self.extra,
        };
        complete(&answer).then_some(answer)
    }
}

// ---------------------------------------------------------------------------------
// One answer → stream

/// The chunks that stream `answer`: per choice a role + content chunk, one chunk per
/// tool call (with its index, id, name and whole arguments) and a finish chunk; then
/// the usage chunk if the client asked for it and the answer has usage.
pub fn replay(answer: &ChatResponse, include_usage: bool) -> Vec<ChatChunk> {
    let base = || {
        let mut c = ChatChunk::new(&answer.id, answer.created, &answer.model);
        for k in ANSWER_EXTRAS {
            if let Some(v) = answer.extra.get(*k) {
                c.extra.insert((*k).to_string(), v.clone());
            }
        }
        c
    };
    let with = |delta: Delta, index: u32, finish: Option<&str>, logprobs: Option<Value>| {
        let mut c = base().with_delta(delta, finish);
        if let Some(choice) = c.choices.first_mut() {
            choice.index = index;
            choice.logprobs = logprobs;
        }
        c
    };
    let mut out = Vec::new();
    for choice in &answer.choices {
        let m = &choice.message;
        let first = Delta {
            role: Some(m.role.clone()),
            content: m.content.clone(),
            refusal: m.refusal.clone(),
            extra: m
                .extra
                .iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Delta::default()
        };
        out.push(with(first, choice.index, None, choice.logprobs.clone()));
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            let delta = Delta::tool_call(ToolCallDelta {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                kind: Some(call.kind.clone()),
                function: Some(FunctionDelta {
                    name: Some(call.function.name.clone()),
                    arguments: Some(call.function.arguments.clone()),
                }),
            });
            out.push(with(delta, choice.index, None, None));
        }
        let finish = choice.finish_reason.as_deref().or(Some("stop"));
        out.push(with(Delta::default(), choice.index, finish, None));
    }
    if include_usage {
        if let Some(u) = &answer.usage {
            let mut c = base();
            c.usage = Some(u.clone());
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn req(v: Value) -> ChatRequest {
        ChatRequest::parse(Bytes::from(v.to_string())).unwrap()
    }

    fn policy(mode: CacheMode) -> CachePolicy {
        CachePolicy {
            mode,
            max_entries: 100,
            ttl: Duration::from_secs(60),
            stale_ttl: Duration::from_secs(600),
        }
    }

    fn target() -> Arc<Target> {
        let env: crate::config::EnvLookup = Arc::new(|_| None);
        let snap = crate::config::from_str(
            "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"p/m-1\"]",
            Path::new("t.toml"),
            &env,
        )
        .unwrap();
        snap.routes[0].targets[0].clone()
    }

    fn base() -> Value {
        json!({"model": "default", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    fn key_of(store: &Store, route: &str, v: Value) -> Key {
        store.key(route, &req(v)).unwrap()
    }

    fn store() -> Arc<Store> {
        AnswerCache::new(Some(&policy(CacheMode::All)))
            .store()
            .unwrap()
    }

    #[test]
    fn the_key_ignores_delivery_and_bookkeeping_fields() {
        let s = store();
        let k = key_of(&s, "default", base());
        for (field, value) in [
            ("stream", json!(true)),
            ("stream_options", json!({"include_usage": true})),
            ("user", json!("u-42")),
            ("metadata", json!({"team": "a"})),
            ("store", json!(true)),
        ] {
            assert_eq!(key_of(&s, "default", with(field, value)), k, "{field}");
        }
        // key order and the spelling of a number do not matter
        let reordered = json!({"messages": [{"content": "hi", "role": "user"}], "temperature": 0.0, "model": "default"});
        assert_eq!(key_of(&s, "default", reordered), k);
        assert_eq!(key_of(&s, "default", with("temperature", json!(-0.0))), k);
        assert_eq!(
            key_of(&s, "default", with("top_k", json!(40))),
            key_of(&s, "default", with("top_k", json!(40.0)))
        );
    }

    #[test]
    fn the_key_changes_with_anything_that_changes_the_answer() {
        let s = store();
        let k = key_of(&s, "default", base());
        assert_ne!(key_of(&s, "other", base()), k, "route");
        let tool = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let cases = [
            ("model", json!("other")),
            ("messages", json!([{"role": "user", "content": "hi!"}])),
            ("messages", json!([{"role": "system", "content": "hi"}])),
            ("temperature", json!(0.01)),
            ("top_p", json!(0.5)),
            ("max_tokens", json!(5)),
            ("max_completion_tokens", json!(5)),
            ("n", json!(2)),
            ("stop", json!(["x"])),
            ("seed", json!(1)),
            ("presence_penalty", json!(0.1)),
            ("frequency_penalty", json!(0.1)),
            ("logprobs", json!(true)),
            ("response_format", json!({"type": "json_object"})),
            ("tools", tool.clone()),
            ("tool_choice", json!("required")),
            ("parallel_tool_calls", json!(false)),
            ("logit_bias", json!({"5": 1})),
            ("reasoning_effort", json!("low")),
        ];
        for (field, value) in cases {
            assert_ne!(
                key_of(&s, "default", with(field, value.clone())),
                k,
                "{field} = {value}"
            );
        }
        let other_tool = json!([{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}]);
        assert_ne!(
            key_of(&s, "default", with("tools", tool)),
            key_of(&s, "default", with("tools", other_tool))
        );
    }

    #[test]
    fn temperature_zero_mode_caches_only_temperature_zero() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::TemperatureZero)));
        assert!(matches!(
            cache.lookup("default", &req(base())),
            Lookup::Miss { .. }
        ));
        assert!(matches!(
            cache.lookup("default", &req(with("temperature", json!(0.0)))),
            Lookup::Miss { .. }
        ));
        for t in [json!(0.7), Value::Null] {
            assert!(matches!(
                cache.lookup("default", &req(with("temperature", t))),
                Lookup::Pass
            ));
        }
        let mut no_temp = base();
        no_temp.as_object_mut().unwrap().remove("temperature");
        assert!(matches!(
            cache.lookup("default", &req(no_temp.clone())),
            Lookup::Pass
        ));
        let all = AnswerCache::new(Some(&policy(CacheMode::All)));
        assert!(matches!(
            all.lookup("default", &req(no_temp)),
            Lookup::Miss { .. }
        ));
        assert!(matches!(
            AnswerCache::new(None).lookup("default", &req(base())),
            Lookup::Off
        ));
    }

    fn chunk(v: Value) -> ChatChunk {
        let mut c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-x", "system_fingerprint": "fp_1"});
        for (k, val) in v.as_object().unwrap() {
            c[k] = val.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn delta(d: Value, finish: Value) -> ChatChunk {
        chunk(json!({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}))
    }

    fn streamed_tool_answer() -> Vec<ChatChunk> {
        vec![
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            delta(json!({"content": "Let me "}), Value::Null),
            delta(json!({"content": "check."}), Value::Null),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
                Value::Null,
            ),
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                Value::Null,
            ),
            delta(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}),
                Value::Null,
            ),
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ),
            delta(json!({}), json!("tool_calls")),
            chunk(
                json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
            ),
        ]
    }

    #[test]
    fn a_stream_assembles_into_its_answer() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = serde_json::to_value(a.finish().unwrap()).unwrap();
        assert_eq!(
            answer,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-x",
                "system_fingerprint": "fp_1",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                    "role": "assistant", "content": "Let me check.",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            })
        );
    }

    #[test]
    fn an_unfinished_stream_assembles_into_nothing() {
        let mut a = Assembler::default();
        for c in &streamed_tool_answer()[..7] {
            a.push(c);
        }
        assert!(a.finish().is_none(), "no finish_reason");
        let mut a = Assembler::default();
        a.push(&delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            json!("tool_calls"),
        ));
        assert!(a.finish().is_none(), "a tool call without id or name");
        assert!(Assembler::default().finish().is_none());
    }

    #[test]
    fn a_replay_streams_role_content_tool_calls_finish_and_usage() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = a.finish().unwrap();
        let chunks = replay(&answer, true);
        let shape: Vec<Value> = chunks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        assert_eq!(shape.len(), 5);
        for c in &shape {
            assert_eq!(
                (c["id"].as_str(), c["created"].as_u64(), c["model"].as_str()),
                (Some("chatcmpl-1"), Some(7), Some("gpt-x"))
            );
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["system_fingerprint"], "fp_1");
        }
        assert_eq!(
            shape[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Let me check."})
        );
        assert_eq!(
            shape[1]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(shape[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(shape[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(shape[3]["choices"][0]["delta"], json!({}));
        assert_eq!(shape[4]["choices"], json!([]));
        assert_eq!(shape[4]["usage"]["total_tokens"], 7);
        assert_eq!(replay(&answer, false).len(), 4, "usage only when asked for");

        // replaying and assembling again gives the same answer back
        let mut again = Assembler::default();
        for c in &chunks {
            again.push(c);
        }
        assert_eq!(
            serde_json::to_value(again.finish().unwrap()).unwrap(),
            serde_json::to_value(&answer).unwrap()
        );
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

    fn answer(text: &str) -> ChatResponse {
        serde_json::from_value(json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_fresh_then_stale_then_gone() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let l = cache.lookup("default", &r);
        assert!(l.fresh().is_none() && l.stale().is_none());
        l.store(&answer("hello"), &target());
        let hit = cache.lookup("default", &r);
        let e = hit.fresh().unwrap();
        assert_eq!((e.provider.as_str(), e.model.as_str()), ("p", "m-1"));
        assert_eq!(
            e.answer.choices[0].message.content.as_deref(),
            Some("hello")
        );
        assert!(cache
            .lookup("default", &req(with("stream", json!(true))))
            .fresh()
            .is_some());

        tokio::time::advance(Duration::from_secs(61)).await;
        let l = cache.lookup("default", &r);
        assert!(l.fresh().is_none());
        assert!(l.stale().is_some(), "past ttl, within stale_ttl");

        tokio::time::advance(Duration::from_secs(600)).await;
        let l = cache.lookup("default", &r);
        assert!(l.fresh().is_none() && l.stale().is_none(), "past stale_ttl");
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

    #[test]
    fn a_recorder_stores_only_a_stream_that_finished() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::All)));
        let r = req(base());
        let t = target();
        // dropped without done(): a stream that failed mid-way
        let mut tap = cache.lookup("default", &r).recorder(&t).unwrap();
        for c in streamed_tool_answer() {
            tap.chunk(&c);
        }
        drop(tap);
        assert!(cache.lookup("default", &r).fresh().is_none());
        let mut tap = cache.lookup("default", &r).recorder(&t).unwrap();
        for c in streamed_tool_answer() {
            tap.chunk(&c);
        }
        tap.done();
        let hit = cache.lookup("default", &r);
        let e = hit.fresh().unwrap();
        assert_eq!(
            e.answer.choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
    }

    #[test]
    fn a_reload_keeps_entries_unless_capacity_or_stale_ttl_change() {
        let p = policy(CacheMode::All);
        let cache = AnswerCache::new(Some(&p));
        let r = req(base());
        cache.lookup("default", &r).store(&answer("x"), &target());
        let longer_ttl = CachePolicy {
            ttl: Duration::from_secs(120),
            mode: CacheMode::TemperatureZero,
            ..p.clone()
        };
        cache.apply(Some(&longer_ttl));
        assert!(
            cache.lookup("default", &r).fresh().is_some(),
            "ttl/mode change keeps entries"
        );
        cache.apply(Some(&CachePolicy {
            max_entries: 5,
            ..longer_ttl
        }));
        assert!(cache.lookup("default", &r).fresh().is_none(), "rebuilt");
        cache.apply(None);
        assert!(cache.store().is_none());
    }
}
