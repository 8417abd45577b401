//! The answer cache shared through the engine (DESIGN §9), so an answer stored via
//! one replica is a hit on every other. Entries are written beside the local ones and
//! read on a local miss, within `[state] timeout`; past it the lookup is a miss, as it
//! would be without sharing.
//!
//! The local key is a per-process keyed hash and cannot be shared; the engine's key is
//! SHA-256 of the same canonical request, so no client can craft a request that
//! lands on another's entry.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::store::{Cacheable, Entry};
use crate::canonical::{ChatResponse, Reasoning};
use crate::state::redis::Engine;

/// An entry as the engine holds it.
#[derive(Serialize, Deserialize)]
struct Shared {
    answer: ChatResponse,
    /// The upstream's own body for native answers (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    native: Option<String>,
    /// Each choice's reasoning, which the answer's own serialization leaves out
    /// (chat shows none; the Responses and Messages doors replay it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reasoning: Vec<Vec<Reasoning>>,
    provider: String,
    model: String,
    stored_ms: u64,
}

/// The engine key for a canonical request (see [`super::key`]).
pub(super) fn key(engine: &Engine, canonical: &[u8]) -> String {
    let digest = Sha256::digest(canonical);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    engine.key("cache", &hex)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// What the engine holds under `key`, with its age; `None` on a miss, an error or a
/// timeout (all booked on the link).
pub(super) async fn fetch<A: Cacheable>(engine: &Engine, key: &str) -> Option<Arc<Entry<A>>> {
    let key = key.to_string();
    let found: Result<Option<Vec<u8>>, _> = engine
        .op("read the shared cache", |mut c| async move {
            redis::cmd("GET").arg(key).query_async(&mut c).await
        })
        .await;
    A::decode(&found.ok()??).map(Arc::new)
}

pub(super) fn decode(bytes: &[u8]) -> Option<Entry<ChatResponse>> {
    let shared: Shared = match serde_json::from_slice(bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "shared cache: an entry this version does not read");
            return None;
        }
    };
    let age = Duration::from_millis(now_ms().saturating_sub(shared.stored_ms));
    let mut answer = shared.answer;
    answer.native = shared.native.map(Bytes::from);
    for (choice, r) in answer.choices.iter_mut().zip(shared.reasoning) {
        choice.message.reasoning = r;
    }
    Some(Entry {
        answer,
        provider: shared.provider,
        model: shared.model,
        stored: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
    })
}

/// Writes an entry for `keep` (the cache's `stale_ttl`), in the background: the
/// answer has gone out already.
pub(super) fn put<A: Cacheable>(
    engine: Arc<Engine>,
    key: String,
    entry: &Entry<A>,
    keep: Duration,
) {
    let Some(body) = A::encode(entry) else {
        return;
    };
    let ms = keep.as_millis().max(1) as u64;
    tokio::spawn(async move {
        let _ = engine
            .op("write the shared cache", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(body)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    });
}

pub(super) fn encode(entry: &Entry<ChatResponse>) -> Option<Vec<u8>> {
    let native = match &entry.answer.native {
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Some(s.to_string()),
            Err(_) => return None, // not JSON text: stays local
        },
        None => None,
    };
    let reasoning: Vec<Vec<Reasoning>> = entry
        .answer
        .choices
        .iter()
        .map(|c| c.message.reasoning.clone())
        .collect();
    let shared = Shared {
        answer: entry.answer.clone(),
        native,
        reasoning: if reasoning.iter().all(Vec::is_empty) {
            Vec::new()
        } else {
            reasoning
        },
        provider: entry.provider.clone(),
        model: entry.model.clone(),
        stored_ms: now_ms(),
    };
    serde_json::to_vec(&shared).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Origin;

    #[test]
    fn an_entry_reads_back_with_its_reasoning_native_body_and_age() {
        let mut answer: ChatResponse = serde_json::from_value(serde_json::json!({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]
        }))
        .unwrap();
        answer.native = Some(Bytes::from_static(br#"{"type":"message"}"#));
        answer.choices[0].message.reasoning = vec![Reasoning::new(
            "thought",
            Origin {
                provider: "p".into(),
                kind: "anthropic".into(),
                model: "m".into(),
            },
            serde_json::json!({"signature": "sig"}),
        )];
        let entry = Entry {
            answer,
            provider: "p".into(),
            model: "m".into(),
            stored: Instant::now(),
        };
        let back = decode(&encode(&entry).unwrap()).unwrap();
        assert_eq!(
            back.answer.choices[0].message.content.as_deref(),
            Some("hi")
        );
        assert_eq!(
            back.answer.choices[0].message.reasoning,
            entry.answer.choices[0].message.reasoning
        );
        assert_eq!(back.answer.native, entry.answer.native);
        assert_eq!(back.provider, "p");
        assert!(back.stored.elapsed() < Duration::from_secs(60));
    }
}
