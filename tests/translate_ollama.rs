//! The Ollama adapter end to end: the official `openai` SDK talks to the proxy, a
//! mock speaking Ollama's native `/api/chat` replays the fixtures in
//! `fixtures/ollama/` (JSON and NDJSON, cut into pieces of odd sizes), and the tests
//! check what the SDK reassembles and what the mock received.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const CLIENT_KEY: &str = "client-key";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/ollama/", $name))
    };
}

fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn ndjson(text: &str) -> Reply {
    Reply::split(200, "application/x-ndjson", text)
}

fn json_reply(status: u16, text: &str) -> Reply {
    Reply::split(status, "application/json; charset=utf-8", text)
}

/// An Ollama lead at `ollama_url` (`local/llama3.2`, no key) and an OpenAI-kind
/// backup. A target cooled without a retry hint stays cool for ten minutes (the default
/// 30 s could run out during a slow SDK run).
async fn setup_at(ollama_url: &str) -> (Mock, Proxy) {
    let backup = Mock::start().await;
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[failover]
default_cooldown = "10m"
[providers.local]
kind = "ollama"
base_url = "{ollama_url}"
[providers.backup]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_KEY"
[[routes]]
model = "default"
targets = ["local/llama3.2", "backup/gpt-4o"]
"#,
        backup.url()
    );
    let p = Proxy::start(
        &toml,
        &[("CLIENT_KEYS", CLIENT_KEY), ("OPENAI_KEY", "sk-openai")],
    )
    .await;
    (backup, p)
}

async fn setup() -> (Mock, Mock, Proxy) {
    let ollama = Mock::start().await;
    let (backup, p) = setup_at(&ollama.url()).await;
    (ollama, backup, p)
}

async fn chat(p: &Proxy, body: Value) -> Resp {
    p.chat_as(CLIENT_KEY, body).await
}

/// `POST /api/chat`, no key configured so none sent, and never the client's.
fn assert_api_chat(got: &Received) {
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/api/chat");
    assert!(!got.headers.contains_key("authorization"), "{got:?}");
    for (k, v) in &got.headers {
        assert!(!v.contains(CLIENT_KEY), "client key leaked in {k}");
    }
}

/// `call_` ids, all different.
fn assert_unique_call_ids(calls: &[Value]) {
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(
            id.starts_with("call_") && id.len() > 5,
            "generated id: {id}"
        );
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "unique ids: {ids:?}");
}

/// (name, parsed arguments) of each call; the arguments must be valid JSON text.
fn names_and_args(calls: &[Value]) -> Vec<(String, Value)> {
    calls
        .iter()
        .map(|c| {
            let args = c["arguments"].as_str().expect("arguments are a string");
            let parsed: Value = serde_json::from_str(args)
                .unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {args}"));
            (c["name"].as_str().unwrap().to_string(), parsed)
        })
        .collect()
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "format": {"type": "string"}}, "required": ["location"]}}},
        {"type": "function", "function": {"name": "get_time"}}
    ])
}

fn question(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn the_sdk_gets_plain_answers_and_tool_calls() {
    let (ollama, backup, p) = setup().await;
    ollama.push(json_reply(200, fixture!("response_text.json")));
    ollama.push(json_reply(200, fixture!("response_tool_calls.json")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "complete", "request": {"model": "default", "messages": question("Why is the sky blue?")}},
            {"kind": "complete", "request": {"model": "default", "messages": question("Weather in Paris and Tokyo?"), "tools": weather_tools()}},
        ]),
    )
    .await;

    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["content"],
        "The sky is blue because of Rayleigh scattering."
    );
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["model"], "llama3.2");
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"), "{r}");
    assert_eq!(r["tool_calls"], json!([]));
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": 34, "completion_tokens": 12, "total_tokens": 46})
    );
    assert_eq!(r["headers"]["x-understudy-provider"], "local");
    assert_eq!(r["headers"]["x-understudy-model"], "llama3.2");
    assert_eq!(r["headers"]["x-understudy-attempts"], "1");

    let t = &results[1];
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["finish_reason"], "tool_calls");
    assert!(t["content"].is_null(), "{t}");
    let calls = t["tool_calls"].as_array().unwrap();
    assert_unique_call_ids(calls);
    assert_eq!(
        names_and_args(calls),
        vec![
            (
                "get_current_weather".to_string(),
                json!({"format": "celsius", "location": "Paris, FR"})
            ),
            (
                "get_current_weather".to_string(),
                json!({"format": "celsius", "location": "Tokyo, JP"})
            ),
        ]
    );
    assert_eq!(t["usage"]["total_tokens"], 122 + 33);

    let got = ollama.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_api_chat(g);
        assert_eq!(g.json()["stream"], false, "stream false, sent explicitly");
        assert_eq!(g.json()["model"], "llama3.2");
    }
    assert_eq!(
        got[1].json()["tools"][1],
        json!({"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}})
    );
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_text_exactly() {
    let (ollama, backup, p) = setup().await;
    ollama.push(ndjson(fixture!("stream_text.ndjson")));
    ollama.push(ndjson(fixture!("stream_text.ndjson")));
    let msgs = question("Why is the sky blue?");
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "stream", "request": {"model": "default", "messages": msgs, "stream_options": {"include_usage": true}}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs}},
        ]),
    )
    .await;
    let mut ids = Vec::new();
    for (i, s) in results.iter().enumerate() {
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(s["content"], "The sky is blue ✓", "scenario {i}");
        assert_eq!(s["finish_reason"], "stop", "scenario {i}");
        assert_eq!(s["tool_calls"], json!([]));
        assert_eq!(s["models"], json!(["llama3.2"]), "one model: {s}");
        let one = s["ids"].as_array().unwrap();
        assert_eq!(one.len(), 1, "one id across chunks: {s}");
        assert!(one[0].as_str().unwrap().starts_with("chatcmpl-"));
        ids.push(one[0].clone());
    }
    assert_ne!(ids[0], ids[1], "each answer its own id");
    assert_eq!(
        results[0]["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29})
    );
    assert!(
        results[1]["usage"].is_null(),
        "no usage unless asked: {}",
        results[1]
    );

    let got = ollama.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_api_chat(g);
        assert_eq!(g.json()["stream"], true);
        assert!(
            g.json().get("stream_options").is_none(),
            "no OpenAI fields leak"
        );
    }
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_tool_calls_exactly() {
    let (ollama, _backup, p) = setup().await;
    ollama.push(ndjson(fixture!("stream_tool_call.ndjson")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("Weather in Paris, and the time?"), "tools": weather_tools(), "stream_options": {"include_usage": true}}}]),
    )
    .await;
    let s = &results[0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["content"], "", "thinking is not answer text");
    assert_eq!(s["finish_reason"], "tool_calls");
    assert_eq!(s["tool_call_indices"], json!([0, 1]));
    let calls = s["tool_calls"].as_array().unwrap();
    assert_unique_call_ids(calls);
    assert_eq!(
        names_and_args(calls),
        vec![
            (
                "get_current_weather".to_string(),
                json!({"format": "celsius", "location": "Paris, FR"})
            ),
            ("get_time".to_string(), json!({})),
        ]
    );
    assert_eq!(s["models"], json!(["qwen3:8b"]));
    assert_eq!(s["ids"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["usage"],
        json!({"prompt_tokens": 190, "completion_tokens": 41, "total_tokens": 231})
    );
}

#[tokio::test]
async fn requests_reach_ollama_translated_exactly() {
    let (ollama, _backup, p) = setup().await;
    for name in ["request_plain", "request_tools", "request_multimodal"] {
        let pair = match name {
            "request_plain" => fixture_json(fixture!("request_plain.json")),
            "request_tools" => fixture_json(fixture!("request_tools.json")),
            _ => fixture_json(fixture!("request_multimodal.json")),
        };
        let mut openai = pair["openai"].clone();
        let want = &pair["ollama"];
        // the direct `PROVIDER/MODEL` form reaches the fixture's model
        openai["model"] = json!(format!("local/{}", want["model"].as_str().unwrap()));
        let streamed = openai["stream"] == true;
        ollama.push(if streamed {
            ndjson(fixture!("stream_text.ndjson"))
        } else {
            json_reply(200, fixture!("response_text.json"))
        });
        let r = chat(&p, openai).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        if streamed {
            assert!(r.text().ends_with("data: [DONE]\n\n"), "{name}");
        }
        let got = ollama.received().pop().unwrap();
        assert_api_chat(&got);
        assert_eq!(&got.json(), want, "{name}");
    }
    // tool results are named after the call they answer
    let tools_body = ollama.received()[1].json();
    let names: Vec<&Value> = tools_body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| &m["tool_name"])
        .collect();
    assert_eq!(
        names,
        ["get_current_weather", "get_current_weather", "get_time"]
    );
}

#[tokio::test]
async fn a_model_that_is_not_pulled_fails_over() {
    let (ollama, backup, p) = setup().await;
    ollama.push(json_reply(404, fixture!("error_model_not_found.json")));
    backup.push(Reply::json(200, completion("gpt-4o", "from backup")));
    backup.push(stream_reply("gpt-4o", &["from", " backup"]));
    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from backup");
    // the missing model cools like a rate-limited one: the second request skips it
    assert_eq!((ollama.count(), backup.count()), (1, 2));

    // with nowhere to go, the client reads Ollama's message
    ollama.push(json_reply(404, fixture!("error_model_not_found.json")));
    let r = chat(
        &p,
        json!({"model": "local/qwen3", "messages": question("hi")}),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("not found, try pulling it first"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn an_ollama_that_is_not_running_fails_over() {
    let (backup, p) = setup_at(&refused_url().await).await;
    backup.push(Reply::json(200, completion("gpt-4o", "from backup")));
    backup.push(stream_reply("gpt-4o", &["from", " backup"]));
    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let r = chat(&p, user_stream("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert!(r.text().contains("backup"), "{}", r.text());
    assert_eq!(backup.count(), 2);
}

#[tokio::test]
async fn n_above_one_goes_to_a_target_that_can_else_400_before_any_call() {
    let (ollama, backup, p) = setup().await;
    ollama.always(json_reply(200, fixture!("response_text.json")));
    backup.always(Reply::json(200, completion("gpt-4o", "n=2 is fine here")));
    let r = chat(
        &p,
        json!({"model": "default", "n": 2, "messages": question("hi")}),
    )
    .await;
    assert_eq!(
        r.header("x-understudy-provider"),
        Some("backup"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    for stream in [false, true] {
        let r = chat(
            &p,
            json!({"model": "local/llama3.2", "n": 2, "stream": stream, "messages": question("hi")}),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text());
        let err = &r.json()["error"];
        assert_eq!(err["type"], "invalid_request_error", "{err}");
        assert!(err["message"].as_str().unwrap().contains("'n'"), "{err}");
    }
    assert_eq!((ollama.count(), backup.count()), (0, 1));
}

#[tokio::test]
async fn an_error_line_after_content_reaches_the_sdk_as_an_error() {
    let (ollama, backup, p) = setup().await;
    ollama.push(ndjson(fixture!("stream_error.ndjson")));
    let r = chat(&p, user_stream("default")).await;
    assert_eq!(r.status, 200);
    let datas = r.sse_data();
    assert!(r.text().contains("\"Once\""), "{}", r.text());
    let last: Value = serde_json::from_str(datas.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unexpected EOF"),
        "{last}"
    );
    assert!(!datas.iter().any(|d| d == "[DONE]"), "{datas:?}");

    ollama.push(ndjson(fixture!("stream_error.ndjson")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], false, "{}", results[0]);
    assert_eq!(results[0]["error"], "APIError");
    assert_eq!(backup.count(), 0, "content was sent: no silent switch");
}

#[tokio::test]
async fn an_error_line_before_content_fails_over() {
    let (ollama, backup, p) = setup().await;
    let error_line = fixture!("stream_error.ndjson").lines().nth(1).unwrap();
    assert!(error_line.starts_with("{\"error\""), "{error_line}");
    ollama.push(ndjson(&format!("{error_line}\n")));
    backup.push(stream_reply("gpt-4o", &["from", " backup"]));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from backup");
    assert_eq!((ollama.count(), backup.count()), (1, 1));
}
