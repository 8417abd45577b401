//! The four-deep fallback chain users write: Anthropic → OpenAI → Gemini → a local
//! Ollama, each mock answering in its own kind's real wire format. The first three
//! fail (Anthropic 529 overloaded, OpenAI 429, Gemini 503 UNAVAILABLE), Ollama
//! answers; plain and streamed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const CLIENT_KEY: &str = "client-key";

const OPENAI_429: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-test on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

struct Chain {
    anthropic: Mock,
    openai: Mock,
    gemini: Mock,
    ollama: Mock,
    proxy: Proxy,
}

impl Chain {
    async fn start() -> Chain {
        let (anthropic, openai, gemini, ollama) = (
            Mock::start().await,
            Mock::start().await,
            Mock::start().await,
            Mock::start().await,
        );
        let toml = format!(
            r#"
[server]
api_keys_env = "CLIENT_KEYS"
[providers.anthropic]
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_API_KEY"
[providers.openai]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_API_KEY"
[providers.gemini]
kind = "gemini"
base_url = "{}"
api_key_env = "GEMINI_API_KEY"
[providers.local]
kind = "ollama"
base_url = "{}"
[[routes]]
model = "default"
targets = [
  "anthropic/claude-sonnet-4-5",
  "openai/gpt-4o",
  "gemini/gemini-2.0-flash",
  "local/llama3.2",
]
"#,
            anthropic.url(),
            openai.url(),
            gemini.url(),
            ollama.url()
        );
        let proxy = Proxy::start(
            &toml,
            &[
                ("CLIENT_KEYS", CLIENT_KEY),
                ("ANTHROPIC_API_KEY", "sk-ant-test"),
                ("OPENAI_API_KEY", "sk-openai-test"),
                ("GEMINI_API_KEY", "AIza-gemini-test"),
            ],
        )
        .await;
        anthropic.push(
            Reply::json(
                529,
                include_str!("../fixtures/anthropic/error_overloaded.json"),
            )
            .header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"),
        );
        openai.push(
            Reply::json(429, OPENAI_429)
                .header("retry-after", "20")
                .header("x-ratelimit-reset-requests", "120ms"),
        );
        gemini.push(Reply::json(
            503,
            include_str!("../fixtures/gemini/error_503_unavailable.json"),
        ));
        Chain {
            anthropic,
            openai,
            gemini,
            ollama,
            proxy,
        }
    }

    /// Each mock saw exactly one request, in its own wire format.
    fn assert_one_call_each(&self, stream: bool) {
        let one = |m: &Mock, name: &str| {
            let got = m.received();
            assert_eq!(got.len(), 1, "{name} saw exactly one call");
            got.into_iter().next().unwrap()
        };
        let a = one(&self.anthropic, "anthropic");
        assert_eq!(a.path, "/v1/messages");
        assert_eq!(a.headers["x-api-key"], "sk-ant-test");
        assert_eq!(a.json()["model"], "claude-sonnet-4-5");
        assert_eq!(a.json()["stream"].as_bool().unwrap_or(false), stream);

        let o = one(&self.openai, "openai");
        assert_eq!(o.path, "/v1/chat/completions");
        assert_eq!(o.headers["authorization"], "Bearer sk-openai-test");
        assert_eq!(o.json()["model"], "gpt-4o");

        let g = one(&self.gemini, "gemini");
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        assert_eq!(g.path, format!("/v1beta/models/gemini-2.0-flash:{method}"));
        assert_eq!(g.headers["x-goog-api-key"], "AIza-gemini-test");
        assert!(g.json()["contents"].is_array());

        let l = one(&self.ollama, "ollama");
        assert_eq!(l.path, "/api/chat");
        assert_eq!(l.json()["model"], "llama3.2");
        assert_eq!(l.json()["stream"], stream);
    }
}

/// Ollama's NDJSON answer, one line per write.
fn ollama_stream() -> Reply {
    let lines: Vec<&str> = include_str!("../fixtures/ollama/stream_text.ndjson")
        .split_inclusive('\n')
        .collect();
    Reply::raw(200, "application/x-ndjson", &lines).gap(std::time::Duration::from_millis(2))
}

fn question() -> Value {
    json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}])
}

async fn chat(p: &Proxy, body: Value) -> Resp {
    p.chat_as(CLIENT_KEY, body).await
}

#[tokio::test]
async fn the_fourth_target_answers_after_three_failures() {
    let c = Chain::start().await;
    c.ollama.push(Reply::json(
        200,
        include_str!("../fixtures/ollama/response_text.json"),
    ));
    let r = chat(
        &c.proxy,
        json!({"model": "default", "messages": question()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("4"));
    assert_eq!(r.header("x-understudy-provider"), Some("local"));
    assert_eq!(r.header("x-understudy-model"), Some("llama3.2"));
    let body = r.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The sky is blue because of Rayleigh scattering."
    );
    assert_eq!(body["model"], "llama3.2");
    c.assert_one_call_each(false);
}

#[tokio::test]
async fn the_fourth_target_streams_after_three_failures() {
    let c = Chain::start().await;
    c.ollama.push(ollama_stream());
    let r = chat(
        &c.proxy,
        json!({"model": "default", "stream": true, "messages": question()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("4"));
    assert_eq!(r.header("x-understudy-provider"), Some("local"));
    let datas = r.sse_data();
    assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));
    let text: String = datas
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "The sky is blue ✓");
    c.assert_one_call_each(true);
}

#[tokio::test]
async fn the_sdk_reassembles_the_stream_of_the_fourth_target() {
    let c = Chain::start().await;
    c.ollama.push(ollama_stream());
    let results = openai_sdk(
        &c.proxy,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question(), "stream_options": {"include_usage": true}}}]),
    )
    .await;
    let s = &results[0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["content"], "The sky is blue ✓");
    assert_eq!(s["finish_reason"], "stop");
    assert_eq!(s["models"], json!(["llama3.2"]));
    assert_eq!(s["ids"].as_array().unwrap().len(), 1);
    assert_eq!(s["usage"]["total_tokens"], 29);
    c.assert_one_call_each(true);
}
