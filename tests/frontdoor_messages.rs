//! The Anthropic Messages front door (`POST /v1/messages`, DESIGN §8) end to end: the
//! official `anthropic` Python SDK (and raw HTTP where the wire itself is the point)
//! talks to the proxy, with OpenAI-, Anthropic-, Gemini- and Ollama-kind mocks behind
//! it replaying `fixtures/` or chat-completions answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CLIENT_KEY: &str = "client-key";
const UPSTREAM: &str = "sk-upstream-secret";

const ANT_TEXT_JSON: &str = include_str!("../fixtures/anthropic/response_text.json");
const ANT_TOOL_USE_JSON: &str = include_str!("../fixtures/anthropic/response_tool_use.json");
const ANT_TEXT_SSE: &str = include_str!("../fixtures/anthropic/stream_text.sse");
const ANT_TOOL_USE_SSE: &str = include_str!("../fixtures/anthropic/stream_tool_use.sse");
const ANT_ERROR_MIDSTREAM_SSE: &str =
    include_str!("../fixtures/anthropic/stream_error_midstream.sse");
const ANT_OVERLOADED: &str = include_str!("../fixtures/anthropic/error_overloaded.json");
const ANT_RATE_LIMIT: &str = include_str!("../fixtures/anthropic/error_rate_limit.json");
const GEM_TEXT_JSON: &str = include_str!("../fixtures/gemini/response_text.json");
const GEM_TEXT_SSE: &str = include_str!("../fixtures/gemini/stream_text.sse");
const GEM_CALLS_JSON: &str = include_str!("../fixtures/gemini/response_function_calls.json");
const OLLAMA_TEXT_JSON: &str = include_str!("../fixtures/ollama/response_text.json");
const OLLAMA_TEXT_NDJSON: &str = include_str!("../fixtures/ollama/stream_text.ndjson");

/// What the Anthropic fixtures report as their model.
const CLAUDE: &str = "claude-sonnet-4-5-20250929";

// ---------------------------------------------------------------------------------
// Setup

/// Mocks of the given kinds, named `NAME`, behind one `default` route in that order
/// (`NAME/MODEL`); client keys required.
struct Setup {
    mocks: Vec<Mock>,
    proxy: Proxy,
}

impl Setup {
    fn mock(&self, i: usize) -> &Mock {
        &self.mocks[i]
    }
}

/// `targets`: (provider name, kind, model). `extra` goes after `[server]`'s keys.
async fn setup_with(targets: &[(&str, &str, &str)], extra: &str) -> Setup {
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

async fn setup(targets: &[(&str, &str, &str)]) -> Setup {
    setup_with(targets, "").await
}

const OPENAI: (&str, &str, &str) = ("oai", "openai", "gpt-4o");
const ANTHROPIC: (&str, &str, &str) = ("ant", "anthropic", "claude-sonnet-4-5");
const GEMINI: (&str, &str, &str) = ("gem", "gemini", "gemini-2.0-flash");
const OLLAMA: (&str, &str, &str) = ("local", "ollama", "llama3.2");

fn sse(text: &str) -> Reply {
    Reply::split(200, "text/event-stream", text)
}

/// A plain Messages request for the `default` route.
fn hello() -> Value {
    json!({
        "model": "default",
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
    })
}

// ---------------------------------------------------------------------------------
// Raw HTTP

async fn post(p: &Proxy, headers: &[(&str, &str)], body: &Value) -> Resp {
    send(&p.url("/v1/messages"), "POST", headers, body.to_string()).await
}

/// A request the way Anthropic's SDKs send it: `x-api-key` and `anthropic-version`.
async fn post_as_sdk(p: &Proxy, body: &Value) -> Resp {
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
fn events(resp: &Resp) -> Vec<(String, Value)> {
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

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect()
}

/// The error body must be Anthropic's shape; returns its `error.type`.
fn anthropic_error(resp: &Resp) -> String {
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
async fn anthropic_sdk(proxy: &Proxy, api_key: &str, scenarios: Value) -> Vec<Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/anthropic_client.py");
    let base = proxy.url("");
    let key = api_key.to_string();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(sdk_python());
        // The SDK reads credentials and its base URL from the environment too.
        for (k, _) in std::env::vars() {
            if k.starts_with("ANTHROPIC_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg(script)
            .arg(base)
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scenarios.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().expect("python finishes")
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("SDK run within 90 s")
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("SDK script prints JSON")
}

async fn sdk_one(proxy: &Proxy, scenario: Value) -> Value {
    anthropic_sdk(proxy, CLIENT_KEY, json!([scenario]))
        .await
        .remove(0)
}

/// The chat-completions request an OpenAI-kind mock received (`n`th).
fn upstream_json(m: &Mock, n: usize) -> Value {
    m.received()[n].json()
}

// ---------------------------------------------------------------------------------
// Every kind answers a Messages client

#[tokio::test]
async fn an_openai_target_answers_plain_and_streamed_messages() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Hello there"),
    ));
    m.push(stream_reply("gpt-4o-2024-08-06", &["Hel", "lo", " there"]));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "Hello there");
    assert_eq!(r["block_types"], json!(["text"]));
    assert_eq!(r["stop_reason"], "end_turn");
    assert_eq!(r["model"], "gpt-4o-2024-08-06", "the model that answered");
    assert!(r["id"].as_str().unwrap().starts_with("msg_"), "{r}");
    assert_eq!(r["usage"]["input_tokens"], 5);
    assert_eq!(r["usage"]["output_tokens"], 2);
    assert_eq!(r["headers"]["x-understudy-provider"], "oai");
    assert_eq!(r["headers"]["x-understudy-model"], "gpt-4o");
    assert_eq!(r["headers"]["x-understudy-attempts"], "1");

    let st = &results[1];
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["streamed_text"], "Hello there");
    assert_eq!(st["text"], "Hello there");
    assert_eq!(st["stop_reason"], "end_turn");
    assert_eq!(st["usage"]["output_tokens"], 2, "{st}");
    assert_eq!(st["usage"]["input_tokens"], 5, "{st}");
    assert!(st["id"].as_str().unwrap().starts_with("msg_"), "{st}");
    assert_eq!(st["headers"]["x-understudy-provider"], "oai");
    assert_eq!(
        st["types"],
        json!([
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ])
    );

    // what the OpenAI-kind upstream received
    let plain = upstream_json(m, 0);
    assert_eq!(m.received()[0].path, "/v1/chat/completions");
    assert_eq!(plain["model"], "gpt-4o");
    assert_eq!(plain["max_tokens"], 256);
    assert_eq!(
        plain["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ])
    );
    assert!(plain.get("stream").is_none() || plain["stream"] == false);
    let streamed = upstream_json(m, 1);
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn the_raw_stream_is_anthropics_event_sequence() {
    let s = setup(&[OPENAI]).await;
    s.mock(0)
        .push(stream_reply("gpt-4o-2024-08-06", &["Hi", " you"]));
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("x-understudy-provider"), Some("oai"));
    let evs = events(&r);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let evs: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n != "ping")
        .map(|(_, d)| d)
        .collect();
    let start = &evs[0]["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    assert_eq!(evs[1]["content_block"], json!({"type": "text", "text": ""}));
    assert_eq!(evs[1]["index"], 0);
    assert_eq!(evs[2]["delta"], json!({"type": "text_delta", "text": "Hi"}));
    assert_eq!(evs[3]["delta"]["text"], " you");
    assert_eq!(evs[4]["index"], 0);
    assert_eq!(evs[5]["delta"]["stop_reason"], "end_turn");
    assert_eq!(evs[5]["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn an_anthropic_target_receives_an_anthropic_request_and_answers() {
    let s = setup(&[ANTHROPIC]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, ANT_TEXT_JSON));
    m.push(sse(ANT_TEXT_SSE));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "Hello! How can I help you today?");
    assert_eq!(r["model"], CLAUDE);
    assert_eq!(r["stop_reason"], "end_turn");
    assert_eq!(r["usage"]["input_tokens"], 12);
    assert_eq!(r["usage"]["output_tokens"], 38);
    assert_eq!(r["headers"]["x-understudy-provider"], "ant");
    let st = &results[1];
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["text"], "Hello! How can I help you today? ✓ héllo");
    assert_eq!(st["model"], CLAUDE);
    assert_eq!(st["stop_reason"], "end_turn");
    assert_eq!(st["usage"]["output_tokens"], 15);
    assert_eq!(st["usage"]["input_tokens"], 21, "{st}");

    for (i, got) in m.received().iter().enumerate() {
        assert_eq!(got.method, "POST");
        assert!(got.path.starts_with("/v1/messages"), "{}", got.path);
        assert_eq!(got.headers["x-api-key"], UPSTREAM, "the provider's key");
        assert!(
            !got.headers.values().any(|v| v.contains(CLIENT_KEY)),
            "the client's key stays at the proxy: {:?}",
            got.headers
        );
        assert!(
            !got.headers["anthropic-version"].is_empty(),
            "the client's anthropic-version goes upstream"
        );
        let body = got.json();
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["max_tokens"], 256);
        assert!(
            body["system"] == "Be brief."
                || body["system"] == json!([{"type": "text", "text": "Be brief."}]),
            "system as Anthropic's top-level field: {body}"
        );
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "{body}");
        assert_eq!(msgs[0]["role"], "user");
        let text = match &msgs[0]["content"] {
            Value::String(t) => t.clone(),
            Value::Array(b) => b[0]["text"].as_str().unwrap().to_string(),
            other => panic!("content: {other}"),
        };
        assert_eq!(text, "Say hello");
        assert_eq!(body["stream"] == true, i == 1, "{body}");
    }
    // the bodies the upstream got are valid for Anthropic's own SDK types
    let bodies: Vec<Value> = m.received().iter().map(|r| r.json()).collect();
    let check = sdk_one(
        &s.proxy,
        json!({"kind": "check_requests", "bodies": bodies}),
    )
    .await;
    assert_eq!(check["ok"], true, "{check}");
}

#[tokio::test]
async fn a_gemini_target_answers_plain_and_streamed_messages() {
    let s = setup(&[GEMINI]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, GEM_TEXT_JSON));
    m.push(sse(GEM_TEXT_SSE));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["text"],
        "Paris is the capital of France. It sits on the Seine."
    );
    assert_eq!(r["model"], "gemini-2.0-flash");
    assert_eq!(r["stop_reason"], "end_turn");
    assert_eq!(r["usage"]["input_tokens"], 9);
    assert_eq!(r["usage"]["output_tokens"], 14);
    assert_eq!(r["headers"]["x-understudy-provider"], "gem");
    let st = &results[1];
    assert_eq!(st["ok"], true, "{st}");
    assert!(
        st["text"]
            .as_str()
            .unwrap()
            .starts_with("Bonjour ! Le café est prêt ☕"),
        "{st}"
    );
    assert_eq!(st["stop_reason"], "end_turn");
    let got = m.received();
    assert_eq!(
        got[0].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        got[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let body = got[0].json();
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"], "Be brief.",
        "{body}"
    );
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(body["contents"][0]["parts"][0]["text"], "Say hello");
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
}

#[tokio::test]
async fn an_ollama_target_answers_plain_and_streamed_messages() {
    let s = setup(&[OLLAMA]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, OLLAMA_TEXT_JSON));
    m.push(Reply::split(
        200,
        "application/x-ndjson",
        OLLAMA_TEXT_NDJSON,
    ));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "The sky is blue because of Rayleigh scattering.");
    assert_eq!(r["model"], "llama3.2");
    assert_eq!(r["stop_reason"], "end_turn");
    assert_eq!(r["usage"]["input_tokens"], 34);
    assert_eq!(r["usage"]["output_tokens"], 12);
    assert_eq!(r["headers"]["x-understudy-provider"], "local");
    let st = &results[1];
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["text"], "The sky is blue ✓");
    assert_eq!(st["stop_reason"], "end_turn");
    assert_eq!(st["usage"]["output_tokens"], 3);
    let got = m.received();
    assert_eq!(got[0].path, "/api/chat");
    let body = got[0].json();
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["stream"], false);
    assert_eq!(got[1].json()["stream"], true);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["messages"][1]["content"], "Say hello");
}

// ---------------------------------------------------------------------------------
// Tools

fn weather_tools() -> Value {
    json!([{
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }])
}

fn weather_request() -> Value {
    json!({
        "model": "default",
        "max_tokens": 512,
        "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    })
}

/// A chat completion that calls `get_weather` for Paris.
fn tool_call_completion() -> String {
    json!({
        "id": "chatcmpl-tool1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_paris", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    })
    .to_string()
}

#[tokio::test]
async fn a_tool_round_trip_through_an_openai_target() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, tool_call_completion()));
    m.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Sunny, 21°C."),
    ));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "21°C and sunny"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let first = &r["first"];
    assert_eq!(first["stop_reason"], "tool_use");
    assert_eq!(
        first["tool_uses"],
        json!([{"id": "call_paris", "name": "get_weather", "input": {"location": "Paris"}}])
    );
    assert_eq!(r["second"]["text"], "Sunny, 21°C.");
    assert_eq!(r["second"]["stop_reason"], "end_turn");

    let one = upstream_json(m, 0);
    assert_eq!(
        one["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": weather_tools()[0]["input_schema"]}}])
    );
    let two = upstream_json(m, 1);
    let msgs = two["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{two}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"][0]["text"], "Weather in Paris?");
    assert_eq!(msgs[1]["role"], "assistant");
    let call = &msgs[1]["tool_calls"][0];
    assert_eq!(call["id"], "call_paris");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": "call_paris", "content": "21°C and sunny"})
    );
}

#[tokio::test]
async fn a_tool_round_trip_through_an_anthropic_target() {
    let s = setup(&[ANTHROPIC]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, ANT_TOOL_USE_JSON));
    m.push(Reply::json(200, ANT_TEXT_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "21°C", "get_time": "14:00"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let first = &r["first"];
    assert_eq!(first["stop_reason"], "tool_use");
    assert_eq!(
        first["block_types"],
        json!(["text", "tool_use", "tool_use", "tool_use"])
    );
    assert_eq!(first["tool_uses"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        first["tool_uses"][1]["input"],
        json!({"location": "Tokyo, Japan", "unit": "celsius"})
    );
    assert_eq!(first["tool_uses"][2]["input"], json!({}));
    assert_eq!(r["second"]["text"], "Hello! How can I help you today?");

    let bodies: Vec<Value> = m.received().iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["tools"][0]["name"], "get_weather");
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"],
        weather_tools()[0]["input_schema"]
    );
    // The second turn holds the user's text, the assistant's tool_use blocks and one
    // user turn of tool_result blocks.
    let msgs = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{}", bodies[1]);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["role"], "assistant");
    let uses: Vec<&Value> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 3, "{}", msgs[1]);
    assert_eq!(uses[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(uses[0]["name"], "get_weather");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(uses[2]["input"], json!({}));
    assert_eq!(msgs[2]["role"], "user");
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{}", msgs[2]);
    assert!(results.iter().all(|b| b["type"] == "tool_result"));
    assert_eq!(results[0]["tool_use_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(results[2]["tool_use_id"], "toolu_01CdXd3cMv4aK1AqZ7pW9sRt");
    let text = |b: &Value| match &b["content"] {
        Value::String(t) => t.clone(),
        Value::Array(parts) => parts[0]["text"].as_str().unwrap().to_string(),
        other => panic!("tool_result content: {other}"),
    };
    assert_eq!(text(&results[0]), "21°C");
    assert_eq!(text(&results[2]), "14:00");
    let check = sdk_one(
        &s.proxy,
        json!({"kind": "check_requests", "bodies": bodies}),
    )
    .await;
    assert_eq!(check["ok"], true, "{check}");
}

#[tokio::test]
async fn a_tool_round_trip_through_a_gemini_target() {
    let s = setup(&[GEMINI]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, GEM_CALLS_JSON));
    m.push(Reply::json(200, GEM_TEXT_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "mild", "get_time": "noon"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let uses = r["first"]["tool_uses"].as_array().unwrap();
    assert_eq!(uses.len(), 3, "{r}");
    assert_eq!(r["first"]["stop_reason"], "tool_use");
    let ids: std::collections::HashSet<&str> =
        uses.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "unique ids for Gemini's calls: {r}");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris", "unit": "celsius"})
    );
    // the function responses go back named after the calls they answer
    let two = upstream_json(m, 1);
    let turns = two["contents"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{two}");
    assert_eq!(turns[1]["role"], "model");
    assert_eq!(turns[1]["parts"].as_array().unwrap().len(), 3);
    assert_eq!(turns[2]["role"], "user");
    let names: Vec<&str> = turns[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_weather", "get_time"]);
}

#[tokio::test]
async fn streamed_tool_use_arrives_as_input_json_deltas() {
    let s = setup(&[OPENAI, ANTHROPIC]).await;
    let (oai, ant) = (s.mock(0), s.mock(1));
    let m = "gpt-4o-2024-08-06";
    let datas = [
        chunk(
            m,
            json!({"role": "assistant", "content": "Let me check."}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
            None,
        ),
        chunk(m, json!({}), Some("tool_calls")),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    oai.push(Reply::sse(&refs));
    // the OpenAI lead is overloaded for the second request: Anthropic's stream answers
    oai.push(Reply::json(503, r#"{"error":{"message":"busy"}}"#));
    ant.push(sse(ANT_TOOL_USE_SSE));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "stream", "request": weather_request()},
            {"kind": "stream", "request": weather_request()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(r["block_types"], json!(["text", "tool_use", "tool_use"]));
    assert_eq!(r["text"], "Let me check.");
    assert_eq!(
        r["tool_uses"],
        json!([
            {"id": "call_a", "name": "get_weather", "input": {"location": "Paris"}},
            {"id": "call_b", "name": "get_time", "input": {}},
        ])
    );
    let deltas: Vec<&Value> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_delta" && e["delta"]["type"] == "input_json_delta")
        .collect();
    assert!(deltas.len() >= 2, "{r}");
    assert!(deltas.iter().all(|d| d["index"] != 0), "not the text block");

    let a = &results[1];
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["headers"]["x-understudy-provider"], "ant");
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(a["text"], "I'll check the weather in both cities.");
    assert_eq!(a["tool_uses"][0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(
        a["tool_uses"][0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(
        a["tool_uses"][1]["input"],
        json!({"location": "Tokyo, Japan", "unit": "celsius"})
    );
}

// ---------------------------------------------------------------------------------
// Failover

#[tokio::test]
async fn an_overloaded_lead_fails_over_silently_before_content() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(Reply::json(529, ANT_OVERLOADED));
    ant.push(Reply::json(529, ANT_OVERLOADED));
    oai.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "From the backup"),
    ));
    oai.push(stream_reply("gpt-4o-2024-08-06", &["From", " the backup"]));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["text"], "From the backup");
        assert_eq!(r["model"], "gpt-4o-2024-08-06");
        assert_eq!(r["headers"]["x-understudy-provider"], "oai", "{r}");
        assert_eq!(r["headers"]["x-understudy-model"], "gpt-4o");
        assert_eq!(r["headers"]["x-understudy-attempts"], "2");
    }
    assert_eq!(ant.count(), 2);
    assert_eq!(oai.count(), 2);
}

#[tokio::test]
async fn an_error_event_before_content_fails_over_silently() {
    // Anthropic's overloaded_error inside a 200 stream, before any content.
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(sse(concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01early","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#,
        "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: error\n",
        r#"data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        "\n\n"
    )));
    oai.push(stream_reply("gpt-4o-2024-08-06", &["backup"]));
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("oai"));
    let evs = events(&r);
    assert_eq!(
        evs.iter().filter(|(n, _)| n == "message_start").count(),
        1,
        "one message_start: {}",
        r.text()
    );
    assert!(evs.iter().all(|(n, _)| n != "error"), "{}", r.text());
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "backup");
}

/// A stream that sends `Hel` and then breaks.
fn broken_openai_stream() -> Reply {
    let mut r = stream_reply("gpt-4o-2024-08-06", &["Hel", "lo"]);
    r.events.truncate(2);
    r.end(End::Drop)
}

#[tokio::test]
async fn a_failure_after_content_ends_the_stream_with_an_error_event() {
    let s = setup(&[OPENAI, ANTHROPIC]).await;
    let (oai, ant) = (s.mock(0), s.mock(1));
    oai.push(broken_openai_stream());
    oai.push(broken_openai_stream());
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200);
    let evs = events(&r);
    let names = names(&evs);
    assert_eq!(
        &names[..3],
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ],
        "{}",
        r.text()
    );
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "error", "the error event is the last: {}", r.text());
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error", "{data}");
    assert!(data["error"]["message"].is_string(), "{data}");
    assert!(
        !names.contains(&"message_stop"),
        "no message_stop after a failure: {}",
        r.text()
    );
    // the SDK sees the text, then raises
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["error"], "APIStatusError", "{sdk}");
    assert!(sdk["type"].is_string(), "{sdk}");
    let got: String = sdk["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, "Hel");
    assert_eq!(ant.count(), 0, "no failover after content");
}

#[tokio::test]
async fn an_upstream_error_event_after_content_reaches_the_client() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(sse(ANT_ERROR_MIDSTREAM_SSE));
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["error"], "APIStatusError", "{sdk}");
    assert!(sdk["type"].is_string(), "{sdk}");
    let got: String = sdk["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, "The three primary colors are red,");
    assert_eq!(oai.count(), 0, "no failover after content");
}

#[tokio::test]
async fn an_upstream_overloaded_error_after_content_keeps_its_type() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(sse(ANT_ERROR_MIDSTREAM_SSE));
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["type"], "overloaded_error", "{sdk}");
}

// ---------------------------------------------------------------------------------
// Errors in Anthropic's shape, and the SDK's exception classes

#[tokio::test]
async fn every_target_overloaded_is_a_529_overloaded_error() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).always(Reply::json(529, ANT_OVERLOADED));
    s.mock(1)
        .always(Reply::json(529, r#"{"error":{"message":"overloaded"}}"#));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(anthropic_error(&r), "overloaded_error");
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for e in &results {
        assert_eq!(e["ok"], false, "{e}");
        assert_eq!(e["status"], 529);
        assert_eq!(e["error"], "OverloadedError", "{e}");
        assert!(
            e["bases"]
                .as_array()
                .unwrap()
                .contains(&json!("InternalServerError")),
            "{e}"
        );
        assert_eq!(e["type"], "overloaded_error");
    }
}

#[tokio::test]
async fn a_rate_limit_is_a_429_rate_limit_error_with_retry_after() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0)
        .always(Reply::json(429, ANT_RATE_LIMIT).header("retry-after", "30"));
    s.mock(1).always(
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "30"),
    );
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(anthropic_error(&r), "rate_limit_error");
    let secs: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("whole seconds");
    assert!((1..=30).contains(&secs), "{secs}");
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for e in &results {
        assert_eq!(e["error"], "RateLimitError", "{e}");
        assert_eq!(e["status"], 429);
        assert_eq!(e["type"], "rate_limit_error");
        assert!(e["retry_after"].is_string(), "{e}");
    }
}

#[tokio::test]
async fn server_errors_everywhere_are_an_api_error() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).always(Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
    ));
    s.mock(1)
        .always(Reply::json(502, r#"{"error":{"message":"bad gateway"}}"#));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert!(
        r.status >= 500 && r.status != 529,
        "{} {}",
        r.status,
        r.text()
    );
    assert_eq!(anthropic_error(&r), "api_error");
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": hello()})).await;
    assert!(
        e["bases"]
            .as_array()
            .unwrap()
            .contains(&json!("InternalServerError")),
        "{e}"
    );
    assert_eq!(e["type"], "api_error");
}

#[tokio::test]
async fn an_unknown_model_is_a_not_found_error() {
    let s = setup(&[OPENAI]).await;
    let mut req = hello();
    req["model"] = json!("no-such-model");
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(anthropic_error(&r), "not_found_error");
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": req})).await;
    assert_eq!(e["error"], "NotFoundError", "{e}");
    assert_eq!(e["type"], "not_found_error");
    assert_eq!(s.mock(0).count(), 0);
}

#[tokio::test]
async fn client_keys_come_as_x_api_key_or_bearer_and_a_wrong_one_is_401() {
    let s = setup(&[OPENAI]).await;
    s.mock(0)
        .always(Reply::json(200, completion("gpt-4o", "ok")));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": hello(), "auth": "bearer"},
            {"kind": "create", "request": hello(), "api_key": "wrong-key"},
            {"kind": "stream", "request": hello(), "api_key": "wrong-key"},
            {"kind": "create", "request": hello(), "auth": "bearer", "api_key": "wrong-key"},
        ]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "x-api-key: {}", results[0]);
    assert_eq!(results[1]["ok"], true, "bearer: {}", results[1]);
    for e in &results[2..] {
        assert_eq!(e["error"], "AuthenticationError", "{e}");
        assert_eq!(e["status"], 401);
        assert_eq!(e["type"], "authentication_error");
    }
    assert_eq!(s.mock(0).count(), 2);
    // raw: no key at all, and a wrong x-api-key
    let none = post(&s.proxy, &[("anthropic-version", "2023-06-01")], &hello()).await;
    assert_eq!(none.status, 401);
    assert_eq!(anthropic_error(&none), "authentication_error");
    let wrong = post(&s.proxy, &[("x-api-key", "nope")], &hello()).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(anthropic_error(&wrong), "authentication_error");
    assert!(!wrong.text().contains("nope"), "the key is not echoed");
}

#[tokio::test]
async fn a_block_no_target_can_express_is_a_400_before_any_call() {
    let s = setup(&[OPENAI, GEMINI]).await;
    let document = json!({
        "model": "default",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A contract."}},
            {"type": "text", "text": "Summarise it."},
        ]}],
    });
    let r = post_as_sdk(&s.proxy, &document).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert!(
        r.text().contains("document"),
        "names the block: {}",
        r.text()
    );
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": document})).await;
    assert_eq!(e["error"], "BadRequestError", "{e}");
    assert_eq!(e["type"], "invalid_request_error");
    let mut streamed = document.clone();
    streamed["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &streamed).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(s.mock(0).count() + s.mock(1).count(), 0, "no upstream call");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_errors() {
    let s = setup(&[OPENAI]).await;
    let cases = [
        json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "default", "max_tokens": 10, "messages": []}),
        json!({"model": "default", "max_tokens": 10, "messages": "hi"}),
        json!({"model": "default", "max_tokens": 10, "messages": [{"role": "robot", "content": "hi"}]}),
        json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": [{"text": "untyped"}]}]}),
        json!({"model": "default", "max_tokens": 10, "tool_choice": {"type": "sometimes"},
               "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for body in &cases {
        let r = post_as_sdk(&s.proxy, body).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text());
        assert_eq!(anthropic_error(&r), "invalid_request_error", "{body}");
    }
    let r = send(
        &s.proxy.url("/v1/messages"),
        "POST",
        &[("x-api-key", CLIENT_KEY)],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert_eq!(s.mock(0).count(), 0);
}

// ---------------------------------------------------------------------------------
// Models, translation details

#[tokio::test]
async fn models_list_answers_in_anthropics_shape_for_the_sdk() {
    let s = setup(&[OPENAI]).await;
    let r = sdk_one(&s.proxy, json!({"kind": "models"})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["ids"], json!(["default"]));
    let m = &r["data"][0];
    assert_eq!(m["type"], "model");
    assert!(m["display_name"].is_string());
    assert!(m["created_at"].is_string());
    // raw: Anthropic's list with anthropic-version, OpenAI's without
    let ant = send(
        &s.proxy.url("/v1/models"),
        "GET",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        "",
    )
    .await
    .json();
    assert_eq!(ant["has_more"], false);
    assert_eq!(ant["first_id"], "default");
    assert_eq!(ant["last_id"], "default");
    let oai = send(
        &s.proxy.url("/v1/models"),
        "GET",
        &[("authorization", "Bearer client-key")],
        "",
    )
    .await
    .json();
    assert_eq!(oai["object"], "list");
}

#[tokio::test]
async fn every_model_entry_validates_as_the_sdks_model_info() {
    let s = setup(&[OPENAI]).await;
    let r = sdk_one(&s.proxy, json!({"kind": "models"})).await;
    assert_eq!(r["ok"], true, "{r}");
    for m in r["data"].as_array().unwrap() {
        assert_eq!(m["_valid"], true, "ModelInfo rejects {m}");
    }
}

#[tokio::test]
async fn request_fields_reach_an_openai_target_translated() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.always(Reply::json(200, completion("gpt-4o", "ok")));
    let body = json!({
        "model": "default",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": " Rule two."}],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "tools": weather_tools(),
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                 "content": [{"type": "text", "text": "city unknown"}]},
                {"type": "text", "text": "Try again."},
            ]},
        ],
    });
    let r = post_as_sdk(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = upstream_json(m, 0);
    assert_eq!(up["max_tokens"], 300);
    assert_eq!(up["temperature"], 0.5);
    assert_eq!(up["top_p"], 0.9);
    assert_eq!(up["stop"], json!(["END"]));
    assert_eq!(up["user"], "user-42");
    assert_eq!(up["reasoning_effort"], "medium");
    assert_eq!(up["tool_choice"], "required");
    assert_eq!(up["parallel_tool_calls"], false);
    let msgs = up["messages"].as_array().unwrap();
    assert_eq!(
        msgs[0],
        json!({"role": "system", "content": "Rule one. Rule two."})
    );
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    );
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "toolu_1");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("city unknown"),
        "{}",
        msgs[3]
    );
    assert_eq!(msgs[4]["role"], "user");
    assert_eq!(msgs.len(), 5, "{up}");
    let named = json!({"model": "default", "max_tokens": 10, "tools": weather_tools(),
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post_as_sdk(&s.proxy, &named).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream_json(m, 1)["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[tokio::test]
async fn finish_reasons_become_anthropic_stop_reasons() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    let with_finish = |finish: &str| {
        let mut c: Value = serde_json::from_str(&completion("gpt-4o", "text")).unwrap();
        c["choices"][0]["finish_reason"] = json!(finish);
        Reply::json(200, c.to_string())
    };
    m.push(with_finish("length"));
    m.push(with_finish("content_filter"));
    m.push(with_finish("stop"));
    let mut stopped = hello();
    stopped["stop_sequences"] = json!(["STOP"]);
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": stopped},
        ]),
    )
    .await;
    assert_eq!(results[0]["stop_reason"], "max_tokens", "{}", results[0]);
    assert_eq!(results[1]["stop_reason"], "refusal", "{}", results[1]);
    assert!(
        ["end_turn", "stop_sequence"].contains(&results[2]["stop_reason"].as_str().unwrap()),
        "{}",
        results[2]
    );
}

#[tokio::test]
async fn claude_codes_beta_query_and_headers_are_accepted() {
    let s = setup(&[OPENAI]).await;
    s.mock(0)
        .always(Reply::json(200, completion("gpt-4o", "ok")));
    let r = send(
        &s.proxy.url("/v1/messages?beta=true"),
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
        hello().to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "ok");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn anthropic_usage_keeps_cache_reads_and_writes_apart() {
    // response_tool_use.json: input 420, cache_creation 1500, cache_read 2000.
    let s = setup(&[ANTHROPIC]).await;
    s.mock(0).push(Reply::json(200, ANT_TOOL_USE_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "create", "request": weather_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let u = &r["usage"];
    assert_eq!(u["output_tokens"], 151, "{u}");
    assert_eq!(u["cache_read_input_tokens"], 2000, "{u}");
    assert_eq!(u["cache_creation_input_tokens"], 1500, "{u}");
    assert_eq!(u["input_tokens"], 420, "{u}");
}

// ---------------------------------------------------------------------------------
// What real clients send, and the rest of §8

#[tokio::test]
async fn an_upstream_400_is_an_invalid_request_error_without_failover() {
    let s = setup(&[OPENAI, GEMINI]).await;
    s.mock(0).push(Reply::json(
        400,
        r#"{"error":{"message":"max_tokens is too large: 128000. This model supports at most 16384 completion tokens.","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}"#,
    ));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens is too large"),
        "the provider's message: {}",
        r.text()
    );
    assert_eq!(s.mock(1).count(), 0, "no failover on a bad request");
}

#[tokio::test]
async fn a_body_over_the_limit_is_request_too_large() {
    let s = setup_with(&[OPENAI], "max_body_bytes = 2000").await;
    let mut req = hello();
    req["messages"][0]["content"] = json!("x".repeat(5000));
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(anthropic_error(&r), "request_too_large");
    assert_eq!(s.mock(0).count(), 0);
}

#[tokio::test]
async fn wrong_methods_and_paths_under_v1_messages_answer_in_anthropics_shape() {
    let s = setup(&[OPENAI]).await;
    let r = send(
        &s.proxy.url("/v1/messages"),
        "GET",
        &[("x-api-key", CLIENT_KEY)],
        "",
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text());
    anthropic_error(&r);
    assert!(r.header("allow").unwrap().contains("POST"));
    let r = post_as_sdk_to(&s.proxy, "/v1/messages/batches", &hello()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(anthropic_error(&r), "not_found_error");
}

async fn post_as_sdk_to(p: &Proxy, path: &str, body: &Value) -> Resp {
    send(
        &p.url(path),
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn a_cached_answer_is_replayed_as_a_message_and_as_anthropic_events() {
    let s = setup_with(&[OPENAI], "[cache]\nenabled = true").await;
    s.mock(0).push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Cached words"),
    ));
    let mut req = hello();
    req["temperature"] = json!(0);
    let first = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    let again = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-understudy-cache"), Some("hit"));
    assert_eq!(again.json()["content"][0]["text"], "Cached words");
    assert_eq!(again.json()["type"], "message");
    req["stream"] = json!(true);
    let streamed = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(streamed.header("x-understudy-cache"), Some("hit"));
    let evs = events(&streamed);
    assert_eq!(names(&evs).first(), Some(&"message_start"));
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Cached words");
    assert_eq!(s.mock(0).count(), 1);
}

#[tokio::test]
async fn the_static_fallback_answers_as_an_anthropic_message() {
    let s = setup_with(&[OPENAI], "[fallback]\nmessage = \"Briefly unavailable.\"").await;
    s.mock(0)
        .always(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["text"], "Briefly unavailable.");
        assert_eq!(r["stop_reason"], "end_turn");
    }
    let raw = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(raw.header("x-understudy-degraded"), Some("static"));
}

#[tokio::test]
async fn a_system_message_inside_messages_is_accepted() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.always(Reply::json(200, completion("gpt-4o", "ok")));
    let body = json!({
        "model": "default",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say PONG"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\\ncwd: /tmp", "cache_control": {"type": "ephemeral"}}]},
        ],
    });
    let r = post_as_sdk(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = upstream_json(m, 0);
    let roles: Vec<&str> = up["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system"], "{up}");
}

#[tokio::test]
async fn count_tokens_without_an_anthropic_target_is_an_estimate() {
    let s = setup(&[OPENAI, GEMINI]).await;
    let body = json!({"model": "default", "system": "Be brief.", "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Count the tokens of this sentence, please."}]});
    let r = sdk_one(&s.proxy, json!({"kind": "count_tokens", "request": body})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["input_tokens"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["estimate"], "true");
    let short = json!({"model": "default", "messages": [{"role": "user", "content": "Hi"}]});
    let r2 = sdk_one(&s.proxy, json!({"kind": "count_tokens", "request": short})).await;
    assert!(
        r2["input_tokens"].as_u64().unwrap() < r["input_tokens"].as_u64().unwrap(),
        "more text, more tokens: {r2} vs {r}"
    );
    assert_eq!(
        s.mock(0).count() + s.mock(1).count(),
        0,
        "no provider asked"
    );
}

#[tokio::test]
async fn count_tokens_for_an_unknown_model_is_not_found() {
    let s = setup(&[OPENAI]).await;
    let unknown =
        json!({"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]});
    let e = sdk_one(
        &s.proxy,
        json!({"kind": "count_tokens", "request": unknown}),
    )
    .await;
    assert_eq!(e["error"], "NotFoundError", "{e}");
    assert_eq!(e["type"], "not_found_error");
}

#[tokio::test]
async fn an_anthropic_target_gets_the_clients_body_headers_and_query() {
    let s = setup(&[ANTHROPIC]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, ANT_TEXT_JSON));
    let body = json!({
        "model": "default",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A contract."}},
            {"type": "text", "text": "Summarise.", "cache_control": {"type": "ephemeral"}},
        ]}],
    });
    let r = send(
        &s.proxy.url("/v1/messages?beta=true"),
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "context-management-2025-06-27"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &m.received()[0];
    assert_eq!(got.path, "/v1/messages?beta=true");
    assert_eq!(
        got.headers.get("anthropic-beta").map(String::as_str),
        Some("context-management-2025-06-27")
    );
    assert_eq!(got.headers["x-api-key"], UPSTREAM, "the provider's key");
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(got.json(), expected, "only the model swapped");
    // and the answer comes back whole: the thinking block too
    let answer = r.json();
    assert_eq!(answer["content"], fixture_json(ANT_TEXT_JSON)["content"]);
    assert_eq!(answer["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
}

#[tokio::test]
async fn an_anthropic_targets_thinking_and_stop_sequence_reach_the_client() {
    let s = setup(&[ANTHROPIC]).await;
    let m = s.mock(0);
    m.push(sse(concat!(
        include_str!("../fixtures/anthropic/stream_thinking.sse"),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    )));
    let mut stopped: Value = fixture_json(ANT_TEXT_JSON);
    stopped["stop_reason"] = json!("stop_sequence");
    stopped["stop_sequence"] = json!("END");
    m.push(Reply::json(200, stopped.to_string()));
    let mut req = hello();
    req["thinking"] = json!({"type": "enabled", "budget_tokens": 2000});
    let mut with_stop = hello();
    with_stop["stop_sequences"] = json!(["END"]);
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "stream", "request": req},
            {"kind": "create", "request": with_stop},
        ]),
    )
    .await;
    let st = &results[0];
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["block_types"], json!(["thinking", "text"]), "{st}");
    assert_eq!(
        st["message"]["content"][0]["signature"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    );
    let r = &results[1];
    assert_eq!(r["stop_reason"], "stop_sequence", "{r}");
    assert_eq!(r["message"]["stop_sequence"], "END");
}

fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

#[tokio::test]
async fn a_native_answer_in_the_cache_serves_chat_and_messages_clients_alike() {
    let s = setup_with(&[ANTHROPIC], "[cache]\nenabled = true").await;
    s.mock(0).push(Reply::json(200, ANT_TEXT_JSON));
    let mut req = hello();
    req["temperature"] = json!(0);
    let first = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    // the same conversation from a chat-completions client
    let chat = json!({
        "model": "default", "max_tokens": 256, "temperature": 0,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ],
    });
    let c = s.proxy.chat_as(CLIENT_KEY, chat).await;
    assert_eq!(c.status, 200, "{}", c.text());
    let body = c.json();
    assert_eq!(body["object"], "chat.completion", "a chat answer: {body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    // and streamed to a Messages client
    req["stream"] = json!(true);
    let st = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(st.header("x-understudy-cache"), Some("hit"));
    let text: String = events(&st)
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    assert_eq!(s.mock(0).count(), 1);
}

#[tokio::test]
async fn a_native_stream_that_breaks_after_content_ends_with_an_error_event() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    // stream_text.sse up to its first text delta, then the connection drops
    let cut = ANT_TEXT_SSE.find("\"Hello\"").unwrap();
    let cut = cut + ANT_TEXT_SSE[cut..].find("\n\n").unwrap() + 2;
    ant.push(Reply::raw(200, "text/event-stream", &[&ANT_TEXT_SSE[..cut]]).end(End::Drop));
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200);
    let evs = events(&r);
    let names = names(&evs);
    assert_eq!(
        names.iter().filter(|n| **n == "message_start").count(),
        1,
        "{}",
        r.text()
    );
    assert!(names.contains(&"content_block_delta"), "{}", r.text());
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "error", "the error event is the last: {}", r.text());
    assert_eq!(data["type"], "error");
    assert!(data["error"]["type"].is_string(), "{data}");
    assert!(!names.contains(&"message_stop"), "{}", r.text());
    assert_eq!(oai.count(), 0, "no failover after content");
}

#[tokio::test]
async fn an_anthropic_400_reaches_the_client_as_it_was_without_failover() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(Reply::json(
        400,
        include_str!("../fixtures/anthropic/error_invalid_request.json"),
    ));
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": hello()})).await;
    assert_eq!(e["error"], "BadRequestError", "{e}");
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Input should be a valid dictionary"),
        "the provider's message: {e}"
    );
    assert_eq!(s.mock(1).count(), 0, "no failover on a bad request");
}

#[tokio::test]
async fn a_bad_provider_key_fails_over_and_the_client_never_sees_it() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(Reply::json(
        401,
        include_str!("../fixtures/anthropic/error_authentication.json"),
    ));
    s.mock(1).push(stream_reply("gpt-4o-2024-08-06", &["fine"]));
    let r = sdk_one(&s.proxy, json!({"kind": "stream", "request": hello()})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "fine");
    assert_eq!(r["headers"]["x-understudy-provider"], "oai");
    assert_eq!(r["headers"]["x-understudy-attempts"], "2");
}

#[tokio::test]
async fn gemini_streamed_function_calls_arrive_as_tool_use_blocks() {
    let s = setup(&[GEMINI]).await;
    s.mock(0).push(sse(include_str!(
        "../fixtures/gemini/stream_function_calls.sse"
    )));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "stream", "request": weather_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["text"], "I will look both up.",
        "no thoughts in the text: {r}"
    );
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(
        r["block_types"],
        json!(["text", "tool_use", "tool_use", "tool_use"])
    );
    let uses = r["tool_uses"].as_array().unwrap();
    assert_eq!(uses[0]["name"], "get_weather");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris", "unit": "celsius"})
    );
    assert_eq!(
        uses[1]["input"],
        json!({"location": "London", "unit": "celsius"})
    );
    assert_eq!(uses[2]["name"], "get_time");
    assert_eq!(uses[2]["input"], json!({}));
    let ids: std::collections::HashSet<&str> =
        uses.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "unique ids: {r}");
    // every block index is opened once, in order, and closed
    let starts: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0, 1, 2, 3]);
    let stops = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_stop")
        .count();
    assert_eq!(stops, 4);
}
