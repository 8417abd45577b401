//! The Anthropic provider end to end: the official `openai` SDK talks to the proxy,
//! an Anthropic mock behind it replays the recorded answers and SSE streams of
//! `fixtures/anthropic/` (streams cut into odd-sized pieces, some mid-line and
//! mid-UTF-8 character), and an OpenAI-kind mock stands by as the second target.
//! Here: complete answers, streams, what Anthropic receives and JSON mode.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod translate_anthropic_common;

use common::*;
use serde_json::{json, Value};
use translate_anthropic_common::*;

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
