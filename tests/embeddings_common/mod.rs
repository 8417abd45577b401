//! Helpers for the embeddings tests: providers of every kind at mock upstreams, the
//! mocks' answers in each provider's real wire format (checked against the official
//! SDKs: openai's `CreateEmbeddingResponse`, google-genai's `EmbedContentResponse`,
//! ollama's `EmbedResponse` — see fixtures/gemini/embed_*, fixtures/ollama/embed_*),
//! and the openai SDK's `embeddings.create` as the client.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::*;

pub const CLIENT_KEY: &str = "client-key";

/// A `[providers.NAME]` table of `kind` at `mock`, keyed with [`UPSTREAM_KEY`] (Ollama:
/// keyless, as a local one is).
pub fn provider(name: &str, kind: &str, mock: &Mock) -> String {
    let base = match kind {
        "openai" => format!("{}/v1", mock.url()),
        _ => mock.url(),
    };
    let key = if kind == "ollama" {
        String::new()
    } else {
        format!("api_key_env = \"{}\"\n", UPSTREAM_KEY.0)
    };
    format!("\n[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\n{key}")
}

pub fn route(model: &str, targets: &[&str]) -> String {
    let t: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "\n[[routes]]\nmodel = \"{model}\"\ntargets = [{}]\n",
        t.join(", ")
    )
}

/// The proxy with client keys on, `extra` after `[server]`, then `rest` (providers
/// and routes).
pub async fn proxy(extra: &str, rest: &str) -> Proxy {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys_env = \"CLIENT_KEYS\"\n{extra}\n{rest}"
    );
    Proxy::start(&toml, &[UPSTREAM_KEY, ("CLIENT_KEYS", CLIENT_KEY)]).await
}

/// One OpenAI mock behind the route `docs` (`oa/text-embedding-3-small`).
pub async fn openai_docs(extra: &str) -> (Mock, Proxy) {
    let oa = Mock::start().await;
    let rest = [
        provider("oa", "openai", &oa),
        route("docs", &["oa/text-embedding-3-small"]),
    ]
    .concat();
    let p = proxy(extra, &rest).await;
    (oa, p)
}

/// The vectors the mocks answer with: values with an exact f32 form and values
/// without (0.1), so a float that went through f32 would show.
pub fn vectors(inputs: usize, dims: usize) -> Vec<Vec<f64>> {
    let pool = [0.25, -0.5, 0.1, 1.5, 0.0078125, -3.0, 0.3333, 2.0];
    (0..inputs)
        .map(|i| (0..dims).map(|d| pool[(i * 3 + d) % pool.len()]).collect())
        .collect()
}

/// Little-endian float32s, base64: how OpenAI sends `encoding_format: "base64"`.
pub fn b64(v: &[f64]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// OpenAI's (and Azure's) answer, in the format the request asked for.
pub fn openai_answer(model: &str, vectors: &[Vec<f64>], base64: bool, tokens: u64) -> Reply {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 { json!(b64(v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Reply::json(
        200,
        json!({"object": "list", "data": data, "model": model,
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        .to_string(),
    )
}

/// Gemini's `batchEmbedContents` answer.
pub fn gemini_answer(vectors: &[Vec<f64>], tokens: u64) -> Reply {
    let embeddings: Vec<Value> = vectors.iter().map(|v| json!({"values": v})).collect();
    Reply::json(
        200,
        json!({"embeddings": embeddings,
               "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}})
        .to_string(),
    )
}

/// Ollama's `/api/embed` answer.
pub fn ollama_answer(model: &str, vectors: &[Vec<f64>], tokens: u64) -> Reply {
    Reply::json(
        200,
        json!({"model": model, "embeddings": vectors, "total_duration": 14143917u64,
               "load_duration": 1019500, "prompt_eval_count": tokens})
        .to_string(),
    )
}

/// `tests/sdk/embeddings_client.py` (the openai SDK's `embeddings.create`) against `p`.
pub async fn embeddings_sdk(p: &Proxy, scenarios: Value) -> Vec<Value> {
    sdk_script("embeddings_client.py", p, CLIENT_KEY, scenarios).await
}

/// A raw `POST /v1/embeddings` with the client key.
pub async fn embed(p: &Proxy, body: Value) -> Resp {
    let auth = format!("Bearer {CLIENT_KEY}");
    send(
        &p.url("/v1/embeddings"),
        "POST",
        &[("authorization", &auth)],
        body.to_string(),
    )
    .await
}

/// The vectors of an SDK result, as it decoded them.
pub fn got_vectors(result: &Value) -> Vec<Vec<f64>> {
    serde_json::from_value(result["vectors"].clone()).expect("vectors")
}

/// `v` as it looks after a trip through float32 (what base64 carries).
pub fn as_f32(v: &[Vec<f64>]) -> Vec<Vec<f64>> {
    v.iter()
        .map(|x| x.iter().map(|f| f64::from(*f as f32)).collect())
        .collect()
}
