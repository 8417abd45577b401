//! The Anthropic Messages front door (`POST /v1/messages`, DESIGN §8) end to end: the
//! official `anthropic` Python SDK (and raw HTTP where the wire itself is the point)
//! talks to the proxy, with OpenAI-, Anthropic-, Gemini- and Ollama-kind mocks behind
//! it replaying `fixtures/` or chat-completions answers. Here: every kind answers,
//! plain and streamed, and an Anthropic target gets the client's request as it was.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod messages_common;

use common::*;
use messages_common::*;
use serde_json::{json, Value};

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
// An Anthropic target: the request and the answer pass through

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
