//! The cache key: a keyed hash of the kind of request, its route and its body as
//! canonical JSON, so how a request is spelled (key order, `0` vs `0.0`) cannot split
//! one question in two, and a chat body can never address an embeddings answer.

use std::hash::BuildHasher;

use serde_json::{Map, Value};

use super::Store;
use crate::canonical::{ChatRequest, EmbedRequest};
use crate::config::CacheMode;

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

/// Embeddings fields left out of the key: `user` (abuse monitoring) does not change
/// the vectors. `encoding_format` stays in: an answer is kept in the format it was
/// asked in.
const EMBEDDINGS_IGNORED: &[&str] = &["user"];

/// 128 bits of keyed SipHash over the canonical request. The keys are random per
/// process, so nobody can craft a request that collides with another one's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

impl Store {
    #[cfg(test)]
    pub(super) fn key(&self, route: &str, req: &ChatRequest) -> Option<Key> {
        Some(self.key_of(&chat_material(route, req)?))
    }

    #[cfg(test)]
    pub(super) fn embeddings_key(&self, route: &str, req: &EmbedRequest) -> Option<Key> {
        Some(self.key_of(&embeddings_material(route, req)?))
    }

    /// This process's key for `material` (the engine's is a digest of it: `shared`).
    pub(super) fn key_of(&self, material: &[u8]) -> Key {
        let (a, b) = &self.shelf.hash;
        Key(a.hash_one(material), b.hash_one(material))
    }

    pub(super) fn cacheable(&self, req: &ChatRequest) -> bool {
        // Its canonical form is a placeholder: the key would not tell requests apart.
        if req.untranslatable.is_some() {
            return false;
        }
        match self.policy.mode {
            CacheMode::All => true,
            CacheMode::TemperatureZero => req.temperature == Some(0.0),
        }
    }
}

/// What a chat key is made of: its space, route and canonical body, and what the
/// front door carries beside the body.
pub(super) fn chat_material(route: &str, req: &ChatRequest) -> Option<Vec<u8>> {
    let mut buf = material("chat", route, &req.raw, IGNORED)?;
    beside_the_body(req, &mut buf);
    Some(buf)
}

pub(super) fn embeddings_material(route: &str, req: &EmbedRequest) -> Option<Vec<u8>> {
    material("embeddings", route, &req.raw, EMBEDDINGS_IGNORED)
}

/// `space`, the route and the body without `ignored`, as canonical bytes.
fn material(space: &str, route: &str, raw: &[u8], ignored: &[&str]) -> Option<Vec<u8>> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(raw) else {
        return None;
    };
    let mut buf = Vec::with_capacity(space.len() + route.len() + raw.len() + 2);
    for part in [space, route] {
        buf.extend_from_slice(part.as_bytes());
        buf.push(0);
    }
    canonical_object(&body, ignored, &mut buf);
    Some(buf)
}

/// What a front door carries beside the chat body, which changes the answer too: its
/// exact thinking setting, and the reasoning replayed with assistant turns.
fn beside_the_body(req: &ChatRequest, out: &mut Vec<u8>) {
    if let Some(t) = &req.thinking {
        out.push(0);
        let _ = serde_json::to_writer(&mut *out, t);
    }
    for (i, m) in req.messages.iter().enumerate() {
        for r in &m.reasoning {
            out.push(0);
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, r);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::cache::tests::{base, policy, req, with};
    use crate::cache::{AnswerCache, Lookup};

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
    fn embeddings_have_their_own_key_space_and_ignore_only_user() {
        let s = store();
        let embed = |v: Value| {
            s.embeddings_key(
                "default",
                &EmbedRequest::parse(v.to_string().into()).unwrap(),
            )
            .unwrap()
        };
        let k = embed(json!({"model": "default", "input": ["a", "b"]}));
        assert_eq!(
            embed(json!({"input": ["a", "b"], "model": "default", "user": "u-1"})),
            k
        );
        for other in [
            json!({"model": "default", "input": ["b", "a"]}),
            json!({"model": "default", "input": ["a", "b"], "dimensions": 8}),
            json!({"model": "default", "input": ["a", "b"], "encoding_format": "base64"}),
        ] {
            assert_ne!(embed(other.clone()), k, "{other}");
        }
        // the same body as a chat request is another key
        let same = json!({"model": "default", "input": ["a", "b"], "messages": [{"role": "user", "content": "a"}]});
        assert_ne!(
            s.key("default", &req(same.clone())),
            s.embeddings_key(
                "default",
                &EmbedRequest::parse(same.to_string().into()).unwrap()
            )
        );
    }

    #[test]
    fn temperature_zero_mode_caches_only_temperature_zero() {
        let cache = AnswerCache::new(Some(&policy(CacheMode::TemperatureZero)));
        assert!(matches!(
            cache.lookup_now("default", &req(base())),
            Lookup::Miss { .. }
        ));
        assert!(matches!(
            cache.lookup_now("default", &req(with("temperature", json!(0.0)))),
            Lookup::Miss { .. }
        ));
        for t in [json!(0.7), Value::Null] {
            assert!(matches!(
                cache.lookup_now("default", &req(with("temperature", t))),
                Lookup::Pass
            ));
        }
        let mut no_temp = base();
        no_temp.as_object_mut().unwrap().remove("temperature");
        assert!(matches!(
            cache.lookup_now("default", &req(no_temp.clone())),
            Lookup::Pass
        ));
        let all = AnswerCache::new(Some(&policy(CacheMode::All)));
        assert!(matches!(
            all.lookup_now("default", &req(no_temp)),
            Lookup::Miss { .. }
        ));
        assert!(matches!(
            AnswerCache::new(None).lookup_now("default", &req(base())),
            Lookup::Off
        ));
    }

    #[test]
    fn the_key_changes_with_thinking_and_replayed_reasoning() {
        use crate::canonical::{Origin, Reasoning, Thinking};
        let s = store();
        let two_turns = || {
            req(json!({"model": "default", "temperature": 0, "messages": [
                {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "again"}]}))
        };
        let k = s.key("default", &two_turns()).unwrap();
        let mut budget = two_turns();
        budget.thinking = Some(Thinking::Budget(2048));
        let kb = s.key("default", &budget).unwrap();
        assert_ne!(kb, k);
        budget.thinking = Some(Thinking::Budget(4096));
        assert_ne!(s.key("default", &budget).unwrap(), kb);
        let mut replayed = two_turns();
        let origin = Origin {
            provider: "a".into(),
            kind: "anthropic".into(),
            model: "m".into(),
        };
        replayed.messages[1].reasoning = vec![Reasoning::new("t", origin, json!({"s": 1}))];
        let kr = s.key("default", &replayed).unwrap();
        assert_ne!(kr, k);
        replayed.messages[1].reasoning[0].data = json!({"s": 2});
        assert_ne!(s.key("default", &replayed).unwrap(), kr);
    }
}
