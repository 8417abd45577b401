//! The exact-match answer cache through real HTTP: hits without upstream calls, JSON
//! and SSE replayed either way, what is never stored, stale answers when every target
//! fails, metrics, and config errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

use common::UPSTREAM_KEY as KEY;

/// [`openai_config`] with `cache` as the body of the `[cache]` section.
fn config(mocks: &[(&str, String)], cache: &str, extra: &str) -> String {
    openai_config(mocks, &format!("[cache]\n{cache}\n{extra}\n"))
}

async fn one(cache: &str) -> (Mock, Proxy) {
    let a = Mock::start().await;
    let p = Proxy::start(&config(&[("a", a.url())], cache, ""), &[KEY]).await;
    (a, p)
}

const ON: &str = "enabled = true";

/// Just past the `ttl` of an hour the tests that need an entry to age configure; they
/// jump the clock ([`skip`]) there rather than sleep through a short ttl, which a slow
/// run could also outlast between two requests meant to be fresh.
const PAST_TTL: Duration = Duration::from_secs(3601);

fn ask(text: &str) -> Value {
    json!({"model": "default", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

fn ask_stream(text: &str) -> Value {
    let mut v = ask(text);
    v["stream"] = json!(true);
    v
}

fn tool_completion() -> String {
    json!({
        "id": "chatcmpl-tools", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    })
    .to_string()
}

async fn metric(p: &Proxy, result: &str) -> u64 {
    let text = get(&p.url("/metrics")).await.text();
    let name = format!("understudy_cache_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_miss_then_a_hit_without_any_upstream_call() {
    let (a, p) = one(ON).await;
    a.push(Reply::json(200, completion("gpt-4o-2024-08-06", "hello")));
    let first = p.chat(ask("hi")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    assert_eq!(first.header("x-understudy-attempts"), Some("1"));

    let again = send(
        &p.url("/v1/chat/completions"),
        "POST",
        &[("x-request-id", "rid-7")],
        ask("hi").to_string(),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-understudy-cache"), Some("hit"));
    assert_eq!(again.header("x-understudy-attempts"), Some("0"));
    assert_eq!(again.header("x-understudy-provider"), Some("a"));
    assert_eq!(again.header("x-understudy-model"), Some("m-a"));
    assert_eq!(again.header("x-request-id"), Some("rid-7"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert_eq!(again.json(), first.json(), "the same answer, byte for byte");
    assert_eq!(a.count(), 1, "no upstream call for the hit");

    // another question is another entry
    a.push(Reply::json(200, completion("gpt-4o", "other")));
    let other = p.chat(ask("hi there")).await;
    assert_eq!(other.header("x-understudy-cache"), Some("miss"));
    assert_eq!(other.json()["choices"][0]["message"]["content"], "other");
    assert_eq!(a.count(), 2);
}

#[tokio::test]
async fn a_json_answer_replays_as_sse_that_the_openai_sdk_reassembles() {
    let (a, p) = one(ON).await;
    a.push(Reply::json(200, tool_completion()));
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let mut req = ask("weather?");
    req["tools"] = tools.clone();
    let first = p.chat(req.clone()).await;
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));

    // raw SSE: role + content, one chunk per tool call, finish, [DONE]
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let r = p.chat(sreq.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-cache"), Some("hit"));
    assert_eq!(r.header("x-understudy-attempts"), Some("0"));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks.len(), 4, "{data:?}");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Checking."})
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"],
        0
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "call_b"
    );
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-tools");
        assert_eq!(c["model"], "gpt-4o-2024-08-06");
        assert_eq!(c["object"], "chat.completion.chunk");
    }

    // the official SDK, with and without the usage chunk
    let mut with_usage = req.clone();
    with_usage["stream_options"] = json!({"include_usage": true});
    let results = openai_sdk(
        &p,
        "client-key",
        json!([
            {"kind": "stream", "request": with_usage},
            {"kind": "stream", "request": req},
        ]),
    )
    .await;
    let s = &results[0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["content"], "Checking.");
    assert_eq!(s["finish_reason"], "tool_calls");
    assert_eq!(s["tool_call_indices"], json!([0, 1]));
    assert_eq!(
        s["tool_calls"],
        json!([
            {"id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"id": "call_b", "name": "get_time", "arguments": "{}"}
        ])
    );
    assert_eq!(s["usage"]["total_tokens"], 13, "usage chunk when asked for");
    assert_eq!(s["ids"], json!(["chatcmpl-tools"]));
    assert_eq!(results[1]["ok"], true, "{}", results[1]);
    assert_eq!(results[1]["usage"], Value::Null, "no usage chunk unasked");
    assert_eq!(a.count(), 1, "every replay came from the cache");
}

#[tokio::test]
async fn a_streamed_answer_is_cached_and_served_as_json() {
    let (a, p) = one(ON).await;
    let m = "gpt-4o-2024-08-06";
    let datas = [
        chunk(m, json!({"role": "assistant", "content": ""}), None),
        chunk(m, json!({"content": "Hello"}), None),
        chunk(m, json!({"content": " world"}), None),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":1}"}}]}),
            None,
        ),
        chunk(m, json!({}), Some("tool_calls")),
        json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": m, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        .to_string(),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    a.push(Reply::sse(&refs));
    let first = p.chat(ask_stream("hi")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    assert_eq!(first.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert!(
        !first.text().contains("usage"),
        "the client did not ask for usage"
    );

    let hit = p.chat(ask("hi")).await;
    assert_eq!(hit.status, 200, "{}", hit.text());
    assert_eq!(hit.header("x-understudy-cache"), Some("hit"));
    assert_eq!(hit.header("x-understudy-provider"), Some("a"));
    let body = hit.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-mock1");
    assert_eq!(body["model"], m);
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello world");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"],
        json!({"name": "f", "arguments": "{\"x\":1}"})
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        body["usage"]["total_tokens"], 7,
        "usage the upstream sent is kept"
    );
    let sdk = openai_sdk(&p, "k", json!([{"kind": "complete", "request": ask("hi")}])).await;
    assert_eq!(sdk[0]["ok"], true, "{}", sdk[0]);
    assert_eq!(sdk[0]["headers"]["x-understudy-cache"], "hit");
    assert_eq!(sdk[0]["content"], "Hello world");
    assert_eq!(a.count(), 1);
}

#[tokio::test]
async fn a_stream_that_fails_mid_way_is_not_cached() {
    let (a, p) = one(ON).await;
    let mut r = stream_reply("m-a", &["Hel", "lo"]);
    r.events.truncate(3); // role, "Hel", "lo" — then the connection drops
    a.push(r.end(End::Drop));
    let first = p.chat(ask_stream("hi")).await;
    assert!(
        first.text().contains("\"error\""),
        "mid-stream error event: {}",
        first.text()
    );
    // a stream that closes before its end (no finish_reason, no [DONE]) failed too
    let mut r = stream_reply("m-a", &["Hel", "lo"]);
    r.events.truncate(3);
    a.push(r);
    let second = p.chat(ask_stream("hi")).await;
    assert_ne!(
        second.sse_data().last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        second.text()
    );

    a.push(Reply::json(200, completion("m-a", "whole")));
    let third = p.chat(ask("hi")).await;
    assert_eq!(third.header("x-understudy-cache"), Some("miss"));
    assert_eq!(third.json()["choices"][0]["message"]["content"], "whole");
    assert_eq!(a.count(), 3);
}

#[tokio::test]
async fn only_temperature_zero_is_cached_unless_mode_is_all() {
    let (a, p) = one(ON).await;
    a.always(Reply::json(200, completion("m-a", "warm")));
    let mut warm = ask("hi");
    warm["temperature"] = json!(0.7);
    let mut unset = ask("hi");
    unset.as_object_mut().unwrap().remove("temperature");
    for req in [&warm, &warm, &unset, &unset] {
        let r = p.chat(req.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-understudy-cache"), Some("miss"));
    }
    assert_eq!(a.count(), 4, "nothing cached");

    let (a, p) = one("enabled = true\nmode = \"all\"").await;
    a.always(Reply::json(200, completion("m-a", "warm")));
    assert_eq!(
        p.chat(warm.clone()).await.header("x-understudy-cache"),
        Some("miss")
    );
    assert_eq!(p.chat(warm).await.header("x-understudy-cache"), Some("hit"));
    assert_eq!(
        p.chat(unset).await.header("x-understudy-cache"),
        Some("miss")
    );
    assert_eq!(a.count(), 2);
}

#[tokio::test]
async fn a_stale_answer_stands_in_only_when_every_target_fails() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = Proxy::start(
        &config(
            &[("a", a.url()), ("b", b.url())],
            "enabled = true\nttl = \"1h\"",
            "[fallback]\nmessage = \"sorry\"",
        ),
        &[KEY],
    )
    .await;
    a.push(Reply::json(200, completion("m-a", "first")));
    assert_eq!(
        p.chat(ask("hi")).await.header("x-understudy-cache"),
        Some("miss")
    );
    skip(PAST_TTL).await;

    // past ttl with a working upstream: a fresh answer, which replaces the entry
    a.push(Reply::json(200, completion("m-a", "second")));
    let r = p.chat(ask("hi")).await;
    assert_eq!(r.header("x-understudy-cache"), Some("miss"));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "second");
    skip(PAST_TTL).await;

    // past ttl and every target fails: the stale entry, before the static fallback
    a.always(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    b.always(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    let r = p.chat(ask("hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-cache"), Some("stale"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-degraded"), None);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "second");
    // … in the client's mode
    let r = p.chat(ask_stream("hi")).await;
    assert_eq!(r.header("x-understudy-cache"), Some("stale"));
    assert!(r.text().contains("\"content\":\"second\""), "{}", r.text());
    assert!(r.text().ends_with("data: [DONE]\n\n"));

    // nothing stale for another question: the static fallback
    let r = p.chat(ask("something else")).await;
    assert_eq!(r.header("x-understudy-cache"), Some("miss"));
    assert_eq!(r.header("x-understudy-degraded"), Some("static"));
    assert_eq!(metric(&p, "stale").await, 2);
}

#[tokio::test]
async fn past_stale_ttl_nothing_is_served() {
    let (a, p) = one("enabled = true\nttl = \"1h\"\nstale_ttl = \"2h\"").await;
    a.push(Reply::json(200, completion("m-a", "old")));
    assert_eq!(p.chat(ask("hi")).await.status, 200);
    skip(Duration::from_secs(2 * 3600 + 1)).await;
    a.always(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    let r = p.chat(ask("hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-understudy-cache"), Some("miss"));
    assert_eq!(r.error_code(), "upstream_failed");
}

#[tokio::test]
async fn a_request_the_provider_rejects_is_not_answered_from_a_stale_entry() {
    let (a, p) = one("enabled = true\nttl = \"1h\"").await;
    a.push(Reply::json(200, completion("m-a", "old")));
    assert_eq!(p.chat(ask("hi")).await.status, 200);
    skip(PAST_TTL).await;
    a.push(Reply::json(
        400,
        r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#,
    ));
    let r = p.chat(ask("hi")).await;
    assert_eq!(r.status, 400, "not every target failed: the request is bad");
    assert_eq!(r.header("x-understudy-cache"), Some("miss"));
}

#[tokio::test]
async fn metrics_count_what_the_header_says() {
    let (a, p) = one("enabled = true\nttl = \"1h\"").await;
    a.push(Reply::json(200, completion("m-a", "x")));
    p.chat(ask("hi")).await; // miss
    p.chat(ask("hi")).await; // hit
    p.chat(ask_stream("hi")).await; // hit
    skip(PAST_TTL).await;
    a.always(Reply::json(502, "{}"));
    p.chat(ask("hi")).await; // stale
    p.chat(json!({"model": "default"})).await; // 400: miss
    assert_eq!(metric(&p, "hit").await, 2);
    assert_eq!(metric(&p, "miss").await, 2);
    assert_eq!(metric(&p, "stale").await, 1);
    assert_eq!(a.count(), 2);
}

#[tokio::test]
async fn no_header_and_no_caching_when_the_cache_is_off() {
    let (a, p) = one("").await;
    a.always(Reply::json(200, completion("m-a", "x")));
    for _ in 0..2 {
        let r = p.chat(ask("hi")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-understudy-cache"), None);
    }
    assert_eq!(
        p.chat(json!({"model": "nope", "messages": []}))
            .await
            .header("x-understudy-cache"),
        None
    );
    assert_eq!(a.count(), 2);
    let text = get(&p.url("/metrics")).await.text();
    assert!(!text.contains("understudy_cache_total{"), "{text}");
}

#[tokio::test]
async fn the_cache_survives_a_reload_and_starts_over_when_its_size_changes() {
    let (a, p) = one(ON).await;
    a.always(Reply::json(200, completion("m-a", "x")));
    p.chat(ask("hi")).await;
    let base = config(&[("a", a.url())], ON, "[failover]\nmax_attempts = 3");
    p.write_in_place(&base);
    assert!(understudy::config::watch::reload(&p.app));
    assert_eq!(
        p.chat(ask("hi")).await.header("x-understudy-cache"),
        Some("hit")
    );
    p.write_in_place(&config(
        &[("a", a.url())],
        "enabled = true\nmax_entries = 5",
        "",
    ));
    assert!(understudy::config::watch::reload(&p.app));
    assert_eq!(
        p.chat(ask("hi")).await.header("x-understudy-cache"),
        Some("miss")
    );
    p.write_in_place(&config(&[("a", a.url())], "enabled = false", ""));
    assert!(understudy::config::watch::reload(&p.app));
    assert_eq!(p.chat(ask("hi")).await.header("x-understudy-cache"), None);
    assert_eq!(a.count(), 3);
}

#[test]
fn bad_cache_settings_are_config_errors_naming_the_key() {
    let env: understudy::config::EnvLookup = Arc::new(|_| None);
    let cases = [
        ("ttl = \"0s\"", "cache.ttl"),
        ("ttl = \"soon\"", "cache.ttl"),
        ("ttl = \"10m\"\nstale_ttl = \"5m\"", "cache.stale_ttl"),
        ("stale_ttl = \"1s\"", "cache.stale_ttl"),
        ("max_entries = 0", "cache.max_entries"),
        ("mode = \"sometimes\"", "cache.mode"),
        ("enabeld = true", "enabeld"),
    ];
    for (body, key) in cases {
        let text = format!("[cache]\nenabled = true\n{body}\n");
        let err = understudy::config::from_str(&text, Path::new("proxy.toml"), &env)
            .err()
            .unwrap_or_else(|| panic!("{body:?} should be rejected"))
            .to_string();
        assert!(
            err.starts_with("proxy.toml: ") && err.contains(key),
            "{body:?}: {err}"
        );
    }
    let ok = "[cache]\nenabled = true\nttl = \"200ms\"\nstale_ttl = \"200ms\"\nmode = \"all\"";
    assert!(understudy::config::from_str(ok, Path::new("proxy.toml"), &env).is_ok());
}
