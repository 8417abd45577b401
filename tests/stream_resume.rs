//! `failover.resume_streams`: a stream that fails after 40 of its 80 words (cut,
//! stalled past `idle`, or an in-band error) is continued by the next target that can
//! continue an assistant turn — an Anthropic or an Ollama mock speaking its own wire
//! format — and the client's one stream carries both parts: the first answer's id and
//! model, no repeated text, one end. A stream inside a tool call, or a route with no
//! target able to continue, ends with the final error event as before; so does every
//! stream while the setting is off.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const WORDS: usize = 80;
const CUT: usize = 40;

/// The answer's words as streamed pieces: `w0`, ` w1`, …
fn piece(i: usize) -> String {
    if i == 0 {
        "w0".into()
    } else {
        format!(" w{i}")
    }
}

fn text(range: std::ops::Range<usize>) -> String {
    range.map(piece).collect()
}

/// An OpenAI stream of the first `CUT` words; `end` says how it stops.
fn openai_first_part(end: End) -> Reply {
    let words: Vec<String> = (0..CUT).map(piece).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut r = stream_reply("m-a-2024", &refs);
    r.events.truncate(1 + CUT); // role + the words; no finish, usage or [DONE]
    r.end(end)
}

/// Anthropic's SSE answer streaming words `CUT..WORDS`.
fn anthropic_rest() -> Reply {
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_cont", "type": "message", "role": "assistant", "model": "claude-cont", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 90, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    for i in CUT..WORDS {
        events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece(i)}})));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 40}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let pieces: Vec<String> = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    Reply::raw(200, "text/event-stream", &refs)
}

fn ollama_line(content: &str, done: bool) -> String {
    let mut v = json!({"model": "llama3.2", "created_at": "2025-01-15T10:20:30.123456789Z",
        "message": {"role": "assistant", "content": content}, "done": done});
    if done {
        v["done_reason"] = json!("stop");
        v["eval_count"] = json!(40);
        v["prompt_eval_count"] = json!(90);
    }
    format!("{v}\n")
}

/// Ollama's NDJSON answer streaming words `from..to`; `done` ends it properly.
fn ollama_words(from: usize, to: usize, done: bool) -> Vec<String> {
    let mut lines: Vec<String> = (from..to).map(|i| ollama_line(&piece(i), false)).collect();
    if done {
        lines.push(ollama_line("", true));
    }
    lines
}

fn ndjson(lines: &[String]) -> Reply {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    Reply::raw(200, "application/x-ndjson", &refs)
}

/// Mocks for `(name, kind, model, provider-table extra)` behind the `default` route
/// in that order; `failover` is the `[failover]` table's body.
async fn proxy(targets: &[(&str, &str, &str, &str)], failover: &str) -> (Vec<Mock>, Proxy) {
    let mut mocks = Vec::new();
    let mut toml = format!("[server]\nlisten = \"127.0.0.1:0\"\n[failover]\n{failover}\n");
    for (name, kind, _, extra) in targets {
        let mock = Mock::start().await;
        let base = match *kind {
            "openai" => format!("{}/v1", mock.url()),
            _ => mock.url(),
        };
        toml.push_str(&format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\napi_key_env = \"TEST_KEY\"\n{extra}\n"
        ));
        mocks.push(mock);
    }
    let list: Vec<String> = targets
        .iter()
        .map(|(name, _, model, _)| format!("\"{name}/{model}\""))
        .collect();
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        list.join(", ")
    ));
    (mocks, Proxy::start(&toml, &[UPSTREAM_KEY]).await)
}

const ON: &str = "resume_streams = true";

/// The chunks of a chat stream, checked: one [DONE] at the end, no error event.
fn chat_chunks(r: &Resp) -> Vec<Value> {
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "{data:?}");
    chunks
}

fn chat_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The final assistant message a continuation request carried, as text.
fn prefill_sent(m: &Mock) -> String {
    let body = m.received()[0].json();
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant", "{body}");
    match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().map(|b| b["text"].as_str().unwrap()).collect(),
        other => panic!("content {other}"),
    }
}

async fn resumes(p: &Proxy, result: &str) -> u64 {
    let metrics = get(&p.url("/metrics")).await.text();
    let line = format!("understudy_stream_resumes_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_cut_stream_resumes_on_an_anthropic_target() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", ""),
            ("b", "anthropic", "claude-x", ""),
        ],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    m[1].push(anthropic_rest());
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.status, 200);
    let chunks = chat_chunks(&r);
    assert_eq!(chat_text(&chunks), text(0..WORDS));
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-mock1", "one answer, one id: {c}");
        assert_eq!(c["model"], "m-a-2024", "the first target's model: {c}");
    }
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    assert_eq!(prefill_sent(&m[1]), text(0..CUT));
    let sent = m[1].received()[0].json();
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["stream"], true);
    assert_eq!(resumes(&p, "resumed").await, 1);
}

#[tokio::test]
async fn a_stream_stalled_past_idle_resumes_on_an_ollama_target() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", "timeouts = { idle = \"300ms\" }"),
            ("b", "ollama", "llama3.2", ""),
        ],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Hang));
    m[1].push(ndjson(&ollama_words(CUT, WORDS, true)));
    let r = p.chat(user_stream("default")).await;
    let chunks = chat_chunks(&r);
    assert_eq!(chat_text(&chunks), text(0..WORDS));
    assert!(chunks.iter().all(|c| c["model"] == "m-a-2024"));
    let sent = m[1].received()[0].json();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2, "{sent}");
    assert_eq!(prefill_sent(&m[1]), text(0..CUT));
    assert_eq!(resumes(&p, "resumed").await, 1);
}

#[tokio::test]
async fn a_cut_inside_a_tool_call_is_not_resumed() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", ""),
            ("b", "anthropic", "claude-x", ""),
        ],
        ON,
    )
    .await;
    let datas = [
        chunk("m-a", json!({"role": "assistant", "content": ""}), None),
        chunk("m-a", json!({"content": "Let me look."}), None),
        chunk(
            "m-a",
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"ci"}}]}),
            None,
        ),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    m[0].push(Reply::sse(&refs).end(End::Drop));
    let r = p.chat(user_stream("default")).await;
    let data = r.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(m[1].count(), 0, "nothing asked to continue a tool call");
    assert_eq!(resumes(&p, "not_resumable").await, 1);
}

#[tokio::test]
async fn with_no_target_able_to_continue_the_stream_ends_with_the_error_event() {
    // An OpenAI-kind target declares no prefill: it cannot continue the answer.
    let (m, p) = proxy(
        &[("a", "openai", "m-a", ""), ("b", "openai", "m-b", "")],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    let r = p.chat(user_stream("default")).await;
    let data = r.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{data:?}");
    assert_eq!(m[1].count(), 0);
    assert_eq!(resumes(&p, "failed").await, 1);
}

#[tokio::test]
async fn with_resume_off_a_cut_stream_ends_as_before() {
    let (m, p) = proxy(
        &[("a", "openai", "m-a", ""), ("b", "ollama", "llama3.2", "")],
        "",
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    m[1].push(ndjson(&ollama_words(CUT, WORDS, true)));
    let r = p.chat(user_stream("default")).await;
    let data = r.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(m[1].count(), 0);
    assert!(!get(&p.url("/metrics"))
        .await
        .text()
        .contains("understudy_stream_resumes_total{"));
}

/// `(event name, data)` of an SSE body.
fn sse_events(r: &Resp) -> Vec<(String, Value)> {
    r.text()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

#[tokio::test]
async fn an_in_band_error_resumes_through_the_messages_front_door() {
    let (m, p) = proxy(
        &[
            ("a", "ollama", "llama3.2", ""),
            ("b", "anthropic", "claude-x", ""),
        ],
        ON,
    )
    .await;
    let mut first = ollama_words(0, CUT, false);
    first.push(
        "{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n".into(),
    );
    m[0].push(ndjson(&first));
    m[1].push(anthropic_rest());
    let body = json!({"model": "default", "max_tokens": 400, "stream": true,
        "messages": [{"role": "user", "content": "Count."}]});
    let r = send(
        &p.url("/v1/messages"),
        "POST",
        &[("anthropic-version", "2023-06-01")],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = sse_events(&r);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"error"), "{names:?}");
    let count = |n: &str| names.iter().filter(|x| **x == n).count();
    assert_eq!(
        (
            count("message_start"),
            count("message_stop"),
            count("content_block_start")
        ),
        (1, 1, 1),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"message_stop"));
    let said: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, text(0..WORDS));
    assert_eq!(events[0].1["message"]["model"], "llama3.2");
    assert_eq!(prefill_sent(&m[1]), text(0..CUT));
}

#[tokio::test]
async fn a_cut_stream_resumes_through_the_responses_front_door() {
    let (m, p) = proxy(
        &[("a", "openai", "m-a", ""), ("b", "ollama", "llama3.2", "")],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    m[1].push(ndjson(&ollama_words(CUT, WORDS, true)));
    let body = json!({"model": "default", "input": "Count.", "stream": true, "store": false});
    let r = send(&p.url("/v1/responses"), "POST", &[], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = sse_events(&r);
    let types: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["type"].as_str())
        .collect();
    assert!(
        !types
            .iter()
            .any(|t| *t == "error" || *t == "response.failed"),
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "response.completed").count(),
        1
    );
    assert_eq!(types.last(), Some(&"response.completed"));
    let said: String = events
        .iter()
        .filter(|(_, d)| d["type"] == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(said, text(0..WORDS));
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["model"], "m-a-2024");
    assert_eq!(done["output"][0]["content"][0]["text"], text(0..WORDS));
    assert_eq!(prefill_sent(&m[1]), text(0..CUT));
}

#[tokio::test]
async fn a_continuation_that_fails_before_content_fails_over_to_the_next_target() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", ""),
            ("b", "anthropic", "claude-x", ""),
            ("c", "ollama", "llama3.2", ""),
        ],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    m[1].push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    m[2].push(ndjson(&ollama_words(CUT, WORDS, true)));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(chat_text(&chat_chunks(&r)), text(0..WORDS));
    assert_eq!(prefill_sent(&m[1]), text(0..CUT));
    assert_eq!(prefill_sent(&m[2]), text(0..CUT));
    let metrics = get(&p.url("/metrics")).await.text();
    for line in [
        "understudy_attempts_total{provider=\"b\",outcome=\"error_status\"} 1",
        "understudy_attempts_total{provider=\"c\",outcome=\"ok\"} 1",
        "understudy_failovers_total{route=\"default\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(resumes(&p, "resumed").await, 1);
}

#[tokio::test]
async fn a_native_messages_stream_is_not_resumed() {
    // /v1/messages answered by Anthropic itself: the client got Anthropic's own
    // events, which a translated continuation cannot join.
    let (m, p) = proxy(
        &[
            ("a", "anthropic", "claude-x", ""),
            ("b", "ollama", "llama3.2", ""),
        ],
        ON,
    )
    .await;
    let mut first = anthropic_rest();
    first.events.truncate(3 + 10); // start, block start, ping, ten words
    m[0].push(first.end(End::Drop));
    let body = json!({"model": "default", "max_tokens": 400, "stream": true,
        "messages": [{"role": "user", "content": "Count."}]});
    let r = send(
        &p.url("/v1/messages"),
        "POST",
        &[("anthropic-version", "2023-06-01")],
        body.to_string(),
    )
    .await;
    let events = sse_events(&r);
    assert_eq!(events.last().unwrap().0, "error", "{}", r.text());
    assert_eq!(m[1].count(), 0);
    assert_eq!(resumes(&p, "not_resumable").await, 1);
}

/// Gemini's SSE answer streaming words `CUT..WORDS`.
fn gemini_rest() -> Reply {
    let mut datas: Vec<String> = (CUT..WORDS)
        .map(|i| {
            json!({"candidates": [{"content": {"parts": [{"text": piece(i)}], "role": "model"}}],
                "modelVersion": "gemini-2.0-flash", "responseId": "gem-cont"})
            .to_string()
        })
        .collect();
    datas.push(
        json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 90, "candidatesTokenCount": 40, "totalTokenCount": 130},
            "modelVersion": "gemini-2.0-flash", "responseId": "gem-cont"})
        .to_string(),
    );
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

#[tokio::test]
async fn a_cut_stream_resumes_on_a_gemini_target() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", ""),
            ("b", "gemini", "gemini-2.0-flash", ""),
        ],
        ON,
    )
    .await;
    m[0].push(openai_first_part(End::Drop));
    m[1].push(gemini_rest());
    let r = p.chat(user_stream("default")).await;
    let chunks = chat_chunks(&r);
    assert_eq!(chat_text(&chunks), text(0..WORDS));
    assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-mock1"));
    assert!(m[1].received()[0].path.contains(":streamGenerateContent"));
    let sent = m[1].received()[0].json();
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(
        contents.last().unwrap(),
        &json!({"role": "model", "parts": [{"text": text(0..CUT)}]}),
        "{sent}"
    );
}

#[tokio::test]
async fn a_vllm_style_target_that_echoes_the_prefill_is_spliced_without_repeats() {
    let (m, p) = proxy(
        &[
            ("a", "openai", "m-a", ""),
            (
                "v",
                "openai",
                "served",
                "prefill = \"continue_final_message\"",
            ),
        ],
        ON,
    )
    .await;
    // The first answer's words each end in a space: the prefill goes without the
    // last one, and the continuation starts with it.
    let spaced: Vec<String> = (0..CUT).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = spaced.iter().map(String::as_str).collect();
    let mut first = stream_reply("m-a-2024", &refs);
    first.events.truncate(1 + CUT);
    m[0].push(first.end(End::Drop));
    // This server repeats the prefill (in two pieces) before continuing it.
    let prefill = spaced.concat().trim_end().to_string();
    let (echo1, echo2) = prefill.split_at(7);
    let mut rest = vec![echo1.to_string(), echo2.to_string()];
    rest.extend((CUT..WORDS).map(|i| format!(" w{i}")));
    let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    m[1].push(stream_reply("served", &refs));
    let r = p.chat(user_stream("default")).await;
    let words: Vec<String> = (0..WORDS).map(|i| format!("w{i}")).collect();
    assert_eq!(chat_text(&chat_chunks(&r)), words.join(" "));
    let sent = m[1].received()[0].json();
    assert_eq!(
        (
            sent["continue_final_message"].clone(),
            sent["add_generation_prompt"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(sent["model"], "served");
    assert_eq!(prefill_sent(&m[1]), prefill);
}
