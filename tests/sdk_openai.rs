//! The official `openai` Python SDK pointed at the proxy (only its base URL changed),
//! with OpenAI-kind mock upstreams behind it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::json;

async fn proxy_with(a: &Mock, b: &Mock) -> Proxy {
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[providers.primary]
kind = "openai"
base_url = "{}/v1"
api_key_env = "UPSTREAM_KEY"
[providers.backup]
kind = "azure"
base_url = "{}"
api_key_env = "UPSTREAM_KEY"
[[routes]]
model = "default"
targets = ["primary/gpt-4o", "backup/my-deployment"]
"#,
        a.url(),
        b.url()
    );
    Proxy::start(
        &toml,
        &[("CLIENT_KEYS", "client-key"), ("UPSTREAM_KEY", "sk-up")],
    )
    .await
}

#[tokio::test]
async fn the_sdk_completes_and_streams_through_the_proxy() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = proxy_with(&a, &b).await;
    a.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Hello from OpenAI"),
    ));
    a.push(stream_reply("gpt-4o-2024-08-06", &["Hel", "lo", "!"]));
    // the lead fails: Azure answers, its prompt-filter chunk (empty choices) is dropped
    a.push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    let filter = r#"{"id":"","object":"","created":0,"model":"","choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#;
    let mut azure = stream_reply("gpt-4o-2024-11-20", &["from", " azure"]);
    azure.events.insert(
        0,
        (
            std::time::Duration::ZERO,
            bytes::Bytes::from(format!("data: {filter}\n\n")),
        ),
    );
    b.push(azure);
    let msgs =
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);
    let results = openai_sdk(
        &p,
        "client-key",
        json!([
            {"kind": "complete", "request": {"model": "default", "messages": msgs}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs, "stream_options": {"include_usage": true}}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs}},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["content"], "Hello from OpenAI");
    assert_eq!(r["model"], "gpt-4o-2024-08-06");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["headers"]["x-understudy-provider"], "primary");
    assert_eq!(r["usage"]["total_tokens"], 7);
    let s = &results[1];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["content"], "Hello!");
    assert_eq!(s["finish_reason"], "stop");
    assert_eq!(s["usage"]["total_tokens"], 7, "usage chunk when asked for");
    assert_eq!(s["ids"], json!(["chatcmpl-mock1"]));
    let z = &results[2];
    assert_eq!(z["ok"], true, "{z}");
    assert_eq!(z["content"], "from azure");
    assert_eq!(
        z["models"],
        json!(["gpt-4o-2024-11-20"]),
        "no empty-model filter chunk reached the SDK"
    );
    assert!(z["usage"].is_null());
    let azure_req = &b.received()[0];
    assert_eq!(
        azure_req.path,
        "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(azure_req.headers["api-key"], "sk-up");
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_tool_calls() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = proxy_with(&a, &b).await;
    let m = "gpt-4o-2024-08-06";
    let datas = [
        chunk(
            m,
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
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
    a.push(Reply::sse(&refs));
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let results = openai_sdk(
        &p,
        "client-key",
        json!([{"kind": "stream", "request": {"model": "default", "tools": tools, "messages": [{"role": "user", "content": "weather?"}]}}]),
    )
    .await;
    let s = &results[0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["finish_reason"], "tool_calls");
    assert_eq!(
        s["tool_calls"][0],
        json!({"id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        s["tool_calls"][1],
        json!({"id": "call_b", "name": "get_time", "arguments": "{}"})
    );
    assert_eq!(
        a.received()[0].json()["tools"],
        tools,
        "tools pass through untouched"
    );
}

#[tokio::test]
async fn the_sdk_parses_every_proxy_error() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = proxy_with(&a, &b).await;
    a.always(Reply::json(429, "{}").header("retry-after", "30"));
    b.always(Reply::json(429, "{}").header("retry-after", "30"));
    let ok_req = json!({"model": "default", "messages": [{"role": "user", "content": "x"}]});
    let results = openai_sdk(
        &p,
        "client-key",
        json!([
            {"kind": "complete", "request": {"model": "nope", "messages": [{"role": "user", "content": "x"}]}},
            {"kind": "complete", "request": ok_req},
            {"kind": "stream", "request": ok_req},
        ]),
    )
    .await;
    assert_eq!(results[0]["error"], "NotFoundError", "{}", results[0]);
    assert_eq!(results[0]["code"], "model_not_found");
    assert_eq!(results[1]["error"], "RateLimitError", "{}", results[1]);
    assert_eq!(results[1]["code"], "rate_limited");
    assert_eq!(results[1]["type"], "rate_limit_error");
    assert_eq!(results[2]["error"], "RateLimitError");
    let bad_key = openai_sdk(&p, "wrong", json!([{"kind": "complete", "request": {"model": "default", "messages": [{"role": "user", "content": "x"}]}}])).await;
    assert_eq!(bad_key[0]["error"], "AuthenticationError");
    assert_eq!(bad_key[0]["code"], "invalid_api_key");
}

#[tokio::test]
async fn a_mid_stream_failure_surfaces_as_an_sdk_error_after_the_content() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = proxy_with(&a, &b).await;
    let mut r = stream_reply("gpt-4o", &["partial"]);
    r.events.truncate(2);
    a.push(r.end(End::Drop));
    let results = openai_sdk(
        &p,
        "client-key",
        json!([{"kind": "stream", "request": {"model": "default", "messages": [{"role": "user", "content": "x"}]}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], false, "{}", results[0]);
    assert_eq!(results[0]["error"], "APIError");
    assert!(results[0]["message"]
        .as_str()
        .unwrap()
        .contains("stream broke"));
    assert_eq!(b.count(), 0);
}
