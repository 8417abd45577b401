//! The Anthropic provider end to end: the official `openai` SDK talks to the proxy,
//! an Anthropic mock behind it replays the recorded answers and SSE streams of
//! `fixtures/anthropic/` (streams cut into odd-sized pieces, some mid-line and
//! mid-UTF-8 character), and an OpenAI-kind mock stands by as the second target.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};

const TEXT_JSON: &str = include_str!("../fixtures/anthropic/response_text.json");
const TOOL_USE_JSON: &str = include_str!("../fixtures/anthropic/response_tool_use.json");
const MAX_TOKENS_JSON: &str = include_str!("../fixtures/anthropic/response_max_tokens.json");
const JSON_OUTPUT_JSON: &str = include_str!("../fixtures/anthropic/response_json_output.json");

const TEXT_SSE: &str = include_str!("../fixtures/anthropic/stream_text.sse");
const TOOL_USE_SSE: &str = include_str!("../fixtures/anthropic/stream_tool_use.sse");
const NO_ARGS_SSE: &str = include_str!("../fixtures/anthropic/stream_tool_no_args.sse");
const MAX_TOKENS_SSE: &str = include_str!("../fixtures/anthropic/stream_max_tokens.sse");
const PINGS_SSE: &str = include_str!("../fixtures/anthropic/stream_pings.sse");
const THINKING_SSE: &str = include_str!("../fixtures/anthropic/stream_thinking.sse");
const JSON_OUTPUT_SSE: &str = include_str!("../fixtures/anthropic/stream_json_output.sse");
const ERROR_MIDSTREAM_SSE: &str = include_str!("../fixtures/anthropic/stream_error_midstream.sse");

const ERROR_OVERLOADED: &str = include_str!("../fixtures/anthropic/error_overloaded.json");
const ERROR_RATE_LIMIT: &str = include_str!("../fixtures/anthropic/error_rate_limit.json");
const ERROR_INVALID_REQUEST: &str =
    include_str!("../fixtures/anthropic/error_invalid_request.json");
const ERROR_AUTHENTICATION: &str = include_str!("../fixtures/anthropic/error_authentication.json");

const REQUEST_TOOLS_OPENAI: &str = include_str!("../fixtures/anthropic/request_tools.openai.json");
const REQUEST_TOOLS_ANTHROPIC: &str =
    include_str!("../fixtures/anthropic/request_tools.anthropic.json");
const REQUEST_SCHEMA_OPENAI: &str =
    include_str!("../fixtures/anthropic/request_json_schema.openai.json");
const REQUEST_SCHEMA_ANTHROPIC: &str =
    include_str!("../fixtures/anthropic/request_json_schema.anthropic.json");

const CLIENT_KEY: &str = "client-key";
const ANTHROPIC_KEY: &str = "sk-ant-upstream-secret";
const OPENAI_KEY: &str = "sk-openai-upstream-secret";
/// What the fixtures' answers report as their model.
const CLAUDE: &str = "claude-sonnet-4-5-20250929";
const GPT: &str = "gpt-4o-2024-08-06";

/// The Anthropic mock (lead) and the OpenAI-kind mock behind a `default` route.
struct Setup {
    anthropic: Mock,
    openai: Mock,
    proxy: Proxy,
}

async fn setup() -> Setup {
    setup_with("").await
}

/// Like [`setup`], with `extra` lines in the Anthropic provider's table.
async fn setup_with(extra: &str) -> Setup {
    let anthropic = Mock::start().await;
    let openai = Mock::start().await;
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[providers.anthropic]
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_KEY"
{}
[providers.openai]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_KEY"
[[routes]]
model = "default"
targets = ["anthropic/claude-sonnet-4-5", "openai/gpt-4o"]
"#,
        anthropic.url(),
        extra,
        openai.url()
    );
    let proxy = Proxy::start(
        &toml,
        &[
            ("CLIENT_KEYS", CLIENT_KEY),
            ("ANTHROPIC_KEY", ANTHROPIC_KEY),
            ("OPENAI_KEY", OPENAI_KEY),
        ],
    )
    .await;
    Setup {
        anthropic,
        openai,
        proxy,
    }
}

impl Setup {
    /// A chat request with the client's key, as an SDK would send it.
    async fn chat(&self, body: &Value) -> Resp {
        send(
            &self.proxy.url("/v1/chat/completions"),
            "POST",
            &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
            body.to_string(),
        )
        .await
    }

    async fn sdk(&self, scenarios: Value) -> Vec<Value> {
        openai_sdk(&self.proxy, CLIENT_KEY, scenarios).await
    }
}

/// `text` cut into pieces of cycling odd sizes (boundaries fall mid-line and between
/// the two newlines of an event's end), and also cut inside every multi-byte UTF-8
/// character.
fn pieces(text: &str) -> Vec<Bytes> {
    const SIZES: [usize; 12] = [1, 2, 3, 5, 7, 11, 13, 17, 29, 64, 101, 257];
    let bytes = text.as_bytes();
    let mut cuts: Vec<usize> = SIZES
        .iter()
        .cycle()
        .scan(0, |at, size| {
            *at += size;
            Some(*at)
        })
        .take_while(|&at| at < bytes.len())
        .collect();
    // right after each lead byte of a multi-byte character
    cuts.extend(
        (0..bytes.len())
            .filter(|&i| bytes[i] >= 0xC0)
            .map(|i| i + 1),
    );
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(bytes.len());
    let mut at = 0;
    cuts.into_iter()
        .map(|end| {
            let piece = Bytes::copy_from_slice(&bytes[at..end]);
            at = end;
            piece
        })
        .collect()
}

/// An Anthropic SSE answer replaying `fixture` piece by piece (1 ms apart, so the
/// proxy really reads the pieces one at a time).
fn anthropic_stream(fixture: &str) -> Reply {
    let mut reply = Reply::raw(200, "text/event-stream", &[]);
    reply.events = pieces(fixture)
        .into_iter()
        .map(|b| (Duration::ZERO, b))
        .collect();
    reply.gap(Duration::from_millis(1))
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn msgs() -> Value {
    json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
}

/// The chunks of a streamed answer (everything but `[DONE]` and error events).
fn chunks_of(r: &Resp) -> Vec<Value> {
    r.sse_data()
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

// ---------------------------------------------------------------------------------
// 1. Complete answers

#[tokio::test]
async fn the_sdk_gets_complete_answers_with_model_finish_reason_and_usage() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, TEXT_JSON));
    s.anthropic.push(Reply::json(200, TOOL_USE_JSON));
    s.anthropic.push(Reply::json(200, MAX_TOKENS_JSON));
    let req = json!({"model": "default", "messages": msgs()});
    let results = s
        .sdk(json!([
            {"kind": "complete", "request": req},
            {"kind": "complete", "request": req},
            {"kind": "complete", "request": req},
        ]))
        .await;

    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["content"], "Hello! How can I help you today?",
        "text blocks joined, thinking left out"
    );
    assert_eq!(r["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(r["model"], CLAUDE, "the model Anthropic reported");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["tool_calls"], json!([]));
    assert_eq!(r["usage"]["prompt_tokens"], 12);
    assert_eq!(r["usage"]["completion_tokens"], 38);
    assert_eq!(r["usage"]["total_tokens"], 50);
    assert_eq!(r["headers"]["x-understudy-provider"], "anthropic");
    assert_eq!(r["headers"]["x-understudy-model"], "claude-sonnet-4-5");
    assert_eq!(r["headers"]["x-understudy-attempts"], "1");

    let t = &results[1];
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(
        t["content"],
        "I'll look up the weather in both cities and the current time."
    );
    assert_eq!(t["finish_reason"], "tool_calls");
    let calls = t["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{t}");
    let expected = [
        (
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            json!({"location": "Paris, France", "unit": "celsius"}),
        ),
        (
            "toolu_01B5cPNg1ZkQxRWsyW1uDBkT",
            "get_weather",
            json!({"location": "Tokyo, Japan", "unit": "celsius"}),
        ),
        ("toolu_01CdXd3cMv4aK1AqZ7pW9sRt", "get_time", json!({})),
    ];
    for (call, (id, name, input)) in calls.iter().zip(expected) {
        assert_eq!(call["id"], id);
        assert_eq!(call["name"], name);
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, input);
    }
    assert_eq!(calls[2]["arguments"], "{}");
    // prompt = input + cache_creation + cache_read
    assert_eq!(t["usage"]["prompt_tokens"], 420 + 1500 + 2000);
    assert_eq!(t["usage"]["completion_tokens"], 151);
    assert_eq!(t["usage"]["total_tokens"], 420 + 1500 + 2000 + 151);

    let m = &results[2];
    assert_eq!(m["ok"], true, "{m}");
    assert_eq!(
        m["content"],
        "Once upon a time, in a kingdom by the sea, there lived a"
    );
    assert_eq!(m["finish_reason"], "length");
    assert_eq!(m["usage"]["total_tokens"], 17 + 16);

    assert_eq!(s.openai.count(), 0);
}

// ---------------------------------------------------------------------------------
// 2. Streams

#[tokio::test]
async fn the_sdk_reassembles_streamed_text_exactly() {
    let s = setup().await;
    for fx in [TEXT_SSE, TEXT_SSE, PINGS_SSE, MAX_TOKENS_SSE, THINKING_SSE] {
        s.anthropic.push(anthropic_stream(fx));
    }
    let with_usage =
        json!({"model": "default", "messages": msgs(), "stream_options": {"include_usage": true}});
    let without = json!({"model": "default", "messages": msgs()});
    let results = s
        .sdk(json!([
            {"kind": "stream", "request": with_usage},
            {"kind": "stream", "request": without},
            {"kind": "stream", "request": with_usage},
            {"kind": "stream", "request": without},
            {"kind": "stream", "request": without},
        ]))
        .await;

    let t = &results[0];
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["content"], "Hello! How can I help you today? ✓ héllo");
    assert_eq!(t["finish_reason"], "stop");
    assert_eq!(t["tool_calls"], json!([]));
    assert_eq!(
        t["usage"],
        json!({"prompt_tokens": 21, "completion_tokens": 15, "total_tokens": 36}),
        "usage chunk when asked for"
    );
    assert_eq!(t["ids"], json!(["msg_01VxEzZzHnzW9Yb4oB7Sdk3P"]));
    assert_eq!(t["models"], json!([CLAUDE]));

    let n = &results[1];
    assert_eq!(n["ok"], true, "{n}");
    assert_eq!(n["content"], "Hello! How can I help you today? ✓ héllo");
    assert!(n["usage"].is_null(), "no usage unless asked for: {n}");

    let p = &results[2];
    assert_eq!(p["ok"], true, "{p}");
    assert_eq!(p["content"], "Still thinking it over.", "pings ignored");
    assert_eq!(p["finish_reason"], "stop", "stop_sequence is stop");
    assert_eq!(p["usage"]["prompt_tokens"], 31 + 12, "cache reads counted");
    assert_eq!(p["usage"]["completion_tokens"], 9);
    assert_eq!(p["usage"]["total_tokens"], 31 + 12 + 9);
    assert_eq!(p["ids"], json!(["msg_01Hm6tYq3PzK8wVb2NcR5xJd"]));

    let m = &results[3];
    assert_eq!(m["ok"], true, "{m}");
    assert_eq!(
        m["content"],
        "Once upon a time, in a kingdom by the sea, there lived a"
    );
    assert_eq!(m["finish_reason"], "length");

    let k = &results[4];
    assert_eq!(k["ok"], true, "{k}");
    assert_eq!(k["content"], "27 * 453 = 12,231", "thinking left out");
    assert_eq!(k["finish_reason"], "stop");
    assert_eq!(k["models"], json!([CLAUDE]));

    assert_eq!(s.anthropic.count(), 5);
    assert_eq!(s.openai.count(), 0);
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_parallel_tool_calls_exactly() {
    let s = setup().await;
    s.anthropic.push(anthropic_stream(TOOL_USE_SSE));
    s.anthropic.push(anthropic_stream(NO_ARGS_SSE));
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time"}},
        {"type": "function", "function": {"name": "list_timezones"}}
    ]);
    let req = json!({"model": "default", "messages": msgs(), "tools": tools, "stream_options": {"include_usage": true}});
    let results = s
        .sdk(json!([
            {"kind": "stream", "request": req},
            {"kind": "stream", "request": req},
        ]))
        .await;

    let t = &results[0];
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["content"], "I'll check the weather in both cities.");
    assert_eq!(t["finish_reason"], "tool_calls");
    assert_eq!(t["tool_call_indices"], json!([0, 1]), "0-based, per call");
    let calls = t["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[1]["id"], "toolu_01VPGbBNYNkvBxAq4tDMTKDx");
    for (call, city) in calls.iter().zip(["Paris, France", "Tokyo, Japan"]) {
        assert_eq!(call["name"], "get_weather");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("arguments are JSON ({e}): {call}"));
        assert_eq!(args, json!({"location": city, "unit": "celsius"}));
    }
    assert_eq!(
        calls[0]["arguments"], "{\"location\": \"Paris, France\", \"unit\": \"celsius\"}",
        "fragments concatenate to exactly what Anthropic streamed"
    );
    assert_eq!(t["usage"]["prompt_tokens"], 472 + 1500 + 2000);
    assert_eq!(t["usage"]["completion_tokens"], 124);
    assert_eq!(t["usage"]["total_tokens"], 472 + 1500 + 2000 + 124);
    assert_eq!(t["ids"], json!(["msg_014p7gG3wDgGV9EUtLvnow3U"]));
    assert_eq!(t["models"], json!([CLAUDE]));

    let n = &results[1];
    assert_eq!(n["ok"], true, "{n}");
    assert_eq!(n["finish_reason"], "tool_calls");
    assert_eq!(n["tool_call_indices"], json!([0, 1]));
    assert_eq!(
        n["tool_calls"],
        json!([
            {"id": "toolu_01NtmWyjQ4gkZxH6bUvMaSdP", "name": "get_time", "arguments": "{}"},
            {"id": "toolu_01Lx3CkRa7PzYbT2mJv9HqWe", "name": "list_timezones", "arguments": "{}"},
        ])
    );
    assert_eq!(n["content"], "");
    assert_eq!(n["usage"]["total_tokens"], 389 + 41);
}

#[tokio::test]
async fn every_chunk_of_a_stream_carries_the_same_id_created_and_model() {
    let s = setup().await;
    s.anthropic.push(anthropic_stream(TOOL_USE_SSE));
    let r = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("anthropic"));
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let datas = r.sse_data();
    assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks_of(&r);
    assert!(chunks.len() > 5, "{}", r.text());
    for c in &chunks {
        assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U", "{c}");
        assert_eq!(c["model"], CLAUDE, "{c}");
        assert_eq!(c["created"], chunks[0]["created"], "{c}");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c.get("usage").is_none_or(Value::is_null), "not asked: {c}");
        assert!(!c["choices"].as_array().unwrap().is_empty(), "{c}");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finishes: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, ["tool_calls"], "one finish, on the final chunk");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // with include_usage: one usage chunk (no choices), after the finish, before [DONE]
    s.anthropic.push(anthropic_stream(TOOL_USE_SSE));
    let r = s
        .chat(&json!({"model": "default", "stream": true, "stream_options": {"include_usage": true}, "messages": msgs()}))
        .await;
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks_of(&r);
    let with_usage: Vec<_> = chunks
        .iter()
        .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .collect();
    assert_eq!(with_usage.len(), 1, "{}", r.text());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 472 + 1500 + 2000);
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );
    assert_eq!(last["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

// ---------------------------------------------------------------------------------
// 3. What Anthropic receives

#[tokio::test]
async fn anthropic_receives_a_translated_messages_request_with_its_own_key() {
    let s = setup().await;
    s.anthropic.push(anthropic_stream(TEXT_SSE));
    s.anthropic.push(Reply::json(200, TEXT_JSON));
    // the full fixture conversation (streamed)
    let r = s.chat(&fixture(REQUEST_TOOLS_OPENAI)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    // a small one: system, tools, a named tool_choice, no max_tokens
    let r = s
        .chat(&json!({
            "model": "default",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather in Paris?"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let got = s.anthropic.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.method, "POST");
        assert_eq!(g.path, "/v1/messages");
        assert_eq!(g.headers["x-api-key"], ANTHROPIC_KEY);
        assert_eq!(g.headers["anthropic-version"], "2023-06-01");
        assert!(g.headers["content-type"].starts_with("application/json"));
        assert!(
            !g.headers.contains_key("authorization"),
            "the client's key never reaches Anthropic: {:?}",
            g.headers
        );
        assert!(!g
            .headers
            .values()
            .any(|v| v.contains(CLIENT_KEY) || v.contains(OPENAI_KEY)));
    }
    assert_eq!(got[0].json(), fixture(REQUEST_TOOLS_ANTHROPIC));
    assert_eq!(
        got[1].json(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]}],
            "tools": [{"name": "get_weather", "description": "Weather now",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
        })
    );
    assert_eq!(s.openai.count(), 0);
}

#[tokio::test]
async fn the_providers_version_max_tokens_and_headers_settings_are_used() {
    let s = setup_with(
        "version = \"2024-01-01\"\nmax_tokens = 1000\nheaders = { \"anthropic-beta\" = \"prompt-caching-2024-07-31\" }",
    )
    .await;
    s.anthropic.always(Reply::json(200, TEXT_JSON));
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .chat(&json!({"model": "default", "max_tokens": 77, "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.anthropic.received();
    assert_eq!(got[0].headers["anthropic-version"], "2024-01-01");
    assert_eq!(
        got[0].headers["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
    assert_eq!(got[0].headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(got[0].json()["max_tokens"], 1000, "the provider's setting");
    assert_eq!(got[1].json()["max_tokens"], 77, "the client's wins");
}

// ---------------------------------------------------------------------------------
// 4. JSON mode

#[tokio::test]
async fn json_mode_answers_with_the_json_as_content_plain_and_streamed() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, JSON_OUTPUT_JSON));
    s.anthropic.push(anthropic_stream(JSON_OUTPUT_SSE));
    s.anthropic.push(Reply::json(200, JSON_OUTPUT_JSON));
    s.anthropic.push(anthropic_stream(JSON_OUTPUT_SSE));
    let schema_req = fixture(REQUEST_SCHEMA_OPENAI);
    let object_req =
        json!({"model": "default", "messages": msgs(), "response_format": {"type": "json_object"}});
    let results = s
        .sdk(json!([
            {"kind": "complete", "request": schema_req},
            {"kind": "stream", "request": schema_req},
            {"kind": "complete", "request": object_req},
            {"kind": "stream", "request": object_req},
        ]))
        .await;
    let event = json!({"name": "Science fair", "date": "Friday", "participants": ["Alice", "Bob"]});
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "{i}: {r}");
        let content: Value = serde_json::from_str(r["content"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{i}: content is JSON ({e}): {r}"));
        assert_eq!(content, event, "{i}");
        assert_eq!(r["finish_reason"], "stop", "{i}: {r}");
        assert_eq!(
            r["tool_calls"],
            json!([]),
            "{i}: json_output is no tool call"
        );
    }
    assert_eq!(
        results[1]["content"],
        "{\"name\": \"Science fair\", \"date\": \"Friday\", \"participants\": [\"Alice\", \"Bob\"]}",
        "streamed fragments verbatim"
    );
    assert_eq!(results[0]["usage"]["total_tokens"], 483 + 62);

    let got = s.anthropic.received();
    assert_eq!(got[0].json(), fixture(REQUEST_SCHEMA_ANTHROPIC));
    let mut streamed = fixture(REQUEST_SCHEMA_ANTHROPIC);
    streamed["stream"] = json!(true);
    assert_eq!(got[1].json(), streamed);
    for g in &got[2..] {
        let body = g.json();
        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1, "{body}");
        assert_eq!(tools[0]["name"], "json_output");
        assert_eq!(tools[0]["input_schema"], json!({"type": "object"}));
        assert_eq!(body["tool_choice"]["type"], "tool");
        assert_eq!(body["tool_choice"]["name"], "json_output");
    }
}

// ---------------------------------------------------------------------------------
// 5. Error events inside a 200 stream

/// A stream that starts (message_start, a ping) and then reports `overloaded_error`.
fn overloaded_before_content() -> String {
    let start = TEXT_SSE.split("\n\n").next().unwrap();
    format!(
        "{start}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\nevent: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}}}\n\n"
    )
}

#[tokio::test]
async fn an_overloaded_event_before_content_fails_over_silently() {
    let s = setup().await;
    let early = overloaded_before_content();
    s.anthropic.push(anthropic_stream(&early));
    s.anthropic.push(anthropic_stream(&early));
    s.openai.push(stream_reply(GPT, &["from", " openai"]));
    s.openai.push(stream_reply(GPT, &["again"]));
    let results = s
        .sdk(json!([{"kind": "stream", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["content"], "from openai");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["models"], json!([GPT]), "nothing of Anthropic's leaked");
    assert_eq!(r["ids"], json!(["chatcmpl-mock1"]));

    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("x-understudy-provider"), Some("openai"));
    assert_eq!(raw.header("x-understudy-attempts"), Some("2"));
    assert!(!raw.text().contains("msg_01VxEz"), "{}", raw.text());
    assert!(!raw.text().contains("error"), "{}", raw.text());
    assert_eq!(s.anthropic.count(), 2);
    assert_eq!(s.openai.count(), 2);
    assert_eq!(
        s.openai.received()[0].headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
}

#[tokio::test]
async fn an_overloaded_error_in_a_200_body_fails_over() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, ERROR_OVERLOADED));
    s.openai
        .push(Reply::json(200, completion(GPT, "from openai")));
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from openai");
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
}

/// The mid-stream error fixture in three parts: everything up to and including the
/// first text delta, the second text delta, the `error` event.
fn midstream_parts() -> (&'static str, &'static str, &'static str) {
    let second = ERROR_MIDSTREAM_SSE
        .match_indices("event: content_block_delta")
        .nth(1)
        .unwrap()
        .0;
    let error = ERROR_MIDSTREAM_SSE.find("event: error").unwrap();
    (
        &ERROR_MIDSTREAM_SSE[..second],
        &ERROR_MIDSTREAM_SSE[second..error],
        &ERROR_MIDSTREAM_SSE[error..],
    )
}

/// The text of the content chunks among `datas`.
fn text_of(datas: &[String]) -> String {
    datas
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn an_overloaded_event_after_content_is_the_final_error_event() {
    let s = setup().await;
    // Each part in its own read (200 ms apart): the first content is committed to the
    // client before the error arrives.
    let (head, second, error) = midstream_parts();
    let reply = || {
        let mut r = anthropic_stream(head);
        let n = r.events.len();
        r.events.push((Duration::ZERO, Bytes::from(second)));
        r.events.push((Duration::ZERO, Bytes::from(error)));
        r.gap_before(n, Duration::from_millis(200))
            .gap_before(n + 1, Duration::from_millis(200))
    };
    s.anthropic.push(reply()).push(reply());
    let results = s
        .sdk(json!([{"kind": "stream", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], "APIError", "{r}");
    assert!(r["message"].as_str().unwrap().contains("Overloaded"), "{r}");

    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("x-understudy-provider"), Some("anthropic"));
    let datas = raw.sse_data();
    assert!(!datas.iter().any(|d| d == "[DONE]"), "{}", raw.text());
    let last: Value = serde_json::from_str(datas.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{last}"
    );
    assert_eq!(
        text_of(&datas[..datas.len() - 1]),
        "The three primary colors are red,",
        "the content came first"
    );
    assert_eq!(s.openai.count(), 0, "no silent switch after content");
}

/// Events decoded from one network read are translated together; when a later one
/// fails, what the earlier ones produced must still reach the client before the error
/// event. Here the second text delta and the error event arrive in the same read
/// after the stream was committed: the client must still get " are red,".
#[tokio::test]
async fn content_read_together_with_a_later_error_event_still_reaches_the_client() {
    let s = setup().await;
    let (head, second, error) = midstream_parts();
    let mut reply = Reply::raw(
        200,
        "text/event-stream",
        &[head, &format!("{second}{error}")],
    );
    reply = reply.gap_before(1, Duration::from_millis(200));
    s.anthropic.push(reply);
    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    let datas = raw.sse_data();
    assert!(
        datas.last().unwrap().contains("Overloaded"),
        "{}",
        raw.text()
    );
    assert_eq!(
        text_of(&datas),
        "The three primary colors are red,",
        "{}",
        raw.text()
    );
}

// ---------------------------------------------------------------------------------
// 6. Failover from Anthropic as the lead

#[tokio::test]
async fn anthropic_529_then_429_with_retry_after_hands_over_to_openai() {
    let s = setup().await;
    s.anthropic.push(
        Reply::json(529, ERROR_OVERLOADED).header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"),
    );
    s.anthropic
        .push(Reply::json(429, ERROR_RATE_LIMIT).header("retry-after", "600"));
    s.anthropic.always(Reply::json(200, TEXT_JSON));
    s.openai
        .always(Reply::json(200, completion(GPT, "from openai")));

    let results = s
        .sdk(json!([{"kind": "complete", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["content"], "from openai");
    assert_eq!(r["model"], GPT);
    assert_eq!(r["headers"]["x-understudy-provider"], "openai");
    assert_eq!(r["headers"]["x-understudy-model"], "gpt-4o");
    assert_eq!(r["headers"]["x-understudy-attempts"], "2");
    assert_eq!(s.anthropic.count(), 1);
    // 529 is no rate limit: Anthropic is tried again on the next request
    let since = std::time::Instant::now();
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(s.anthropic.count(), 2, "the 429");
    // now Anthropic cools down for 600 s: nothing more reaches it
    for i in 0..3 {
        let stream = i == 1;
        if stream {
            s.openai.push(stream_reply(GPT, &["from openai"]));
        }
        let r = s
            .chat(&json!({"model": "default", "stream": stream, "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("openai"), "{i}");
        assert_eq!(r.header("x-understudy-attempts"), Some("1"), "{i}: skipped");
    }
    assert_eq!(
        s.anthropic.count(),
        2,
        "no request reaches a cooling target"
    );
    assert_eq!(s.openai.count(), 5);
    let status = get(&s.proxy.url("/status")).await.json();
    let cooldowns = status["cooldowns"].as_array().unwrap();
    assert_eq!(cooldowns.len(), 1, "{status}");
    assert_eq!(cooldowns[0]["target"], "anthropic/claude-sonnet-4-5");
    let left = cooldowns[0]["seconds_left"].as_f64().unwrap();
    assert!((least_left(600.0, since)..=600.0).contains(&left), "{left}");
}

#[tokio::test]
async fn anthropic_529_fails_over_for_streams_too_and_401_fails_over() {
    let s = setup().await;
    s.anthropic.push(Reply::json(529, ERROR_OVERLOADED));
    s.anthropic.push(Reply::json(401, ERROR_AUTHENTICATION));
    s.openai.push(stream_reply(GPT, &["from", " openai"]));
    s.openai
        .push(Reply::json(200, completion(GPT, "from openai")));
    let results = s
        .sdk(json!([
            {"kind": "stream", "request": {"model": "default", "messages": msgs()}},
            {"kind": "complete", "request": {"model": "default", "messages": msgs()}},
        ]))
        .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from openai");
    assert_eq!(results[1]["ok"], true, "{}", results[1]);
    assert_eq!(results[1]["headers"]["x-understudy-attempts"], "2");
    assert_eq!((s.anthropic.count(), s.openai.count()), (2, 2));
}

// ---------------------------------------------------------------------------------
// 7. Bad requests

#[tokio::test]
async fn anthropic_400_is_returned_with_its_message_without_failover() {
    let s = setup().await;
    s.anthropic.push(Reply::json(400, ERROR_INVALID_REQUEST));
    s.anthropic.push(Reply::json(400, ERROR_INVALID_REQUEST));
    let results = s
        .sdk(json!([
            {"kind": "complete", "request": {"model": "default", "messages": msgs()}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs()}},
        ]))
        .await;
    for r in &results {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["status"], 400, "{r}");
        assert_eq!(r["error"], "BadRequestError");
        assert_eq!(r["type"], "invalid_request_error");
        assert!(
            r["message"].as_str().unwrap().contains(
                "messages.1.content.0.tool_use.input: Input should be a valid dictionary"
            ),
            "{r}"
        );
    }
    assert_eq!(s.anthropic.count(), 2);
    assert_eq!(s.openai.count(), 0, "the same request fails everywhere");
}

#[tokio::test]
async fn requests_anthropic_cannot_express_go_to_a_target_that_can_else_400() {
    let s = setup().await;
    s.anthropic.always(Reply::json(200, TEXT_JSON));
    s.openai.always(Reply::json(200, completion(GPT, "x")));
    let n2 = json!({"model": "default", "n": 2, "messages": msgs()});
    let bad_args = json!({"model": "default", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"}
    ]});
    // the route goes on to OpenAI, which takes the request as it is
    for body in [&n2, &bad_args] {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            if stream {
                s.openai.push(stream_reply(GPT, &["x"]));
            }
            let r = s.chat(&body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            assert_eq!(r.header("x-understudy-provider"), Some("openai"));
            assert_eq!(
                r.header("x-understudy-attempts"),
                Some("1"),
                "skipped targets don't count"
            );
        }
    }
    assert_eq!(
        s.anthropic.count(),
        0,
        "nothing Anthropic cannot express reaches it"
    );
    // Anthropic alone: 400 before any call
    let mut alone = n2.clone();
    alone["model"] = json!("anthropic/claude-sonnet-4-5");
    for stream in [false, true] {
        alone["stream"] = json!(stream);
        let r = s.chat(&alone).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("'n'") && msg.contains("anthropic/claude-sonnet-4-5"),
            "{msg}"
        );
    }
    alone["stream"] = json!(false);
    let results = s.sdk(json!([{"kind": "complete", "request": alone}])).await;
    assert_eq!(results[0]["error"], "BadRequestError", "{}", results[0]);
    assert_eq!(s.anthropic.count(), 0);
}

// ---------------------------------------------------------------------------------
// 8. Malformed 200s

#[tokio::test]
async fn a_200_that_is_not_a_messages_answer_fails_over() {
    let s = setup().await;
    s.anthropic
        .push(Reply::json(
            200,
            r#"{"id":"msg_1","type":"message","role":"assistant"}"#,
        ))
        .push(Reply::json(200, "<html>bad gateway</html>"))
        .push(Reply::json(
            200,
            r#"{"choices":[{"message":{"content":"hi"}}]}"#,
        ));
    s.openai
        .always(Reply::json(200, completion(GPT, "from openai")));
    for i in 0..3 {
        let r = s
            .chat(&json!({"model": "default", "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "from openai",
            "{i}"
        );
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{i}");
    }
    // a good answer between the failures keeps Anthropic's circuit closed (five
    // failures in a row would open it)
    s.anthropic.push(Reply::json(200, TEXT_JSON));
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.header("x-understudy-provider"), Some("anthropic"));

    // streams: garbage before content, an event before message_start, cut short
    // before any content (that one is a broken stream, not a protocol error)
    s.anthropic
        .push(Reply::raw(200, "text/event-stream", &["data: not json\n\n"]))
        .push(Reply::raw(
            200,
            "text/event-stream",
            &["event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n"],
        ))
        .push(anthropic_stream(
            TEXT_SSE.split("event: content_block_delta").next().unwrap(),
        ));
    s.openai.always(stream_reply(GPT, &["from openai"]));
    for i in 0..3 {
        let r = s
            .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("openai"), "{i}");
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{i}");
        assert!(!r.text().contains("msg_01"), "{i}: {}", r.text());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!((s.anthropic.count(), s.openai.count()), (7, 6));
    let metrics = get(&s.proxy.url("/metrics")).await.text();
    let count = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("understudy_attempts_total")
                    && l.contains("provider=\"anthropic\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {outcome} line: {metrics}"))
    };
    assert_eq!(count("protocol"), 5.0);
    assert_eq!(count("stream"), 1.0);
}

#[tokio::test]
async fn openai_only_tool_types_skip_anthropic_and_reach_openai_untouched() {
    let s = setup().await;
    s.openai
        .push(Reply::json(200, completion(GPT, "used the custom tool")));
    let tools =
        json!([{"type": "custom", "custom": {"name": "code_exec", "description": "runs code"}}]);
    let choice = json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "custom", "custom": {"name": "code_exec"}}]}});
    let r = s
        .chat(
            &json!({"model": "default", "messages": msgs(), "tools": tools, "tool_choice": choice}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(s.anthropic.count(), 0);
    let sent = s.openai.received()[0].json();
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["tool_choice"], choice);
}
