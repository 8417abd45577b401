//! Every kind's answers, streams and errors, as the proxy sends them, validated
//! against OpenAI's published schemas (`fixtures/openai/schemas.json`, extracted from
//! its OpenAPI description): what an SDK built from that description will accept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

const KINDS: [&str; 5] = ["openai", "azure", "anthropic", "gemini", "ollama"];

/// Recorded answers per kind: (complete answers, stream bodies, stream content type).
fn fixtures(kind: &str) -> (Vec<&'static str>, Vec<&'static str>, &'static str) {
    match kind {
        "openai" | "azure" => (
            vec![include_str!("../fixtures/openai/response_text.json")],
            vec![include_str!("../fixtures/openai/stream_text.sse")],
            "text/event-stream",
        ),
        "anthropic" => (
            vec![
                include_str!("../fixtures/anthropic/response_text.json"),
                include_str!("../fixtures/anthropic/response_tool_use.json"),
                include_str!("../fixtures/anthropic/response_max_tokens.json"),
            ],
            vec![
                include_str!("../fixtures/anthropic/stream_text.sse"),
                include_str!("../fixtures/anthropic/stream_tool_use.sse"),
            ],
            "text/event-stream",
        ),
        "gemini" => (
            vec![
                include_str!("../fixtures/gemini/response_text.json"),
                include_str!("../fixtures/gemini/response_function_calls.json"),
                include_str!("../fixtures/gemini/response_max_tokens.json"),
            ],
            vec![
                include_str!("../fixtures/gemini/stream_text.sse"),
                include_str!("../fixtures/gemini/stream_function_calls.sse"),
            ],
            "text/event-stream",
        ),
        "ollama" => (
            vec![
                include_str!("../fixtures/ollama/response_text.json"),
                include_str!("../fixtures/ollama/response_tool_calls.json"),
                include_str!("../fixtures/ollama/response_length.json"),
            ],
            vec![
                include_str!("../fixtures/ollama/stream_text.ndjson"),
                include_str!("../fixtures/ollama/stream_tool_call.ndjson"),
            ],
            "application/x-ndjson",
        ),
        _ => unreachable!(),
    }
}

fn config(mocks: &[(&str, String)]) -> String {
    let mut s = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for (kind, url) in mocks {
        let base = match *kind {
            "openai" => format!("{url}/v1"),
            _ => url.clone(),
        };
        s.push_str(&format!(
            "\n[providers.{kind}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\napi_key_env = \"TEST_KEY\"\n"
        ));
        s.push_str(&format!(
            "\n[[routes]]\nmodel = \"{kind}\"\ntargets = [\"{kind}/m-{kind}\"]\n"
        ));
    }
    s
}

fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    })
}

fn case(label: String, schema: &str, instance: Value) -> Value {
    json!({"label": label, "schema": schema, "instance": instance})
}

#[tokio::test]
async fn answers_streams_and_errors_of_every_kind_match_openais_schema() {
    let mut mocks = Vec::new();
    for kind in KINDS {
        mocks.push((kind, Mock::start().await));
    }
    let urls: Vec<(&str, String)> = mocks.iter().map(|(k, m)| (*k, m.url())).collect();
    let p = Proxy::start(&config(&urls), &[("TEST_KEY", "sk-upstream-secret")]).await;
    let mut cases = Vec::new();
    for (kind, mock) in &mocks {
        let (answers, streams, content_type) = fixtures(kind);
        for (i, body) in answers.iter().enumerate() {
            mock.push(Reply::json(200, *body));
            let r = p.chat(request(kind, false)).await;
            assert_eq!(r.status, 200, "{kind} answer {i}: {}", r.text());
            let answer = r.json();
            assert!(
                answer["choices"][0]["message"]
                    .as_object()
                    .unwrap()
                    .contains_key("refusal"),
                "{kind}: refusal is required (null when none): {answer}"
            );
            cases.push(case(
                format!("{kind} answer {i}"),
                "CreateChatCompletionResponse",
                answer,
            ));
        }
        for (i, body) in streams.iter().enumerate() {
            mock.push(Reply::split(200, content_type, body));
            let r = p.chat(request(kind, true)).await;
            assert_eq!(r.status, 200, "{kind} stream {i}: {}", r.text());
            let data = r.sse_data();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{kind}");
            for (j, d) in data[..data.len() - 1].iter().enumerate() {
                cases.push(case(
                    format!("{kind} stream {i} chunk {j}"),
                    "CreateChatCompletionStreamResponse",
                    serde_json::from_str(d).unwrap(),
                ));
            }
        }
        // An upstream failure with nothing to fail over to: the proxy's own error.
        mock.push(Reply::json(500, r#"{"error":{"message":"boom"}}"#));
        let r = p.chat(request(kind, false)).await;
        assert_eq!(r.status, 502, "{kind}");
        cases.push(case(format!("{kind} 502"), "ErrorResponse", r.json()));
    }
    let r = p.chat(request("no-such-model", false)).await;
    assert_eq!(r.status, 404);
    cases.push(case("404".into(), "ErrorResponse", r.json()));
    let r = send(&p.url("/v1/chat/completions"), "POST", &[], "{").await;
    assert_eq!(r.status, 400);
    cases.push(case("400".into(), "ErrorResponse", r.json()));
    assert!(cases.len() >= 30, "{} documents", cases.len());

    let mut child = Command::new(sdk_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/validate_openai.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(cases).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
}
