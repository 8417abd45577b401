//! Helpers shared by the Responses API tests (`frontdoor_responses*.rs`,
//! `sdk_responses.rs`): a proxy over mocks of any kind with client keys on, requests
//! to `/v1/responses`, an SSE reader that keeps `event:` names, OpenAI-kind mock
//! answers with tool calls, and runners for the real clients used as judges (the
//! `openai` Python SDK, openai-agents, the Vercel AI SDK under Node).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

pub const CLIENT_KEY: &str = "client-key";
pub const UPSTREAM_SECRET: &str = "sk-upstream-secret";

/// One provider of the test route: its name in proxy.toml, its kind, the mock behind
/// it and the model the route names for it.
pub struct Target<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub mock: &'a Mock,
    pub model: &'a str,
}

/// A proxy with client keys on (`CLIENT_KEY`) and one `default` route over
/// `targets` in order. `extra` goes at the top of the file (whole tables).
pub async fn proxy_over(targets: &[Target<'_>], extra: &str) -> Proxy {
    let mut toml = format!("[server]\napi_keys_env = \"CLIENT_KEYS\"\n{extra}\n");
    for t in targets {
        let base = match t.kind {
            "openai" => format!("{}/v1", t.mock.url()),
            _ => t.mock.url(),
        };
        toml.push_str(&format!(
            "[providers.{}]\nkind = \"{}\"\nbase_url = \"{}\"\n",
            t.name, t.kind, base
        ));
        if t.kind != "ollama" {
            toml.push_str("api_key_env = \"UPSTREAM_KEY\"\n");
        }
    }
    let list: Vec<String> = targets
        .iter()
        .map(|t| format!("\"{}/{}\"", t.name, t.model))
        .collect();
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        list.join(", ")
    ));
    Proxy::start(
        &toml,
        &[
            ("CLIENT_KEYS", CLIENT_KEY),
            ("UPSTREAM_KEY", UPSTREAM_SECRET),
        ],
    )
    .await
}

/// One OpenAI-kind mock (`openai/gpt-4o`) behind the proxy.
pub async fn openai_proxy(mock: &Mock) -> Proxy {
    proxy_over(
        &[Target {
            name: "openai",
            kind: "openai",
            mock,
            model: "gpt-4o",
        }],
        "",
    )
    .await
}

fn auth() -> String {
    format!("Bearer {CLIENT_KEY}")
}

/// `POST /v1/responses` with the client key.
pub async fn create(p: &Proxy, body: &Value) -> Resp {
    send(
        &p.url("/v1/responses"),
        "POST",
        &[("authorization", &auth())],
        body.to_string(),
    )
    .await
}

/// A request to `path` with the client key and no body.
pub async fn call(p: &Proxy, method: &str, path: &str) -> Resp {
    send(
        &p.url(path),
        method,
        &[("authorization", &auth())],
        bytes::Bytes::new(),
    )
    .await
}

// ---------------------------------------------------------------------------------
// SSE with event names

#[derive(Debug, Clone)]
pub struct Event {
    /// The `event:` line, if any.
    pub name: Option<String>,
    pub data: Value,
}

impl Event {
    pub fn kind(&self) -> &str {
        self.data["type"].as_str().unwrap_or("")
    }
}

/// Every event of an SSE body (`event:` + `data:` lines; CRLF or LF; comments
/// skipped). Panics on a `data:` that is not JSON: a Responses stream has no `[DONE]`.
pub fn events(r: &Resp) -> Vec<Event> {
    let text = r.text().replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            continue;
        }
        let data = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data}\nwhole body:\n{text}"));
        out.push(Event { name, data });
    }
    out
}

pub fn kinds(evs: &[Event]) -> Vec<&str> {
    evs.iter().map(Event::kind).collect()
}

/// Checks what every Responses stream must hold and returns its event types:
/// `event:` equals `data.type`, `sequence_number` counts 0, 1, 2, …, it opens with
/// `response.created` then `response.in_progress`, and one response id throughout.
pub fn check_stream(r: &Resp) -> Vec<Event> {
    assert_eq!(r.status, 200, "stream status; body: {}", r.text());
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
    let evs = events(r);
    assert!(!evs.is_empty(), "no events: {}", r.text());
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(
            e.name.as_deref(),
            Some(e.kind()),
            "event #{i}: the `event:` line must name data.type"
        );
        assert_eq!(
            e.data["sequence_number"],
            json!(i),
            "event #{i} ({}) sequence_number",
            e.kind()
        );
    }
    let k = kinds(&evs);
    assert_eq!(
        &k[..2],
        &["response.created", "response.in_progress"],
        "stream opening: {k:?}"
    );
    let id = evs[0].data["response"]["id"].as_str().unwrap_or("");
    assert!(id.starts_with("resp_"), "response id {id}");
    for e in &evs {
        if let Some(rid) = e.data["response"]["id"].as_str() {
            assert_eq!(rid, id, "one response id across {}", e.kind());
        }
    }
    evs
}

/// The concatenated `output_text.delta`s of a stream.
pub fn delta_text(evs: &[Event]) -> String {
    evs.iter()
        .filter(|e| e.kind() == "response.output_text.delta")
        .map(|e| e.data["delta"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The text of every `output_text` part of every message item of a Response.
pub fn output_text(resp: &Value) -> String {
    let mut s = String::new();
    for item in resp["output"].as_array().into_iter().flatten() {
        if item["type"] == "message" {
            for part in item["content"].as_array().into_iter().flatten() {
                if part["type"] == "output_text" {
                    s.push_str(part["text"].as_str().unwrap_or(""));
                }
            }
        }
    }
    s
}

/// The output items of `type` of a Response.
pub fn items_of<'a>(resp: &'a Value, ty: &str) -> Vec<&'a Value> {
    resp["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == ty)
        .collect()
}

/// Asserts the shape every message item must have (ids real, parts complete).
pub fn check_message_items(resp: &Value) {
    for m in items_of(resp, "message") {
        let id = m["id"].as_str().unwrap_or("");
        assert!(id.starts_with("msg_") && id.len() > 8, "message id {id}");
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["status"], "completed", "{m}");
        for part in m["content"].as_array().expect("content array") {
            assert_eq!(part["type"], "output_text", "{part}");
            assert_eq!(part["annotations"], json!([]), "{part}");
            assert_eq!(part["logprobs"], json!([]), "{part}");
        }
    }
}

// ---------------------------------------------------------------------------------
// OpenAI-kind mock answers (Chat Completions: what an openai-kind upstream speaks)

pub const GPT: &str = "gpt-4o-2024-08-06";

/// A chat completion holding one tool call.
pub fn tool_call_completion(id: &str, name: &str, args: &str) -> String {
    json!({
        "id": "chatcmpl-tool1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": GPT,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    })
    .to_string()
}

/// A completion of `text` that stopped for `finish` (stop, length, content_filter).
pub fn completion_finished(text: &str, finish: &str) -> String {
    json!({
        "id": "chatcmpl-fin1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": GPT,
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": null,
            "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}
    })
    .to_string()
}

/// A streamed tool call: the call's head, its arguments in `pieces`, finish, usage.
pub fn tool_call_stream(id: &str, name: &str, pieces: &[&str]) -> Reply {
    let mut datas = vec![chunk(
        GPT,
        json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": id,
            "type": "function", "function": {"name": name, "arguments": ""}}]}),
        None,
    )];
    for p in pieces {
        datas.push(chunk(
            GPT,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
            None,
        ));
    }
    datas.push(chunk(GPT, json!({}), Some("tool_calls")));
    datas.push(
        json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": GPT, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}})
        .to_string(),
    );
    datas.push("[DONE]".into());
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

/// The messages of the chat request an openai-kind mock received.
pub fn chat_messages(r: &Received) -> Vec<Value> {
    r.json()["messages"].as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// Real clients as judges

fn manifest(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `program args…` with `stdin` and parses its stdout as JSON; the process must
/// exit 0 within `limit`.
pub async fn run_json(program: PathBuf, args: Vec<String>, stdin: Value, limit: Duration) -> Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let shown = format!("{} {}", program.display(), args.join(" "));
    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&program)
            .args(&args)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().expect("the client finishes")
    });
    let out = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{shown} finished within {limit:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shown} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{shown} prints JSON ({e}):\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `tests/sdk/responses_client.py` (the official `openai` SDK) against `p`.
pub async fn responses_sdk(p: &Proxy, scenarios: Value) -> Vec<Value> {
    let v = run_json(
        sdk_python(),
        vec![
            manifest("tests/sdk/responses_client.py")
                .display()
                .to_string(),
            p.url("/v1"),
            CLIENT_KEY.into(),
        ],
        scenarios,
        Duration::from_secs(120),
    )
    .await;
    v.as_array().cloned().expect("a list of results")
}

/// `tests/sdk/agents_client.py` (openai-agents `Runner`) against `p`.
pub async fn agents(p: &Proxy, scenarios: Value) -> Vec<Value> {
    let v = run_json(
        sdk_python(),
        vec![
            manifest("tests/sdk/agents_client.py").display().to_string(),
            p.url("/v1"),
            CLIENT_KEY.into(),
        ],
        scenarios,
        Duration::from_secs(120),
    )
    .await;
    v.as_array().cloned().expect("a list of results")
}

/// Node: `$UNDERSTUDY_TEST_NODE`, else `node` on the PATH.
pub fn node() -> PathBuf {
    std::env::var("UNDERSTUDY_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("node"))
}

/// `tests/js/ai_sdk_client.mjs` (the Vercel AI SDK's `openai()` provider) against `p`.
pub async fn ai_sdk(p: &Proxy, scenarios: Value) -> Vec<Value> {
    let modules = manifest("tests/js/node_modules/ai");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test.sh, which runs `npm ci` in tests/js",
        modules.display()
    );
    let v = run_json(
        node(),
        vec![
            manifest("tests/js/ai_sdk_client.mjs").display().to_string(),
            p.url("/v1"),
            CLIENT_KEY.into(),
        ],
        scenarios,
        Duration::from_secs(120),
    )
    .await;
    v.as_array().cloned().expect("a list of results")
}
