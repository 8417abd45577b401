//! Helpers shared by the Messages front door tests (`frontdoor_messages*.rs`): the
//! `anthropic` fixtures, a proxy over mocks of any kind with client keys on, raw
//! `/v1/messages` requests and an SSE reader that checks `event:` names, the official
//! `anthropic` Python SDK as the judge, and a weather tool request.
#![allow(dead_code)]

use crate::common::*;
use serde_json::{json, Value};

pub const CLIENT_KEY: &str = "client-key";
pub const UPSTREAM: &str = "sk-upstream-secret";

pub const ANT_TEXT_JSON: &str = include_str!("../../fixtures/anthropic/response_text.json");
pub const ANT_TOOL_USE_JSON: &str = include_str!("../../fixtures/anthropic/response_tool_use.json");
pub const ANT_TEXT_SSE: &str = include_str!("../../fixtures/anthropic/stream_text.sse");
pub const ANT_TOOL_USE_SSE: &str = include_str!("../../fixtures/anthropic/stream_tool_use.sse");
pub const ANT_ERROR_MIDSTREAM_SSE: &str =
    include_str!("../../fixtures/anthropic/stream_error_midstream.sse");
pub const ANT_OVERLOADED: &str = include_str!("../../fixtures/anthropic/error_overloaded.json");
pub const ANT_RATE_LIMIT: &str = include_str!("../../fixtures/anthropic/error_rate_limit.json");
pub const GEM_TEXT_JSON: &str = include_str!("../../fixtures/gemini/response_text.json");
pub const GEM_TEXT_SSE: &str = include_str!("../../fixtures/gemini/stream_text.sse");
pub const GEM_CALLS_JSON: &str = include_str!("../../fixtures/gemini/response_function_calls.json");
pub const OLLAMA_TEXT_JSON: &str = include_str!("../../fixtures/ollama/response_text.json");
pub const OLLAMA_TEXT_NDJSON: &str = include_str!("../../fixtures/ollama/stream_text.ndjson");

/// What the Anthropic fixtures report as their model.
pub const CLAUDE: &str = "claude-sonnet-4-5-20250929";

// ---------------------------------------------------------------------------------
// Setup

/// Mocks of the given kinds, named `NAME`, behind one `default` route in that order
/// (`NAME/MODEL`); client keys required.
pub struct Setup {
    pub mocks: Vec<Mock>,
    pub proxy: Proxy,
}

impl Setup {
    pub fn mock(&self, i: usize) -> &Mock {
        &self.mocks[i]
    }
}

/// `targets`: (provider name, kind, model). `extra` goes after `[server]`'s keys.
pub async fn setup_with(targets: &[(&str, &str, &str)], extra: &str) -> Setup {
    let mut mocks = Vec::new();
    let mut toml = format!("[server]\napi_keys_env = \"CLIENT_KEYS\"\n{extra}\n");
    for (name, kind, _) in targets {
        let mock = Mock::start().await;
        let base = match *kind {
            "openai" => format!("{}/v1", mock.url()),
            _ => mock.url(),
        };
        toml.push_str(&format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\n"
        ));
        if *kind != "ollama" {
            toml.push_str("api_key_env = \"UPSTREAM_KEY\"\n");
        }
        mocks.push(mock);
    }
    let list: Vec<String> = targets
        .iter()
        .map(|(n, _, m)| format!("\"{n}/{m}\""))
        .collect();
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        list.join(", ")
    ));
    let proxy = Proxy::start(
        &toml,
        &[("CLIENT_KEYS", CLIENT_KEY), ("UPSTREAM_KEY", UPSTREAM)],
    )
    .await;
    Setup { mocks, proxy }
}

pub async fn setup(targets: &[(&str, &str, &str)]) -> Setup {
    setup_with(targets, "").await
}

pub const OPENAI: (&str, &str, &str) = ("oai", "openai", "gpt-4o");
pub const ANTHROPIC: (&str, &str, &str) = ("ant", "anthropic", "claude-sonnet-4-5");
pub const GEMINI: (&str, &str, &str) = ("gem", "gemini", "gemini-2.0-flash");
pub const OLLAMA: (&str, &str, &str) = ("local", "ollama", "llama3.2");

pub fn sse(text: &str) -> Reply {
    Reply::split(200, "text/event-stream", text)
}

/// A plain Messages request for the `default` route.
pub fn hello() -> Value {
    json!({
        "model": "default",
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
    })
}

// ---------------------------------------------------------------------------------
// Raw HTTP

pub async fn post(p: &Proxy, headers: &[(&str, &str)], body: &Value) -> Resp {
    send(&p.url("/v1/messages"), "POST", headers, body.to_string()).await
}

/// A request the way Anthropic's SDKs send it: `x-api-key` and `anthropic-version`.
pub async fn post_as_sdk(p: &Proxy, body: &Value) -> Resp {
    post(
        p,
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        body,
    )
    .await
}

/// `(event name, data)` of each SSE event; every event must have both lines and its
/// `event:` must name the data's `type`.
pub fn events(resp: &Resp) -> Vec<(String, Value)> {
    let text = resp.text();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data = Some(
                    serde_json::from_str::<Value>(v.trim())
                        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {v}")),
                );
            }
        }
        let (name, data) = (
            name.unwrap_or_else(|| panic!("an SSE event without `event:`: {block:?}")),
            data.unwrap_or_else(|| panic!("an SSE event without `data:`: {block:?}")),
        );
        assert_eq!(data["type"], name.as_str(), "event name = data type");
        out.push((name, data));
    }
    out
}

pub fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect()
}

/// The error body must be Anthropic's shape; returns its `error.type`.
pub fn anthropic_error(resp: &Resp) -> String {
    let body = resp.json();
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");
    assert!(
        body["error"]["message"].is_string(),
        "error.message: {body}"
    );
    body["error"]["type"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------
// The official anthropic SDK as the judge

/// Runs `scenarios` through `tests/sdk/anthropic_client.py` against `proxy`; one JSON
/// result per scenario. Bounded: 90 s.
pub async fn anthropic_sdk(proxy: &Proxy, api_key: &str, scenarios: Value) -> Vec<Value> {
    run_sdk_script("anthropic_client.py", proxy.url(""), api_key, scenarios).await
}

pub async fn sdk_one(proxy: &Proxy, scenario: Value) -> Value {
    anthropic_sdk(proxy, CLIENT_KEY, json!([scenario]))
        .await
        .remove(0)
}

/// The chat-completions request an OpenAI-kind mock received (`n`th).
pub fn upstream_json(m: &Mock, n: usize) -> Value {
    m.received()[n].json()
}

// ---------------------------------------------------------------------------------
// Tools

pub fn weather_tools() -> Value {
    json!([{
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }])
}

pub fn weather_request() -> Value {
    json!({
        "model": "default",
        "max_tokens": 512,
        "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    })
}
