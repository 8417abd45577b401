//! `/v1/messages` to Anthropic-kind targets: the client's body goes upstream as it is
//! (only `model` swapped), with its version and beta headers and query, and the
//! answer and every stream event come back unchanged — thinking blocks,
//! `cache_control` and documents survive. Other kinds still serve what they can.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const TEXT_JSON: &str = include_str!("../fixtures/anthropic/response_text.json");
const THINKING_SSE: &str = include_str!("../fixtures/anthropic/stream_thinking.sse");
const OVERLOADED: &str = include_str!("../fixtures/anthropic/error_overloaded.json");

struct Setup {
    anthropic: Mock,
    openai: Mock,
    proxy: Proxy,
}

async fn setup() -> Setup {
    let anthropic = Mock::start().await;
    let openai = Mock::start().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_KEY"
[providers.gpt]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_KEY"
[[routes]]
model = "default"
targets = ["claude/claude-sonnet-4-5", "gpt/gpt-4o"]
"#,
        anthropic.url(),
        openai.url()
    );
    let proxy = Proxy::start(
        &toml,
        &[
            ("ANTHROPIC_KEY", "sk-ant-upstream"),
            ("OPENAI_KEY", "sk-openai-upstream"),
        ],
    )
    .await;
    Setup {
        anthropic,
        openai,
        proxy,
    }
}

/// What only Anthropic's API expresses: thinking, cache_control, a document.
fn rich(stream: bool) -> Value {
    json!({
        "model": "default", "max_tokens": 2000, "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Be exact.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "27 453"}},
            {"type": "text", "text": "Multiply the two numbers."}
        ]}]
    })
}

async fn post(p: &Proxy, body: &Value) -> Resp {
    send(
        &p.url("/v1/messages?beta=true"),
        "POST",
        &[
            ("x-api-key", "client"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
        body.to_string(),
    )
    .await
}

/// (event, data) pairs of an SSE text.
fn events(text: &str) -> Vec<(String, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Vec::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn anthropic_targets_get_the_body_and_headers_as_sent_and_answer_unchanged() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, TEXT_JSON));
    let body = rich(false);
    let r = post(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), TEXT_JSON, "the upstream's body, byte for byte");
    assert_eq!(r.header("x-understudy-provider"), Some("claude"));
    let got = &s.anthropic.received()[0];
    assert_eq!(got.path, "/v1/messages?beta=true");
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        got.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    assert_eq!(
        got.headers["x-api-key"], "sk-ant-upstream",
        "the provider's key"
    );
    let mut sent = got.json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    sent["model"] = body["model"].clone();
    assert_eq!(sent, body, "nothing but the model changed");
    assert_eq!(s.openai.count(), 0);
}

#[tokio::test]
async fn stream_events_pass_through_unchanged_thinking_included() {
    let s = setup().await;
    s.anthropic
        .push(Reply::split(200, "text/event-stream", THINKING_SSE));
    let r = post(&s.proxy, &rich(true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(events(&r.text()), events(THINKING_SSE));
    assert!(r.text().contains("thinking_delta"));
}

#[tokio::test]
async fn a_request_only_anthropic_can_express_skips_other_kinds() {
    let s = setup().await;
    // Anthropic overloaded: the OpenAI target cannot take a document block, so
    // there is nothing to fail over to — Anthropic's own overloaded error.
    s.anthropic.push(Reply::json(529, OVERLOADED));
    let r = post(&s.proxy, &rich(false)).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("gpt/gpt-4o: skipped (cannot express the request"),
        "{msg}"
    );
    assert!(msg.contains("document"), "{msg}");
    assert_eq!(s.openai.count(), 0);
}

#[tokio::test]
async fn a_plain_request_fails_over_from_anthropic_to_a_translated_target() {
    let s = setup().await;
    s.anthropic.push(Reply::json(529, OVERLOADED));
    s.openai.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Hello from GPT"),
    ));
    let body = json!({"model": "default", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["content"][0]["text"], "Hello from GPT");
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(r.header("x-understudy-provider"), Some("gpt"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let sent = s.openai.received()[0].json();
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["max_tokens"], 100);
}

#[tokio::test]
async fn count_tokens_is_asked_of_the_anthropic_target() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, r#"{"input_tokens":19}"#));
    let body = json!({"model": "default",
        "system": "You are a careful assistant.",
        "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]});
    let r = send(
        &s.proxy.url("/v1/messages/count_tokens"),
        "POST",
        &[("x-api-key", "client"), ("anthropic-version", "2023-06-01")],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-estimate"), None);
    assert_eq!(r.json(), json!({"input_tokens": 19}));
    assert_eq!(s.anthropic.received()[0].path, "/v1/messages/count_tokens");
    let r = send(
        &s.proxy.url("/v1/messages/count_tokens"),
        "POST",
        &[],
        "{\"model\":\"default\"}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(s.anthropic.count(), 1);
    assert_eq!(s.openai.count(), 0);
}
