//! Claude Code as a judge of the Messages front door (DESIGN §8): `claude -p` with
//! `ANTHROPIC_BASE_URL` at the proxy and a client key as `ANTHROPIC_API_KEY`, nothing
//! but loopback. The proxy's lead target (Anthropic-kind) is overloaded, or absent; an
//! upstream — OpenAI-kind (translated) or Anthropic-kind (native) — answers what
//! Claude Code asks, tool calls (`Read`, `Bash`) included. The pinned Claude Code
//! (`tests/claude/package.json`) is installed by `scripts/test.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const CLIENT_KEY: &str = "cc-client-key";
/// In a prompt: the upstream answers with a call of Claude Code's `Read` tool.
const READ_MARKER: &str = "READ_THE_FILE";
const PONG: &str = "PONG from understudy";
const FINAL: &str = "The file holds the secret.";
const SECRET: &str = "the-secret-is-42";
/// In a prompt: the upstream answers with a call of Claude Code's `Bash` tool, then
/// with [`BASH_SAID`] and what the command printed.
const BASH_MARKER: &str = "RUN_THE_COMMAND";
const BASH_SAID: &str = "The command printed:";

/// Claude Code's native binary: `$UNDERSTUDY_TEST_CLAUDE`, else the platform package
/// `scripts/test.sh` installed under `tests/claude/node_modules` (used directly, so
/// the wrapper's postinstall step does not matter), else the wrapper's bin.
fn claude_bin() -> PathBuf {
    if let Ok(p) = std::env::var("UNDERSTUDY_TEST_CLAUDE") {
        return PathBuf::from(p);
    }
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/claude/node_modules");
    let scope = modules.join("@anthropic-ai");
    if let Ok(dir) = std::fs::read_dir(&scope) {
        let mut natives: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("claude-code-"))
            .map(|e| e.path().join("claude"))
            .filter(|p| p.is_file())
            .collect();
        natives.sort();
        if let Some(p) = natives.into_iter().next() {
            return p;
        }
    }
    let wrapper = modules.join(".bin/claude");
    assert!(
        wrapper.exists(),
        "{} is missing: run scripts/test.sh, which installs Claude Code",
        wrapper.display()
    );
    wrapper
}

// ---------------------------------------------------------------------------------
// An OpenAI-kind upstream that answers what it is asked

/// What the upstream's tool calls ask for.
#[derive(Clone)]
struct Script {
    /// The file `Read` is called with.
    read_path: String,
    /// The command `Bash` is called with.
    command: String,
}

/// Chat completions (or Anthropic's Messages, by path): a `Read` call of the script's
/// file when the conversation holds [`READ_MARKER`] and no tool result yet, [`FINAL`]
/// once it holds one; a `Bash` call of the script's command when it holds
/// [`BASH_MARKER`] and the request offers `Bash`, then [`BASH_SAID`] and the tool's
/// output; else [`PONG`]; streamed when the request says so. Every request body is
/// kept.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Upstream {
    async fn start(script: Script) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let up = Upstream {
            addr,
            received: received.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let received = received.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        let script = script.clone();
                        async move {
                            let messages_api = req.uri().path().starts_with("/v1/messages");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let reply = if messages_api {
                                anthropic_answer(&body, &script)
                            } else {
                                answer(&body, &script)
                            };
                            received.lock().unwrap().push(body);
                            Ok::<_, Infallible>(reply)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        up
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

fn answer(req: &Value, script: &Script) -> http::Response<Full<Bytes>> {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let result = messages.iter().find(|m| m["role"] == "tool");
    let conversation = req["messages"].to_string();
    let wants_read = conversation.contains(READ_MARKER);
    // Side calls (a title, say) quote the prompt too, but offer no tools.
    let wants_bash =
        conversation.contains(BASH_MARKER) && tool_names(req).iter().any(|n| n == "Bash");
    let model = "gpt-4o-2024-08-06";
    let call = |id: &str, name: &str, args: Value| {
        Some(json!([{"id": id, "type": "function",
            "function": {"name": name, "arguments": args.to_string()}}]))
    };
    let bash_said;
    let (text, calls, finish) = match result {
        None if wants_bash => (
            None,
            call(
                "call_bash1",
                "Bash",
                json!({"command": script.command, "description": "Print a marker"}),
            ),
            "tool_calls",
        ),
        None if wants_read => (
            None,
            call("call_read1", "Read", json!({"file_path": script.read_path})),
            "tool_calls",
        ),
        Some(tool) if wants_bash => {
            bash_said = format!("{BASH_SAID} {}", text_of(&tool["content"]).trim());
            (Some(bash_said.as_str()), None, "stop")
        }
        Some(_) => (Some(FINAL), None, "stop"),
        None => (Some(PONG), None, "stop"),
    };
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107});
    if req["stream"] != true {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(c) = &calls {
            message["tool_calls"] = c.clone();
        }
        let body = json!({"id": "chatcmpl-cc", "object": "chat.completion", "created": 1_700_000_000u64,
            "model": model, "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}]});
        return http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
    }
    let mut deltas = vec![json!({"role": "assistant", "content": ""})];
    if let Some(t) = text {
        for piece in t.split_inclusive(' ') {
            deltas.push(json!({"content": piece}));
        }
    }
    if let Some(c) = calls {
        let f = &c[0]["function"];
        let args = f["arguments"].as_str().unwrap().to_string();
        let (a, b) = args.split_at(args.len() / 2);
        deltas.push(
            json!({"tool_calls": [{"index": 0, "id": c[0]["id"], "type": "function",
            "function": {"name": f["name"], "arguments": ""}}]}),
        );
        deltas.push(json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}));
        deltas.push(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}));
    }
    let mut sse = String::new();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    for d in deltas {
        sse.push_str(&format!("data: {}\n\n", chunk(d, Value::Null)));
    }
    sse.push_str(&format!("data: {}\n\n", chunk(json!({}), json!(finish))));
    sse.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": model, "choices": [], "usage": usage})
    ));
    http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(sse)))
        .unwrap()
}

/// The same script in Anthropic's Messages shape (an Anthropic-kind target).
fn anthropic_answer(req: &Value, script: &Script) -> http::Response<Full<Bytes>> {
    let conversation = req["messages"].to_string();
    let has_result = conversation.contains("\"tool_result\"");
    let wants_read = conversation.contains(READ_MARKER);
    let block = if wants_read && !has_result {
        json!({"type": "tool_use", "id": "toolu_read1", "name": "Read",
            "input": {"file_path": script.read_path}})
    } else if has_result {
        json!({"type": "text", "text": FINAL})
    } else {
        json!({"type": "text", "text": PONG})
    };
    let stop = if block["type"] == "tool_use" {
        "tool_use"
    } else {
        "end_turn"
    };
    let model = "claude-sonnet-4-5-20250929";
    let mut message = json!({"id": "msg_cc1", "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 1}});
    if req["stream"] != true {
        message["content"] = json!([block]);
        message["stop_reason"] = json!(stop);
        return http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(message.to_string())))
            .unwrap();
    }
    let (start, delta) = if block["type"] == "tool_use" {
        let mut empty = block.clone();
        empty["input"] = json!({});
        (
            empty,
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": block["text"]}),
        )
    };
    let events = [
        json!({"type": "message_start", "message": message}),
        json!({"type": "content_block_start", "index": 0, "content_block": start}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": 7}}),
        json!({"type": "message_stop"}),
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(sse)))
        .unwrap()
}

// ---------------------------------------------------------------------------------
// The proxy and Claude Code

struct Judge {
    busy: Mock,
    upstream: Upstream,
    proxy: Proxy,
    /// Claude Code's HOME and working directory.
    dir: TempDir,
    /// What the `Bash` call prints: `understudy-bash-<random>`.
    marker: String,
}

/// An overloaded Anthropic-kind lead, then the [`Upstream`] as a target of `kind`
/// (`openai` or `anthropic`); the `*` route takes whatever model Claude Code asks for.
async fn judge(kind: &str) -> Judge {
    judge_with(kind, true).await
}

/// Like [`judge`]; without `overloaded_lead` the [`Upstream`] leads the route.
async fn judge_with(kind: &str, overloaded_lead: bool) -> Judge {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path.join("home")).unwrap();
    std::fs::create_dir_all(dir.path.join("work")).unwrap();
    let secret = dir.path.join("work/secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let busy = Mock::start().await;
    busy.always(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let marker = format!("understudy-bash-{:016x}", fastrand::u64(..));
    let upstream = Upstream::start(Script {
        read_path: secret.display().to_string(),
        command: format!("echo {marker}"),
    })
    .await;
    let model = match kind {
        "openai" => "gpt-4o",
        _ => "claude-opus-4-1",
    };
    let targets = if overloaded_lead {
        format!("\"busy/claude-sonnet-4-5\", \"backup/{model}\"")
    } else {
        format!("\"backup/{model}\"")
    };
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[providers.busy]
kind = "anthropic"
base_url = "{}"
api_key_env = "UPSTREAM_KEY"
[providers.backup]
kind = "{kind}"
base_url = "{}"
api_key_env = "UPSTREAM_KEY"
[[routes]]
model = "*"
targets = [{targets}]
"#,
        busy.url(),
        match kind {
            "openai" => format!("{}/v1", upstream.url()),
            _ => upstream.url(),
        },
    );
    let proxy = Proxy::start(
        &toml,
        &[("CLIENT_KEYS", CLIENT_KEY), ("UPSTREAM_KEY", "sk-upstream")],
    )
    .await;
    Judge {
        busy,
        upstream,
        proxy,
        dir,
        marker,
    }
}

/// `claude -p PROMPT --output-format json` against the proxy; its JSON result.
/// Bounded: 120 s, then killed.
async fn claude(j: &Judge, prompt: &str, extra: &[&str]) -> Value {
    let home: &Path = &j.dir.path.join("home");
    let mut cmd = tokio::process::Command::new(claude_bin());
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", j.proxy.url(""))
        .env("ANTHROPIC_API_KEY", CLIENT_KEY)
        // no telemetry, update checks or error reports: loopback only
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .current_dir(j.dir.path.join("work"))
        .arg("-p")
        .arg(prompt)
        .args(["--output-format", "json"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("claude finished within 120 s")
        .expect("claude starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "claude printed no JSON result ({e}; exit {:?}): {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The text of a chat message's content: a string, or its parts' texts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// The tool names of a chat request.
fn tool_names(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn claude_code_answers_through_a_failover_to_an_anthropic_target() {
    let j = judge("anthropic").await;
    let result = claude(&j, "Say PONG", &[]).await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], PONG, "{result}");
    assert!(j.busy.count() >= 1, "the overloaded lead was tried");
    let got = j.upstream.received();
    let main = got
        .iter()
        .find(|r| r["messages"].to_string().contains("Say PONG"))
        .unwrap_or_else(|| panic!("the prompt reached the upstream: {got:?}"));
    assert_eq!(main["model"], "claude-opus-4-1", "only the model swapped");
    assert!(main["tools"].as_array().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn claude_code_runs_a_tool_round_trip_through_an_anthropic_target() {
    let j = judge("anthropic").await;
    let result = claude(
        &j,
        &format!("{READ_MARKER}: what does secret.txt say?"),
        &["--allowedTools", "Read"],
    )
    .await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], FINAL, "{result}");
    let got = j.upstream.received();
    let second = got
        .iter()
        .find(|r| r["messages"].to_string().contains("\"tool_result\""))
        .unwrap_or_else(|| panic!("a turn with the tool result: {got:?}"));
    let msgs = second["messages"].as_array().unwrap();
    let result_block = msgs
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result")
        .unwrap();
    assert_eq!(result_block["tool_use_id"], "toolu_read1");
    assert!(
        result_block["content"].to_string().contains(SECRET),
        "Claude Code read the file: {result_block}"
    );
}

#[tokio::test]
async fn claude_code_answers_through_a_failover_to_an_openai_target() {
    let j = judge("openai").await;
    let result = claude(&j, "Say PONG", &[]).await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], PONG, "{result}");
    assert!(j.busy.count() >= 1, "the overloaded lead was tried");
    let got = j.upstream.received();
    let main = got
        .iter()
        .find(|r| r["messages"].to_string().contains("Say PONG"))
        .unwrap_or_else(|| panic!("the prompt reached the upstream: {got:?}"));
    let names = tool_names(main);
    for tool in ["Bash", "Read", "Edit", "Write"] {
        assert!(names.iter().any(|n| n == tool), "{tool} in {names:?}");
    }
    assert_eq!(main["messages"][0]["role"], "system", "{main}");
}

#[tokio::test]
async fn claude_code_runs_a_tool_round_trip_through_an_openai_target() {
    let j = judge("openai").await;
    let result = claude(
        &j,
        &format!("{READ_MARKER}: what does secret.txt say?"),
        &["--allowedTools", "Read"],
    )
    .await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], FINAL, "{result}");
    let (call, tool) = tool_round_trip(&j.upstream.received());
    assert_eq!(call["id"], "call_read1");
    assert_eq!(call["function"]["name"], "Read");
    assert_eq!(tool["tool_call_id"], "call_read1");
    assert!(
        tool["content"].to_string().contains(SECRET),
        "Claude Code read the file: {tool}"
    );
}

#[tokio::test]
async fn claude_code_runs_its_bash_tool_through_an_openai_lead() {
    let j = judge_with("openai", false).await;
    // `echo` may need no permission today; the flag keeps the test about the round
    // trip should a later Claude Code ask for one.
    let result = claude(
        &j,
        &format!("{BASH_MARKER}: run the command and tell me what it printed."),
        &["--allowedTools", "Bash(echo *)"],
    )
    .await;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(
        result["result"],
        format!("{BASH_SAID} {}", j.marker),
        "the command's output went up and the answer came back: {result}"
    );
    assert_eq!(j.busy.count(), 0, "the OpenAI-kind target leads");
    let (call, tool) = tool_round_trip(&j.upstream.received());
    assert_eq!(call["id"], "call_bash1");
    assert_eq!(call["function"]["name"], "Bash");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["command"], format!("echo {}", j.marker));
    assert_eq!(tool["tool_call_id"], "call_bash1");
    assert_eq!(
        text_of(&tool["content"]).trim(),
        j.marker,
        "Claude Code ran the command: {tool}"
    );
}

/// In the chat requests an OpenAI-kind upstream received: the turn that carries a tool
/// result, its assistant's (first) tool call and that tool message.
fn tool_round_trip(got: &[Value]) -> (Value, Value) {
    let second = got
        .iter()
        .find(|r| {
            r["messages"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["role"] == "tool"))
        })
        .unwrap_or_else(|| panic!("a turn with the tool result: {got:?}"));
    let msgs = second["messages"].as_array().unwrap();
    let call = msgs
        .iter()
        .find_map(|m| m["tool_calls"].as_array().map(|c| c[0].clone()))
        .unwrap_or_else(|| panic!("the assistant's call: {second}"));
    let tool = msgs.iter().find(|m| m["role"] == "tool").unwrap().clone();
    (call, tool)
}
