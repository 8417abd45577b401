//! Codex CLI as a judge of the Responses front door (DESIGN §7): `codex exec` with a
//! custom model provider (`wire_api = "responses"`) whose `base_url` is the proxy and
//! whose key (`env_key`) is a client key, nothing but loopback. The proxy reaches
//! translated targets only — an OpenAI-kind upstream answering Chat Completions or an
//! Anthropic-kind one answering Messages — so the hosted `web_search` tool and the
//! `namespace` of tools Codex declares by default are dropped on the way. Scenarios: a
//! plain answer, a failover from an unavailable lead (503 / 529), and a round trip
//! through Codex's shell tool (`exec_command`). The pinned Codex
//! (`tests/codex/package.json`) is installed by `scripts/test.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const CLIENT_KEY: &str = "codex-client-key";
/// The model Codex asks for. Codex has no metadata for it, so it declares its plain
/// function tools (`exec_command`, …) rather than the code-mode tools of its own
/// models; the `*` route takes it anyway.
const CODEX_MODEL: &str = "gpt-4o";
/// In a prompt: the upstream answers with a call of Codex's shell tool.
const SHELL_MARKER: &str = "RUN_THE_SHELL";
/// Codex's shell tool (with fallback model metadata): `{"cmd": "<shell command>"}`.
const SHELL_TOOL: &str = "exec_command";
const SHELL_CMD: &str = "cat secret.txt";
const PONG: &str = "PONG from understudy";
const FINAL: &str = "The file holds the secret.";
const SECRET: &str = "the-secret-is-42";

/// Codex's native binary: `$UNDERSTUDY_TEST_CODEX`, else the platform package
/// `scripts/test.sh` installed under `tests/codex/node_modules` (used directly: the
/// Node wrapper only finds and execs it), else the wrapper's bin.
fn codex_bin() -> PathBuf {
    if let Ok(p) = std::env::var("UNDERSTUDY_TEST_CODEX") {
        return PathBuf::from(p);
    }
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/codex/node_modules");
    let scope = modules.join("@openai");
    if let Ok(dir) = std::fs::read_dir(&scope) {
        let mut natives: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("codex-"))
            .filter_map(|e| std::fs::read_dir(e.path().join("vendor")).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|triple| triple.path().join("bin/codex"))
            .filter(|p| p.is_file())
            .collect();
        natives.sort();
        if let Some(p) = natives.into_iter().next() {
            return p;
        }
    }
    let wrapper = modules.join(".bin/codex");
    assert!(
        wrapper.exists(),
        "{} is missing: run scripts/test.sh, which installs Codex",
        wrapper.display()
    );
    wrapper
}

/// A directory under cargo's target tmp dir, removed on drop. Not under /tmp: Codex
/// refuses to put its helper binaries in a `CODEX_HOME` there.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> WorkDir {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "codex-judge-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(path.join("home")).unwrap();
        std::fs::create_dir_all(path.join("work")).unwrap();
        WorkDir { path }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------
// A translated upstream that answers what it is asked

/// Chat completions (or Anthropic's Messages, by path): a call of Codex's shell tool
/// running [`SHELL_CMD`] when the conversation holds [`SHELL_MARKER`] and no tool
/// result yet, [`FINAL`] once it holds one, else [`PONG`]; streamed when the request
/// says so. Every request body is kept.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Upstream {
    async fn start() -> Upstream {
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
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        async move {
                            let messages_api = req.uri().path().starts_with("/v1/messages");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let reply = if messages_api {
                                anthropic_answer(&body)
                            } else {
                                answer(&body)
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

fn shell_args() -> String {
    json!({ "cmd": SHELL_CMD }).to_string()
}

fn answer(req: &Value) -> http::Response<Full<Bytes>> {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let has_result = messages.iter().any(|m| m["role"] == "tool");
    let wants_shell = req["messages"].to_string().contains(SHELL_MARKER);
    let model = "gpt-4o-2024-08-06";
    let (text, calls, finish) = if wants_shell && !has_result {
        (
            None,
            Some(json!([{"id": "call_shell1", "type": "function",
                "function": {"name": SHELL_TOOL, "arguments": shell_args()}}])),
            "tool_calls",
        )
    } else if has_result {
        (Some(FINAL), None, "stop")
    } else {
        (Some(PONG), None, "stop")
    };
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107});
    if req["stream"] != true {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(c) = &calls {
            message["tool_calls"] = c.clone();
        }
        let body = json!({"id": "chatcmpl-codex", "object": "chat.completion",
            "created": 1_700_000_000u64, "model": model, "usage": usage,
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
    if calls.is_some() {
        let args = shell_args();
        let (a, b) = args.split_at(args.len() / 2);
        deltas.push(
            json!({"tool_calls": [{"index": 0, "id": "call_shell1", "type": "function",
            "function": {"name": SHELL_TOOL, "arguments": ""}}]}),
        );
        deltas.push(json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}));
        deltas.push(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}));
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-codex", "object": "chat.completion.chunk",
            "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut sse = String::new();
    for d in deltas {
        sse.push_str(&format!("data: {}\n\n", chunk(d, Value::Null)));
    }
    sse.push_str(&format!("data: {}\n\n", chunk(json!({}), json!(finish))));
    sse.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "chatcmpl-codex", "object": "chat.completion.chunk",
            "created": 1_700_000_000u64, "model": model, "choices": [], "usage": usage})
    ));
    http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(sse)))
        .unwrap()
}

/// The same script in Anthropic's Messages shape (an Anthropic-kind target).
fn anthropic_answer(req: &Value) -> http::Response<Full<Bytes>> {
    let conversation = req["messages"].to_string();
    let has_result = conversation.contains("\"tool_result\"");
    let wants_shell = conversation.contains(SHELL_MARKER);
    let block = if wants_shell && !has_result {
        json!({"type": "tool_use", "id": "toolu_shell1", "name": SHELL_TOOL,
            "input": {"cmd": SHELL_CMD}})
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
    let mut message = json!({"id": "msg_codex1", "type": "message", "role": "assistant",
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
// The proxy and Codex

struct Judge {
    /// The unavailable lead, when there is one.
    busy: Option<Mock>,
    upstream: Upstream,
    /// Serves while the judge lives.
    _proxy: Proxy,
    /// `home` is Codex's `CODEX_HOME` and `HOME`, `work` its working directory.
    dir: WorkDir,
}

/// A lead that answers every request with `status` (503 from an OpenAI-kind
/// provider, 529 from an Anthropic-kind one).
async fn unavailable(status: u16) -> Mock {
    let busy = Mock::start().await;
    let body = if status == 529 {
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
    } else {
        r#"{"error":{"message":"The server is overloaded.","type":"server_error","code":null}}"#
    };
    busy.always(Reply::json(status, body));
    busy
}

/// The [`Upstream`] as a target of `kind` (`openai` or `anthropic`), behind a lead of
/// kind `lead.0` that answers `lead.1` when there is one; the `*` route takes the
/// model Codex asks for.
async fn judge(kind: &str, lead: Option<(&str, u16)>) -> Judge {
    let dir = WorkDir::new();
    std::fs::write(dir.path.join("work/secret.txt"), format!("{SECRET}\n")).unwrap();
    let upstream = Upstream::start().await;
    let backup_url = match kind {
        "openai" => format!("{}/v1", upstream.url()),
        _ => upstream.url(),
    };
    let backup_model = match kind {
        "openai" => "gpt-4o",
        _ => "claude-opus-4-1",
    };
    let mut toml = String::from(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
"#,
    );
    let mut targets = Vec::new();
    let busy = match lead {
        Some((lead_kind, status)) => {
            let busy = unavailable(status).await;
            let url = match lead_kind {
                "openai" => format!("{}/v1", busy.url()),
                _ => busy.url(),
            };
            toml.push_str(&format!(
                "[providers.busy]\nkind = \"{lead_kind}\"\nbase_url = \"{url}\"\napi_key_env = \"UPSTREAM_KEY\"\n"
            ));
            targets.push(match lead_kind {
                "openai" => "\"busy/gpt-4o\"".to_string(),
                _ => "\"busy/claude-sonnet-4-5\"".to_string(),
            });
            Some(busy)
        }
        None => None,
    };
    toml.push_str(&format!(
        "[providers.backup]\nkind = \"{kind}\"\nbase_url = \"{backup_url}\"\napi_key_env = \"UPSTREAM_KEY\"\n"
    ));
    targets.push(format!("\"backup/{backup_model}\""));
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"*\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    let proxy = Proxy::start(
        &toml,
        &[("CLIENT_KEYS", CLIENT_KEY), ("UPSTREAM_KEY", "sk-upstream")],
    )
    .await;
    // Codex's config: the proxy as a Responses provider, no retries of its own (a
    // failover is the proxy's), nothing that phones home.
    let config = format!(
        r#"model = "{CODEX_MODEL}"
model_provider = "understudy"
check_for_update_on_startup = false
approval_policy = "never"

[analytics]
enabled = false

[feedback]
enabled = false

[history]
persistence = "none"

[model_providers.understudy]
name = "understudy"
base_url = "{}"
env_key = "UNDERSTUDY_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        proxy.url("/v1")
    );
    std::fs::write(dir.path.join("home/config.toml"), config).unwrap();
    Judge {
        busy,
        upstream,
        _proxy: proxy,
        dir,
    }
}

/// What `codex exec --json` printed: its JSONL events, stderr and exit code.
struct Run {
    events: Vec<Value>,
    stderr: String,
    code: Option<i32>,
}

impl Run {
    /// The items Codex completed, of `kind` (`agent_message`, `command_execution`, …).
    fn items(&self, kind: &str) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == kind)
            .map(|e| e["item"].clone())
            .collect()
    }

    /// Codex's last message.
    fn answer(&self) -> String {
        self.items("agent_message")
            .last()
            .and_then(|i| i["text"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("Codex answered: {self}"))
    }

    fn assert_completed(&self) {
        assert_eq!(self.code, Some(0), "codex exec succeeded: {self}");
        assert!(
            self.events.iter().any(|e| e["type"] == "turn.completed"),
            "the turn completed: {self}"
        );
        assert!(
            !self
                .events
                .iter()
                .any(|e| e["type"] == "turn.failed" || e["type"] == "error"),
            "no error: {self}"
        );
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit {:?}", self.code)?;
        for e in &self.events {
            writeln!(f, "{e}")?;
        }
        write!(f, "stderr: {}", self.stderr)
    }
}

/// `codex exec --json PROMPT` against the proxy, outside a git repository, with
/// approvals off and Codex's sandbox bypassed (the only command run is the mock's
/// `cat secret.txt`, in the test's own directory; the sandbox is not what is judged
/// and may be unavailable in a container). Bounded: 120 s, then killed.
async fn codex(j: &Judge, prompt: &str) -> Run {
    let home = j.dir.path.join("home");
    let mut cmd = tokio::process::Command::new(codex_bin());
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("CODEX_HOME", &home)
        .env("UNDERSTUDY_KEY", CLIENT_KEY)
        .env("NO_COLOR", "1")
        .current_dir(j.dir.path.join("work"))
        .args([
            "exec",
            "--json",
            "--strict-config",
            "--skip-git-repo-check",
            "--ephemeral",
            "--color",
            "never",
            "--dangerously-bypass-approvals-and-sandbox",
        ])
        .arg(prompt)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("codex finished within 120 s")
        .expect("codex starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("JSONL ({e}): {l}")))
        .collect();
    Run {
        events,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// The request the upstream got with `needle` in its conversation.
fn request_with(got: &[Value], needle: &str) -> Value {
    got.iter()
        .find(|r| r["messages"].to_string().contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("{needle} reached the upstream: {got:?}"))
}

/// The tool names of a translated request (Chat Completions or Messages), checking
/// that every tool is a plain function: Codex's hosted `web_search` and its
/// `namespace` of tools were dropped, its function tools kept.
fn function_tools(req: &Value) -> Vec<String> {
    let tools = req["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools upstream: {req}"));
    let names: Vec<String> = tools
        .iter()
        .map(|t| {
            let name = t["function"]["name"].as_str().or(t["name"].as_str());
            assert!(
                t["type"] == "function" || t["input_schema"].is_object(),
                "a function tool: {t}"
            );
            name.unwrap_or_else(|| panic!("named: {t}")).to_string()
        })
        .collect();
    assert!(names.iter().any(|n| n == SHELL_TOOL), "{names:?}");
    for dropped in ["web_search", "multi_agent_v1", "close_agent"] {
        assert!(!names.iter().any(|n| n == dropped), "{dropped}: {names:?}");
    }
    names
}

async fn plain_answer(kind: &str, lead: Option<(&str, u16)>) {
    let j = judge(kind, lead).await;
    let run = codex(&j, "Say PONG").await;
    run.assert_completed();
    assert_eq!(run.answer(), PONG, "{run}");
    if let Some(busy) = &j.busy {
        assert!(busy.count() >= 1, "the unavailable lead was tried");
        let first = busy.received()[0].json();
        assert!(first.to_string().contains("Say PONG"), "{first}");
    }
    let got = j.upstream.received();
    let main = request_with(&got, "Say PONG");
    assert_eq!(main["stream"], true, "Codex streams: {main}");
    function_tools(&main);
    if kind == "anthropic" {
        assert_eq!(main["model"], "claude-opus-4-1", "{main}");
        // Codex's instructions and developer messages became the system prompt.
        assert!(main["system"].to_string().contains("Codex"), "{main}");
    } else {
        assert_eq!(main["model"], "gpt-4o", "{main}");
        let msgs = main["messages"].as_array().unwrap();
        assert!(
            msgs.iter()
                .any(|m| (m["role"] == "system" || m["role"] == "developer")
                    && m["content"].to_string().contains("Codex")),
            "Codex's instructions upstream: {main}"
        );
    }
}

async fn shell_round_trip(kind: &str) {
    let j = judge(kind, None).await;
    let run = codex(&j, &format!("{SHELL_MARKER}: what does secret.txt say?")).await;
    run.assert_completed();
    assert_eq!(run.answer(), FINAL, "{run}");
    let commands = run.items("command_execution");
    assert_eq!(commands.len(), 1, "{run}");
    assert!(
        commands[0]["command"].to_string().contains(SHELL_CMD),
        "{}",
        commands[0]
    );
    assert!(
        commands[0]["aggregated_output"]
            .to_string()
            .contains(SECRET),
        "{}",
        commands[0]
    );
    assert_eq!(commands[0]["exit_code"], 0, "{}", commands[0]);

    let got = j.upstream.received();
    let first = request_with(&got, SHELL_MARKER);
    function_tools(&first);
    let msgs: Vec<Value> = if kind == "anthropic" {
        let second = request_with(&got, "\"tool_result\"");
        function_tools(&second);
        second["messages"].as_array().unwrap().clone()
    } else {
        let second = got
            .iter()
            .find(|r| {
                r["messages"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["role"] == "tool"))
            })
            .cloned()
            .unwrap_or_else(|| panic!("a turn with the tool result: {got:?}"));
        function_tools(&second);
        second["messages"].as_array().unwrap().clone()
    };
    if kind == "anthropic" {
        let blocks: Vec<&Value> = msgs
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .collect();
        let call = blocks
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap_or_else(|| panic!("the assistant's call: {msgs:?}"));
        assert_eq!(call["id"], "toolu_shell1");
        assert_eq!(call["name"], SHELL_TOOL);
        assert_eq!(call["input"]["cmd"], SHELL_CMD);
        let result = blocks.iter().find(|b| b["type"] == "tool_result").unwrap();
        assert_eq!(result["tool_use_id"], "toolu_shell1");
        assert!(
            result["content"].to_string().contains(SECRET),
            "Codex ran the command: {result}"
        );
    } else {
        let call = msgs
            .iter()
            .find_map(|m| m["tool_calls"].as_array().map(|c| c[0].clone()))
            .unwrap_or_else(|| panic!("the assistant's call: {msgs:?}"));
        assert_eq!(call["id"], "call_shell1");
        assert_eq!(call["function"]["name"], SHELL_TOOL);
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["cmd"], SHELL_CMD);
        let tool = msgs.iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool["tool_call_id"], "call_shell1");
        assert!(
            tool["content"].to_string().contains(SECRET),
            "Codex ran the command: {tool}"
        );
    }
}

#[tokio::test]
async fn codex_answers_through_an_openai_target() {
    plain_answer("openai", None).await;
}

#[tokio::test]
async fn codex_answers_through_an_anthropic_target() {
    plain_answer("anthropic", None).await;
}

#[tokio::test]
async fn codex_answers_through_a_failover_from_a_503_to_an_anthropic_target() {
    plain_answer("anthropic", Some(("openai", 503))).await;
}

#[tokio::test]
async fn codex_answers_through_a_failover_from_a_529_to_an_openai_target() {
    plain_answer("openai", Some(("anthropic", 529))).await;
}

#[tokio::test]
async fn codex_runs_a_shell_round_trip_through_an_openai_target() {
    shell_round_trip("openai").await;
}

#[tokio::test]
async fn codex_runs_a_shell_round_trip_through_an_anthropic_target() {
    shell_round_trip("anthropic").await;
}
